//! Row-wise and element-wise float kernels: softmax, GELU, LayerNorm.
//!
//! Each kernel is written once as plain Rust over 16-lane arrays, then compiled three times
//! (AVX-512, AVX2, baseline) and picked by [`crate::isa`]. Rust never contracts or
//! reassociates float operations, so all three give bit-identical results; the fixed lane
//! order makes the reductions identical too.

#[cfg(target_arch = "x86_64")]
use crate::dispatch::Isa;

const LANES: usize = 16;

/// Defines a public function that runs `$generic` compiled for the best ISA available.
macro_rules! multiversion {
    ($(#[$meta:meta])* pub fn $name:ident($($arg:ident : $ty:ty),*) $(-> $ret:ty)? => $generic:ident;) => {
        $(#[$meta])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn narrow($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                match crate::isa() {
                    // SAFETY: `isa()` returns Avx512Vnni only when avx512f/bw/vl were detected.
                    Isa::Avx512Vnni => return unsafe { wide($($arg),*) },
                    // SAFETY: `isa()` returns these only when avx2 and fma were detected.
                    Isa::Avx2 | Isa::AvxVnni => return unsafe { narrow($($arg),*) },
                    Isa::Scalar | Isa::Simd128 | Isa::RelaxedSimd => {}
                }
            }
            #[allow(unreachable_code)]
            $generic($($arg),*)
        }
    };
}

multiversion! {
    /// In place: `x = softmax(x)` over the whole slice (numerically stable, max subtracted).
    pub fn softmax_in_place(x: &mut [f32]) => softmax_generic;
}

multiversion! {
    /// In place: `x = x·Φ(x)`, the exact GELU of BERT (`hidden_act: "gelu"`), via erf.
    pub fn gelu_erf_in_place(x: &mut [f32]) => gelu_erf_generic;
}

multiversion! {
    /// In place: the tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`).
    pub fn gelu_tanh_in_place(x: &mut [f32]) => gelu_tanh_generic;
}

multiversion! {
    /// In place: `x = max(x, 0)`.
    pub fn relu_in_place(x: &mut [f32]) => relu_generic;
}

multiversion! {
    /// In place over one row: `x = (x - mean) / sqrt(var + eps) · gamma + beta`.
    pub fn layer_norm_in_place(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32)
        => layer_norm_generic;
}

multiversion! {
    /// In place: `x = x + y` element-wise (`y` as long as `x`).
    pub fn add_in_place(x: &mut [f32], y: &[f32]) => add_generic;
}

multiversion! {
    /// Quantizes `x` to u8 with the row's own affine parameters (range widened to include 0,
    /// mapped onto 0..=255, rounding half to even); writes `out` and returns `(scale, zero)`.
    pub fn quantize_row_u8(x: &[f32], out: &mut [u8]) -> (f32, i32) => quantize_row_generic;
}

multiversion! {
    /// Softmax in 8 bits for INT8 attention: `out[j] = round(255·e[j])` with
    /// `e[j] = exp_coarse(x[j] - max)` (left in `x`); returns the row's dequantization scale
    /// `(1/Σe)/255`, so `p[j] ≈ out[j]·scale` (the largest probability maps to 255).
    pub fn softmax_u8_row(x: &mut [f32], out: &mut [u8]) -> f32 => softmax_u8_generic;
}

multiversion! {
    /// `Σ a[i]·b[i]` in one fixed order (16 interleaved partial sums, then a fixed tree; no
    /// fused multiply-add), so every ISA and target returns the same bits.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 => dot_generic;
}

multiversion! {
    /// Quantizes `x` to u8 with given affine parameters (static, calibrated ranges): values
    /// outside the range saturate at 0 or 255.
    pub fn quantize_row_u8_fixed(x: &[f32], out: &mut [u8], scale: f32, zero: i32) => quantize_fixed_generic;
}

/// The affine u8 parameters `(scale, zero)` of a range [lo, hi] (lo ≤ 0 ≤ hi).
#[inline(always)]
pub fn u8_params(lo: f32, hi: f32) -> (f32, i32) {
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zero = round_half_even((-lo / scale).clamp(0.0, 255.0)) as i32;
    (scale, zero)
}

/// `v` quantized with `(scale, zero)`: the one formula every kernel and test uses.
#[inline(always)]
pub fn quantize_u8(v: f32, inv_scale: f32, zero: f32) -> u8 {
    // For t in [0, 255], adding 1.5·2^23 leaves round-half-even(t) in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let t = (v * inv_scale + zero).clamp(0.0, 255.0);
    ((t + ROUND).to_bits() & 0xff) as u8
}

#[inline(always)]
fn round_half_even(t: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0;
    (t + ROUND) - ROUND
}

#[inline(always)]
fn quantize_row_generic(x: &[f32], out: &mut [u8]) -> (f32, i32) {
    assert_eq!(x.len(), out.len(), "quantize_row_u8: lengths differ");
    let (lo, hi) = (smaller(lane_min(x), 0.0), larger(lane_max(x), 0.0));
    let (scale, zero) = u8_params(lo, hi);
    let (inv, z) = (1.0 / scale, zero as f32);
    for (o, v) in out.iter_mut().zip(x) {
        *o = quantize_u8(*v, inv, z);
    }
    (scale, zero)
}

#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: lengths differ");
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[i] += x * y;
    }
    reduce(acc, |p, q| p + q)
}

#[inline(always)]
fn quantize_fixed_generic(x: &[f32], out: &mut [u8], scale: f32, zero: i32) {
    assert_eq!(x.len(), out.len(), "quantize_row_u8_fixed: lengths differ");
    let (inv, z) = (1.0 / scale, zero as f32);
    for (o, v) in out.iter_mut().zip(x) {
        *o = quantize_u8(*v, inv, z);
    }
}

/// One row segment of an INT8 GEMM's output from its exact accumulators:
/// `out = (accumulate ? out : 0) + ((acc - zero·Σw) as f32)·(row_scale·col_scale) + bias`,
/// the same operations in the same order on every ISA (inline it into a vector-ISA caller).
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // five arrays, one index
pub(crate) fn dequantize_row_generic(
    out: &mut [f32],
    acc: &[i32],
    zero: i32,
    row_scale: f32,
    col_sums: &[i32],
    col_scale: &[f32],
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    let n = out.len();
    assert!(
        acc.len() >= n && col_sums.len() >= n && col_scale.len() >= n && bias.is_none_or(|b| b.len() >= n),
        "dequantize_row: short inputs"
    );
    let (acc, col_sums, col_scale) = (&acc[..n], &col_sums[..n], &col_scale[..n]);
    let value = |j: usize| ((acc[j] - zero * col_sums[j]) as f32) * (row_scale * col_scale[j]);
    match (bias.map(|b| &b[..n]), accumulate) {
        (Some(bias), true) => {
            for j in 0..n {
                out[j] += value(j) + bias[j];
            }
        }
        (Some(bias), false) => {
            for j in 0..n {
                out[j] = value(j) + bias[j];
            }
        }
        (None, true) => {
            for j in 0..n {
                out[j] += value(j);
            }
        }
        (None, false) => {
            for j in 0..n {
                out[j] = value(j);
            }
        }
    }
}

/// `e^x` to within ~2 ulp for x in [-87, 88] (clamped outside), branch-free so it vectorises.
/// Range reduction x = n·ln2 + r, |r| ≤ ln2/2, then the degree-7 Taylor polynomial of e^r.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln2 split so that n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding then subtracting 1.5·2^23 rounds to the nearest integer for |t| < 2^22.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    // t = ROUND + n exactly, so t's bit pattern is ROUND's plus the integer n: integer-only
    // arithmetic from here (a float-to-int cast would stop the loop from vectorising).
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits());
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // n is in [-126, 127] after the clamp: 2^n from its biased exponent bits.
    let scale = f32::from_bits(n_int.wrapping_add(127) << 23);
    p * scale
}

/// `x·log2(e) = n + f` for x ≤ 0, with n the nearest integer clamped to [-126, 0] and
/// |f| ≤ 1/2: returns `(f, 2^n)` (x below -87 gives `(0, 2^-126)`), integer-only past the
/// rounding so that it vectorises on every target.
#[inline(always)]
fn exp2_split(x: f32) -> (f32, f32) {
    const ROUND: f32 = 12_582_912.0;
    let t = (x * std::f32::consts::LOG2_E).clamp(-126.0, 0.0);
    let shifted = t + ROUND;
    let f = t - (shifted - ROUND);
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    (f, f32::from_bits(n_int.wrapping_add(127) << 23))
}

/// Taylor coefficients of `2^f = Σ (f·ln2)^k / k!`.
const EXP2_C1: f32 = std::f32::consts::LN_2;
const EXP2_C2: f32 = 0.240_226_5;
const EXP2_C3: f32 = 0.055_504_11;
const EXP2_C4: f32 = 0.009_618_129;
const EXP2_C5: f32 = 0.001_333_355_8;

/// `e^x` for x ≤ 0 within ~5e-5 relative (x below -87 gives 2^-126): enough for 8-bit
/// probabilities, at about half the operations of [`exp_approx`]. `2^t = 2^n·2^f` with
/// `t = x·log2(e)`, n the nearest integer, and the degree-4 Taylor polynomial of `2^f`.
#[inline(always)]
pub fn exp_coarse(x: f32) -> f32 {
    let (f, scale) = exp2_split(x);
    let p = 1.0 + f * (EXP2_C1 + f * (EXP2_C2 + f * (EXP2_C3 + f * EXP2_C4)));
    p * scale
}

/// [`exp_coarse`] with the degree-5 polynomial: within 4e-6 relative for x ≥ -12 (under 0.15 of a
/// unit of int16 attention's `1/32767` probabilities; below, they round to 0) and 6e-6 down to
/// -87 (`x·log2(e)` rounds), at ~2/3 the operations of [`exp_approx`].
#[inline(always)]
pub fn exp_fine(x: f32) -> f32 {
    let (f, scale) = exp2_split(x);
    let p = 1.0 + f * (EXP2_C1 + f * (EXP2_C2 + f * (EXP2_C3 + f * (EXP2_C4 + f * EXP2_C5))));
    p * scale
}

/// `erfc(z)` for z ≥ 0, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
#[inline(always)]
fn erfc_nonneg(z: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_8;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let t = 1.0 / (1.0 + P * z);
    let poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
    poly * exp_approx(-z * z)
}

#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    // Φ(x) = erfc(-x/√2)/2; use erfc on |x| so that negative inputs keep full relative precision.
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let q = erfc_nonneg(z);
    let two_phi = if x >= 0.0 { 2.0 - q } else { q };
    0.5 * x * two_phi
}

#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    // 0.5·x·(1 + tanh(u)) = x / (1 + e^{-2u}), u = √(2/π)·(x + 0.044715·x³).
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    x / (1.0 + exp_approx(-2.0 * u))
}

#[inline(always)]
fn reduce(acc: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES;
    let mut acc = acc;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] = op(acc[i], acc[i + width]);
        }
    }
    acc[0]
}

#[inline(always)]
pub(crate) fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let mut s = reduce(acc, |a, b| a + b);
    for v in rest {
        s += v;
    }
    s
}

/// The larger of two floats as one compare-and-select (`a` on ties and NaN): a single
/// instruction on x86 and wasm alike, where `f32::max`'s NaN rule costs a libm call on wasm.
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// The smaller of two floats, as [`larger`].
#[inline(always)]
fn smaller(a: f32, b: f32) -> f32 {
    if b < a {
        b
    } else {
        a
    }
}

#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = larger(acc[i], c[i]);
        }
    }
    let mut m = reduce(acc, larger);
    for v in rest {
        m = larger(m, *v);
    }
    m
}

#[inline(always)]
fn lane_min(x: &[f32]) -> f32 {
    let mut acc = [f32::INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = smaller(acc[i], c[i]);
        }
    }
    let mut m = reduce(acc, smaller);
    for v in rest {
        m = smaller(m, *v);
    }
    m
}

/// Rounds to the nearest integer, ties to even, for |t| < 2²², as an i16 (wrapping outside
/// its range): the bits of `t + 1.5·2²³` minus those of `1.5·2²³`, integer-only so that it
/// vectorises on every target.
#[inline(always)]
pub(crate) fn round_to_i16(t: f32) -> i16 {
    const ROUND: f32 = 12_582_912.0;
    (t + ROUND).to_bits().wrapping_sub(ROUND.to_bits()) as i32 as i16
}

/// Softmax in fixed point for int16 attention: `out[j] = round_to_i16((e[j]·(1/Σe))·one)`
/// with `e[j] = exp_fine(x[j] - max)` left in `x` and `Σe` in [`lane_sum`]'s order: the
/// operations of [`softmax_in_place`] and rounding, with [`exp_fine`] for its exp, in two
/// passes (inline it into a vector-ISA caller).
#[inline(always)]
pub(crate) fn softmax_fixed_point_generic(x: &mut [f32], out: &mut [i16], one: f32) {
    if x.is_empty() {
        return;
    }
    let max = lane_max(x);
    let sum = exp_shifted_sum(x, max, exp_fine);
    let inv = 1.0 / sum;
    for (o, &e) in out.iter_mut().zip(x.iter()) {
        *o = round_to_i16((e * inv) * one);
    }
}

/// `x[j] = exp(x[j] - max)`, returning `Σ x` in [`lane_sum`]'s order (lane i adds elements i,
/// i+16, ...), in one pass.
#[inline(always)]
fn exp_shifted_sum(x: &mut [f32], max: f32, exp: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in chunks.by_ref() {
        for i in 0..LANES {
            c[i] = exp(c[i] - max);
            acc[i] += c[i];
        }
    }
    let mut sum = reduce(acc, |a, b| a + b);
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    sum
}

#[inline(always)]
fn softmax_u8_generic(x: &mut [f32], out: &mut [u8]) -> f32 {
    assert_eq!(x.len(), out.len(), "softmax_u8_row: lengths differ");
    if x.is_empty() {
        return 1.0;
    }
    let max = lane_max(x);
    let sum = exp_shifted_sum(x, max, exp_coarse);
    for (o, &e) in out.iter_mut().zip(x.iter()) {
        *o = quantize_u8(e, 255.0, 0.0);
    }
    (1.0 / sum) / 255.0
}

#[inline(always)]
fn softmax_generic(x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let max = lane_max(x);
    for v in x.iter_mut() {
        *v = exp_approx(*v - max);
    }
    let inv = 1.0 / lane_sum(x);
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[inline(always)]
fn gelu_erf_generic(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_erf(*v);
    }
}

#[inline(always)]
fn gelu_tanh_generic(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_tanh(*v);
    }
}

#[inline(always)]
fn relu_generic(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = v.max(0.0);
    }
}

#[inline(always)]
fn add_generic(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "add_in_place: lengths differ");
    for (a, b) in x.iter_mut().zip(y) {
        *a += *b;
    }
}

#[inline(always)]
fn layer_norm_generic(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len();
    assert!(
        gamma.len() == n && beta.len() == n,
        "layer_norm_in_place: parameter lengths differ from the row"
    );
    if n == 0 {
        return;
    }
    let mean = lane_sum(x) / n as f32;
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let mut ss = reduce(acc, |a, b| a + b);
    for v in rest {
        let d = v - mean;
        ss += d * d;
    }
    let inv_std = 1.0 / (ss / n as f32 + eps).sqrt();
    for ((v, g), b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv_std * *g + *b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn erf64(x: f64) -> f64 {
        libm::erf(x)
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp_approx(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert!(exp_approx(-1e4) < 1e-37);
        assert!(exp_approx(f32::NEG_INFINITY) >= 0.0);
    }

    #[test]
    fn gelu_erf_matches_reference() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = 0.5 * x as f64 * (1.0 + erf64(x as f64 / std::f64::consts::SQRT_2));
            let got = gelu_erf(x) as f64;
            assert!((got - want).abs() < 2e-6, "gelu({x}) = {got}, want {want}");
            x += 0.00731;
        }
    }

    #[test]
    fn gelu_tanh_matches_reference() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let xf = x as f64;
            let u = (2.0 / std::f64::consts::PI).sqrt() * (xf + 0.044715 * xf * xf * xf);
            let want = 0.5 * xf * (1.0 + u.tanh());
            let got = gelu_tanh(x) as f64;
            assert!((got - want).abs() < 2e-6, "gelu_tanh({x}) = {got}, want {want}");
            x += 0.00731;
        }
    }

    fn softmax_ref(x: &[f32]) -> Vec<f64> {
        let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let e: Vec<f64> = x.iter().map(|v| (*v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    fn layer_norm_ref(x: &[f32], g: &[f32], b: &[f32], eps: f32) -> Vec<f64> {
        let y: Vec<f64> = x.iter().map(|a| *a as f64).collect();
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps as f64).sqrt();
        y.iter()
            .zip(g.iter().zip(b))
            .map(|(v, (g, b))| (v - mean) * inv * *g as f64 + *b as f64)
            .collect()
    }

    proptest! {
        #[test]
        fn softmax_matches_reference(x in proptest::collection::vec(-30.0f32..30.0, 1..300)) {
            let want = softmax_ref(&x);
            let mut got = x.clone();
            softmax_in_place(&mut got);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
            }
        }

        #[test]
        fn layer_norm_matches_reference(rows in proptest::collection::vec(-8.0f32..8.0, 1..800), eps in 1e-12f32..1e-3) {
            let n = rows.len();
            let g: Vec<f32> = (0..n).map(|i| 1.0 + (i as f32 * 0.11).cos()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.05).sin() * 0.1).collect();
            let want = layer_norm_ref(&rows, &g, &b, eps);
            let mut got = rows.clone();
            layer_norm_in_place(&mut got, &g, &b, eps);
            for (x, w) in got.iter().zip(&want) {
                prop_assert!((*x as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{x} vs {w}");
            }
        }

        /// The dispatched (SIMD) build and the plain generic build agree bit for bit.
        #[test]
        fn dispatched_equals_generic(x in proptest::collection::vec(-20.0f32..20.0, 0..200)) {
            let mut a = x.clone();
            let mut b = x.clone();
            gelu_erf_in_place(&mut a);
            gelu_erf_generic(&mut b);
            prop_assert_eq!(&a, &b);
            let mut a = x.clone();
            let mut b = x.clone();
            softmax_in_place(&mut a);
            softmax_generic(&mut b);
            prop_assert_eq!(&a, &b);
            let (mut qa, mut qb) = (vec![0u8; x.len()], vec![0u8; x.len()]);
            prop_assert_eq!(quantize_row_u8(&x, &mut qa), quantize_row_generic(&x, &mut qb));
            prop_assert_eq!(qa, qb);
            let mut a = x.clone();
            let mut b = x.clone();
            gelu_tanh_in_place(&mut a);
            gelu_tanh_generic(&mut b);
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn dot_matches_naive_and_every_isa_agrees() {
        for n in [0usize, 1, 15, 16, 17, 384, 771] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let fast = dot(&a, &b);
            assert!((fast as f64 - naive).abs() < 1e-4, "{n}: {fast} vs {naive}");
            assert_eq!(fast.to_bits(), dot_generic(&a, &b).to_bits());
        }
    }

    #[test]
    fn fixed_point_softmax_is_softmax_with_exp_fine_then_rounding() {
        for (len, seed) in [(1, 1), (15, 2), (16, 3), (17, 4), (384, 5), (383, 6)] {
            let x: Vec<f32> = crate::test_util::fill(len, seed)
                .iter()
                .map(|v| v * 12.0)
                .collect();
            let max = x.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f32> = x.iter().map(|&v| exp_fine(v - max)).collect();
            let inv = 1.0 / lane_sum(&e);
            let want: Vec<i16> = e.iter().map(|&v| round_to_i16((v * inv) * 32767.0)).collect();
            let (mut left, mut got) = (x.clone(), vec![0i16; len]);
            softmax_fixed_point_generic(&mut left, &mut got, 32767.0);
            assert_eq!(got, want, "len {len}");
            assert!(left.iter().zip(&e).all(|(a, b)| a.to_bits() == b.to_bits()));
            // Rounded to within half a unit of the exact softmax, plus exp_fine's error.
            let sum: f64 = x.iter().map(|&v| (v as f64 - max as f64).exp()).sum();
            for (&q, &v) in got.iter().zip(&x) {
                let exact = (v as f64 - max as f64).exp() / sum * 32767.0;
                assert!((q as f64 - exact).abs() <= 0.51, "len {len}: {q} vs {exact}");
            }
        }
    }

    #[test]
    fn exp_fine_is_close_to_exp() {
        // Relative error near 0 (where softmax's probabilities live) and down to -87.
        let (mut near, mut far) = (0.0f64, 0.0f64);
        for i in 0..=200_000 {
            let x = -(i as f32) * 0.000_435;
            let want = (x as f64).exp();
            let error = (exp_fine(x) as f64 - want).abs() / want;
            if x >= -12.0 {
                near = near.max(error);
            }
            far = far.max(error);
        }
        assert!(
            near < 4e-6 && far < 6e-6,
            "relative error {near} (x >= -12), {far}"
        );
        assert_eq!(exp_fine(0.0), 1.0);
        assert_eq!(exp_fine(-1000.0), f32::MIN_POSITIVE);
    }

    #[test]
    fn exp_coarse_is_close_to_exp() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -(i as f32) * 0.000_435;
            let want = (x as f64).exp();
            worst = worst.max((exp_coarse(x) as f64 - want).abs() / want);
        }
        assert!(worst < 6e-5, "relative error {worst}");
        assert_eq!(exp_coarse(0.0), 1.0);
        assert_eq!(exp_coarse(-1000.0), f32::MIN_POSITIVE);
    }

    #[test]
    fn softmax_u8_is_8_bit_softmax() {
        for (len, seed) in [(1, 1), (15, 2), (16, 3), (17, 4), (384, 5), (383, 6), (0, 7)] {
            let x: Vec<f32> = crate::test_util::fill(len, seed)
                .iter()
                .map(|v| v * 12.0)
                .collect();
            let (mut e, mut q) = (x.clone(), vec![0u8; len]);
            let scale = softmax_u8_row(&mut e, &mut q);
            assert_eq!(
                softmax_u8_generic(&mut x.clone(), &mut vec![0u8; len]).to_bits(),
                scale.to_bits()
            );
            let max = x.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
            let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
            for (j, &v) in x.iter().enumerate() {
                let exact = (v as f64 - max).exp();
                assert!(
                    (q[j] as f64 - 255.0 * exact).abs() <= 0.52,
                    "len {len} [{j}]: {} vs {}",
                    q[j],
                    255.0 * exact
                );
                assert!((e[j] as f64 - exact).abs() <= 6e-5 * exact);
                assert!((q[j] as f64 * scale as f64 - exact / sum).abs() <= 0.52 / 255.0 / sum + 1e-5);
            }
            if len > 0 {
                assert_eq!(q.iter().copied().max(), Some(255));
                assert!((scale as f64 * 255.0 * sum - 1.0).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn relu_and_add() {
        let mut x = vec![-1.0, 0.0, 2.5];
        relu_in_place(&mut x);
        assert_eq!(x, vec![0.0, 0.0, 2.5]);
        add_in_place(&mut x, &[1.0, 1.0, 1.0]);
        assert_eq!(x, vec![1.0, 1.0, 3.5]);
    }
}
