//! `Linear`: y = x·Wᵀ + b, the one abstraction every dense layer goes through. FP32 today;
//! quantized kinds are further variants of [`LinearKind`].

use squint_kernels::int8::{matmul_dynamic_int8, PackedI8};
use squint_kernels::{matmul_packed, Epilogue, PackedMatrix, Parallelism};

use crate::error::Result;

/// How a layer's output meets the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `out = x·Wᵀ + b`
    Replace,
    /// `out += x·Wᵀ + b` (residual connections)
    Add,
}

/// The arithmetic the encoder's linear layers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// FP32 weights and activations.
    #[default]
    Fp32,
    /// INT8 weights (symmetric, one scale per output channel), activations quantized to u8 per
    /// row at run time; the product is exact in i32 and dequantized in the GEMM epilogue.
    Int8Dynamic,
}

impl Precision {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8Dynamic => "int8-dynamic",
        }
    }

    pub fn parse(name: &str) -> Option<Precision> {
        match name {
            "fp32" => Some(Precision::Fp32),
            "int8-dynamic" | "int8" => Some(Precision::Int8Dynamic),
            _ => None,
        }
    }
}

/// The weights of a linear layer, in the layout its kernel wants.
#[derive(Clone, Debug)]
pub enum LinearKind {
    /// FP32, weight packed for the GEMM kernel once at load.
    F32 { weight: PackedMatrix, bias: Vec<f32> },
    /// INT8 weights with per-output-channel scales; activations quantized per row at run time.
    Int8Dynamic {
        weight: PackedI8,
        scales: Vec<f32>,
        bias: Vec<f32>,
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
        Self::from_torch_with(weight, bias, out_features, in_features, Precision::Fp32)
    }

    /// From PyTorch's layout, at the given precision. INT8 weights are symmetric per output
    /// channel: scale = max|w| / 127, q = round(w / scale) in [-127, 127].
    pub fn from_torch_with(
        weight: &[f32],
        bias: Vec<f32>,
        out_features: usize,
        in_features: usize,
        precision: Precision,
    ) -> Linear {
        assert_eq!(weight.len(), out_features * in_features, "Linear: weight shape");
        assert_eq!(bias.len(), out_features, "Linear: bias shape");
        let kind = match precision {
            Precision::Fp32 => LinearKind::F32 {
                weight: PackedMatrix::from_transposed(weight, out_features, in_features),
                bias,
            },
            Precision::Int8Dynamic => {
                let mut q = vec![0i8; weight.len()];
                let mut scales = Vec::with_capacity(out_features);
                for (row, out) in weight
                    .chunks_exact(in_features)
                    .zip(q.chunks_exact_mut(in_features))
                {
                    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                    for (o, v) in out.iter_mut().zip(row) {
                        *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
                    }
                    scales.push(scale);
                }
                let weight = PackedI8::from_transposed(&q, out_features, in_features);
                LinearKind::Int8Dynamic { weight, scales, bias }
            }
        };
        Linear {
            in_features,
            out_features,
            kind,
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
            LinearKind::Int8Dynamic { weight, scales, bias } => {
                let epilogue = Epilogue {
                    accumulate: mode == Output::Add,
                    bias: Some(bias),
                    activation,
                };
                let out = &mut out[..rows * n];
                matmul_dynamic_int8(out, n, &x[..rows * k], k, rows, weight, scales, epilogue, par)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_dynamic_is_close_to_fp32() {
        let (rows, inp, out) = (5, 96, 40);
        let w: Vec<f32> = (0..out * inp).map(|i| (i as f32 * 0.37).sin() * 0.05).collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32 * 0.01).collect();
        let x: Vec<f32> = (0..rows * inp).map(|i| (i as f32 * 0.11).cos()).collect();
        let fp32 = Linear::from_torch(&w, b.clone(), out, inp);
        let int8 = Linear::from_torch_with(&w, b, out, inp, Precision::Int8Dynamic);
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
