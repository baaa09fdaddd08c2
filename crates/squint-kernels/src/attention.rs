//! Scaled dot-product attention for one head, computed the same way on every target (AVX-512,
//! AVX2, wasm SIMD, scalar), so all return the same bits: in f32 with a fixed summation order
//! ([`Numerics::F32`]), or with exact integer products ([`Numerics::Int16`], see [`int16`];
//! [`Numerics::Int8`], see [`int8`]).
//!
//! In f32, each output element is `Σ_t a[i, t]·b[t, j]` accumulated from 0 in increasing `t`, each
//! product rounded before the add (no fused multiply-add: wasm has none that is deterministic).
//! Register blocking only decides which elements are computed together, never their order.

use crate::elementwise::softmax_in_place;
use thiserror::Error;

pub mod int16;
pub mod int8;

/// How a head's two products are computed; both are deterministic across targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Numerics {
    /// f32, each sum in increasing index order (FP32 models: matches the reference engines).
    #[default]
    F32,
    /// Q, K, probabilities and V in i16, exact i32 sums (INT8 models: ~4x the f32 rate).
    Int16,
    /// Q and probabilities in u8 per row, K per row and V per column in s8, on the INT8 GEMM
    /// kernels (INT8 models: twice the int16 product rate, coarser).
    Int8,
}

impl Numerics {
    /// The name stored in INT8 artifacts' metadata.
    pub fn name(self) -> &'static str {
        match self {
            Numerics::F32 => "f32",
            Numerics::Int16 => "int16",
            Numerics::Int8 => "int8",
        }
    }

    /// Parses [`Numerics::name`].
    pub fn parse(name: &str) -> Option<Numerics> {
        match name {
            "f32" => Some(Numerics::F32),
            "int16" => Some(Numerics::Int16),
            "int8" => Some(Numerics::Int8),
            _ => None,
        }
    }
}

/// Why an attention call was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttentionShapeError {
    /// A buffer too short for the stated shape.
    #[error(
        "attention: {what} needs {needed} values, has {len} (queries {queries}, keys {keys}, head dim {dim})"
    )]
    Short {
        what: &'static str,
        needed: usize,
        len: usize,
        queries: usize,
        keys: usize,
        dim: usize,
    },
    /// More keys than integer attention keeps exact.
    #[error("attention: {keys} keys, integer attention takes at most {max}")]
    TooManyKeys { keys: usize, max: usize },
    /// The INT8 products refused their operands (a bug: shapes are checked first).
    #[error(transparent)]
    Int8(#[from] crate::int8::Int8ShapeError),
}

/// One head's inputs: `queries` rows of Q and `keys` rows of K and V, each `dim` wide, read
/// with row stride `stride` (the fused QKV buffer's row length).
#[derive(Clone, Copy, Debug)]
pub struct HeadInputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub stride: usize,
    pub queries: usize,
    pub keys: usize,
    pub dim: usize,
}

/// Per-thread buffers reused head after head, so the hot loop does not allocate.
#[derive(Default)]
struct Scratch {
    /// Kᵀ of the current head (f32 numerics).
    keys_t: Vec<f32>,
    int16: int16::Scratch,
    int8: int8::Scratch,
}

std::thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// `out = softmax(Q·Kᵀ·scale)·V` for one head. `scores` holds `queries` rows of stride
/// `score_stride ≥ keys` (left holding the probabilities with f32 numerics, each row's
/// `exp(score - max)` with int8, computed with `exp_coarse`; scratch with int16, which goes
/// through the queries in blocks); `out` is `[queries, dim]` dense.
pub fn attention_head(
    head: HeadInputs<'_>,
    scale: f32,
    numerics: Numerics,
    scores: &mut [f32],
    score_stride: usize,
    out: &mut [f32],
) -> Result<(), AttentionShapeError> {
    let HeadInputs {
        q,
        k,
        v,
        stride,
        queries,
        keys,
        dim,
    } = head;
    let error = |what, needed, len| AttentionShapeError::Short {
        what,
        needed,
        len,
        queries,
        keys,
        dim,
    };
    if numerics != Numerics::F32 && keys > int16::MAX_KEYS {
        return Err(AttentionShapeError::TooManyKeys {
            keys,
            max: int16::MAX_KEYS,
        });
    }
    if stride < dim {
        return Err(error("row stride", dim, stride));
    }
    if score_stride < keys {
        return Err(error("score row stride", keys, score_stride));
    }
    let rows_extent = |rows: usize| if rows == 0 { 0 } else { (rows - 1) * stride + dim };
    for (what, needed, len) in [
        ("q", rows_extent(queries), q.len()),
        ("k", rows_extent(keys), k.len()),
        ("v", rows_extent(keys), v.len()),
        ("scores", queries * score_stride, scores.len()),
        ("out", queries * dim, out.len()),
    ] {
        if needed > len {
            return Err(error(what, needed, len));
        }
    }
    if queries == 0 || dim == 0 {
        return Ok(());
    }
    if keys == 0 {
        out[..queries * dim].fill(0.0);
        return Ok(());
    }
    // Taken out of the thread local so the kernels are not compiled inside its closure.
    let mut scratch = SCRATCH.take();
    let result = match numerics {
        Numerics::F32 => {
            attend(head, scale, scores, score_stride, out, &mut scratch.keys_t);
            Ok(())
        }
        integer => {
            let job = int16::Job {
                head,
                scale,
                scores,
                score_stride,
                out,
            };
            if integer == Numerics::Int16 {
                int16::attend(crate::isa(), job, &mut scratch.int16);
                Ok(())
            } else {
                int8::attend(job, &mut scratch.int8).map_err(AttentionShapeError::from)
            }
        }
    };
    SCRATCH.set(scratch);
    result
}

/// [`attention_head`] after validation, with `kt` as scratch.
fn attend(
    head: HeadInputs<'_>,
    scale: f32,
    scores: &mut [f32],
    score_stride: usize,
    out: &mut [f32],
    kt: &mut Vec<f32>,
) {
    let (stride, queries, keys, dim) = (head.stride, head.queries, head.keys, head.dim);
    // Kᵀ as a dense [dim, keys] matrix, so both products stream rows of B.
    kt.clear();
    kt.resize(dim * keys, 0.0);
    for (j, row) in head.k.chunks(stride).take(keys).enumerate() {
        for (t, &x) in row[..dim].iter().enumerate() {
            kt[t * keys + j] = x;
        }
    }
    let qk = Operands {
        a: head.q,
        lda: stride,
        b: kt,
        ldb: keys,
        m: queries,
        k: dim,
        n: keys,
    };
    matmul_in_order(qk, scores, score_stride, scale);
    for row in scores.chunks_mut(score_stride).take(queries) {
        softmax_in_place(&mut row[..keys]);
    }
    let pv = Operands {
        a: scores,
        lda: score_stride,
        b: head.v,
        ldb: stride,
        m: queries,
        k: keys,
        n: dim,
    };
    matmul_in_order(pv, out, dim, 1.0);
}

/// `C = scale·(A·B)` operands: A `[m, k]` (row stride `lda`), B `[k, n]` (row stride `ldb`).
#[derive(Clone, Copy)]
struct Operands<'a> {
    a: &'a [f32],
    lda: usize,
    b: &'a [f32],
    ldb: usize,
    m: usize,
    k: usize,
    n: usize,
}

/// Runs [`matmul_in_order_generic`] compiled for the best vector width available.
fn matmul_in_order(ops: Operands<'_>, c: &mut [f32], ldc: usize, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::dispatch::Isa;
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
        fn wide(ops: Operands<'_>, c: &mut [f32], ldc: usize, scale: f32) {
            matmul_in_order_generic::<8, 32>(ops, c, ldc, scale)
        }
        #[target_feature(enable = "avx2,fma")]
        fn narrow(ops: Operands<'_>, c: &mut [f32], ldc: usize, scale: f32) {
            matmul_in_order_generic::<4, 16>(ops, c, ldc, scale)
        }
        match crate::isa() {
            // SAFETY: `isa()` returns Avx512Vnni only when avx512f/bw/vl were detected.
            Isa::Avx512Vnni => return unsafe { wide(ops, c, ldc, scale) },
            // SAFETY: `isa()` returns these only when avx2 and fma were detected.
            Isa::Avx2 | Isa::AvxVnni => return unsafe { narrow(ops, c, ldc, scale) },
            Isa::Scalar | Isa::Simd128 | Isa::RelaxedSimd => {}
        }
    }
    matmul_in_order_generic::<3, 16>(ops, c, ldc, scale)
}

/// `C = scale·(A·B)` in the fixed order, in tiles of `R` rows × `W` columns (accumulators in
/// registers); edge tiles take the plain loop, whose order is the same.
#[inline(always)]
fn matmul_in_order_generic<const R: usize, const W: usize>(
    ops: Operands<'_>,
    c: &mut [f32],
    ldc: usize,
    scale: f32,
) {
    let Operands {
        a,
        lda,
        b,
        ldb,
        m,
        k,
        n,
    } = ops;
    for i0 in (0..m).step_by(R) {
        let rows = R.min(m - i0);
        for j0 in (0..n).step_by(W) {
            let cols = W.min(n - j0);
            if rows == R && cols == W {
                let a_rows: [&[f32]; R] = std::array::from_fn(|r| &a[(i0 + r) * lda..][..k]);
                let acc = tile::<R, W>(a_rows, &b[j0..], ldb, k);
                for (r, sums) in acc.iter().enumerate() {
                    let dst = &mut c[(i0 + r) * ldc + j0..][..W];
                    for (d, s) in dst.iter_mut().zip(sums) {
                        *d = s * scale;
                    }
                }
            } else {
                for r in i0..i0 + rows {
                    for j in j0..j0 + cols {
                        let mut s = 0.0f32;
                        for t in 0..k {
                            s += a[r * lda + t] * b[t * ldb + j];
                        }
                        c[r * ldc + j] = s * scale;
                    }
                }
            }
        }
    }
}

/// One `R × W` tile: `acc[r][j] = Σ_t a_rows[r][t]·b[t·ldb + j]` in increasing `t`. A separate
/// function so that LLVM keeps `acc` in vector registers.
#[inline(always)]
fn tile<const R: usize, const W: usize>(
    a_rows: [&[f32]; R],
    b: &[f32],
    ldb: usize,
    k: usize,
) -> [[f32; W]; R] {
    let mut acc = [[0.0f32; W]; R];
    for t in 0..k {
        let b_row = &b[t * ldb..t * ldb + W];
        for r in 0..R {
            let x = a_rows[r][t];
            for j in 0..W {
                acc[r][j] += x * b_row[j];
            }
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, element by element, in f32 with the same order.
    fn reference(h: HeadInputs<'_>, scale: f32) -> Vec<f32> {
        let mut out = vec![0.0f32; h.queries * h.dim];
        for i in 0..h.queries {
            let mut p: Vec<f32> = (0..h.keys)
                .map(|j| {
                    let mut s = 0.0f32;
                    for t in 0..h.dim {
                        s += h.q[i * h.stride + t] * h.k[j * h.stride + t];
                    }
                    s * scale
                })
                .collect();
            softmax_in_place(&mut p);
            for c in 0..h.dim {
                let mut s = 0.0f32;
                for (j, pj) in p.iter().enumerate() {
                    s += pj * h.v[j * h.stride + c];
                }
                out[i * h.dim + c] = s;
            }
        }
        out
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    proptest! {
        #[test]
        fn bit_identical_to_the_definition(queries in 1usize..40, keys in 0usize..45, dim in 1usize..70, extra in 0usize..3, seed: u64) {
            let stride = dim + extra;
            let qkv = values(queries.max(keys) * stride * 3, seed);
            let (q, rest) = qkv.split_at(queries.max(keys) * stride);
            let (k, v) = rest.split_at(queries.max(keys) * stride);
            let h = HeadInputs { q, k, v, stride, queries, keys, dim };
            let score_stride = keys + extra;
            let mut scores = vec![0.0; queries * score_stride];
            let mut out = vec![f32::NAN; queries * dim];
            attention_head(h, 0.125, Numerics::F32, &mut scores, score_stride, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            if keys == 0 {
                prop_assert!(out.iter().all(|&x| x == 0.0));
            } else {
                let want = reference(h, 0.125);
                prop_assert!(out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }

    #[test]
    fn short_buffers_are_refused() {
        let x = vec![0.0f32; 64];
        let h = HeadInputs {
            q: &x,
            k: &x,
            v: &x,
            stride: 8,
            queries: 8,
            keys: 9,
            dim: 8,
        };
        let mut scores = vec![0.0; 8 * 9];
        let mut out = vec![0.0; 64];
        let what = |e| match e {
            AttentionShapeError::Short { what, .. } => what,
            other => panic!("{other}"),
        };
        let err = attention_head(h, 1.0, Numerics::F32, &mut scores, 9, &mut out).unwrap_err();
        assert_eq!(what(err), "k");
        let h = HeadInputs { keys: 8, ..h };
        let err = attention_head(h, 1.0, Numerics::F32, &mut scores, 7, &mut out).unwrap_err();
        assert_eq!(what(err), "score row stride");
        let err = attention_head(h, 1.0, Numerics::F32, &mut scores[..60], 8, &mut out).unwrap_err();
        assert_eq!(what(err), "scores");
        let err = attention_head(h, 1.0, Numerics::Int16, &mut scores, 8, &mut out).map(|_| ());
        assert_eq!(err, Ok(()));
        let many = HeadInputs {
            keys: int16::MAX_KEYS + 1,
            ..h
        };
        for numerics in [Numerics::Int16, Numerics::Int8] {
            let err = attention_head(many, 1.0, numerics, &mut scores, 8, &mut out).unwrap_err();
            assert_eq!(
                err.to_string(),
                "attention: 32769 keys, integer attention takes at most 32768"
            );
        }
        let err = attention_head(h, 1.0, Numerics::Int8, &mut scores, 8, &mut out).map(|_| ());
        assert_eq!(err, Ok(()));
    }
}
