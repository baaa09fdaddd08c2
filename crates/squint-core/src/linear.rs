//! `Linear`: y = x·Wᵀ + b, the one abstraction every dense layer goes through. FP32 today;
//! quantized kinds are further variants of [`LinearKind`].

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

/// The weights of a linear layer, in the layout its kernel wants.
#[derive(Clone, Debug)]
pub enum LinearKind {
    /// FP32, weight packed for the GEMM kernel once at load.
    F32 { weight: PackedMatrix, bias: Vec<f32> },
}

/// A dense layer `in_features -> out_features`.
#[derive(Clone, Debug)]
pub struct Linear {
    in_features: usize,
    out_features: usize,
    kind: LinearKind,
}

impl Linear {
    /// From PyTorch's layout: `weight` is `[out, in]` row-major, `bias` has `out` entries.
    /// Callers pass tensors whose shapes the loader already checked.
    pub fn from_torch(weight: &[f32], bias: Vec<f32>, out_features: usize, in_features: usize) -> Linear {
        assert_eq!(
            weight.len(),
            out_features * in_features,
            "Linear::from_torch: weight shape"
        );
        assert_eq!(bias.len(), out_features, "Linear::from_torch: bias shape");
        let weight = PackedMatrix::from_transposed(weight, out_features, in_features);
        Linear {
            in_features,
            out_features,
            kind: LinearKind::F32 { weight, bias },
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
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
