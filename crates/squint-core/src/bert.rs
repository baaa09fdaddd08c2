//! The BERT encoder, top to bottom: embeddings, N × (self-attention, feed-forward), and the
//! question-answering head. Reads like the architecture; the arithmetic is in squint-kernels.

use squint_kernels::attention::{attention_head, HeadInputs, Numerics};
use squint_kernels::elementwise::{
    dot, gelu_erf_in_place, gelu_tanh_in_place, layer_norm_in_place, relu_in_place,
};
use squint_kernels::Parallelism;

use crate::config::{Activation, BertConfig};
use crate::error::{Error, Result};
use squint_kernels::parallel::for_each_chunk;

use crate::exec::Executor;
use crate::linear::{Linear, Output, Precision};
use crate::quant::{Role, Site};
use crate::weights::WeightReader;

/// LayerNorm parameters.
#[derive(Clone, Debug)]
struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn load(r: &dyn ParamSource, prefix: &str, hidden: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm {
            gamma: r.f32(&format!("{prefix}.weight"), &[hidden])?,
            beta: r.f32(&format!("{prefix}.bias"), &[hidden])?,
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

/// Where an encoder's parameters come from: an FP32 checkpoint ([`WeightReader`]) or an INT8
/// artifact ([`crate::artifact::Int8Artifact`]). Every tensor comes back shape-checked.
pub trait ParamSource {
    /// Whether the optional tensor `name` (e.g. the QA head) exists.
    fn has(&self, name: &str) -> bool;
    /// An FP32 tensor of exactly `shape` (LayerNorms, position embeddings, the QA head).
    fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;
    /// The word embedding table, `[vocab, hidden]`.
    fn word_embeddings(&self, vocab: usize, hidden: usize) -> Result<WordEmbeddings>;
    /// The encoder's linear layer at `site`, `in_features -> out_features`.
    fn linear(&self, site: Site, out_features: usize, in_features: usize) -> Result<Linear>;
    /// The arithmetic these parameters make the encoder run.
    fn precision(&self) -> Precision;
    /// How attention's products are computed (FP32 checkpoints: f32).
    fn attention(&self) -> Numerics {
        Numerics::F32
    }
}

impl ParamSource for WeightReader<'_> {
    fn has(&self, name: &str) -> bool {
        WeightReader::has(self, name)
    }

    fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.get(name, shape)
    }

    fn word_embeddings(&self, vocab: usize, hidden: usize) -> Result<WordEmbeddings> {
        Ok(WordEmbeddings::F32(
            self.get("embeddings.word_embeddings.weight", &[vocab, hidden])?,
        ))
    }

    fn linear(&self, site: Site, out: usize, inp: usize) -> Result<Linear> {
        let (w, b) = fp32_linear(self, site, out, inp)?;
        Ok(Linear::from_torch(&w, b, out, inp))
    }

    fn precision(&self) -> Precision {
        Precision::Fp32
    }
}

/// The FP32 weight `[out, in]` and bias of `site` from a checkpoint; Q, K and V are stacked
/// into one `[3h, h]` weight so a single GEMM computes all three.
pub fn fp32_linear(r: &WeightReader<'_>, site: Site, out: usize, inp: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let p = format!("encoder.layer.{}", site.layer);
    if site.role == Role::Qkv {
        let h = inp;
        let mut w = Vec::with_capacity(3 * h * h);
        let mut b = Vec::with_capacity(3 * h);
        for part in ["query", "key", "value"] {
            w.extend(r.get(&format!("{p}.attention.self.{part}.weight"), &[h, h])?);
            b.extend(r.get(&format!("{p}.attention.self.{part}.bias"), &[h])?);
        }
        return Ok((w, b));
    }
    let prefix = site.prefix();
    Ok((
        r.get(&format!("{prefix}.weight"), &[out, inp])?,
        r.get(&format!("{prefix}.bias"), &[out])?,
    ))
}

/// The word embedding table: FP32, or int8 with one symmetric scale per row (INT8 artifacts,
/// where it would otherwise be the largest tensor).
#[derive(Clone, Debug)]
pub enum WordEmbeddings {
    F32(Vec<f32>),
    Int8 { values: Vec<i8>, scales: Vec<f32> },
}

/// Word + position + token-type embeddings, then LayerNorm.
#[derive(Clone, Debug)]
struct Embeddings {
    word: WordEmbeddings,
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
    fn load(r: &dyn ParamSource, i: usize, c: &BertConfig) -> Result<Self> {
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let p = format!("encoder.layer.{i}");
        let site = |role| Site { layer: i, role };
        Ok(Layer {
            qkv: r.linear(site(Role::Qkv), 3 * h, h)?,
            attention_output: r.linear(site(Role::AttentionOutput), h, h)?,
            attention_norm: LayerNorm::load(
                r,
                &format!("{p}.attention.output.LayerNorm"),
                h,
                c.layer_norm_eps,
            )?,
            intermediate: r.linear(site(Role::Intermediate), inter, h)?,
            output: r.linear(site(Role::Output), h, inter)?,
            output_norm: LayerNorm::load(r, &format!("{p}.output.LayerNorm"), h, c.layer_norm_eps)?,
        })
    }
}

/// Sees the input of every linear layer during a forward pass (calibration): the site and
/// the `[tokens, in_features]` rows.
pub type Probe<'a> = &'a mut (dyn FnMut(Site, &[f32]) + Send);

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
    intermediate: Vec<f32>,
}

std::thread_local! {
    /// Attention scores of the head a thread is working on.
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
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
        grow(&mut self.intermediate, t * c.intermediate_size);
    }
}

/// The QA head, hidden -> (start, end) logits: two dot products per token in a fixed order
/// ([`squint_kernels::elementwise::dot`]), so its logits are the same bits on every ISA.
#[derive(Clone, Debug)]
struct QaHead {
    /// `[2, hidden]`: start row, end row.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A BERT encoder with an optional question-answering head (`qa_outputs`).
#[derive(Clone, Debug)]
pub struct Bert {
    config: BertConfig,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    qa_outputs: Option<QaHead>,
    precision: Precision,
    attention: Numerics,
}

impl Bert {
    /// Loads an FP32 checkpoint through `r`, checking names and shapes against `config`.
    pub fn load(config: &BertConfig, r: &WeightReader<'_>) -> Result<Bert> {
        Self::from_params(config, r)
    }

    /// Builds the encoder from any parameter source (FP32 checkpoint or INT8 artifact). The QA
    /// head (two outputs) is always FP32.
    pub fn from_params(config: &BertConfig, r: &dyn ParamSource) -> Result<Bert> {
        let c = config;
        let h = c.hidden_size;
        let embeddings = Embeddings {
            word: r.word_embeddings(c.vocab_size, h)?,
            position: r.f32(
                "embeddings.position_embeddings.weight",
                &[c.max_position_embeddings, h],
            )?,
            token_type: r.f32("embeddings.token_type_embeddings.weight", &[c.type_vocab_size, h])?,
            norm: LayerNorm::load(r, "embeddings.LayerNorm", h, c.layer_norm_eps)?,
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(r, i, c))
            .collect::<Result<Vec<_>>>()?;
        // The QA head has no `bert.` prefix; `WeightReader` tries both spellings anyway.
        let qa_outputs = if r.has("qa_outputs.weight") {
            Some(QaHead {
                weight: r.f32("qa_outputs.weight", &[2, h])?,
                bias: r.f32("qa_outputs.bias", &[2])?,
            })
        } else {
            None
        };
        Ok(Bert {
            config: config.clone(),
            embeddings,
            layers,
            qa_outputs,
            precision: r.precision(),
            attention: r.attention(),
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// How attention's products are computed (from the INT8 artifact's metadata).
    pub fn attention_numerics(&self) -> Numerics {
        self.attention
    }

    /// The same encoder with attention's products computed as `numerics`: for INT8 models
    /// quantized in memory (an artifact's choice is in its metadata). FP32 models keep f32.
    pub fn with_attention(mut self, numerics: Numerics) -> Result<Bert> {
        if self.precision == Precision::Fp32 && numerics != Numerics::F32 {
            return Err(Error::Input(format!(
                "an FP32 model computes attention in f32, not {}",
                numerics.name()
            )));
        }
        self.attention = numerics;
        Ok(self)
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
        self.run(batch, ws, exec, None)
    }

    /// [`Bert::encode`], showing `probe` the input of every linear layer (calibration).
    pub fn encode_probed<'w>(
        &self,
        batch: &Batch<'_>,
        ws: &'w mut Workspace,
        exec: &Executor,
        probe: Probe<'_>,
    ) -> Result<&'w [f32]> {
        self.run(batch, ws, exec, Some(probe))
    }

    fn run<'w>(
        &self,
        batch: &Batch<'_>,
        ws: &'w mut Workspace,
        exec: &Executor,
        probe: Option<Probe<'_>>,
    ) -> Result<&'w [f32]> {
        self.check(batch)?;
        let t = batch.size() * batch.seq_len;
        ws.reserve(&self.config, batch.size(), batch.seq_len);
        exec.run(|| self.forward(batch, ws, exec.parallelism(), probe))?;
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
        let (t, h) = (batch.size() * batch.seq_len, self.config.hidden_size);
        let (w_start, w_end) = head.weight.split_at(h);
        let rows = ws.hidden[..t * h].chunks_exact(h);
        Ok(rows
            .map(|row| (dot(row, w_start) + head.bias[0], dot(row, w_end) + head.bias[1]))
            .unzip())
    }

    fn forward(
        &self,
        batch: &Batch<'_>,
        ws: &mut Workspace,
        par: Parallelism,
        mut probe: Option<Probe<'_>>,
    ) -> Result<()> {
        let c = &self.config;
        let (h, l, inter) = (c.hidden_size, batch.seq_len, c.intermediate_size);
        let t = batch.size() * l;
        self.embed(batch, &mut ws.hidden[..t * h], par);
        let mut see = |layer: usize, role: Role, rows: &[f32]| {
            if let Some(p) = probe.as_mut() {
                p(Site { layer, role }, rows);
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            // Self-attention block: hidden = LN(hidden + Attention(hidden)·Wo + bo).
            see(i, Role::Qkv, &ws.hidden[..t * h]);
            layer
                .qkv
                .forward(&ws.hidden, t, &mut ws.qkv, Output::Replace, None, par)?;
            self.attention(batch, ws, par)?;
            see(i, Role::AttentionOutput, &ws.context[..t * h]);
            layer
                .attention_output
                .forward(&ws.context, t, &mut ws.hidden, Output::Add, None, par)?;
            layer.attention_norm.apply(&mut ws.hidden[..t * h], par);
            // Feed-forward block: hidden = LN(hidden + act(hidden·W1 + b1)·W2 + b2).
            let act = Some(self.activation());
            see(i, Role::Intermediate, &ws.hidden[..t * h]);
            layer
                .intermediate
                .forward(&ws.hidden, t, &mut ws.intermediate, Output::Replace, act, par)?;
            see(i, Role::Output, &ws.intermediate[..t * inter]);
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
            let position = &e.position[pos * h..(pos + 1) * h];
            let token_type = &e.token_type[ty * h..(ty + 1) * h];
            match &e.word {
                WordEmbeddings::F32(word) => {
                    let word = &word[id * h..(id + 1) * h];
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = word[j] + position[j] + token_type[j];
                    }
                }
                WordEmbeddings::Int8 { values, scales } => {
                    let (word, scale) = (&values[id * h..(id + 1) * h], scales[id]);
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = word[j] as f32 * scale + position[j] + token_type[j];
                    }
                }
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
        let numerics = self.attention;
        let qkv = &ws.qkv[..n * l * 3 * h];
        let errors = std::sync::Mutex::new(None);
        for_each_chunk(&mut ws.heads[..n * l * h], l * d, par, |task, out| {
            // One l×l score matrix per thread, reused head after head, so it stays in cache.
            SCORES.with_borrow_mut(|scores| {
                grow(scores, l * l);
                let (b, head) = (task / heads, task % heads);
                let keys = batch.lengths[b];
                let base = b * l * 3 * h + head * d;
                let head_inputs = HeadInputs {
                    q: &qkv[base..],
                    k: &qkv[base + h..],
                    v: &qkv[base + 2 * h..],
                    stride: 3 * h,
                    queries: l,
                    keys,
                    dim: d,
                };
                if let Err(e) = attention_head(head_inputs, scale, numerics, &mut scores[..l * l], l, out) {
                    if let Ok(mut slot) = errors.lock() {
                        slot.get_or_insert(e);
                    }
                }
            })
        });
        if let Some(e) = errors.into_inner().ok().flatten() {
            return Err(e.into());
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
