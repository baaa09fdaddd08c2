//! `Linear`: y = x·Wᵀ + b, the one abstraction every dense layer goes through, FP32 or INT8
//! (the variants of [`LinearKind`]).

use squint_kernels::int8::{matmul_quantized, ActQuant, PackedI8};
use squint_kernels::{matmul_packed, Epilogue, PackedMatrix, Parallelism};

use crate::error::Result;
use crate::quant::InputQuant;

/// How a layer's output meets the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `out = x·Wᵀ + b`
    Replace,
    /// `out += x·Wᵀ + b` (residual connections)
    Add,
}

/// The arithmetic of the encoder's linear layers, as asked for by a host or stored in a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// FP32 weights and activations.
    #[default]
    Fp32,
    /// INT8 weights (symmetric, one scale per output channel), activations quantized to u8 per
    /// row at run time; the product is exact in i32 and dequantized in the GEMM epilogue.
    Int8Dynamic,
    /// INT8 weights, activations quantized with calibrated per-tensor ranges (layers the
    /// recipe keeps per token excepted). Only INT8 artifacts made by `squint quantize` have it.
    Int8Static,
}

impl Precision {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8Dynamic => "int8-dynamic",
            Precision::Int8Static => "int8-static",
        }
    }

    pub fn parse(name: &str) -> Option<Precision> {
        match name {
            "fp32" => Some(Precision::Fp32),
            "int8-dynamic" => Some(Precision::Int8Dynamic),
            "int8-static" => Some(Precision::Int8Static),
            _ => None,
        }
    }
}

/// The weights of a linear layer, in the layout its kernel wants.
#[derive(Clone, Debug)]
pub enum LinearKind {
    /// FP32, weight packed for the GEMM kernel once at load.
    F32 { weight: PackedMatrix, bias: Vec<f32> },
    /// INT8 weights with per-output-channel scales; the input quantized as `input` says.
    Int8 {
        weight: PackedI8,
        scales: Vec<f32>,
        bias: Vec<f32>,
        input: InputQuant,
    },
}

/// A dense layer `in_features -> out_features`.
#[derive(Clone, Debug)]
pub struct Linear {
    in_features: usize,
    out_features: usize,
    kind: LinearKind,
}

impl Linear {
    /// FP32 from PyTorch's layout: `weight` is `[out, in]` row-major, `bias` has `out` entries.
    /// Callers pass tensors whose shapes the loader already checked.
    pub fn from_torch(weight: &[f32], bias: Vec<f32>, out_features: usize, in_features: usize) -> Linear {
        assert_eq!(weight.len(), out_features * in_features, "Linear: weight shape");
        assert_eq!(bias.len(), out_features, "Linear: bias shape");
        Linear {
            in_features,
            out_features,
            kind: LinearKind::F32 {
                weight: PackedMatrix::from_transposed(weight, out_features, in_features),
                bias,
            },
        }
    }

    /// INT8 from quantized weights `[out, in]` row-major with one scale per output channel.
    /// Callers pass tensors whose shapes the loader already checked.
    pub fn int8(
        weight: &[i8],
        scales: Vec<f32>,
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
        input: InputQuant,
    ) -> Linear {
        assert_eq!(weight.len(), out_features * in_features, "Linear: weight shape");
        assert_eq!(bias.len(), out_features, "Linear: bias shape");
        assert_eq!(scales.len(), out_features, "Linear: scales shape");
        Linear {
            in_features,
            out_features,
            kind: LinearKind::Int8 {
                weight: PackedI8::from_transposed(weight, out_features, in_features),
                scales,
                bias,
                input,
            },
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn kind(&self) -> &LinearKind {
        &self.kind
    }

    /// Applies the layer to `rows` rows of `x` (`[rows, in]`), writing `[rows, out]` into `out`,
    /// then `activation` (fused into the GEMM's last pass over each tile).
    pub fn forward(
        &self,
        x: &[f32],
        rows: usize,
        out: &mut [f32],
        mode: Output,
        activation: Option<fn(&mut [f32])>,
        par: Parallelism,
    ) -> Result<()> {
        let (k, n) = (self.in_features, self.out_features);
        match &self.kind {
            LinearKind::F32 { weight, bias } => {
                let epilogue = Epilogue {
                    accumulate: mode == Output::Add,
                    bias: Some(bias),
                    activation,
                };
                matmul_packed(
                    &mut out[..rows * n],
                    n,
                    &x[..rows * k],
                    k,
                    rows,
                    weight,
                    epilogue,
                    par,
                )?;
            }
            LinearKind::Int8 {
                weight,
                scales,
                bias,
                input,
            } => {
                let epilogue = Epilogue {
                    accumulate: mode == Output::Add,
                    bias: Some(bias),
                    activation,
                };
                let out = &mut out[..rows * n];
                let act = match input {
                    InputQuant::PerToken => ActQuant::PerRow,
                    InputQuant::Static(q) => ActQuant::PerTensor(*q),
                };
                matmul_quantized(
                    out,
                    n,
                    &x[..rows * k],
                    k,
                    rows,
                    weight,
                    scales,
                    act,
                    epilogue,
                    par,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize_rows_symmetric;

    #[test]
    fn int8_dynamic_is_close_to_fp32() {
        let (rows, inp, out) = (5, 96, 40);
        let w: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.37).sin() * 0.05).collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32 * 0.01).collect();
        let x: Vec<f32> = (0..rows * inp).map(|i| (i as f32 * 0.11).cos()).collect();
        let fp32 = Linear::from_torch(&w, b.clone(), out, inp);
        let (q, scales) = quantize_rows_symmetric(&w, inp, 127);
        let int8 = Linear::int8(&q, scales, b, out, inp, InputQuant::PerToken);
        let (mut y, mut z) = (vec![0.0f32; rows * out], vec![0.0f32; rows * out]);
        fp32.forward(&x, rows, &mut y, Output::Replace, None, Parallelism::Sequential)
            .unwrap();
        int8.forward(&x, rows, &mut z, Output::Replace, None, Parallelism::Sequential)
            .unwrap();
        let worst = y
            .iter()
            .zip(&z)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let scale = y.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
        assert!(worst < 0.02 * scale, "int8 error {worst} vs output scale {scale}");
        assert!(Precision::parse("int8-dynamic") == Some(Precision::Int8Dynamic));
    }

    #[test]
    fn matches_naive_linear() {
        let (rows, inp, out) = (3, 5, 4);
        let w: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.3).sin()).collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32 * 0.1).collect();
        let x: Vec<f32> = (0..rows * inp).map(|i| (i as f32 * 0.7).cos()).collect();
        let layer = Linear::from_torch(&w, b.clone(), out, inp);
        let mut y = vec![1.0f32; rows * out];
        layer
            .forward(&x, rows, &mut y, Output::Add, None, Parallelism::Sequential)
            .unwrap();
        for r in 0..rows {
            for o in 0..out {
                let want: f32 = 1.0 + b[o] + (0..inp).map(|i| x[r * inp + i] * w[o * inp + i]).sum::<f32>();
                assert!((y[r * out + o] - want).abs() < 1e-5);
            }
        }
        let mut z = vec![9.0f32; rows * out];
        layer
            .forward(&x, rows, &mut z, Output::Replace, None, Parallelism::Sequential)
            .unwrap();
        for (a, b) in y.iter().zip(&z) {
            assert!((a - 1.0 - b).abs() < 1e-5);
        }
    }
}
