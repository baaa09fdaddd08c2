//! Attention's two products in exact integer arithmetic, for INT8 models: Q and K quantized
//! to i16 per row, the probabilities to fixed point `round(p·32767)`, V per column. Sums of i16
//! pair products (`vpdpwssd`, `vpmaddwd`, `i32x4.dot_i16x8_s`) never leave i32 (the ranges are
//! chosen so), so every target returns the same bits, at up to 4x the f32 multiply-add rate.
//!
//! Definition (every kernel, the tests' reference included):
//! - a row `x` quantizes with `m = max|x|`: `xq = rne(clamp(x·(qmax/m), ±qmax))`, dequantized by
//!   `m/qmax` (all zero when `m = 0`); `qmax = min(32767, ⌊√((2³¹-1)/dim)⌋)` for Q and K, so a
//!   dot of `dim` products fits i32; V quantizes per column with `qmax = 32767`.
//! - `scores[i][j] = (S[i][j] as f32 · (sq[i]·scale)) · sk[j]`, `S = Qq·Kqᵀ` exact;
//! - `e = exp_fine(scores[i] - max)` (a degree-5 polynomial of `2^f`, < 4e-6 relative where a
//!   probability can be nonzero: under 0.15 of its unit), `pq = rne((e·(1/Σe))·32767)`, `Σe`
//!   in lane order; `Σ pq ≤ 32767 + keys/2`, so with `|vq| ≤ 32767` the exact `O = Pq·Vq`
//!   fits i32 for `keys ≤` [`MAX_KEYS`];
//! - `out[i][c] = O[i][c] as f32 · (sv[c]/32767²)`.

use super::HeadInputs;
use crate::dispatch::{prefetch, Isa};
use crate::elementwise::{round_to_i16 as rne, softmax_fixed_point_generic};

/// Most keys whose probability-weighted sum stays exact in i32 (see the module docs).
pub const MAX_KEYS: usize = 32768;
/// Fixed-point one for the probabilities, and V's largest quantized magnitude.
const ONE: f32 = 32767.0;
/// Rows of A are zero-padded to a multiple of this (every kernel's tile height divides it).
const ROW_BLOCK: usize = 6;
/// Columns of packed B are zero-padded to a multiple of this (16 i32 lanes).
const COL_BLOCK: usize = 16;
/// How many rows ahead of the one being read Q, K and V rows are prefetched: their lines
/// (stride 3·hidden floats) are too far apart for the hardware prefetchers.
const AHEAD: usize = 4;

/// Query rows per block of scores (a multiple of [`ROW_BLOCK`]): a block's i32 scores for
/// 384 keys are 36 KiB, so they and the probabilities stay in L1/L2 from product to product.
const QUERY_BLOCK: usize = 4 * ROW_BLOCK;

/// Buffers reused head after head (grown, never shrunk). B operands are `[pairs][cols]`
/// words, column j's pair p at `p·cols + j`.
#[derive(Default)]
pub(super) struct Scratch {
    /// A operand: rows of i16 pairs, one i32 word per pair (low half the even element).
    a: Vec<i32>,
    /// Kᵀ as a B operand.
    keys: Vec<i32>,
    /// V as a B operand.
    values: Vec<i32>,
    /// One query block's probabilities as an A operand.
    probs: Vec<i32>,
    /// Exact products of one query block, `[rows][cols]`.
    c: Vec<i32>,
    /// Per-row scales of the last quantized rows (Q), of K's rows, and V's column factors.
    row_scale: Vec<f32>,
    key_scale: Vec<f32>,
    value_scale: Vec<f32>,
    /// V's per-column quantization multipliers.
    col_scale: Vec<f32>,
    /// One row's i16 values before pairing.
    row: Vec<i16>,
}

/// `qmax` for Q and K: `dim · qmax² ≤ 2³¹ - 1`.
fn qk_max(dim: usize) -> f32 {
    ((i32::MAX as f64 / dim.max(1) as f64).sqrt().floor().min(32767.0)) as f32
}

/// Packs two i16 into the word `vpdpwssd` reads as one pair (little-endian: `lo` first).
#[inline(always)]
fn word(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | (hi as u16 as u32) << 16) as i32
}

/// `max|x|` (0 for an empty slice), in 16 lanes so that it vectorises (max is order-free).
#[inline(always)]
pub(super) fn abs_max(x: &[f32]) -> f32 {
    let larger = |m: f32, v: f32| if v > m { v } else { m };
    let mut lanes = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = larger(*m, v.abs());
        }
    }
    let m = rest.iter().fold(0.0, |m, v| larger(m, v.abs()));
    lanes.into_iter().fold(m, larger)
}

/// `out[c] = max|x[r][c]|` over `rows` rows of `width` values (row `r` at `x[r·stride..]`):
/// V's per-column ranges.
#[inline(always)]
pub(super) fn column_abs_max(x: &[f32], stride: usize, rows: usize, width: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(width, 0.0);
    for (r, row) in x.chunks(stride).take(rows).enumerate() {
        prefetch_row(x, r + AHEAD, stride, width);
        for (m, &v) in out.iter_mut().zip(&row[..width]) {
            if v.abs() > *m {
                *m = v.abs();
            }
        }
    }
}

/// Prefetches row `r` (`width` values at `x[r·stride..]`), or what of it is inside `x`.
#[inline(always)]
fn prefetch_row(x: &[f32], r: usize, stride: usize, width: usize) {
    if let Some(row) = x.get(r * stride..) {
        prefetch(&row[..width.min(row.len())]);
    }
}

/// Pairs `values` (even length) into words: `words[i] = word(values[2i], values[2i + 1])`.
#[inline(always)]
fn pair_up(values: &[i16], words: &mut [i32]) {
    for (w, pair) in words.iter_mut().zip(values.chunks_exact(2)) {
        *w = word(pair[0], pair[1]);
    }
}

/// Quantizes `x` into `out` (same length) with `qmax`; returns the dequantization scale.
#[inline(always)]
fn quantize_row(x: &[f32], out: &mut [i16], qmax: f32) -> f32 {
    let m = abs_max(x);
    if m == 0.0 || !m.is_finite() {
        out.fill(0);
        return 0.0;
    }
    let inv = qmax / m;
    for (o, v) in out.iter_mut().zip(x) {
        *o = rne((v * inv).clamp(-qmax, qmax));
    }
    m / qmax
}

/// Quantizes `rows` rows of `width` values (row `r` at `x[r·stride..]`) into pair words of
/// `width.div_ceil(2)` per row, rows zero-padded to [`ROW_BLOCK`]; returns the padded row count.
#[inline(always)]
fn quantize_rows(x: &[f32], stride: usize, rows: usize, width: usize, qmax: f32, s: &mut Scratch) -> usize {
    let pairs = width.div_ceil(2);
    let padded = rows.next_multiple_of(ROW_BLOCK);
    s.a.clear();
    s.a.resize(padded * pairs, 0);
    s.row_scale.clear();
    s.row.resize(2 * pairs, 0);
    for (r, words) in s.a.chunks_exact_mut(pairs).take(rows).enumerate() {
        prefetch_row(x, r + AHEAD, stride, width);
        let row = &mut s.row[..width];
        s.row_scale
            .push(quantize_row(&x[r * stride..][..width], row, qmax));
        s.row[width..].fill(0);
        pair_up(&s.row, words);
    }
    padded
}

/// One validated head's call (keys ≥ 1, keys ≤ [`MAX_KEYS`]): `scores` (`queries` rows of
/// stride `score_stride`) is scratch (its first rows hold `exp(score - max)` of the last
/// query block), `out` is `[queries, dim]`.
pub(super) struct Job<'a> {
    pub head: HeadInputs<'a>,
    pub scale: f32,
    pub scores: &'a mut [f32],
    pub score_stride: usize,
    pub out: &'a mut [f32],
}

/// `scores = softmax(Q·Kᵀ·scale)` and `out = P·V` with the kernel family `isa`.
pub(super) fn attend(isa: Isa, job: Job<'_>, s: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `isa()`/`available()` name Avx512Vnni only when avx512f/bw/vl/vnni were detected.
        Isa::Avx512Vnni => return unsafe { x86::attend_avx512(job, s) },
        // SAFETY: they name these only when avx2 and fma were detected.
        Isa::Avx2 | Isa::AvxVnni => return unsafe { x86::attend_avx2(job, s) },
        _ => {}
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if matches!(isa, Isa::Simd128 | Isa::RelaxedSimd) {
        return attend_with::<wasm::Simd128>(job, s);
    }
    let _ = isa;
    attend_with::<Scalar>(job, s)
}

/// One kernel family's exact product of pair words.
trait Product {
    /// `c[r][j] = Σ_p dot(a[r·pairs + p], b[p·cols + j])` (wrapping i32) for `rows` rows
    /// (a multiple of [`ROW_BLOCK`]) and `cols` columns (a multiple of [`COL_BLOCK`]).
    fn product(a: &[i32], rows: usize, pairs: usize, b: &[i32], cols: usize, c: &mut [i32]);
}

/// The whole head with one kernel family, inlined into a caller compiled for its ISA.
/// K and V are quantized once; the queries then go through in blocks of [`QUERY_BLOCK`]
/// rows (scores, softmax, P·V), so a block's scores and probabilities stay in cache.
#[inline(always)]
fn attend_with<P: Product>(job: Job<'_>, s: &mut Scratch) {
    let Job {
        head,
        scale,
        scores,
        score_stride,
        out,
    } = job;
    let HeadInputs {
        q,
        k,
        v,
        stride,
        queries,
        keys,
        dim,
    } = head;
    let qmax = qk_max(dim);
    let pairs = dim.div_ceil(2);
    let key_cols = keys.next_multiple_of(COL_BLOCK);
    let key_pairs = keys.div_ceil(2);
    let dim_cols = dim.next_multiple_of(COL_BLOCK);

    // Kᵀ as B: column j holds key j's pairs.
    quantize_rows(k, stride, keys, dim, qmax, s);
    s.keys.clear();
    s.keys.resize(pairs * key_cols, 0);
    for (j, words) in s.a.chunks_exact(pairs).take(keys).enumerate() {
        for (p, &w) in words.iter().enumerate() {
            s.keys[p * key_cols + j] = w;
        }
    }
    std::mem::swap(&mut s.key_scale, &mut s.row_scale);

    // V as B: per-column scales, rows paired.
    column_abs_max(v, stride, keys, dim, &mut s.value_scale);
    s.col_scale.clear();
    s.col_scale.extend(
        s.value_scale
            .iter()
            .map(|&m| if m > 0.0 && m.is_finite() { ONE / m } else { 0.0 }),
    );
    s.values.clear();
    s.values.resize(key_pairs * dim_cols, 0);
    for (p, words) in s.values.chunks_exact_mut(dim_cols).enumerate() {
        let even = &v[2 * p * stride..][..dim];
        let odd = (2 * p + 1 < keys).then(|| &v[(2 * p + 1) * stride..][..dim]);
        for (c, (w, &inv)) in words.iter_mut().zip(&s.col_scale).enumerate() {
            let lo = rne((even[c] * inv).clamp(-ONE, ONE));
            let hi = odd.map_or(0, |o| rne((o[c] * inv).clamp(-ONE, ONE)));
            *w = word(lo, hi);
        }
    }
    for m in s.value_scale.iter_mut() {
        *m = if m.is_finite() { *m / (ONE * ONE) } else { 0.0 };
    }

    let rows = quantize_rows(q, stride, queries, dim, qmax, s);
    s.row.clear();
    s.row.resize(2 * key_pairs, 0);
    for r0 in (0..rows).step_by(QUERY_BLOCK) {
        let block = QUERY_BLOCK.min(rows - r0);
        let real = block.min(queries.saturating_sub(r0));
        // Every product writes all of its `c`: grown, not cleared.
        let c = grown(&mut s.c, block * key_cols.max(dim_cols));
        P::product(&s.a[r0 * pairs..], block, pairs, &s.keys, key_cols, c);

        // Scores, softmax, and P as A: probabilities in fixed point, keys paired. Real rows
        // are rewritten whole below (`s.row`'s tail past `keys` stays zero); padding rows
        // are cleared.
        s.probs.resize(block * key_pairs, 0);
        for words in s.probs.chunks_exact_mut(key_pairs).skip(real) {
            words.fill(0);
        }
        let rows_out = scores
            .chunks_mut(score_stride)
            .zip(s.probs.chunks_exact_mut(key_pairs));
        for (i, ((dst, words), sums)) in rows_out.zip(c.chunks_exact(key_cols)).take(real).enumerate() {
            let row_factor = s.row_scale[r0 + i] * scale;
            for ((d, &sum), &sk) in dst[..keys].iter_mut().zip(&sums[..keys]).zip(&s.key_scale) {
                *d = (sum as f32 * row_factor) * sk;
            }
            softmax_fixed_point_generic(&mut dst[..keys], &mut s.row[..keys], ONE);
            pair_up(&s.row, words);
        }

        P::product(&s.probs, block, key_pairs, &s.values, dim_cols, c);
        let out_rows = out[r0 * dim..].chunks_exact_mut(dim);
        for (dst, sums) in out_rows.zip(c.chunks_exact(dim_cols)).take(real) {
            for ((d, &sum), &f) in dst.iter_mut().zip(sums).zip(&s.value_scale) {
                *d = sum as f32 * f;
            }
        }
    }
}

/// The first `len` elements of `buf`, growing it (with zeros) when shorter.
fn grown(buf: &mut Vec<i32>, len: usize) -> &mut [i32] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

/// Checks the sizes every kernel's tiles rely on (a broken caller panics, never reads out of
/// bounds).
fn check(a: &[i32], rows: usize, pairs: usize, b: &[i32], cols: usize, c: &[i32]) {
    assert!(
        rows.is_multiple_of(ROW_BLOCK) && cols.is_multiple_of(COL_BLOCK),
        "unpadded int16 product"
    );
    assert!(a.len() >= rows * pairs && b.len() >= pairs * cols && c.len() >= rows * cols);
}

/// The portable kernel, and the tests' definition of the product.
struct Scalar;

impl Product for Scalar {
    fn product(a: &[i32], rows: usize, pairs: usize, b: &[i32], cols: usize, c: &mut [i32]) {
        check(a, rows, pairs, b, cols, c);
        for r in 0..rows {
            let a_row = &a[r * pairs..][..pairs];
            let c_row = &mut c[r * cols..][..cols];
            c_row.fill(0);
            for (p, &x) in a_row.iter().enumerate() {
                let (x0, x1) = (x as i16 as i32, (x >> 16) as i16 as i32);
                for (o, &y) in c_row.iter_mut().zip(&b[p * cols..][..cols]) {
                    let (y0, y1) = (y as i16 as i32, (y >> 16) as i16 as i32);
                    *o = o.wrapping_add((x0 * y0).wrapping_add(x1 * y1));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{attend_with, check, Job, Product, Scratch, ROW_BLOCK};
    use std::arch::x86_64::*;

    /// [`attend_with`] compiled for AVX-512 with `vpdpwssd`.
    ///
    /// # Safety
    /// Requires avx512f/bw/vl/vnni.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    pub(super) unsafe fn attend_avx512(job: Job<'_>, s: &mut Scratch) {
        attend_with::<Avx512>(job, s)
    }

    /// [`attend_with`] compiled for AVX2 with `vpmaddwd`.
    ///
    /// # Safety
    /// Requires avx2 and fma.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attend_avx2(job: Job<'_>, s: &mut Scratch) {
        attend_with::<Avx2>(job, s)
    }

    struct Avx512;

    /// Six rows × `V` zmm (16 columns each) of accumulators, `vpdpwssd` per pair.
    ///
    /// # Safety
    /// avx512f/bw/vnni; rows `r0..r0+6` of `a` (`pairs` words each), columns `j0..j0+16V` of
    /// `b` and `c` are in bounds.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // register arrays
    unsafe fn tile512<const V: usize>(
        a: &[i32],
        r0: usize,
        pairs: usize,
        b: &[i32],
        cols: usize,
        j0: usize,
        c: &mut [i32],
    ) {
        // SAFETY: the caller enabled avx512f.
        let mut acc = [[unsafe { _mm512_setzero_si512() }; V]; ROW_BLOCK];
        let (ap, bp) = (a.as_ptr().wrapping_add(r0 * pairs), b.as_ptr().wrapping_add(j0));
        for p in 0..pairs {
            // SAFETY: p < pairs, so the V·16 words at bp + p·cols and the word at ap + r·pairs + p
            // are inside the checked buffers.
            unsafe {
                let y: [__m512i; V] =
                    std::array::from_fn(|v| _mm512_loadu_si512(bp.add(p * cols + 16 * v).cast()));
                for r in 0..ROW_BLOCK {
                    let x = _mm512_set1_epi32(*ap.add(r * pairs + p));
                    for v in 0..V {
                        acc[r][v] = _mm512_dpwssd_epi32(acc[r][v], x, y[v]);
                    }
                }
            }
        }
        for r in 0..ROW_BLOCK {
            for v in 0..V {
                // SAFETY: row r0 + r, columns j0 + 16v.. + 16 are inside c (checked).
                unsafe {
                    _mm512_storeu_si512(
                        c.as_mut_ptr().add((r0 + r) * cols + j0 + 16 * v).cast(),
                        acc[r][v],
                    )
                };
            }
        }
    }

    impl Product for Avx512 {
        #[inline(always)]
        fn product(a: &[i32], rows: usize, pairs: usize, b: &[i32], cols: usize, c: &mut [i32]) {
            check(a, rows, pairs, b, cols, c);
            for r0 in (0..rows).step_by(ROW_BLOCK) {
                let mut j0 = 0;
                // SAFETY (all four calls): attend_avx512 enabled avx512f/bw/vnni; `check` bounds
                // the buffers and j0 + 16V ≤ cols.
                while j0 + 64 <= cols {
                    unsafe { tile512::<4>(a, r0, pairs, b, cols, j0, c) };
                    j0 += 64;
                }
                match (cols - j0) / 16 {
                    3 => unsafe { tile512::<3>(a, r0, pairs, b, cols, j0, c) },
                    2 => unsafe { tile512::<2>(a, r0, pairs, b, cols, j0, c) },
                    1 => unsafe { tile512::<1>(a, r0, pairs, b, cols, j0, c) },
                    _ => {}
                }
            }
        }
    }

    struct Avx2;

    impl Product for Avx2 {
        /// Six rows × 16 columns (two ymm), `vpmaddwd` + `vpaddd` per pair.
        #[inline(always)]
        #[allow(clippy::needless_range_loop)] // register arrays
        fn product(a: &[i32], rows: usize, pairs: usize, b: &[i32], cols: usize, c: &mut [i32]) {
            check(a, rows, pairs, b, cols, c);
            for r0 in (0..rows).step_by(ROW_BLOCK) {
                for j0 in (0..cols).step_by(16) {
                    // SAFETY: attend_avx2 enabled avx2; `check` bounds every access below.
                    unsafe {
                        let mut acc = [[_mm256_setzero_si256(); 2]; ROW_BLOCK];
                        let (ap, bp) = (a.as_ptr().add(r0 * pairs), b.as_ptr().add(j0));
                        for p in 0..pairs {
                            let y = [
                                _mm256_loadu_si256(bp.add(p * cols).cast()),
                                _mm256_loadu_si256(bp.add(p * cols + 8).cast()),
                            ];
                            for r in 0..ROW_BLOCK {
                                let x = _mm256_set1_epi32(*ap.add(r * pairs + p));
                                for v in 0..2 {
                                    acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(x, y[v]));
                                }
                            }
                        }
                        for r in 0..ROW_BLOCK {
                            for v in 0..2 {
                                _mm256_storeu_si256(
                                    c.as_mut_ptr().add((r0 + r) * cols + j0 + 8 * v).cast(),
                                    acc[r][v],
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::{check, Product};
    use core::arch::wasm32::*;

    pub(super) struct Simd128;

    /// Rows computed together (12 accumulators, as the INT8 kernel).
    const ROWS: usize = 3;

    impl Product for Simd128 {
        /// Three rows × 16 columns (four v128), `i32x4.dot_i16x8_s` + `i32x4.add` per pair.
        #[inline(always)]
        #[allow(clippy::needless_range_loop)] // register arrays
        fn product(a: &[i32], rows: usize, pairs: usize, b: &[i32], cols: usize, c: &mut [i32]) {
            check(a, rows, pairs, b, cols, c);
            for r0 in (0..rows).step_by(ROWS) {
                for j0 in (0..cols).step_by(16) {
                    let mut acc = [[i32x4_splat(0); 4]; ROWS];
                    for p in 0..pairs {
                        let y_words = &b[p * cols + j0..][..16];
                        // SAFETY: each load reads 4 words inside `y_words`.
                        let y: [v128; 4] =
                            std::array::from_fn(|v| unsafe { v128_load(y_words[4 * v..].as_ptr().cast()) });
                        for r in 0..ROWS {
                            let x = i32x4_splat(a[(r0 + r) * pairs + p]);
                            for v in 0..4 {
                                acc[r][v] = i32x4_add(acc[r][v], i32x4_dot_i16x8(x, y[v]));
                            }
                        }
                    }
                    for r in 0..ROWS {
                        let dst = &mut c[(r0 + r) * cols + j0..][..16];
                        for v in 0..4 {
                            // SAFETY: the store writes 4 words inside `dst`.
                            unsafe { v128_store(dst[4 * v..].as_mut_ptr().cast(), acc[r][v]) };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::Numerics;
    use crate::elementwise::{exp_fine, lane_sum};
    use proptest::prelude::*;

    /// The module docs' definition, element by element, with no packing.
    fn reference(h: HeadInputs<'_>, scale: f32) -> Vec<f32> {
        let qmax = qk_max(h.dim);
        let quant = |rows: &[f32], n: usize| -> (Vec<Vec<i64>>, Vec<f32>) {
            (0..n)
                .map(|r| {
                    let mut q = vec![0i16; h.dim];
                    let s = quantize_row(&rows[r * h.stride..][..h.dim], &mut q, qmax);
                    (q.into_iter().map(i64::from).collect(), s)
                })
                .unzip()
        };
        let (qq, sq) = quant(h.q, h.queries);
        let (kq, sk) = quant(h.k, h.keys);
        let mut out = vec![0.0f32; h.queries * h.dim];
        for i in 0..h.queries {
            let mut p: Vec<f32> = (0..h.keys)
                .map(|j| {
                    let s: i64 = (0..h.dim).map(|t| qq[i][t] * kq[j][t]).sum();
                    assert!(i32::try_from(s).is_ok(), "Q·Kᵀ left i32");
                    (s as i32 as f32 * (sq[i] * scale)) * sk[j]
                })
                .collect();
            let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            p.iter_mut().for_each(|x| *x = exp_fine(*x - max));
            let inv = 1.0 / lane_sum(&p);
            let pq: Vec<i64> = p.iter().map(|&x| rne((x * inv) * ONE) as i64).collect();
            for c in 0..h.dim {
                let m = (0..h.keys)
                    .map(|j| h.v[j * h.stride + c].abs())
                    .fold(0.0f32, f32::max);
                let inv = if m > 0.0 { ONE / m } else { 0.0 };
                let s: i64 = (0..h.keys)
                    .map(|j| pq[j] * rne((h.v[j * h.stride + c] * inv).clamp(-ONE, ONE)) as i64)
                    .sum();
                assert!(i32::try_from(s).is_ok(), "P·V left i32");
                out[i * h.dim + c] = s as f32 * (m / (ONE * ONE));
            }
        }
        out
    }

    fn run(isa: Isa, h: HeadInputs<'_>, scale: f32) -> Vec<f32> {
        let mut scores = vec![0.0; h.queries * h.keys];
        let mut out = vec![f32::NAN; h.queries * h.dim];
        let job = Job {
            head: h,
            scale,
            scores: &mut scores,
            score_stride: h.keys,
            out: &mut out,
        };
        attend(isa, job, &mut Scratch::default());
        out
    }

    proptest! {
        #[test]
        fn every_kernel_equals_the_definition(queries in 1usize..30, keys in 1usize..70, dim in 1usize..70, extra in 0usize..3, seed: u32, big: bool) {
            let stride = dim + extra;
            let n = queries.max(keys) * stride;
            let amp = if big { 40.0 } else { 2.0 };
            let qkv: Vec<f32> = crate::test_util::fill(3 * n, seed).iter().map(|x| x * amp).collect();
            let h = HeadInputs { q: &qkv[..n], k: &qkv[n..2 * n], v: &qkv[2 * n..], stride, queries, keys, dim };
            let want = reference(h, 0.125);
            for isa in Isa::available() {
                let got = run(isa, h, 0.125);
                prop_assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{isa:?}");
            }
        }
    }

    #[test]
    fn extremes_stay_exact() {
        // Q and K at ±qmax everywhere, a one-hot softmax and V at ±32767: the largest sums.
        for dim in [1, 2, 63, 64, 128] {
            let keys = 37;
            let stride = dim;
            let q = vec![5.0f32; keys * dim];
            let k = vec![-5.0f32; keys * dim];
            let v: Vec<f32> = (0..keys * dim)
                .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
                .collect();
            let h = HeadInputs {
                q: &q,
                k: &k,
                v: &v,
                stride,
                queries: keys,
                keys,
                dim,
            };
            let want = reference(h, 1.0);
            for isa in Isa::available() {
                assert_eq!(run(isa, h, 1.0), want, "{isa:?} dim {dim}");
            }
        }
    }

    #[test]
    fn close_to_float_attention() {
        // Attention-like data: scores of a few units, V of order one.
        let (queries, keys, dim) = (50, 61, 64);
        let x = crate::test_util::fill(3 * keys * dim, 7);
        let (q, rest) = x.split_at(keys * dim);
        let (k, v) = rest.split_at(keys * dim);
        let q: Vec<f32> = q.iter().map(|x| x * 3.0).collect();
        let h = HeadInputs {
            q: &q,
            k,
            v,
            stride: dim,
            queries,
            keys,
            dim,
        };
        let got = run(crate::isa(), h, 0.125);
        let mut scores = vec![0.0; queries * keys];
        let mut want = vec![0.0; queries * dim];
        super::super::attention_head(h, 0.125, Numerics::F32, &mut scores, keys, &mut want).expect("shape");
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 2e-3, "max abs error {err}");
    }

    #[test]
    fn earlier_heads_and_padded_queries_change_nothing() {
        // Buffers persist per thread: what ran before, and padded query rows, must not matter.
        let x = crate::test_util::fill(80 * 96, 3);
        let (dim, stride) = (8, 96);
        let head = |queries, keys| HeadInputs {
            q: &x,
            k: &x[32..],
            v: &x[64..],
            stride,
            queries,
            keys,
            dim,
        };
        let numerics = crate::attention::Numerics::Int16;
        let run = |h: HeadInputs<'_>| {
            let mut scores = vec![0.0; h.queries * h.queries];
            let mut out = vec![0.0; h.queries * dim];
            crate::attention::attention_head(h, 0.125, numerics, &mut scores, h.queries, &mut out)
                .expect("shape");
            out
        };
        for (q1, k1) in [(40usize, 40usize), (41, 41), (50, 33), (17, 17)] {
            for (q2, k2) in [(30usize, 30usize), (31, 29), (40, 21), (7, 7), (55, 55)] {
                run(head(q1, k1));
                let got = run(head(q2, k2));
                let want = reference(head(k2, k2), 0.125);
                let same = got[..k2 * dim]
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{q1}x{k1} then {q2}x{k2}");
            }
        }
    }
}
