//! Numeric kernels for squint: matrix multiplication, activations, softmax and layer
//! normalisation over plain `f32` slices, with the instruction set chosen once per process.
//!
//! This crate knows nothing of BERT, tokens or files; it is the only crate of the workspace
//! allowed to contain `unsafe` (SIMD and the GEMM back end), and every such block has a test
//! against a plain scalar reference.

pub mod attention;
pub mod dispatch;
pub mod elementwise;
pub mod int8;
pub mod packed;
pub mod parallel;
pub mod selftest;
#[cfg(test)]
mod test_util;

pub use dispatch::{isa, Isa};
pub use packed::{matmul_packed, Epilogue, PackedMatrix, PackedShapeError};
pub use parallel::Parallelism;
