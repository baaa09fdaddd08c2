//! squint in the browser: a model directory's files handed over as bytes, questions answered
//! in WebAssembly. The model is squint-core's [`BytesModel`]; this crate adds the page's JSON
//! conventions ([`WebModel`], tested natively) and the `wasm-bindgen` boundary ([`js`], JS
//! exceptions carry the error message).

use squint_core::bytes_model::{Digests, UncheckedModel};
use squint_core::{Answer, BytesModel, ModelBytes, QaParams};

pub use squint_core::bytes_model::WEIGHT_FILES;

#[cfg(target_arch = "wasm32")]
pub mod js;

/// A loaded model (one thread: the page runs it in a Web Worker), spoken to in strings and JSON.
#[derive(Debug)]
pub struct WebModel {
    model: BytesModel,
    info: serde_json::Value,
}

/// A model built before its files' digests were checked: [`UncheckedWebModel::verify`] hands
/// out the [`WebModel`] (the page hashes the files with WebCrypto meanwhile).
#[derive(Debug)]
pub struct UncheckedWebModel(UncheckedModel);

impl UncheckedWebModel {
    /// Checks the files against the manifest with the page's `digests` (JSON, see
    /// [`parse_digests`]), hashing any others here.
    pub fn verify(self, digests: &str) -> Result<WebModel, String> {
        let model = self
            .0
            .verify(&parse_digests(digests)?)
            .map_err(|e| e.to_string())?;
        Ok(WebModel::from_model(model))
    }
}

impl WebModel {
    /// Checks the files against the manifest (`digests`: see [`parse_digests`]), then builds
    /// the pipeline.
    pub fn load(files: ModelBytes<'_>, digests: &str) -> Result<WebModel, String> {
        let model = BytesModel::load(files, &parse_digests(digests)?).map_err(|e| e.to_string())?;
        Ok(WebModel::from_model(model))
    }

    /// Checks sizes and builds the pipeline; the digests are checked by
    /// [`UncheckedWebModel::verify`].
    pub fn build_unchecked(files: ModelBytes<'_>) -> Result<UncheckedWebModel, String> {
        BytesModel::build_unchecked(files)
            .map(UncheckedWebModel)
            .map_err(|e| e.to_string())
    }

    fn from_model(model: BytesModel) -> WebModel {
        let i = model.info();
        let info = serde_json::json!({
            "precision": i.precision,
            "kernel": i.kernel,
            "layers": i.layers,
            "hidden": i.hidden,
            "weights_bytes": i.weights_bytes,
        });
        WebModel { model, info }
    }

    /// What was loaded, for the page: precision, kernel, layers, hidden size, weight bytes.
    pub fn info(&self) -> &serde_json::Value {
        &self.info
    }

    /// Answers one question; `params` is the wire API's `parameters` object (JSON) or empty.
    pub fn answer(&self, question: &str, context: &str, params: &str) -> Result<Vec<Answer>, String> {
        let params = parse_params(params)?;
        self.model
            .answer(question, context, &params)
            .map(|(answers, _windows)| answers)
            .map_err(|e| e.to_string())
    }

    /// One forward pass over exactly `seq` synthetic tokens, for timing the encoder alone.
    pub fn forward(&self, seq: usize) -> Result<(), String> {
        self.model.forward(seq).map_err(|e| e.to_string())
    }

    /// Start and end logits of every window, concatenated window by window (parity tests).
    pub fn logits(&self, question: &str, context: &str, params: &str) -> Result<Vec<f32>, String> {
        let params = parse_params(params)?;
        self.model
            .logits(question, context, &params)
            .map_err(|e| e.to_string())
    }
}

/// The page's digests: JSON `{"file name": "sha256 hex"}` computed with WebCrypto (~4x faster
/// than hashing in WebAssembly); empty means hash every file here.
pub fn parse_digests(json: &str) -> Result<Digests, String> {
    if json.trim().is_empty() {
        return Ok(Digests::new());
    }
    serde_json::from_str(json)
        .map_err(|e| format!("digests: expected {{\"file name\": \"sha256 hex\"}}: {e}"))
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

    fn read(name: &str) -> Vec<u8> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/minilm-l6-squad-int8");
        std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn speaks_json_and_refuses_unknown_parameters() {
        let (config, tokenizer, manifest) =
            (read("config.json"), read("tokenizer.json"), read("manifest.json"));
        let model = WebModel::load(
            ModelBytes {
                config: &config,
                tokenizer: &tokenizer,
                weights_name: "model.int8.safetensors",
                weights: read("model.int8.safetensors"),
                manifest: Some(&manifest),
            },
            "",
        )
        .expect("loads");
        assert_eq!(model.info()["precision"], "int8-static");
        let context =
            "The Amazon rainforest, also known in English as Amazonia, is a moist broadleaf forest.";
        let question = "What is the Amazon rainforest also known as?";
        let err = model
            .answer(question, context, r#"{"top_k": 2, "colour": 1}"#)
            .unwrap_err();
        assert!(err.contains("parameters") && err.contains("colour"), "{err}");
        let two = model
            .answer(question, context, r#"{"top_k": 2}"#)
            .expect("top_k 2");
        assert_eq!(two.len(), 2);
        assert_eq!(model.answer(question, context, "").expect("defaults")[0], two[0]);
    }
}
