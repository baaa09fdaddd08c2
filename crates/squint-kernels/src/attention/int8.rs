//! Attention's two products as INT8 GEMMs, for INT8 models: the same exact u8·s8 kernels and
//! shared float epilogue as the linear layers ([`matmul_quantized`]), so every target returns
//! the same bits, at twice the int16 product rate (`vpdpbusd` sums 64 products, `vpdpwssd` 32).
//!
//! Definition:
//! - K per row (key) to s8: `kq = rne(clamp(k·(127/m), ±127))`, `m = max|k|` (a zero or
//!   non-finite row quantizes to zeros with scale 0); V per column likewise.
//! - scores = `matmul_quantized(Q, Kqᵀ, col_scale = (m_k/127)·scale, per-row u8 Q)`;
//! - P in 8 bits per row ([`softmax_u8_row`]): `pq = rne(255·exp_coarse(s - max))`, row scale
//!   `(1/Σ exp_coarse)/255` (the largest probability maps to 255);
//! - `out = (Pq·Vq exact) as f32 · (row scale · m_v/127)`, the GEMM's epilogue.

use super::int16::{abs_max, column_abs_max, Job};
use crate::elementwise::{round_to_i16, softmax_u8_row};
use crate::int8::{
    matmul_quantized, multiply_packed, pack_rows_with, ActQuant, Int8ShapeError, PackedI8, RowQuant,
};
use crate::packed::Epilogue;
use crate::parallel::Parallelism;

/// Buffers reused head after head (grown, never shrunk).
#[derive(Default)]
pub(super) struct Scratch {
    /// Quantized K (`[keys, dim]`) or V (`[keys, dim]`) before packing.
    values: Vec<i8>,
    keys: PackedI8,
    values_packed: PackedI8,
    key_scale: Vec<f32>,
    value_scale: Vec<f32>,
    /// V's per-column `127/m`.
    value_inv: Vec<f32>,
    /// P packed for the GEMM, its row parameters, and one row before packing.
    probs: Vec<u8>,
    prob_quant: Vec<RowQuant>,
    row: Vec<u8>,
}

/// `127/m` and `m/127` for a largest magnitude `m` (both 0 when `m` is 0 or not finite).
#[inline(always)]
fn symmetric(m: f32) -> (f32, f32) {
    if m > 0.0 && m.is_finite() {
        (127.0 / m, m / 127.0)
    } else {
        (0.0, 0.0)
    }
}

/// `v·inv` rounded half to even into [-127, 127].
#[inline(always)]
fn to_s8(v: f32, inv: f32) -> i8 {
    round_to_i16((v * inv).clamp(-127.0, 127.0)) as i8
}

/// `scores = softmax(Q·Kᵀ·scale)` (left holding each row's `exp_coarse(score - max)`) and
/// `out = P·V`, for a validated head (keys ≥ 1). The loops around the GEMMs are compiled for
/// the widest vector ISA available (the same operations, so the same bits, everywhere).
pub(super) fn attend(job: Job<'_>, s: &mut Scratch) -> Result<(), Int8ShapeError> {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::dispatch::Isa;
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
        fn wide(job: Job<'_>, s: &mut Scratch) -> Result<(), Int8ShapeError> {
            attend_generic(job, s)
        }
        #[target_feature(enable = "avx2,fma")]
        fn narrow(job: Job<'_>, s: &mut Scratch) -> Result<(), Int8ShapeError> {
            attend_generic(job, s)
        }
        match crate::isa() {
            // SAFETY: `isa()` returns Avx512Vnni only when avx512f/bw/vl were detected.
            Isa::Avx512Vnni => return unsafe { wide(job, s) },
            // SAFETY: `isa()` returns these only when avx2 and fma were detected.
            Isa::Avx2 | Isa::AvxVnni => return unsafe { narrow(job, s) },
            Isa::Scalar | Isa::Simd128 | Isa::RelaxedSimd => {}
        }
    }
    attend_generic(job, s)
}

/// The body of [`attend`], inlined into each ISA's copy.
#[inline(always)]
fn attend_generic(job: Job<'_>, s: &mut Scratch) -> Result<(), Int8ShapeError> {
    let (head, scale, score_stride) = (job.head, job.scale, job.score_stride);
    let (scores, out) = (job.scores, job.out);
    let (q, k, v, stride) = (head.q, head.k, head.v, head.stride);
    let (queries, keys, dim) = (head.queries, head.keys, head.dim);
    let none = Epilogue {
        accumulate: false,
        bias: None,
        activation: None,
    };

    // Kᵀ as B: key j's row quantized with its own scale, times the softmax scale.
    s.values.clear();
    s.values.resize(keys * dim, 0);
    s.key_scale.clear();
    for (row, dst) in k.chunks(stride).take(keys).zip(s.values.chunks_exact_mut(dim)) {
        let row = &row[..dim];
        let (inv, dequant) = symmetric(abs_max(row));
        for (d, &x) in dst.iter_mut().zip(row) {
            *d = to_s8(x, inv);
        }
        s.key_scale.push(dequant * scale);
    }
    s.keys.repack_transposed(&s.values, keys, dim);
    let rows = ActQuant::PerRow;
    let seq = Parallelism::Sequential;
    matmul_quantized(
        scores,
        score_stride,
        q,
        stride,
        queries,
        &s.keys,
        &s.key_scale,
        rows,
        none,
        seq,
    )?;

    // V as B: one scale per column.
    column_abs_max(v, stride, keys, dim, &mut s.value_inv);
    s.value_scale.clear();
    for m in s.value_inv.iter_mut() {
        let (inv, dequant) = symmetric(*m);
        *m = inv;
        s.value_scale.push(dequant);
    }
    for (row, dst) in v.chunks(stride).take(keys).zip(s.values.chunks_exact_mut(dim)) {
        for ((d, &x), &inv) in dst.iter_mut().zip(&row[..dim]).zip(&s.value_inv) {
            *d = to_s8(x, inv);
        }
    }
    s.values_packed.repack_row_major(&s.values, keys, dim);

    // Softmax straight to 8 bits, row after row into the GEMM's A layout.
    let shape = (queries, keys, keys.div_ceil(4) * 4);
    pack_rows_with(&mut s.probs, &mut s.prob_quant, &mut s.row, shape, |i, bytes| {
        RowQuant {
            scale: softmax_u8_row(&mut scores[i * score_stride..][..keys], bytes),
            zero: 0,
        }
    });
    multiply_packed(
        out,
        dim,
        &s.probs,
        &s.prob_quant,
        queries,
        &s.values_packed,
        &s.value_scale,
        none,
        seq,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attention_head, HeadInputs, Numerics};
    use proptest::prelude::*;

    /// The module's definition written out with i64 sums and no packing.
    fn reference(h: HeadInputs<'_>, scale: f32) -> Vec<f32> {
        let (l, n, d) = (h.queries, h.keys, h.dim);
        let row = |x: &[f32], r: usize| x[r * h.stride..][..d].to_vec();
        let sym = |x: &[f32]| {
            let (inv, deq) = symmetric(x.iter().fold(0.0f32, |m, v| m.max(v.abs())));
            (x.iter().map(|&v| to_s8(v, inv)).collect::<Vec<i8>>(), deq)
        };
        let keys: Vec<(Vec<i8>, f32)> = (0..n).map(|j| sym(&row(h.k, j))).collect();
        let (mut probs, mut pq, mut p_scale) = (vec![0.0f32; l * n], vec![0u8; l * n], vec![0.0f32; l]);
        for i in 0..l {
            let qr = row(h.q, i);
            let rq = RowQuant::of(&qr);
            let qq: Vec<i64> = qr.iter().map(|&v| rq.quantize(v) as i64).collect();
            for (j, (kq, sk)) in keys.iter().enumerate() {
                let acc: i64 = qq.iter().zip(kq).map(|(a, &b)| a * b as i64).sum();
                let col_sum: i64 = kq.iter().map(|&b| b as i64).sum();
                let exact = acc - rq.zero as i64 * col_sum;
                assert!(i32::try_from(exact).is_ok());
                probs[i * n + j] = (exact as i32 as f32) * (rq.scale * (sk * scale));
            }
            // Tested against exp in f64 in `elementwise`.
            p_scale[i] = softmax_u8_row(&mut probs[i * n..(i + 1) * n], &mut pq[i * n..(i + 1) * n]);
        }
        let cols: Vec<(Vec<i8>, f32)> = (0..d)
            .map(|c| sym(&(0..n).map(|j| h.v[j * h.stride + c]).collect::<Vec<f32>>()))
            .collect();
        let mut out = vec![0.0f32; l * d];
        for i in 0..l {
            let p = &pq[i * n..(i + 1) * n];
            for (c, (vq, sv)) in cols.iter().enumerate() {
                let exact: i64 = p.iter().zip(vq).map(|(&a, &b)| a as i64 * b as i64).sum();
                assert!(i32::try_from(exact).is_ok());
                out[i * d + c] = (exact as i32 as f32) * (p_scale[i] * sv);
            }
        }
        out
    }

    fn inputs(len: usize, seed: u32, big: bool) -> Vec<f32> {
        let amp = if big { 80.0 } else { 2.0 };
        (0..len)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(40_503));
                ((h >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * amp
            })
            .collect()
    }

    /// A head over `qkv` rows of `stride`, Q, K and V `dim` apart.
    fn head(qkv: &[f32], stride: usize, queries: usize, keys: usize, dim: usize) -> HeadInputs<'_> {
        HeadInputs {
            q: qkv,
            k: &qkv[dim..],
            v: &qkv[2 * dim..],
            stride,
            queries,
            keys,
            dim,
        }
    }

    fn run(h: HeadInputs<'_>, scale: f32, numerics: Numerics) -> Vec<f32> {
        let mut scores = vec![0.0f32; h.queries * h.keys];
        let mut out = vec![0.0f32; h.queries * h.dim];
        attention_head(h, scale, numerics, &mut scores, h.keys, &mut out).unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn equals_the_definition(queries in 1usize..30, keys in 1usize..70, dim in 1usize..70, extra in 0usize..3, seed: u32, big: bool) {
            let stride = 3 * dim + extra;
            let qkv = inputs(queries.max(keys) * stride, seed, big);
            let h = head(&qkv, stride, queries, keys, dim);
            let got = run(h, 0.37, Numerics::Int8);
            let want = reference(h, 0.37);
            prop_assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn close_to_float_attention() {
        let (l, d) = (96, 64);
        let stride = 3 * d;
        let qkv = inputs(l * stride, 7, false);
        let h = head(&qkv, stride, l, l, d);
        let exact = run(h, 0.125, Numerics::F32);
        let int8 = run(h, 0.125, Numerics::Int8);
        let worst = exact
            .iter()
            .zip(&int8)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let top = exact.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            worst < 0.02 * top.max(0.1),
            "int8 attention off by {worst} (outputs up to {top})"
        );
    }

    #[test]
    fn zero_rows_and_huge_values_match_the_definition() {
        let (l, d) = (7, 5);
        let stride = 3 * d;
        let mut qkv = vec![0.0f32; l * stride];
        for (i, v) in qkv.iter_mut().enumerate() {
            *v = if i % 3 == 0 {
                1.0e15
            } else if i % 3 == 1 {
                -1.0e15
            } else {
                0.0
            };
        }
        // The first key row and the first value column stay all zero.
        for j in 0..l {
            qkv[j * stride + d] = 0.0;
        }
        let h = head(&qkv, stride, l, l, d);
        let out = run(h, 1.0, Numerics::Int8);
        assert!(out.iter().all(|v| v.is_finite()));
        assert_eq!(out, reference(h, 1.0));
    }
}
