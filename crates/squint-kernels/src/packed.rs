//! FP32 GEMM against a pre-packed right-hand matrix (the weights of a linear layer):
//! `C (+)= A · B` with `A` row-major activations and `B` packed once at load time into
//! 64-byte-aligned panels of [`NR`] columns, each panel stored k-major.
//!
//! Blocking: K in blocks of [`KC`], columns in chunks of [`NC`] per thread (a B block stays in
//! L2), rows in micro-tiles of [`MR`] packed k-major (one pointer, constant offsets). The
//! AVX-512 micro-kernel keeps an MR×64 tile of C in 24 zmm registers: per k step 4 loads of B
//! and 6 broadcasts of A feed 24 FMAs. (14×32 tiles measured ~10% slower here: more loads.)

use crate::dispatch::Isa;
use crate::parallel::Parallelism;
use crate::parallel::{run_parallel, OutPtr};

/// Columns per packed panel (four zmm registers).
pub const NR: usize = 64;
/// Rows per micro-tile.
pub const MR: usize = 6;
/// Depth of one K block.
pub const KC: usize = 384;
/// Columns per L2 block.
pub const NC: usize = 256;

/// One cache line of packed floats; the alignment makes every panel load line-aligned.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A `k × n` matrix packed into panels of [`NR`] columns (zero-padded at the right edge).
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    lines: Vec<Line>,
}

impl PackedMatrix {
    /// Packs `Wᵀ` where `w` is `[n, k]` row-major: PyTorch's `Linear.weight` layout.
    pub fn from_transposed(w: &[f32], n: usize, k: usize) -> PackedMatrix {
        assert_eq!(
            w.len(),
            n * k,
            "PackedMatrix::from_transposed: {n}x{k} needs {} values",
            n * k
        );
        let panels = n.div_ceil(NR);
        let mut lines = vec![Line([0.0; 16]); panels * k * (NR / 16)];
        for col in 0..n {
            let (p, j) = (col / NR, col % NR);
            let row = &w[col * k..(col + 1) * k];
            for (kk, v) in row.iter().enumerate() {
                let flat = (p * k + kk) * NR + j;
                lines[flat / 16].0[flat % 16] = *v;
            }
        }
        PackedMatrix { k, n, lines }
    }

    /// Packs `b`, `[k, n]` row-major.
    pub fn from_row_major(b: &[f32], k: usize, n: usize) -> PackedMatrix {
        assert_eq!(
            b.len(),
            k * n,
            "PackedMatrix::from_row_major: {k}x{n} needs {} values",
            k * n
        );
        let mut t = vec![0.0; k * n];
        for kk in 0..k {
            for col in 0..n {
                t[col * k + kk] = b[kk * n + col];
            }
        }
        Self::from_transposed(&t, n, k)
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }

    fn panel(&self, p: usize) -> &[f32] {
        let lines = &self.lines[p * self.k * (NR / 16)..(p + 1) * self.k * (NR / 16)];
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]`, so a slice of lines is a slice of
        // 16·len contiguous, initialised f32 values with the same lifetime.
        unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<f32>(), lines.len() * 16) }
    }
}

/// Why a packed multiplication was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("packed matmul: A is {m}x{k_a} (lda {lda}, {a_len} values), B is {k_b}x{n}, C needs {m}x{n} (ldc {ldc}, {c_len} values)")]
pub struct PackedShapeError {
    m: usize,
    k_a: usize,
    lda: usize,
    a_len: usize,
    k_b: usize,
    n: usize,
    ldc: usize,
    c_len: usize,
}

/// What happens to a tile of C after the products: fused here so that C is written once.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Add to C's previous contents instead of overwriting them (residual connections).
    pub accumulate: bool,
    /// Add this per-column bias (`n` values).
    pub bias: Option<&'a [f32]>,
    /// Apply this in-place activation to every finished row segment (while it is in cache).
    pub activation: Option<fn(&mut [f32])>,
}

/// `C = act((accumulate ? C : 0) + A·B + bias)` for `m` rows; `a` is `[m, k]` with row stride
/// `lda`, `c` is `[m, n]` with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed(
    c: &mut [f32],
    ldc: usize,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedMatrix,
    epilogue: Epilogue<'_>,
    parallelism: Parallelism,
) -> Result<(), PackedShapeError> {
    let (k, n) = (b.k, b.n);
    let fits = |len: usize, rows: usize, cols: usize, ld: usize| {
        rows == 0 || (ld >= cols && (rows - 1) * ld + cols <= len)
    };
    let bias_ok = epilogue.bias.is_none_or(|bias| bias.len() == n);
    if !fits(a.len(), m, k, lda) || !fits(c.len(), m, n, ldc) || !bias_ok {
        return Err(PackedShapeError {
            m,
            k_a: k,
            lda,
            a_len: a.len(),
            k_b: k,
            n,
            ldc,
            c_len: c.len(),
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    let panels = n.div_ceil(NR);
    let threads = match parallelism {
        Parallelism::Threads(t) if t > 1 => t.min(panels),
        _ => 1,
    };
    PACKED_A.with(|cell| {
        // A work-stealing thread pool may re-enter here while the buffer is in use: then a
        // fresh buffer is used instead of panicking.
        let mut fresh = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match borrowed.as_mut() {
            Ok(b) => &mut **b,
            Err(_) => &mut fresh,
        };
        // A is packed once, before the threads split the columns, and shared by all of them.
        pack_a(buf, a, lda, m, k);
        let packed_a: &[f32] = buf;
        let out = OutPtr(c.as_mut_ptr());
        let job = |t: usize| {
            let (p0, p1) = (panels * t / threads, panels * (t + 1) / threads);
            // SAFETY: thread t writes only columns [p0·NR, min(p1·NR, n)) of C's m rows, which
            // were bounds-checked above; column ranges of different threads are disjoint.
            unsafe { run_columns(out, ldc, packed_a, m, b, p0..p1, epilogue) };
        };
        if threads == 1 {
            job(0);
        } else {
            run_parallel(threads, &job);
        }
    });
    Ok(())
}

/// Computes the columns of panels `panels` of C from A packed by [`pack_a`].
///
/// # Safety
/// `c` must point to a buffer holding `m` rows of stride `ldc` with at least `b.n` columns,
/// and no other thread may access the columns of these panels meanwhile.
unsafe fn run_columns(
    c: OutPtr<f32>,
    ldc: usize,
    packed_a: &[f32],
    m: usize,
    b: &PackedMatrix,
    panels: std::ops::Range<usize>,
    epilogue: Epilogue<'_>,
) {
    let k = b.k;
    let isa = crate::isa();
    let tiles = m.div_ceil(MR);
    for k0 in (0..k.max(1)).step_by(KC) {
        let kc = KC.min(k - k0);
        let load_c = epilogue.accumulate || k0 > 0;
        let last_block = k0 + kc >= k;
        let block = &packed_a[tiles * MR * k0..tiles * MR * (k0 + kc)];
        for chunk in (panels.start..panels.end).step_by(NC / NR) {
            let chunk_end = (chunk + NC / NR).min(panels.end);
            for t in 0..tiles {
                let (r0, rows) = (t * MR, MR.min(m - t * MR));
                let a_tile = &block[t * kc * MR..(t + 1) * kc * MR];
                for p in chunk..chunk_end {
                    let cols = NR.min(b.n - p * NR);
                    let panel = &b.panel(p)[k0 * NR..(k0 + kc) * NR];
                    let bias = match epilogue.bias {
                        Some(bias) if k0 == 0 => bias[p * NR..p * NR + cols].as_ptr(),
                        _ => std::ptr::null(),
                    };
                    // SAFETY: rows r0..r0+rows and columns p·NR..p·NR+cols are inside C
                    // (caller's contract); a_tile holds kc·MR packed values; bias, when not
                    // null, points at `cols` values.
                    unsafe {
                        let tile = Tile {
                            c: c.0.add(r0 * ldc + p * NR),
                            ldc,
                            cols,
                            load_c,
                            bias,
                        };
                        micro_tile(isa, rows, kc, a_tile, panel, tile);
                        if let (true, Some(activation)) = (last_block, epilogue.activation) {
                            for r in 0..rows {
                                activation(std::slice::from_raw_parts_mut(tile.c.add(r * ldc), cols));
                            }
                        }
                    }
                }
            }
        }
        if k == 0 {
            break;
        }
    }
}

std::thread_local! {
    /// Packed A, reused across calls so the hot loop does not allocate.
    static PACKED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Packs A's `m` rows × `k` columns for the micro-kernel: K blocks of [`KC`] one after the
/// other; inside a block, tiles of MR rows, k-major within a tile (`tile[p·MR + r]`); the last
/// tile zero-padded. Block `k0` starts at `tiles·MR·k0`.
fn pack_a(buf: &mut Vec<f32>, a: &[f32], lda: usize, m: usize, k: usize) {
    let tiles = m.div_ceil(MR);
    buf.clear();
    buf.resize(tiles * MR * k, 0.0);
    for k0 in (0..k).step_by(KC) {
        let kc = KC.min(k - k0);
        let block = &mut buf[tiles * MR * k0..tiles * MR * (k0 + kc)];
        for (t, tile) in block.chunks_exact_mut(kc * MR).enumerate() {
            let count = MR.min(m - t * MR);
            let mut rows: [&[f32]; MR] = [&[]; MR];
            for (r, row) in rows.iter_mut().enumerate().take(count) {
                let start = (t * MR + r) * lda + k0;
                *row = &a[start..start + kc];
            }
            // Sequential writes, MR read streams.
            for (p, dst) in tile.chunks_exact_mut(MR).enumerate() {
                for (r, src) in rows.iter().enumerate().take(count) {
                    dst[r] = src[p];
                }
            }
        }
    }
}

/// Where a micro-kernel writes: C's tile, its row stride, its valid columns, whether to add
/// C's previous contents, and the bias of these columns (null: none).
#[derive(Clone, Copy, Debug)]
struct Tile {
    c: *mut f32,
    ldc: usize,
    cols: usize,
    load_c: bool,
    bias: *const f32,
}

/// Dispatches one micro-tile to the best kernel and the right row count.
///
/// # Safety
/// `c` points at a tile of `rows` rows (stride `ldc`) and `cols` valid columns.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn micro_tile(isa: Isa, rows: usize, kc: usize, a: &[f32], panel: &[f32], tile: Tile) {
    macro_rules! by_rows {
        ($kernel:ident) => {
            match rows {
                6 => $kernel::<6>(kc, a, panel, tile),
                5 => $kernel::<5>(kc, a, panel, tile),
                4 => $kernel::<4>(kc, a, panel, tile),
                3 => $kernel::<3>(kc, a, panel, tile),
                2 => $kernel::<2>(kc, a, panel, tile),
                _ => $kernel::<1>(kc, a, panel, tile),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni {
        // SAFETY: Avx512Vnni is only chosen when avx512f was detected; the tile contract is
        // the caller's.
        unsafe { by_rows!(micro_avx512) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2 | Isa::AvxVnni) {
        // SAFETY: Avx2 and AvxVnni are only chosen when avx2 and fma were detected; the tile
        // contract is the caller's.
        unsafe { by_rows!(micro_avx2) };
        return;
    }
    let _ = isa;
    // SAFETY: the tile contract is the caller's.
    unsafe { by_rows!(micro_generic) };
}

/// Portable micro-kernel: the same tile, plain Rust (auto-vectorised where possible).
///
/// # Safety
/// `c` points at a tile of `R` rows (stride `ldc`) with `cols` valid columns.
#[allow(clippy::too_many_arguments)]
unsafe fn micro_generic<const R: usize>(kc: usize, a: &[f32], panel: &[f32], tile: Tile) {
    let Tile {
        c,
        ldc,
        cols,
        load_c,
        bias,
    } = tile;
    let mut acc = [[0.0f32; NR]; R];
    for p in 0..kc {
        let bp = &panel[p * NR..(p + 1) * NR];
        for (r, row) in acc.iter_mut().enumerate() {
            let av = a[p * MR + r];
            for j in 0..NR {
                row[j] += av * bp[j];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row r < R and columns < cols are inside the tile.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), cols) };
        for (j, (o, v)) in out.iter_mut().zip(row).enumerate() {
            let mut x = if load_c { *o + v } else { *v };
            if !bias.is_null() {
                // SAFETY: a non-null bias points at `cols` values and j < cols.
                x += unsafe { *bias.add(j) };
            }
            *o = x;
        }
    }
}

/// AVX-512 micro-kernel: an R×64 tile of C in 4R zmm accumulators.
///
/// # Safety
/// Requires avx512f; `c` points at a tile of `R` rows (stride `ldc`) with `cols` valid columns;
/// `a` is a packed A tile of `kc·MR` values; `panel` holds `kc·NR` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // constant-bound index loops unroll into registers
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx512<const R: usize>(kc: usize, a: &[f32], panel: &[f32], tile: Tile) {
    use std::arch::x86_64::*;
    let Tile {
        c,
        ldc,
        cols,
        load_c,
        bias,
    } = tile;
    debug_assert!(panel.len() >= kc * NR && a.len() >= kc * MR);
    let mut acc = [[_mm512_setzero_ps(); 4]; R];
    let ap = a.as_ptr();
    let bp = panel.as_ptr();
    for p in 0..kc {
        // SAFETY: p < kc, so the NR floats at bp + NR·p are inside `panel`, and a[p·MR + r]
        // is inside the packed tile for r < R ≤ MR (asserted above, guaranteed by the caller).
        unsafe {
            let b = [
                _mm512_loadu_ps(bp.add(p * NR)),
                _mm512_loadu_ps(bp.add(p * NR + 16)),
                _mm512_loadu_ps(bp.add(p * NR + 32)),
                _mm512_loadu_ps(bp.add(p * NR + 48)),
            ];
            for r in 0..R {
                let av = _mm512_set1_ps(*ap.add(p * MR + r));
                for j in 0..4 {
                    acc[r][j] = _mm512_fmadd_ps(av, b[j], acc[r][j]);
                }
            }
        }
    }
    let masks: [__mmask16; 4] = std::array::from_fn(|j| {
        let left = cols.saturating_sub(16 * j).min(16);
        if left == 16 {
            0xffff
        } else {
            ((1u32 << left) - 1) as u16
        }
    });
    // SAFETY: a non-null bias points at `cols` values; masked loads read only those.
    let bias_v: [__m512; 4] = std::array::from_fn(|j| {
        if bias.is_null() {
            _mm512_setzero_ps()
        } else {
            unsafe { _mm512_maskz_loadu_ps(masks[j], bias.add(16 * j)) }
        }
    });
    for r in 0..R {
        // SAFETY: masked loads/stores touch only columns < cols of row r < R of the tile.
        unsafe {
            let row = c.add(r * ldc);
            for j in 0..4 {
                let mut x = acc[r][j];
                if load_c {
                    x = _mm512_add_ps(_mm512_maskz_loadu_ps(masks[j], row.add(16 * j)), x);
                }
                if !bias.is_null() {
                    x = _mm512_add_ps(x, bias_v[j]);
                }
                _mm512_mask_storeu_ps(row.add(16 * j), masks[j], x);
            }
        }
    }
}

/// AVX2 + FMA micro-kernel: the R×64 tile as four R×16 quarters in 2R ymm accumulators each,
/// with the AVX-512 kernel's operation order (one FMA per k, then C, then bias), so both
/// return the same bits.
///
/// # Safety
/// Requires avx2 and fma; otherwise as for [`micro_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // constant-bound index loops unroll into registers
unsafe fn micro_avx2<const R: usize>(kc: usize, a: &[f32], panel: &[f32], tile: Tile) {
    use std::arch::x86_64::*;
    debug_assert!(panel.len() >= kc * NR && a.len() >= kc * MR);
    let (ap, bp) = (a.as_ptr(), panel.as_ptr());
    let (c, ldc, cols, load_c, bias) = (tile.c, tile.ldc, tile.cols, tile.load_c, tile.bias);
    for quarter in 0..NR / 16 {
        let c0 = 16 * quarter;
        if c0 >= cols {
            break;
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        for p in 0..kc {
            // SAFETY: p < kc, so the 16 floats at bp + NR·p + c0 are inside `panel`, and
            // a[p·MR + r] is inside the packed tile for r < R ≤ MR (asserted above).
            unsafe {
                let b = [
                    _mm256_loadu_ps(bp.add(p * NR + c0)),
                    _mm256_loadu_ps(bp.add(p * NR + c0 + 8)),
                ];
                for r in 0..R {
                    let av = _mm256_broadcast_ss(&*ap.add(p * MR + r));
                    for j in 0..2 {
                        acc[r][j] = _mm256_fmadd_ps(av, b[j], acc[r][j]);
                    }
                }
            }
        }
        for r in 0..R {
            for j in 0..2 {
                let start = c0 + 8 * j;
                if start >= cols {
                    continue;
                }
                if cols - start >= 8 {
                    // SAFETY: the 8 columns start..start + 8 < cols of row r < R are inside
                    // the tile; a non-null bias points at `cols` values.
                    unsafe {
                        let out = c.add(r * ldc + start);
                        let mut x = acc[r][j];
                        if load_c {
                            x = _mm256_add_ps(_mm256_loadu_ps(out), x);
                        }
                        if !bias.is_null() {
                            x = _mm256_add_ps(x, _mm256_loadu_ps(bias.add(start)));
                        }
                        _mm256_storeu_ps(out, x);
                    }
                    continue;
                }
                let mut lanes = [0.0f32; 8];
                // SAFETY: storing into a local array of 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][j]) };
                let n = cols - start;
                for (q, v) in lanes.iter().enumerate().take(n) {
                    // SAFETY: row r < R and column start + q < cols are inside the tile; a
                    // non-null bias points at `cols` values.
                    unsafe {
                        let out = c.add(r * ldc + start + q);
                        let mut x = if load_c { *out + v } else { *v };
                        if !bias.is_null() {
                            x += *bias.add(start + q);
                        }
                        *out = x;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::fill;
    use proptest::prelude::*;

    fn check(
        m: usize,
        k: usize,
        n: usize,
        acc: bool,
        par: Parallelism,
        lda_pad: usize,
        ldc_pad: usize,
    ) -> Result<(), TestCaseError> {
        let (lda, ldc) = (k + lda_pad, n + ldc_pad);
        let a = fill(m * lda, 1);
        let w = fill(n * k, 2); // [n, k]
        let c0 = fill(m * ldc, 3);
        let mut c = c0.clone();
        let packed = PackedMatrix::from_transposed(&w, n, k);
        let bias = fill(n, 4);
        let epilogue = Epilogue {
            accumulate: acc,
            bias: Some(&bias),
            activation: Some(crate::elementwise::relu_in_place),
        };
        matmul_packed(&mut c, ldc, &a, lda, m, &packed, epilogue, par).unwrap();
        for i in 0..m {
            for j in 0..ldc {
                let got = c[i * ldc + j] as f64;
                if j >= n {
                    prop_assert_eq!(got, c0[i * ldc + j] as f64, "padding column {} touched", j);
                    continue;
                }
                let dot: f64 = (0..k).map(|p| a[i * lda + p] as f64 * w[j * k + p] as f64).sum();
                let want = (if acc { c0[i * ldc + j] as f64 } else { 0.0 } + dot + bias[j] as f64).max(0.0);
                prop_assert!(
                    (got - want).abs() < 1e-4 * (1.0 + (k as f64).sqrt()),
                    "({i},{j}) {got} vs {want}"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn matches_reference(m in 1usize..40, k in 1usize..300, n in 1usize..80, acc: bool, threads in 1usize..4,
                             lda_pad in 0usize..3, ldc_pad in 0usize..3) {
            let par = if threads == 1 { Parallelism::Sequential } else { Parallelism::Threads(threads) };
            check(m, k, n, acc, par, lda_pad, ldc_pad)?;
        }
    }

    #[test]
    fn large_blocks_and_edges() {
        check(29, 600, 290, false, Parallelism::Threads(2), 0, 0).unwrap();
        check(6, 384, 64, true, Parallelism::Sequential, 0, 0).unwrap();
        check(13, 800, 130, true, Parallelism::Threads(3), 1, 2).unwrap();
        check(1, 1, 1, false, Parallelism::Sequential, 0, 0).unwrap();
    }

    /// C of an `m`×`n` product computed tile by tile with `isa`'s micro-kernel (C preloaded
    /// with ones when `load_c`, plus the bias).
    fn micro_product(isa: Isa, m: usize, k: usize, n: usize, a: &[f32], w: &[f32], load_c: bool) -> Vec<f32> {
        let packed = PackedMatrix::from_transposed(w, n, k);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
        let mut c = vec![1.0f32; m * n];
        let mut a_tiles = Vec::new();
        pack_a(&mut a_tiles, a, k, m, k);
        for t in 0..m.div_ceil(MR) {
            let rows = MR.min(m - t * MR);
            for p in 0..n.div_ceil(NR) {
                let cols = NR.min(n - p * NR);
                // SAFETY: the tile (`rows` rows from t·MR, `cols` columns from p·NR) is inside
                // `c`, the packed A tile holds k·MR values and the bias `cols` values.
                unsafe {
                    let tile = Tile {
                        c: c.as_mut_ptr().add(t * MR * n + p * NR),
                        ldc: n,
                        cols,
                        load_c,
                        bias: bias[p * NR..].as_ptr(),
                    };
                    micro_tile(
                        isa,
                        rows,
                        k,
                        &a_tiles[t * k * MR..(t + 1) * k * MR],
                        packed.panel(p),
                        tile,
                    )
                };
            }
        }
        c
    }

    proptest! {
        /// Every micro-kernel this CPU runs (the portable one included) against the definition,
        /// for every row count and ragged column counts; AVX2 and AVX-512 (same FMA order) give
        /// the same bits.
        #[test]
        fn every_micro_kernel_matches_reference(m in 1usize..14, k in 1usize..90, n in 1usize..140, load_c: bool) {
            let (a, w) = (fill(m * k, 7), fill(n * k, 8));
            let mut results = Vec::new();
            for isa in Isa::available() {
                let c = micro_product(isa, m, k, n, &a, &w, load_c);
                for i in 0..m {
                    for j in 0..n {
                        let dot: f32 = (0..k).map(|p| a[i * k + p] * w[j * k + p]).sum();
                        let want = dot + if load_c { 1.0 } else { 0.0 } + (j as f32 * 0.25 - 3.0);
                        prop_assert!((c[i * n + j] - want).abs() < 1e-4, "{:?} at ({}, {}): {} vs {}", isa, i, j, c[i * n + j], want);
                    }
                }
                results.push((isa, c));
            }
            let fma: Vec<_> = results.iter().filter(|(isa, _)| matches!(isa, Isa::Avx2 | Isa::Avx512Vnni)).collect();
            for pair in fma.windows(2) {
                prop_assert!(pair[0].1 == pair[1].1, "{:?} and {:?} differ", pair[0].0, pair[1].0);
            }
        }
    }

    #[test]
    fn rejects_short_buffers() {
        let packed = PackedMatrix::from_row_major(&[1.0; 6], 2, 3);
        let mut c = vec![0.0; 5];
        let plain = Epilogue::default();
        assert!(matmul_packed(
            &mut c,
            3,
            &[1.0; 4],
            2,
            2,
            &packed,
            plain,
            Parallelism::Sequential
        )
        .is_err());
        let mut c = vec![0.0; 6];
        let short_bias = Epilogue {
            bias: Some(&[1.0, 2.0]),
            ..plain
        };
        assert!(matmul_packed(
            &mut c,
            3,
            &[1.0; 4],
            2,
            2,
            &packed,
            short_bias,
            Parallelism::Sequential
        )
        .is_err());
        matmul_packed(
            &mut c,
            3,
            &[1.0; 4],
            2,
            2,
            &packed,
            plain,
            Parallelism::Sequential,
        )
        .unwrap();
        assert_eq!(c, vec![2.0; 6]);
    }
}
