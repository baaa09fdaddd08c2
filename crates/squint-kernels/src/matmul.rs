//! FP32 matrix multiplication `C (+)= s · A·B` over strided views, checked at the boundary.
//!
//! The micro-kernels come from the `gemm` crate (AVX-512/AVX2/NEON/simd128 picked at run time);
//! this module owns the bounds checks that make calling it safe.

use thiserror::Error;

/// Why a matrix multiplication was refused: shapes or strides that do not fit the slices.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MatmulError {
    #[error("matrix view {rows}x{cols} (row stride {row_stride}, col stride {col_stride}) needs {needed} elements, slice has {len}")]
    OutOfBounds {
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
        needed: usize,
        len: usize,
    },
    #[error("output view must be row-major with row stride >= cols (got {rows}x{cols}, strides {row_stride}/{col_stride})")]
    OverlappingOutput {
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    },
    #[error("shape mismatch: {lhs_rows}x{lhs_cols} · {rhs_rows}x{rhs_cols} -> {dst_rows}x{dst_cols}")]
    Shape {
        lhs_rows: usize,
        lhs_cols: usize,
        rhs_rows: usize,
        rhs_cols: usize,
        dst_rows: usize,
        dst_cols: usize,
    },
}

fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + (cols - 1) * col_stride + 1
    }
}

/// A read-only strided matrix view: element (i, j) is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A view with explicit strides; fails if any element would fall outside `data`.
    pub fn new(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Result<Self, MatmulError> {
        let needed = extent(rows, cols, row_stride, col_stride);
        if needed > data.len() {
            return Err(MatmulError::OutOfBounds {
                rows,
                cols,
                row_stride,
                col_stride,
                needed,
                len: data.len(),
            });
        }
        Ok(MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        })
    }

    /// A dense row-major view.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Result<Self, MatmulError> {
        Self::new(data, rows, cols, cols, 1)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// A writable row-major view (rows may be padded: `row_stride >= cols`), so no two elements alias.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major view with the given row stride.
    pub fn new(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Result<Self, MatmulError> {
        if row_stride < cols && rows > 1 {
            return Err(MatmulError::OverlappingOutput {
                rows,
                cols,
                row_stride,
                col_stride: 1,
            });
        }
        let needed = extent(rows, cols, row_stride, 1);
        if needed > data.len() {
            return Err(MatmulError::OutOfBounds {
                rows,
                cols,
                row_stride,
                col_stride: 1,
                needed,
                len: data.len(),
            });
        }
        Ok(MatMut {
            data,
            rows,
            cols,
            row_stride,
        })
    }

    /// A dense row-major view.
    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Result<Self, MatmulError> {
        Self::new(data, rows, cols, cols)
    }
}

/// How many threads a kernel may use. `Threads(n)` runs on the caller's current rayon pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    Sequential,
    Threads(usize),
}

impl Parallelism {
    fn to_gemm(self) -> gemm::Parallelism {
        match self {
            Parallelism::Threads(n) if n > 1 => gemm::Parallelism::Rayon(n),
            _ => gemm::Parallelism::None,
        }
    }
}

/// `dst = (accumulate ? dst : 0) + scale · lhs·rhs`.
pub fn matmul(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    accumulate: bool,
    scale: f32,
    parallelism: Parallelism,
) -> Result<(), MatmulError> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k || dst.rows != m || dst.cols != n {
        return Err(MatmulError::Shape {
            lhs_rows: lhs.rows,
            lhs_cols: lhs.cols,
            rhs_rows: rhs.rows,
            rhs_cols: rhs.cols,
            dst_rows: dst.rows,
            dst_cols: dst.cols,
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for row in dst.data.chunks_mut(dst.row_stride).take(m) {
                row[..n].fill(0.0);
            }
        }
        return Ok(());
    }
    // SAFETY: every view was bounds-checked at construction (all (i, j) in range index inside
    // its slice); `dst` is row-major with row_stride >= cols, so its elements do not alias, and
    // it is borrowed mutably, so it does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism.to_gemm(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fill;
    use proptest::prelude::*;

    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        b: &[f32],
        c0: &[f32],
        acc: bool,
        s: f32,
    ) -> Vec<f64> {
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0.0f64;
                for p in 0..k {
                    sum += a[i * k + p] as f64 * b[p * n + j] as f64;
                }
                out[i * n + j] = if acc { c0[i * n + j] as f64 } else { 0.0 } + s as f64 * sum;
            }
        }
        out
    }

    proptest! {
        #[test]
        fn matches_reference(m in 1usize..70, n in 1usize..70, k in 1usize..130, acc: bool, threads in 1usize..3) {
            let a = fill(m * k, 1);
            let b = fill(k * n, 2);
            let c0 = fill(m * n, 3);
            let mut c = c0.clone();
            let par = if threads == 1 { Parallelism::Sequential } else { Parallelism::Threads(threads) };
            matmul(
                MatMut::row_major(&mut c, m, n).unwrap(),
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&b, k, n).unwrap(),
                acc,
                0.5,
                par,
            ).unwrap();
            let want = reference(m, n, k, &a, &b, &c0, acc, 0.5);
            for (g, w) in c.iter().zip(&want) {
                prop_assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + k as f64).sqrt(), "{g} vs {w}");
            }
        }

        #[test]
        fn transposed_rhs(m in 1usize..20, n in 1usize..20, k in 1usize..40) {
            let a = fill(m * k, 4);
            let bt = fill(n * k, 5); // stored n x k
            let mut b = vec![0.0; k * n];
            for p in 0..k { for j in 0..n { b[p * n + j] = bt[j * k + p]; } }
            let mut c = vec![0.0; m * n];
            matmul(
                MatMut::row_major(&mut c, m, n).unwrap(),
                MatRef::row_major(&a, m, k).unwrap(),
                MatRef::row_major(&bt, n, k).unwrap().t(),
                false,
                1.0,
                Parallelism::Sequential,
            ).unwrap();
            let want = reference(m, n, k, &a, &b, &c, false, 1.0);
            for (g, w) in c.iter().zip(&want) {
                prop_assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + k as f64).sqrt());
            }
        }
    }

    #[test]
    fn rejects_bad_views() {
        let data = vec![0.0f32; 10];
        assert!(MatRef::row_major(&data, 3, 4).is_err());
        assert!(MatRef::new(&data, 2, 5, 5, 1).is_ok());
        let mut out = vec![0.0f32; 10];
        assert!(matches!(
            MatMut::new(&mut out, 2, 5, 4),
            Err(MatmulError::OverlappingOutput { .. })
        ));
        let a = vec![0.0f32; 6];
        let mut c = vec![0.0f32; 4];
        let err = matmul(
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            MatRef::row_major(&a, 2, 3).unwrap(),
            MatRef::row_major(&a, 2, 3).unwrap(),
            false,
            1.0,
            Parallelism::Sequential,
        );
        assert!(matches!(err, Err(MatmulError::Shape { .. })));
    }

    #[test]
    fn zero_k_clears_or_keeps() {
        let mut c = vec![5.0f32; 4];
        let empty: Vec<f32> = vec![];
        matmul(
            MatMut::row_major(&mut c, 2, 2).unwrap(),
            MatRef::row_major(&empty, 2, 0).unwrap(),
            MatRef::row_major(&empty, 0, 2).unwrap(),
            false,
            1.0,
            Parallelism::Sequential,
        )
        .unwrap();
        assert_eq!(c, vec![0.0; 4]);
    }
}
