//! squint's model and pipeline: BERT checkpoints (config, tokenizer, weights), windows over long
//! contexts, the encoder, and span decoding into answers with character offsets.
//!
//! No HTTP, no S3, no command line: hosts (CLI, cloud server, edge guest, browser module) hand
//! it bytes or a directory and get [`Answer`]s back. Compiles for native and wasm32.

#![deny(unsafe_code)]

pub mod artifact;
pub mod bert;
pub mod bytes_model;
pub mod calibrate;
pub mod config;
pub mod decode;
pub mod error;
pub mod evaluate;
pub mod exec;
pub mod files;
pub mod linear;
pub mod manifest;
pub mod params;
pub mod pipeline;
#[cfg(not(target_arch = "wasm32"))]
pub mod pytorch;
pub mod quant;
pub mod quantize;
pub mod random;
pub mod squad;
pub mod tokenizer;
pub mod weights;
pub mod window;

pub use bert::{Batch, Bert, Workspace};
pub use bytes_model::{BytesModel, ModelBytes};
pub use config::{Activation, BertConfig};
pub use decode::Answer;
pub use error::{Error, Result};
pub use exec::Executor;
#[cfg(not(target_arch = "wasm32"))]
pub use files::UncheckedFiles;
pub use files::{ModelFiles, TokenizerFiles, WeightsFile};
pub use linear::Precision;
pub use params::QaParams;
pub use pipeline::{Pipeline, PipelineOptions, WindowedLogits};
pub use tokenizer::QaTokenizer;
