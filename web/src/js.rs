//! The JavaScript API (wasm-bindgen): errors become JS exceptions carrying the message.

use wasm_bindgen::prelude::*;

use squint_core::ModelBytes;

use crate::WebModel;

/// A model loaded in this WebAssembly instance.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Squint {
    model: WebModel,
}

#[wasm_bindgen]
impl Squint {
    /// Loads a model directory's files: `config.json`, `tokenizer.json`, the weights
    /// (`model.int8.safetensors` or `model.safetensors`, named by `weights_name`) and
    /// `manifest.json` (required for INT8). `digests`, optional: JSON `{"file name": "sha256
    /// hex"}` computed by the page (WebCrypto's `crypto.subtle.digest` is ~4x faster than hashing
    /// here), compared with the manifest in place of hashing those files in WebAssembly.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &[u8],
        tokenizer: &[u8],
        weights_name: &str,
        weights: Vec<u8>,
        manifest: Option<Vec<u8>>,
        digests: Option<String>,
    ) -> Result<Squint, JsError> {
        let digests = match digests.as_deref() {
            None | Some("") => Default::default(),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                JsError::new(&format!(
                    "digests: expected {{\"file name\": \"sha256 hex\"}}: {e}"
                ))
            })?,
        };
        let files = ModelBytes {
            config,
            tokenizer,
            weights_name,
            weights,
            manifest: manifest.as_deref(),
            digests,
        };
        let model = WebModel::load(files).map_err(|e| JsError::new(&e))?;
        Ok(Squint { model })
    }

    /// JSON: precision, kernel, layers, hidden size, weight bytes.
    pub fn info(&self) -> String {
        self.model.info().to_string()
    }

    /// JSON list of answers (`score`, `start`, `end` in characters, `answer`), best first.
    /// `params` is the wire API's `parameters` object as JSON (or an empty string).
    pub fn answer(&self, question: &str, context: &str, params: &str) -> Result<String, JsError> {
        let answers = self
            .model
            .answer(question, context, params)
            .map_err(|e| JsError::new(&e))?;
        serde_json::to_string(&answers).map_err(|e| JsError::new(&e.to_string()))
    }

    /// One forward pass over `seq` synthetic tokens (benchmarks time this).
    pub fn forward(&self, seq: usize) -> Result<(), JsError> {
        self.model.forward(seq).map_err(|e| JsError::new(&e))
    }

    /// Start/end logits of every window, concatenated (native-vs-wasm parity tests).
    pub fn logits(&self, question: &str, context: &str, params: &str) -> Result<Vec<f32>, JsError> {
        self.model
            .logits(question, context, params)
            .map_err(|e| JsError::new(&e))
    }
}

/// The INT8 kernel this build runs: `simd128`, `relaxed-simd` or `scalar`.
#[wasm_bindgen]
pub fn kernel() -> String {
    squint_kernels::isa().name().to_string()
}

/// Checks this build's INT8 kernels against the scalar reference in the running engine;
/// returns the kernels checked (JSON list) or throws the first difference.
#[wasm_bindgen(js_name = selfTest)]
pub fn self_test(cases: usize, seed: u32) -> Result<String, JsError> {
    let kernels =
        squint_kernels::selftest::int8_kernels(cases, u64::from(seed)).map_err(|e| JsError::new(&e))?;
    serde_json::to_string(&kernels).map_err(|e| JsError::new(&e.to_string()))
}
