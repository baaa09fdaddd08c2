//! squint in the browser: a model directory's files handed over as bytes, questions answered
//! in WebAssembly. The logic is plain Rust ([`WebModel`]) so it is tested natively too; the
//! `wasm-bindgen` boundary (JS exceptions carry the error message) is [`js`].

use squint_core::manifest::Manifest;
use squint_core::{
    files::Bytes, Answer, Batch, ModelFiles, Pipeline, PipelineOptions, QaParams, TokenizerFiles,
    WeightsFile, Workspace,
};

#[cfg(target_arch = "wasm32")]
pub mod js;
pub mod selftest;

/// Weights file names a model directory may carry, INT8 first (as `ModelFiles::from_dir`).
pub const WEIGHT_FILES: [&str; 2] = ["model.int8.safetensors", "model.safetensors"];

/// A loaded model: the pipeline (one thread: the page runs it in a Web Worker) and a summary.
#[derive(Debug)]
pub struct WebModel {
    pipeline: Pipeline,
    info: serde_json::Value,
    /// Buffers of [`WebModel::forward`], kept between calls.
    workspace: std::cell::RefCell<Workspace>,
}

/// The bytes of a model directory as a page fetched them.
#[derive(Debug)]
pub struct WebFiles<'a> {
    pub config: &'a [u8],
    pub tokenizer: &'a [u8],
    /// One of [`WEIGHT_FILES`].
    pub weights_name: &'a str,
    pub weights: Vec<u8>,
    /// `manifest.json`: required for INT8 artifacts (as on disk), checked when present.
    pub manifest: Option<&'a [u8]>,
}

impl WebModel {
    /// Checks the files against the manifest, then builds the pipeline.
    pub fn load(files: WebFiles<'_>) -> Result<WebModel, String> {
        let WebFiles {
            config,
            tokenizer,
            weights_name,
            weights,
            manifest,
        } = files;
        if !WEIGHT_FILES.contains(&weights_name) {
            return Err(format!(
                "weights file {weights_name:?} is not one of {}",
                WEIGHT_FILES.join(", ")
            ));
        }
        match manifest {
            Some(json) => {
                let manifest = Manifest::from_json(json).map_err(|e| e.to_string())?;
                for (path, bytes) in [
                    ("config.json", config),
                    ("tokenizer.json", tokenizer),
                    (weights_name, weights.as_slice()),
                ] {
                    manifest.verify(path, bytes).map_err(|e| e.to_string())?;
                }
            }
            None if weights_name == WEIGHT_FILES[0] => {
                return Err("an INT8 model needs its manifest.json (sizes and sha256 of every file)".into())
            }
            None => {}
        }
        let weights_len = weights.len();
        let model_files = ModelFiles {
            config: config.to_vec(),
            tokenizer: TokenizerFiles::Json(tokenizer.to_vec()),
            weights: WeightsFile::Safetensors {
                name: weights_name.to_string(),
                bytes: Bytes::Owned(weights),
            },
        };
        let options = PipelineOptions {
            threads: Some(1),
            batch: 1,
            precision: None,
        };
        let pipeline = Pipeline::load(&model_files, options).map_err(|e| e.to_string())?;
        let config = pipeline.model().config();
        let info = serde_json::json!({
            "precision": pipeline.model().precision().name(),
            "kernel": squint_kernels::isa().name(),
            "layers": config.num_hidden_layers,
            "hidden": config.hidden_size,
            "weights_bytes": weights_len,
        });
        Ok(WebModel {
            pipeline,
            info,
            workspace: Default::default(),
        })
    }

    /// What was loaded, for the page: precision, kernel, layers, hidden size, weight bytes.
    pub fn info(&self) -> &serde_json::Value {
        &self.info
    }

    /// Answers one question; `params` is the wire API's `parameters` object (JSON) or empty.
    pub fn answer(&self, question: &str, context: &str, params: &str) -> Result<Vec<Answer>, String> {
        let params = parse_params(params)?;
        self.pipeline
            .answer(question, context, &params)
            .map_err(|e| e.to_string())
    }

    /// One forward pass over exactly `seq` synthetic tokens (the ids `squint bench` and the
    /// onnxruntime-web anchor use), for timing the encoder alone.
    pub fn forward(&self, seq: usize) -> Result<(), String> {
        let model = self.pipeline.model();
        let config = model.config();
        if seq == 0 || seq > config.max_position_embeddings {
            return Err(format!("seq must be 1..={}", config.max_position_embeddings));
        }
        let ids: Vec<u32> = (0..seq)
            .map(|i| ((1000 + i * 7919) % config.vocab_size) as u32)
            .collect();
        let types: Vec<u32> = (0..seq).map(|i| (i >= seq / 4) as u32).collect();
        let batch = Batch {
            ids: &ids,
            types: &types,
            lengths: &[seq],
            seq_len: seq,
        };
        let mut ws = self.workspace.borrow_mut();
        model
            .qa_logits(&batch, &mut ws, self.pipeline.executor())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Start and end logits of every window, concatenated window by window (parity tests).
    pub fn logits(&self, question: &str, context: &str, params: &str) -> Result<Vec<f32>, String> {
        let params = parse_params(params)?;
        let windowed = self
            .pipeline
            .window_logits(question, context, &params)
            .map_err(|e| e.to_string())?;
        Ok(windowed.concatenated())
    }
}

/// The wire API's `parameters` (defaults for missing fields, unknown fields refused, so a
/// typo is not silently ignored); empty means all defaults.
fn parse_params(json: &str) -> Result<QaParams, String> {
    if json.trim().is_empty() {
        return Ok(QaParams::default());
    }
    serde_json::from_str(json).map_err(|e| format!("parameters: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn bundled() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm-l6-squad-int8")
    }

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(bundled().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    const AMAZON: &str = "The Amazon rainforest (Portuguese: Floresta Amazônica or Amazônia; Spanish: Selva Amazónica, Amazonía or usually Amazonia; French: Forêt amazonienne; Dutch: Amazoneregenwoud), also known in English as Amazonia or the Amazon Jungle, is a moist broadleaf forest that covers most of the Amazon basin of South America.";

    #[test]
    fn answers_like_the_native_pipeline_and_checks_the_manifest() {
        let (config, tokenizer, manifest) =
            (read("config.json"), read("tokenizer.json"), read("manifest.json"));
        let files = |weights: Vec<u8>, manifest: Option<&'static [u8]>| WebFiles {
            config: Box::leak(config.clone().into_boxed_slice()),
            tokenizer: Box::leak(tokenizer.clone().into_boxed_slice()),
            weights_name: "model.int8.safetensors",
            weights,
            manifest,
        };
        let manifest: &'static [u8] = Box::leak(manifest.into_boxed_slice());
        let model = WebModel::load(files(read("model.int8.safetensors"), Some(manifest))).expect("loads");
        let question = "Which name is also used to describe the Amazon rainforest in English?";
        let got = model.answer(question, AMAZON, "").expect("answers");
        let native = Pipeline::from_dir(
            &bundled(),
            PipelineOptions {
                threads: Some(1),
                ..Default::default()
            },
        )
        .expect("native loads")
        .answer(question, AMAZON, &QaParams::default())
        .expect("native answers");
        assert_eq!(got, native);
        assert_eq!(model.info()["precision"], "int8-static");

        let mut tampered = read("model.int8.safetensors");
        tampered[1000] ^= 1;
        let err = WebModel::load(files(tampered, Some(manifest))).unwrap_err();
        assert!(err.contains("model.int8.safetensors"), "{err}");
        let err = WebModel::load(files(read("model.int8.safetensors"), None)).unwrap_err();
        assert!(err.contains("manifest.json"), "{err}");
        let err = model
            .answer(question, AMAZON, r#"{"top_k": 2, "colour": 1}"#)
            .unwrap_err();
        assert!(err.contains("parameters") && err.contains("colour"), "{err}");
        let err = model.answer("", AMAZON, "").unwrap_err();
        assert!(err.to_lowercase().contains("question"), "{err}");
        let two = model
            .answer(question, AMAZON, r#"{"top_k": 2}"#)
            .expect("top_k 2");
        assert_eq!(two.len(), 2);
    }
}
