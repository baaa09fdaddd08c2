//! squint in the cloud: the Amazon SageMaker bring-your-own-container inference server. The
//! wire API (request and response shapes) is in [`wire`]; the HTTP contract, queueing and
//! graceful shutdown in [`server`]. The CLI's `squint serve` only parses flags and calls
//! [`server::serve`].

pub mod artifacts;
pub mod loadtest;
pub mod server;
pub mod wire;
