//! The JavaScript API (wasm-bindgen): errors become JS exceptions carrying the message.

use wasm_bindgen::prelude::*;

use squint_core::ModelBytes;

use crate::{UncheckedWebModel, WebModel};

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
        let files = model_bytes(config, tokenizer, weights_name, weights, manifest.as_deref());
        let model = WebModel::load(files, digests.as_deref().unwrap_or("")).map_err(|e| JsError::new(&e))?;
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

/// A model built before its files' digests were checked (sizes were): `verify` hands out the
/// [`Squint`]. The page builds it while WebCrypto hashes the files on another thread.
#[wasm_bindgen]
#[derive(Debug)]
pub struct UncheckedSquint {
    /// Taken by `verify`.
    model: Option<UncheckedWebModel>,
}

#[wasm_bindgen]
impl UncheckedSquint {
    /// The files as for `new Squint(...)`, without the digests.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &[u8],
        tokenizer: &[u8],
        weights_name: &str,
        weights: Vec<u8>,
        manifest: Option<Vec<u8>>,
    ) -> Result<UncheckedSquint, JsError> {
        let files = model_bytes(config, tokenizer, weights_name, weights, manifest.as_deref());
        let model = WebModel::build_unchecked(files).map_err(|e| JsError::new(&e))?;
        Ok(UncheckedSquint { model: Some(model) })
    }

    /// Checks the files against the manifest (`digests` as for `new Squint`; files without
    /// one are hashed here) and returns the model; this object is used up either way.
    pub fn verify(&mut self, digests: Option<String>) -> Result<Squint, JsError> {
        let unchecked = self
            .model
            .take()
            .ok_or_else(|| JsError::new("this UncheckedSquint was already verified (verify() uses it up)"))?;
        let model = unchecked
            .verify(digests.as_deref().unwrap_or(""))
            .map_err(|e| JsError::new(&e))?;
        Ok(Squint { model })
    }
}

fn model_bytes<'a>(
    config: &'a [u8],
    tokenizer: &'a [u8],
    weights_name: &'a str,
    weights: Vec<u8>,
    manifest: Option<&'a [u8]>,
) -> ModelBytes<'a> {
    ModelBytes {
        config,
        tokenizer,
        weights_name,
        weights,
        manifest,
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
