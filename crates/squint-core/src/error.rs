//! The one error type of squint-core: every variant names what was wrong and where.

use thiserror::Error;

/// Everything that can go wrong loading a model or answering a question.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("{file}: tensor `{tensor}`: {message}")]
    Tensor {
        file: String,
        tensor: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Checkpoint { file: String, message: String },
    #[error("tokenizer ({file}): {message}")]
    Tokenizer { file: String, message: String },
    #[error("invalid parameter `{name}`: {message}")]
    Parameter { name: &'static str, message: String },
    #[error("invalid input: {0}")]
    Input(String),
    #[error("this model has no question-answering head (`qa_outputs.weight`): it can encode text but not answer questions")]
    NoQaHead,
    #[error("thread pool: {0}")]
    Threads(String),
    #[error("kernel: {0}")]
    PackedKernel(#[from] squint_kernels::PackedShapeError),
    #[error("kernel: {0}")]
    Int8Kernel(#[from] squint_kernels::int8::Int8ShapeError),
    #[error("kernel: {0}")]
    Attention(#[from] squint_kernels::attention::AttentionShapeError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(file: &str, message: impl Into<String>) -> Self {
        Error::Config {
            file: file.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn tensor(file: &str, tensor: &str, message: impl Into<String>) -> Self {
        Error::Tensor {
            file: file.to_string(),
            tensor: tensor.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn parameter(name: &'static str, message: impl Into<String>) -> Self {
        Error::Parameter {
            name,
            message: message.into(),
        }
    }
}
