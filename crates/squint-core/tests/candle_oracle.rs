//! candle oracle: a tiny random BERT written by this test (safetensors + config + vocab), run
//! through candle-transformers' BertModel + a QA head matmul and through squint's encoder.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::CandleBert;
use squint_core::{Pipeline, PipelineOptions, QaParams};

const WORDS: &str = "the a of in and to is was river city built bridge north south year old new museum art \
    library books farmers wheat grow plains orchestra played symphony june spring engineers valley wide across \
    who what when where which how many did";

fn write_model(dir: &std::path::Path, act: &str) {
    let (vocab, hidden, layers, heads, inter, positions) =
        (120usize, 48usize, 3usize, 6usize, 96usize, 128usize);
    let mut tokens: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    tokens.extend(WORDS.split_whitespace().map(str::to_string));
    tokens.extend("abcdefghijklmnopqrstuvwxyz".chars().map(|c| c.to_string()));
    tokens.extend("abcdefghijklmnopqrstuvwxyz".chars().map(|c| format!("##{c}")));
    tokens.extend([".", ",", "?"].iter().map(|s| s.to_string()));
    assert!(tokens.len() <= vocab);
    std::fs::write(dir.join("vocab.txt"), tokens.join("\n")).unwrap();
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertForQuestionAnswering"], "vocab_size": vocab,
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": inter, "hidden_act": act, "max_position_embeddings": positions,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut rand = |name: String, shape: &[usize], std: f32| {
        t.insert(
            name,
            (Tensor::randn(0f32, std, shape, &dev).unwrap())
                .contiguous()
                .unwrap(),
        );
    };
    rand(
        "bert.embeddings.word_embeddings.weight".into(),
        &[vocab, hidden],
        0.5,
    );
    rand(
        "bert.embeddings.position_embeddings.weight".into(),
        &[positions, hidden],
        0.5,
    );
    rand(
        "bert.embeddings.token_type_embeddings.weight".into(),
        &[2, hidden],
        0.5,
    );
    let norms = |p: &str| vec![format!("{p}.LayerNorm.weight"), format!("{p}.LayerNorm.bias")];
    let mut ln = norms("bert.embeddings");
    for l in 0..layers {
        let p = format!("bert.encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", hidden, hidden),
            ("attention.self.key", hidden, hidden),
            ("attention.self.value", hidden, hidden),
            ("attention.output.dense", hidden, hidden),
            ("intermediate.dense", inter, hidden),
            ("output.dense", hidden, inter),
        ] {
            rand(format!("{p}.{name}.weight"), &[out, inp], 0.15);
            rand(format!("{p}.{name}.bias"), &[out], 0.1);
        }
        ln.extend(norms(&format!("{p}.attention.output")));
        ln.extend(norms(&format!("{p}.output")));
    }
    for name in ln {
        let std = if name.ends_with("weight") { 0.2 } else { 0.1 };
        let base = if name.ends_with("weight") { 1.0 } else { 0.0 };
        let shape = [hidden];
        t.insert(
            name,
            (Tensor::randn(0f32, std, &shape[..], &dev).unwrap() + base).unwrap(),
        );
    }
    t.insert(
        "qa_outputs.weight".into(),
        Tensor::randn(0f32, 1.0, (2, hidden), &dev).unwrap(),
    );
    t.insert(
        "qa_outputs.bias".into(),
        Tensor::randn(0f32, 0.5, 2, &dev).unwrap(),
    );
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
}

fn compare(act: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), act);
    let ours = Pipeline::from_dir(
        dir.path(),
        PipelineOptions {
            threads: Some(2),
            batch: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let oracle = CandleBert::load(dir.path());
    let context = "the farmers grow wheat in the plains . the orchestra played a new symphony in june . \
        engineers built a bridge across the wide valley in the year of the old museum . "
        .repeat(4);
    let params = QaParams {
        max_seq_len: Some(64),
        doc_stride: Some(16),
        ..QaParams::default()
    };
    let out = ours
        .window_logits("what did engineers build?", &context, &params)
        .unwrap();
    assert!(
        out.windows.len() >= 3,
        "several windows, got {}",
        out.windows.len()
    );
    let mut worst = 0.0f32;
    for w in 0..out.windows.len() {
        let n = out.windows.seq_len(w);
        let (mut ids, mut types) = (vec![0u32; n], vec![0u32; n]);
        out.windows.fill(w, &mut ids, &mut types);
        let (start, end) = oracle.qa_logits(&ids, &types, &[n], n);
        for (a, b) in out.logits[w]
            .0
            .iter()
            .chain(&out.logits[w].1)
            .zip(start.iter().chain(&end))
        {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("{act}: max |logit - candle| = {worst:e}");
    assert!(worst <= 1e-4, "{act}: logits differ from candle by {worst}");
}

#[test]
fn exact_gelu_model_matches_candle() {
    compare("gelu");
}

#[test]
fn tanh_gelu_model_matches_candle() {
    compare("gelu_pytorch_tanh");
}

#[test]
fn padded_batch_matches_candle_with_attention_mask() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "gelu");
    let files = squint_core::ModelFiles::from_dir(dir.path()).unwrap();
    let config = squint_core::BertConfig::from_json(&files.config, "config.json").unwrap();
    let model = squint_core::pipeline::load_model(&config, &files.weights).unwrap();
    let oracle = CandleBert::load(dir.path());
    let (seq, lengths) = (40usize, [40usize, 17, 3]);
    let ids: Vec<u32> = (0..seq * 3).map(|i| ((i * 37 + 11) % 100) as u32 + 5).collect();
    let types: Vec<u32> = (0..seq * 3).map(|i| ((i % seq) > 10) as u32).collect();
    let exec = squint_core::Executor::new(Some(2)).unwrap();
    let mut ws = squint_core::Workspace::default();
    let batch = squint_core::Batch {
        ids: &ids,
        types: &types,
        lengths: &lengths,
        seq_len: seq,
    };
    let ours = model.encode(&batch, &mut ws, &exec).unwrap().to_vec();
    let theirs = oracle.hidden(&ids, &types, &lengths, seq);
    let h = config.hidden_size;
    let worst = common::max_diff_unpadded(&ours, &theirs, &lengths, seq, h);
    eprintln!("padded batch: max |hidden - candle| = {worst:e}");
    assert!(worst <= 1e-4, "hidden states differ from candle by {worst}");
}
