//! squint at the edge: an HTTP gateway that speaks the cloud's wire API and answers inside
//! sandboxed wasmtime instances of the `squint:qa` component (`edge/wit/squint.wit`).
//! [`runtime`] compiles the component once and caches its native code; [`instance`] is one
//! sandbox (memory cap, epoch deadline, nothing granted); [`pool`] keeps one per core,
//! replacing any that trap, and is the HTTP server's backend.

use std::path::Path;
use std::time::Duration;

pub mod instance;
pub mod pool;
pub mod runtime;

/// Host bindings of the WIT world `squint:qa/qa`.
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "qa",
        path: "wit",
    });
}

use bindings::exports::squint::qa::engine as wit;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("wasmtime: {0}")]
    Engine(String),
    #[error("{0}")]
    Guest(#[from] GuestFailure),
}

impl EdgeError {
    pub fn io(path: &Path, e: std::io::Error) -> EdgeError {
        EdgeError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}

/// How a call into a guest failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFailure {
    /// The guest refused the input (a client error); the instance is fine.
    #[error("{0}")]
    Input(String),
    /// The model files were refused; the instance is fine.
    #[error("{0}")]
    Model(String),
    /// The guest reported an internal error; the instance is fine.
    #[error("{0}")]
    Internal(String),
    /// The call ran past its deadline and was interrupted; the instance is gone.
    #[error("the call ran past its {} ms deadline and was stopped", .0.as_millis())]
    Deadline(Duration),
    /// The guest needed more than its memory cap (bytes); the instance is gone.
    #[error("the guest needed more than its {} MiB memory cap", .0 >> 20)]
    MemoryCap(usize),
    /// The guest trapped (a panic, a bug); the instance is gone.
    #[error("the guest trapped: {0}")]
    Trap(String),
}

impl GuestFailure {
    /// Whether the instance can take more calls after this.
    pub fn instance_survives(&self) -> bool {
        matches!(
            self,
            GuestFailure::Input(_) | GuestFailure::Model(_) | GuestFailure::Internal(_)
        )
    }
}

/// A model directory's files, read once, handed to every instance.
#[derive(Debug)]
pub struct ModelFiles {
    /// Where they came from, for messages.
    pub name: String,
    pub wit: wit::ModelFiles,
}

impl ModelFiles {
    /// Reads `config.json`, `tokenizer.json`, the weights (INT8 artifact first) and
    /// `manifest.json` (when present) from `dir`.
    pub fn read(dir: &Path) -> Result<ModelFiles, EdgeError> {
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| EdgeError::io(&dir.join(name), e));
        let weights_name = squint_core::bytes_model::WEIGHT_FILES
            .iter()
            .find(|name| dir.join(name).is_file())
            .ok_or_else(|| EdgeError::Io {
                path: dir.display().to_string(),
                message: format!(
                    "no weights: expected one of {}",
                    squint_core::bytes_model::WEIGHT_FILES.join(", ")
                ),
            })?;
        let manifest = dir.join("manifest.json");
        Ok(ModelFiles {
            name: dir.display().to_string(),
            wit: wit::ModelFiles {
                config: read("config.json")?,
                tokenizer: read("tokenizer.json")?,
                weights_name: weights_name.to_string(),
                weights: read(weights_name)?,
                manifest: if manifest.is_file() {
                    Some(read("manifest.json")?)
                } else {
                    None
                },
            },
        })
    }
}
