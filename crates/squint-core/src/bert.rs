//! The BERT encoder, top to bottom: embeddings, N × (self-attention, feed-forward), and the
//! question-answering head. Reads like the architecture; the arithmetic is in squint-kernels.

use squint_kernels::elementwise::{
    gelu_erf_in_place, gelu_tanh_in_place, layer_norm_in_place, relu_in_place,
};
use squint_kernels::{matmul, MatMut, MatRef, Parallelism};

use crate::config::{Activation, BertConfig};
use crate::error::{Error, Result};
use squint_kernels::parallel::{for_each_chunk, for_each_chunk_pair};

use crate::exec::Executor;
use crate::linear::{Linear, Output, Precision};
use crate::weights::WeightReader;

/// LayerNorm parameters.
#[derive(Clone, Debug)]
struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(r: &WeightReader<'_>, prefix: &str, hidden: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm {
            gamma: r.get(&format!("{prefix}.weight"), &[hidden])?,
            beta: r.get(&format!("{prefix}.bias"), &[hidden])?,
            eps,
        })
    }

    /// Normalises every row of `x` (rows of `gamma.len()` values), rows split across threads.
    fn apply(&self, x: &mut [f32], par: Parallelism) {
        let n = self.gamma.len();
        for_each_chunk(x, 32 * n, par, |_, chunk| {
            for row in chunk.chunks_exact_mut(n) {
                layer_norm_in_place(row, &self.gamma, &self.beta, self.eps);
            }
        });
    }
}

fn linear(
    r: &WeightReader<'_>,
    prefix: &str,
    out: usize,
    inp: usize,
    precision: Precision,
) -> Result<Linear> {
    let w = r.get(&format!("{prefix}.weight"), &[out, inp])?;
    let b = r.get(&format!("{prefix}.bias"), &[out])?;
    Ok(Linear::from_torch_with(&w, b, out, inp, precision))
}

/// Word + position + token-type embeddings, then LayerNorm.
#[derive(Clone, Debug)]
struct Embeddings {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    norm: LayerNorm,
}

/// One transformer layer. Q, K and V are one fused `[hidden -> 3·hidden]` layer.
#[derive(Clone, Debug)]
struct Layer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(r: &WeightReader<'_>, i: usize, c: &BertConfig, precision: Precision) -> Result<Self> {
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let p = format!("encoder.layer.{i}");
        // Fuse Q, K, V into one weight [3h, h] so a single GEMM computes all three.
        let mut w = Vec::with_capacity(3 * h * h);
        let mut b = Vec::with_capacity(3 * h);
        for part in ["query", "key", "value"] {
            w.extend(r.get(&format!("{p}.attention.self.{part}.weight"), &[h, h])?);
            b.extend(r.get(&format!("{p}.attention.self.{part}.bias"), &[h])?);
        }
        Ok(Layer {
            qkv: Linear::from_torch_with(&w, b, 3 * h, h, precision),
            attention_output: linear(r, &format!("{p}.attention.output.dense"), h, h, precision)?,
            attention_norm: LayerNorm::load(
                r,
                &format!("{p}.attention.output.LayerNorm"),
                h,
                c.layer_norm_eps,
            )?,
            intermediate: linear(r, &format!("{p}.intermediate.dense"), inter, h, precision)?,
            output: linear(r, &format!("{p}.output.dense"), h, inter, precision)?,
            output_norm: LayerNorm::load(r, &format!("{p}.output.LayerNorm"), h, c.layer_norm_eps)?,
        })
    }
}

/// A batch of token sequences, right-padded to `seq_len`.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// `[batch, seq_len]` token ids (padding positions may hold anything valid).
    pub ids: &'a [u32],
    /// `[batch, seq_len]` token type ids.
    pub types: &'a [u32],
    /// Real (unpadded) length of each sequence.
    pub lengths: &'a [usize],
    pub seq_len: usize,
}

impl Batch<'_> {
    fn size(&self) -> usize {
        self.lengths.len()
    }
}

/// Buffers a forward pass needs, kept between calls so the hot loop never allocates.
#[derive(Debug, Default)]
pub struct Workspace {
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    heads: Vec<f32>,
    scores: Vec<f32>,
    intermediate: Vec<f32>,
    logits: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

impl Workspace {
    fn reserve(&mut self, c: &BertConfig, batch: usize, seq: usize) {
        let t = batch * seq;
        grow(&mut self.hidden, t * c.hidden_size);
        grow(&mut self.qkv, t * 3 * c.hidden_size);
        grow(&mut self.context, t * c.hidden_size);
        grow(&mut self.heads, t * c.hidden_size);
        grow(&mut self.scores, batch * c.num_attention_heads * seq * seq);
        grow(&mut self.intermediate, t * c.intermediate_size);
        grow(&mut self.logits, t * 2);
    }
}

/// A BERT encoder with an optional question-answering head (`qa_outputs`).
#[derive(Clone, Debug)]
pub struct Bert {
    config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    qa_outputs: Option<Linear>,
    precision: Precision,
}

impl Bert {
    /// Loads every tensor through `r`, checking names and shapes against `config`.
    pub fn load(config: &BertConfig, r: &WeightReader<'_>) -> Result<Bert> {
        Self::load_with(config, r, Precision::Fp32)
    }

    /// [`Bert::load`] with the encoder's linear layers at `precision` (the QA head, two
    /// outputs, stays FP32).
    pub fn load_with(config: &BertConfig, r: &WeightReader<'_>, precision: Precision) -> Result<Bert> {
        let c = config;
        let h = c.hidden_size;
        let embeddings = Embeddings {
            word: r.get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?,
            position: r.get(
                "embeddings.position_embeddings.weight",
                &[c.max_position_embeddings, h],
            )?,
            token_type: r.get("embeddings.token_type_embeddings.weight", &[c.type_vocab_size, h])?,
            norm: LayerNorm::load(r, "embeddings.LayerNorm", h, c.layer_norm_eps)?,
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(r, i, c, precision))
            .collect::<Result<Vec<_>>>()?;
        // The QA head has no `bert.` prefix; `WeightReader` tries both spellings anyway.
        let qa_outputs = if r.has("qa_outputs.weight") {
            Some(linear(r, "qa_outputs", 2, h, Precision::Fp32)?)
        } else {
            None
        };
        Ok(Bert {
            config: config.clone(),
            embeddings,
            layers,
            qa_outputs,
            precision,
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn has_qa_head(&self) -> bool {
        self.qa_outputs.is_some()
    }

    fn check(&self, batch: &Batch<'_>) -> Result<()> {
        let c = &self.config;
        let (n, l) = (batch.size(), batch.seq_len);
        if n == 0 || l == 0 {
            return Err(Error::Input("empty batch".into()));
        }
        if batch.ids.len() != n * l || batch.types.len() != n * l {
            return Err(Error::Input(format!(
                "batch of {n}x{l} needs {} ids and type ids",
                n * l
            )));
        }
        if l > c.max_position_embeddings {
            return Err(Error::Input(format!(
                "sequence of {l} tokens is longer than the model's {} positions",
                c.max_position_embeddings
            )));
        }
        if let Some(len) = batch.lengths.iter().find(|&&len| len == 0 || len > l) {
            return Err(Error::Input(format!(
                "sequence length {len} is not within 1..={l}"
            )));
        }
        if let Some(id) = batch.ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(Error::Input(format!(
                "token id {id} is outside the vocabulary of {}",
                c.vocab_size
            )));
        }
        if let Some(t) = batch.types.iter().find(|&&t| t as usize >= c.type_vocab_size) {
            return Err(Error::Input(format!(
                "token type {t} is outside the {} token types",
                c.type_vocab_size
            )));
        }
        Ok(())
    }

    /// Runs the encoder; returns the last hidden states, `[batch · seq_len, hidden]`.
    pub fn encode<'w>(&self, batch: &Batch<'_>, ws: &'w mut Workspace, exec: &Executor) -> Result<&'w [f32]> {
        self.check(batch)?;
        let t = batch.size() * batch.seq_len;
        ws.reserve(&self.config, batch.size(), batch.seq_len);
        exec.run(|| self.forward(batch, ws, exec.parallelism()))?;
        Ok(&ws.hidden[..t * self.config.hidden_size])
    }

    /// Runs encoder and QA head; returns `(start_logits, end_logits)`, each `[batch · seq_len]`.
    pub fn qa_logits(
        &self,
        batch: &Batch<'_>,
        ws: &mut Workspace,
        exec: &Executor,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let head = self.qa_outputs.as_ref().ok_or(Error::NoQaHead)?;
        self.encode(batch, ws, exec)?;
        let t = batch.size() * batch.seq_len;
        head.forward(
            &ws.hidden,
            t,
            &mut ws.logits,
            Output::Replace,
            None,
            Parallelism::Sequential,
        )?;
        let logits = &ws.logits[..2 * t];
        Ok((
            logits.iter().step_by(2).copied().collect(),
            logits.iter().skip(1).step_by(2).copied().collect(),
        ))
    }

    fn forward(&self, batch: &Batch<'_>, ws: &mut Workspace, par: Parallelism) -> Result<()> {
        let c = &self.config;
        let (h, l) = (c.hidden_size, batch.seq_len);
        let t = batch.size() * l;
        self.embed(batch, &mut ws.hidden[..t * h], par);
        for layer in &self.layers {
            // Self-attention block: hidden = LN(hidden + Attention(hidden)·Wo + bo).
            layer
                .qkv
                .forward(&ws.hidden, t, &mut ws.qkv, Output::Replace, None, par)?;
            self.attention(batch, ws, par)?;
            layer
                .attention_output
                .forward(&ws.context, t, &mut ws.hidden, Output::Add, None, par)?;
            layer.attention_norm.apply(&mut ws.hidden[..t * h], par);
            // Feed-forward block: hidden = LN(hidden + act(hidden·W1 + b1)·W2 + b2).
            let act = Some(self.activation());
            layer
                .intermediate
                .forward(&ws.hidden, t, &mut ws.intermediate, Output::Replace, act, par)?;
            layer
                .output
                .forward(&ws.intermediate, t, &mut ws.hidden, Output::Add, None, par)?;
            layer.output_norm.apply(&mut ws.hidden[..t * h], par);
        }
        Ok(())
    }

    fn embed(&self, batch: &Batch<'_>, hidden: &mut [f32], par: Parallelism) {
        let h = self.config.hidden_size;
        let e = &self.embeddings;
        for (i, row) in hidden.chunks_exact_mut(h).enumerate() {
            let (id, ty, pos) = (batch.ids[i] as usize, batch.types[i] as usize, i % batch.seq_len);
            let word = &e.word[id * h..(id + 1) * h];
            let position = &e.position[pos * h..(pos + 1) * h];
            let token_type = &e.token_type[ty * h..(ty + 1) * h];
            for (j, v) in row.iter_mut().enumerate() {
                *v = word[j] + position[j] + token_type[j];
            }
        }
        e.norm.apply(hidden, par);
    }

    /// The feed-forward activation, applied in the GEMM epilogue.
    fn activation(&self) -> fn(&mut [f32]) {
        match self.config.activation {
            Activation::GeluErf => gelu_erf_in_place,
            Activation::GeluTanh => gelu_tanh_in_place,
            Activation::Relu => relu_in_place,
        }
    }

    /// Multi-head attention over the fused QKV buffer; padded keys are left out entirely.
    /// One task per (sequence, head): scores = Q·Kᵀ/√d, row softmax, context = P·V.
    fn attention(&self, batch: &Batch<'_>, ws: &mut Workspace, par: Parallelism) -> Result<()> {
        let c = &self.config;
        let (h, heads, d, l) = (c.hidden_size, c.num_attention_heads, c.head_dim(), batch.seq_len);
        let n = batch.size();
        let scale = 1.0 / (d as f32).sqrt();
        let qkv = &ws.qkv[..n * l * 3 * h];
        let errors = std::sync::Mutex::new(None);
        for_each_chunk_pair(
            &mut ws.scores[..n * heads * l * l],
            l * l,
            &mut ws.heads[..n * l * h],
            l * d,
            par,
            |task, scores, out| {
                let (b, head) = (task / heads, task % heads);
                let keys = batch.lengths[b];
                let base = b * l * 3 * h + head * d;
                let mut run = || -> Result<()> {
                    let q = MatRef::new(&qkv[base..], l, d, 3 * h, 1)?;
                    let k = MatRef::new(&qkv[base + h..], keys, d, 3 * h, 1)?;
                    let v = MatRef::new(&qkv[base + 2 * h..], keys, d, 3 * h, 1)?;
                    matmul(
                        MatMut::new(scores, l, keys, l)?,
                        q,
                        k.t(),
                        false,
                        scale,
                        Parallelism::Sequential,
                    )?;
                    for row in scores.chunks_exact_mut(l) {
                        squint_kernels::elementwise::softmax_in_place(&mut row[..keys]);
                    }
                    let p = MatRef::new(scores, l, keys, l, 1)?;
                    matmul(
                        MatMut::row_major(out, l, d)?,
                        p,
                        v,
                        false,
                        1.0,
                        Parallelism::Sequential,
                    )?;
                    Ok(())
                };
                if let Err(e) = run() {
                    if let Ok(mut slot) = errors.lock() {
                        slot.get_or_insert(e);
                    }
                }
            },
        );
        if let Some(e) = errors.into_inner().ok().flatten() {
            return Err(e);
        }
        // Gather per-head outputs [b, head, l, d] into [b·l, h].
        let heads_buf = &ws.heads;
        for_each_chunk(&mut ws.context[..n * l * h], 16 * h, par, |chunk_index, chunk| {
            for (r, row) in chunk.chunks_exact_mut(h).enumerate() {
                let token = chunk_index * 16 + r;
                let (b, i) = (token / l, token % l);
                for head in 0..heads {
                    let src = ((b * heads + head) * l + i) * d;
                    row[head * d..(head + 1) * d].copy_from_slice(&heads_buf[src..src + d]);
                }
            }
        });
        Ok(())
    }
}
