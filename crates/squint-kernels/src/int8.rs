//! INT8 GEMM: `C[i32] = A[u8] · B[s8]`, exact integer accumulation on every ISA, so every
//! kernel returns bit-identical accumulators.
//!
//! `B` (a linear layer's quantized weights) is packed once into panels of [`NR`] columns: for
//! each group of four k, the four bytes of each column are adjacent, which is the operand
//! layout of `vpdpbusd` (four u8·s8 products summed into one i32 lane). `A` (activations) is
//! packed per call into tiles of [`MR`] rows, four k at a time, broadcast as one i32.
//!
//! AVX2 has no exact u8·s8 dot: `vpmaddubsw` saturates pairs at i16. For weights packed as
//! 7-bit (|w| ≤ 64, see [`PackedI8::seven_bit`]) one `vpmaddubsw` is exact (2·255·64 = 32640
//! fits); any other weights are widened to i16 one K block at a time and multiplied with
//! `vpmaddwd` (u8·s8 pair sums fit i32), half the products per instruction but no second step.

use crate::dispatch::{prefetch, Isa};
use crate::elementwise::{
    dequantize_row_generic, quantize_row_u8, quantize_row_u8_fixed, quantize_u8, u8_params,
};
use crate::packed::Epilogue;
use crate::parallel::Parallelism;
use crate::parallel::{for_each_chunk_pair, run_parallel, OutPtr};

/// Columns per packed panel.
pub const NR: usize = 64;
/// Rows per micro-tile.
pub const MR: usize = 6;
/// Groups of four k per K block (k = 384): one panel's block is 24 KiB, so it stays in L1
/// while every row tile of A streams past it.
const KC_GROUPS: usize = 96;
/// Groups per K block when the block is widened to i16 (AVX2, 8-bit weights): 24 KiB again.
const KC_WIDE_GROUPS: usize = 48;

/// One cache line of packed bytes.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Lines viewed as their bytes.
trait LineBytes {
    fn as_flattened_bytes_mut(&mut self) -> &mut [u8];
}

impl LineBytes for [Line] {
    fn as_flattened_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `Line` is `repr(C)` around `[u8; 64]`: a slice of lines is 64·len contiguous
        // initialised bytes, borrowed mutably for the same lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr().cast::<u8>(), self.len() * 64) }
    }
}

/// Signed 8-bit weights `[k, n]` packed for the kernels, with their column sums (for the
/// activation zero point: Σ_k (a - z)·w = Σ_k a·w - z·Σ_k w).
#[derive(Clone, Debug, Default)]
pub struct PackedI8 {
    k: usize,
    n: usize,
    /// k rounded up to a multiple of 4.
    k4: usize,
    lines: Vec<Line>,
    col_sums: Vec<i32>,
    seven_bit: bool,
}

impl PackedI8 {
    /// Packs `Wᵀ` where `w` is `[n, k]` row-major (PyTorch's `Linear.weight` layout).
    pub fn from_transposed(w: &[i8], n: usize, k: usize) -> PackedI8 {
        let mut packed = PackedI8::default();
        packed.repack_transposed(w, n, k);
        packed
    }

    /// Repacks `self` (reusing its buffers) as [`PackedI8::from_transposed`] would: attention's
    /// Kᵀ, packed head after head.
    #[inline(always)]
    pub fn repack_transposed(&mut self, w: &[i8], n: usize, k: usize) {
        assert_eq!(w.len(), n * k, "PackedI8: {n}x{k} needs {} values", n * k);
        self.reset(n, k);
        // Rows of `w` are columns of Wᵀ: a column's k values are contiguous, and each group of
        // four is one 4-byte copy.
        let (full, tail) = (k / 4, k % 4);
        for (col, row) in w.chunks_exact(k.max(1)).take(n).enumerate() {
            let panel = &mut self.lines[(col / NR) * self.k4..][..self.k4];
            let j = col % NR;
            for (g, four) in row.as_chunks::<4>().0.iter().enumerate() {
                let flat = g * NR * 4 + j * 4;
                panel[flat / 64].0[flat % 64..flat % 64 + 4].copy_from_slice(&four.map(|v| v as u8));
            }
            for q in 0..tail {
                let flat = full * NR * 4 + j * 4 + q;
                panel[flat / 64].0[flat % 64] = row[4 * full + q] as u8;
            }
            self.col_sums.push(row.iter().map(|&v| v as i32).sum());
        }
        if k == 0 {
            self.col_sums.resize(n, 0);
        }
        self.seven_bit = w.iter().all(|&v| (-64..=63).contains(&v));
    }

    /// Repacks `self` (reusing its buffers) as `B` where `b` is `[k, n]` row-major: attention's
    /// V, packed head after head.
    #[inline(always)]
    pub fn repack_row_major(&mut self, b: &[i8], k: usize, n: usize) {
        assert_eq!(b.len(), n * k, "PackedI8: {k}x{n} needs {} values", n * k);
        self.reset(n, k);
        self.col_sums.resize(n, 0);
        for row in b.chunks_exact(n.max(1)) {
            for (sum, &v) in self.col_sums.iter_mut().zip(row) {
                *sum += v as i32;
            }
        }
        // Four rows of `b` at a time become one group: column j's four bytes adjacent, 64
        // columns (256 bytes) per panel and group.
        let k4 = self.k4;
        for (g, rows) in b.chunks(4 * n.max(1)).enumerate() {
            let row = |q: usize| rows.get(q * n..(q + 1) * n).unwrap_or(&[]);
            let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
            for p in 0..n.div_ceil(NR) {
                let lines = &mut self.lines[p * k4 + 4 * g..][..4];
                let group = lines.as_flattened_bytes_mut();
                for (jj, four) in group
                    .as_chunks_mut::<4>()
                    .0
                    .iter_mut()
                    .enumerate()
                    .take(NR.min(n - p * NR))
                {
                    let j = p * NR + jj;
                    let at = |r: &[i8]| r.get(j).map_or(0, |&v| v as u8);
                    *four = [at(r0), at(r1), at(r2), at(r3)];
                }
            }
        }
        self.seven_bit = b.iter().all(|&v| (-64..=63).contains(&v));
    }

    /// Sizes `self` for a `[k, n]` matrix, every packed byte zero and no column sums yet.
    fn reset(&mut self, n: usize, k: usize) {
        let k4 = k.div_ceil(4) * 4;
        // Per panel: k4/4 groups × NR columns × 4 bytes = k4·NR bytes = k4 lines.
        self.lines.clear();
        self.lines.resize(n.div_ceil(NR) * k4, Line([0; 64]));
        self.col_sums.clear();
        (self.k, self.n, self.k4) = (k, n, k4);
    }

    pub fn rows(&self) -> usize {
        self.k
    }

    pub fn cols(&self) -> usize {
        self.n
    }

    /// Σ_k w[k, n] for every column.
    pub fn col_sums(&self) -> &[i32] {
        &self.col_sums
    }

    /// Whether every weight lies in [-64, 63], so one `vpmaddubsw` per product is exact on AVX2.
    pub fn seven_bit(&self) -> bool {
        self.seven_bit
    }

    fn panel(&self, p: usize) -> &[u8] {
        let lines = &self.lines[p * self.k4..(p + 1) * self.k4];
        // SAFETY: `Line` is `repr(C)` around `[u8; 64]`: a slice of lines is 64·len
        // contiguous initialised bytes with the same lifetime.
        unsafe { std::slice::from_raw_parts(lines.as_ptr().cast::<u8>(), lines.len() * 64) }
    }
}

/// Why an INT8 multiplication was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("int8 matmul: A is {m}x{k} (lda {lda}, {a_len} bytes), B is {k}x{n}, C needs {m}x{n} (ldc {ldc}, {c_len} values)")]
pub struct Int8ShapeError {
    m: usize,
    k: usize,
    n: usize,
    lda: usize,
    ldc: usize,
    a_len: usize,
    c_len: usize,
}

/// The kernel [`matmul_u8i8`] runs for these weights: this process's ISA (every kernel is
/// exact for any s8 weights; AVX2 picks its 7-bit or widened form per matrix).
pub fn int8_kernel(_b: &PackedI8) -> Isa {
    crate::isa()
}

/// `C = A·B` exactly in i32, for `m` rows; `a` is `[m, k]` u8 with row stride `lda`, `c` is
/// `[m, n]` with row stride `ldc`.
pub fn matmul_u8i8(
    c: &mut [i32],
    ldc: usize,
    a: &[u8],
    lda: usize,
    m: usize,
    b: &PackedI8,
) -> Result<(), Int8ShapeError> {
    matmul_u8i8_with(int8_kernel(b), c, ldc, a, lda, m, b)
}

/// [`matmul_u8i8`] on a chosen kernel (tests and benchmarks); an ISA the CPU cannot run falls
/// back to [`int8_kernel`].
pub fn matmul_u8i8_with(
    isa: Isa,
    c: &mut [i32],
    ldc: usize,
    a: &[u8],
    lda: usize,
    m: usize,
    b: &PackedI8,
) -> Result<(), Int8ShapeError> {
    let (k, n) = (b.k, b.n);
    let fits = |len: usize, cols: usize, ld: usize| m == 0 || (ld >= cols && (m - 1) * ld + cols <= len);
    if !fits(a.len(), k, lda) || !fits(c.len(), n, ldc) {
        return Err(Int8ShapeError {
            m,
            k,
            n,
            lda,
            ldc,
            a_len: a.len(),
            c_len: c.len(),
        });
    }
    let isa = if Isa::available().contains(&isa) {
        isa
    } else {
        int8_kernel(b)
    };
    let mut packed = Vec::new();
    pack_a(&mut packed, a, lda, m, k, b.k4);
    let mut scratch = PanelScratch::default();
    for p in 0..n.div_ceil(NR) {
        let cols = NR.min(n - p * NR);
        panel_product(isa, &packed, m, b, p, &mut scratch);
        let acc = &scratch.acc;
        for row in 0..m {
            c[row * ldc + p * NR..row * ldc + p * NR + cols].copy_from_slice(&acc[row * NR..row * NR + cols]);
        }
    }
    Ok(())
}

/// Affine u8 quantization of one activation row: `x ≈ (q - zero) · scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowQuant {
    pub scale: f32,
    pub zero: i32,
}

impl RowQuant {
    /// The row's range, widened to include 0 (so 0 is exact), mapped onto 0..=255.
    pub fn of(row: &[f32]) -> RowQuant {
        let (lo, hi) = row
            .iter()
            .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let (scale, zero) = u8_params(lo, hi);
        RowQuant { scale, zero }
    }

    /// `v` quantized (the same arithmetic as the kernels' [`quantize_row_u8`]).
    #[inline(always)]
    pub fn quantize(&self, v: f32) -> u8 {
        quantize_u8(v, 1.0 / self.scale, self.zero as f32)
    }
}

/// How activations become u8 on their way into the GEMM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ActQuant {
    /// Each row (token) gets its own range at run time (the `dynamic` recipe).
    PerRow,
    /// One calibrated range for the whole tensor (the `static` recipe); values outside it
    /// saturate.
    PerTensor(RowQuant),
}

/// Quantizes `m` rows of `x` (`[m, k]`, stride `ldx`), per row or with fixed parameters,
/// straight into the packed A layout of [`pack_a`]; tiles are split across threads.
#[allow(clippy::too_many_arguments)]
fn quantize_pack_rows(
    buf: &mut Vec<u8>,
    quant: &mut Vec<RowQuant>,
    x: &[f32],
    ldx: usize,
    m: usize,
    k: usize,
    k4: usize,
    act: ActQuant,
    parallelism: Parallelism,
) {
    let tiles = m.div_ceil(MR);
    buf.clear();
    buf.resize(tiles * MR * k4, 0);
    quant.clear();
    quant.resize(tiles * MR, RowQuant { scale: 1.0, zero: 0 });
    for_each_chunk_pair(buf, MR * k4, quant, MR, parallelism, |t, tile, params| {
        ROW_BYTES.with(|cell| {
            let mut fresh = Vec::new();
            let mut borrowed = cell.try_borrow_mut();
            let row_bytes = match borrowed.as_mut() {
                Ok(b) => &mut **b,
                Err(_) => &mut fresh,
            };
            // k rounded up to k4 with zeros, so every group is a whole 4-byte copy.
            row_bytes.resize(k4, 0);
            row_bytes[k..].fill(0);
            let tile_groups = tile.as_chunks_mut::<4>().0;
            for (r, param) in params.iter_mut().enumerate().take(MR.min(m - t * MR)) {
                let row = t * MR + r;
                let src = &x[row * ldx..row * ldx + k];
                *param = match act {
                    ActQuant::PerRow => {
                        let (scale, zero) = quantize_row_u8(src, &mut row_bytes[..k]);
                        RowQuant { scale, zero }
                    }
                    ActQuant::PerTensor(q) => {
                        quantize_row_u8_fixed(src, &mut row_bytes[..k], q.scale, q.zero);
                        q
                    }
                };
                for (g, four) in row_bytes.as_chunks::<4>().0.iter().enumerate() {
                    tile_groups[g * MR + r] = *four;
                }
            }
        })
    });
}

std::thread_local! {
    /// One quantized row before it is scattered into its tile (per worker thread).
    static ROW_BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

std::thread_local! {
    /// Quantized, packed activations and their row parameters, reused across calls.
    static QUANTIZED_A: std::cell::RefCell<(Vec<u8>, Vec<RowQuant>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// FP32 in, FP32 out, INT8 inside: quantizes the rows of `x` to u8 as `act` says, multiplies
/// by the s8 weights exactly, and dequantizes in the epilogue:
/// `C = act((accumulate ? C : 0) + ((acc - zero·Σw) as f32) · (row_scale · col_scale[j]) + bias)`.
/// The float epilogue is the same code for every ISA, so results are bit-identical.
#[allow(clippy::too_many_arguments)]
pub fn matmul_quantized(
    c: &mut [f32],
    ldc: usize,
    x: &[f32],
    ldx: usize,
    m: usize,
    b: &PackedI8,
    col_scale: &[f32],
    act: ActQuant,
    epilogue: Epilogue<'_>,
    parallelism: Parallelism,
) -> Result<(), Int8ShapeError> {
    let (k, n) = (b.k, b.n);
    let fits = |len: usize, cols: usize, ld: usize| m == 0 || (ld >= cols && (m - 1) * ld + cols <= len);
    let params_ok = col_scale.len() == n && epilogue.bias.is_none_or(|bias| bias.len() == n);
    if !fits(x.len(), k, ldx) || !fits(c.len(), n, ldc) || !params_ok {
        return Err(Int8ShapeError {
            m,
            k,
            n,
            lda: ldx,
            ldc,
            a_len: x.len(),
            c_len: c.len(),
        });
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    QUANTIZED_A.with(|cell| {
        let mut fresh = (Vec::new(), Vec::new());
        let mut borrowed = cell.try_borrow_mut();
        let (buf, quant) = match borrowed.as_mut() {
            Ok(b) => &mut **b,
            Err(_) => &mut fresh,
        };
        quantize_pack_rows(buf, quant, x, ldx, m, k, b.k4, act, parallelism);
        multiply_packed(c, ldc, buf, quant, m, b, col_scale, epilogue, parallelism);
    });
    Ok(())
}

/// Packs `m` rows of `k` u8 into the A layout of [`pack_a`] for weights of `k4` packed rows,
/// one row at a time: `row(i, bytes)` writes row `i`'s `k` bytes and returns its parameters.
/// For callers that quantize on the fly (attention's probabilities).
#[inline(always)]
pub(crate) fn pack_rows_with(
    buf: &mut Vec<u8>,
    quant: &mut Vec<RowQuant>,
    row_bytes: &mut Vec<u8>,
    (m, k, k4): (usize, usize, usize),
    mut row: impl FnMut(usize, &mut [u8]) -> RowQuant,
) {
    let tiles = m.div_ceil(MR);
    // Every real row is rewritten whole (k4 bytes, the tail zero); only padding rows are cleared.
    buf.resize(tiles * MR * k4, 0);
    for tile in buf.chunks_exact_mut(MR * k4).skip(m / MR) {
        tile.fill(0);
    }
    quant.clear();
    quant.resize(tiles * MR, RowQuant { scale: 1.0, zero: 0 });
    row_bytes.clear();
    row_bytes.resize(k4, 0);
    for (i, param) in quant.iter_mut().enumerate().take(m) {
        *param = row(i, &mut row_bytes[..k]);
        let tile = buf[(i / MR) * MR * k4..][..MR * k4].as_chunks_mut::<4>().0;
        for (dst, four) in tile
            .iter_mut()
            .skip(i % MR)
            .step_by(MR)
            .zip(row_bytes.as_chunks::<4>().0)
        {
            *dst = *four;
        }
    }
}

/// The INT8 GEMM and its float epilogue for activations already packed with their row
/// parameters (`quant` has an entry per packed row); shapes checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn multiply_packed(
    c: &mut [f32],
    ldc: usize,
    packed: &[u8],
    quant: &[RowQuant],
    m: usize,
    b: &PackedI8,
    col_scale: &[f32],
    epilogue: Epilogue<'_>,
    parallelism: Parallelism,
) {
    let isa = int8_kernel(b);
    let panels = b.n.div_ceil(NR);
    let threads = match parallelism {
        Parallelism::Threads(t) if t > 1 => t.min(panels),
        _ => 1,
    };
    assert!(
        m == 0
            || (packed.len() >= m.div_ceil(MR) * MR * b.k4
                && quant.len() >= m
                && (m - 1) * ldc + b.n <= c.len()),
        "multiply_packed: operands shorter than their shapes"
    );
    let out = OutPtr(c.as_mut_ptr());
    let job = |t: usize| {
        let (p0, p1) = (panels * t / threads, panels * (t + 1) / threads);
        // SAFETY: thread t writes only columns [p0·NR, min(p1·NR, n)) of C's m rows (bounds
        // asserted above); the column ranges of different threads are disjoint.
        unsafe {
            ColumnsJob {
                isa,
                c: out,
                ldc,
                packed,
                quant,
                m,
                b,
                col_scale,
                epilogue,
            }
            .run(p0..p1)
        };
    };
    if threads == 1 {
        job(0);
    } else {
        run_parallel(threads, &job);
    }
}

/// The column panels one thread computes in [`matmul_quantized`]: inputs, output and weights.
struct ColumnsJob<'a> {
    isa: Isa,
    c: OutPtr<f32>,
    ldc: usize,
    packed: &'a [u8],
    quant: &'a [RowQuant],
    m: usize,
    b: &'a PackedI8,
    col_scale: &'a [f32],
    epilogue: Epilogue<'a>,
}

impl ColumnsJob<'_> {
    /// Computes `panels`, with the float epilogue compiled for the widest vector ISA available
    /// (the same operations, so the same bits, on every ISA).
    ///
    /// # Safety
    /// `c` points at `m` rows of stride `ldc` holding at least `b.n` columns, and no other
    /// thread touches these panels' columns meanwhile.
    unsafe fn run(&self, panels: std::ops::Range<usize>) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            unsafe fn wide(job: &ColumnsJob<'_>, panels: std::ops::Range<usize>) {
                // SAFETY: the caller's contract.
                unsafe { job.body(panels) }
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn narrow(job: &ColumnsJob<'_>, panels: std::ops::Range<usize>) {
                // SAFETY: the caller's contract.
                unsafe { job.body(panels) }
            }
            match crate::isa() {
                // SAFETY: `isa()` returns Avx512Vnni only when avx512f/bw/vl were detected; the
                // rest is the caller's contract.
                Isa::Avx512Vnni => return unsafe { wide(self, panels) },
                // SAFETY: `isa()` returns these only when avx2 and fma were detected.
                Isa::Avx2 | Isa::AvxVnni => return unsafe { narrow(self, panels) },
                Isa::Scalar | Isa::Simd128 | Isa::RelaxedSimd => {}
            }
        }
        // SAFETY: the caller's contract.
        unsafe { self.body(panels) }
    }

    /// The body of [`ColumnsJob::run`], inlined into each ISA's copy.
    ///
    /// # Safety
    /// As for [`ColumnsJob::run`].
    #[inline(always)]
    unsafe fn body(&self, panels: std::ops::Range<usize>) {
        let ColumnsJob {
            isa,
            c,
            ldc,
            packed,
            quant,
            m,
            b,
            col_scale,
            epilogue,
        } = *self;
        // Taken out of the thread local rather than used inside `with`: the closure would be
        // compiled apart from this function, without its vector ISA (an SSE2 epilogue).
        let mut scratch = PANEL_SCRATCH.with(|cell| cell.take());
        for p in panels {
            let (c0, cols) = (p * NR, NR.min(b.n - p * NR));
            panel_product(isa, packed, m, b, p, &mut scratch);
            let acc = &scratch.acc;
            let (col_sums, col_scale) = (&b.col_sums[c0..c0 + cols], &col_scale[c0..c0 + cols]);
            let bias = epilogue.bias.map(|bias| &bias[c0..c0 + cols]);
            for (row, q) in quant.iter().enumerate().take(m) {
                if row + OUT_AHEAD < m {
                    // SAFETY: row + OUT_AHEAD < m, so these columns of that row are inside C
                    // and this thread's own (caller's contract); the view is only read by a hint.
                    let ahead =
                        unsafe { std::slice::from_raw_parts(c.0.add((row + OUT_AHEAD) * ldc + c0), cols) };
                    prefetch(ahead);
                }
                // SAFETY: row < m and columns c0..c0+cols are inside C (caller's contract).
                let out = unsafe { std::slice::from_raw_parts_mut(c.0.add(row * ldc + c0), cols) };
                let acc_row = &acc[row * NR..row * NR + cols];
                dequantize_row_generic(
                    out,
                    acc_row,
                    q.zero,
                    q.scale,
                    col_sums,
                    col_scale,
                    bias,
                    epilogue.accumulate,
                );
                if let Some(activation) = epilogue.activation {
                    activation(out);
                }
            }
        }
        PANEL_SCRATCH.with(|cell| cell.replace(scratch));
    }
}

/// How many rows ahead the epilogue prefetches its output row segment: C's rows are `ldc`
/// floats apart (3-12 KiB in bert-base), beyond the hardware prefetchers, and a store or
/// accumulate that misses stalls the epilogue (on Ice Lake-SP, 8-24 rows measured alike, and
/// 5-14% faster than none on three of bert-base's four GEMMs).
const OUT_AHEAD: usize = 12;

/// Per-thread buffers of [`panel_product`].
#[derive(Default)]
struct PanelScratch {
    /// One panel's i32 accumulators for every row.
    acc: Vec<i32>,
    /// The current K block of the panel widened to i16 (kernels of [`wide_kernel`] only).
    wide: Vec<i16>,
}

std::thread_local! {
    static PANEL_SCRATCH: std::cell::RefCell<PanelScratch> = std::cell::RefCell::new(PanelScratch::default());
}

/// A micro-kernel that multiplies from i16 copies of the weights: each K block of a panel is
/// widened once by `widen` and reused by every row tile.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // x86 has the only one
struct WideKernel {
    /// Widens a block of the byte panel (a multiple of `NR·4` bytes) into `tile`'s layout.
    widen: unsafe fn(&[u8], &mut Vec<i16>),
    /// As [`tile`], with the widened block in place of the bytes.
    tile: WideTile,
}

/// `(rows, groups, a, widened block, c, ldc, cols, accumulate)`: [`tile`]'s arguments.
type WideTile = unsafe fn(usize, usize, &[u8], &[i16], &mut [i32], usize, usize, bool);

/// The widened kernel for `isa` and `b`, where there is one: AVX2 with weights outside the 7-bit
/// grid (`vpmaddwd` per pair, where `vpmaddubsw` would saturate). (wasm simd128 widens in
/// registers instead: a block-widened variant measured no faster in V8, which spilled more.)
fn wide_kernel(isa: Isa, b: &PackedI8) -> Option<WideKernel> {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && !b.seven_bit {
        return Some(WideKernel {
            widen: x86::widen_block,
            tile: x86::tile_avx2_wide,
        });
    }
    let _ = (isa, b);
    None
}

/// `acc[row·NR + j] = Σ_k A[row, k]·B[k, p·NR + j]` for every row of the packed A and the 64
/// columns of panel `p`. K is cut into blocks whose panel slice stays in L1 while all of A's row
/// tiles pass over it; the partial sums live in `acc` (in L2) between blocks.
fn panel_product(isa: Isa, packed: &[u8], m: usize, b: &PackedI8, p: usize, scratch: &mut PanelScratch) {
    let (groups, tiles) = (b.k4 / 4, m.div_ceil(MR));
    let acc = &mut scratch.acc;
    // No zeroing: the first K block overwrites.
    if acc.len() < tiles * MR * NR {
        acc.resize(tiles * MR * NR, 0);
    }
    let panel = b.panel(p);
    let wide = wide_kernel(isa, b);
    let kc = if wide.is_some() { KC_WIDE_GROUPS } else { KC_GROUPS };
    for g0 in (0..groups).step_by(kc) {
        let gc = kc.min(groups - g0);
        let b_block = &panel[g0 * NR * 4..(g0 + gc) * NR * 4];
        if let Some(kernel) = wide {
            // SAFETY: `wide_kernel` returns a kernel only for an ISA that was detected (or
            // compiled in); the block is whole groups of NR·4 bytes.
            unsafe { (kernel.widen)(b_block, &mut scratch.wide) };
        }
        for t in 0..tiles {
            let a_block = &packed[(t * groups + g0) * MR * 4..(t * groups + g0 + gc) * MR * 4];
            let c = &mut acc[t * MR * NR..];
            match wide {
                // SAFETY: as above; the block, A tile and accumulator sizes are those `tile`
                // checks, with the widened block holding one i16 per weight byte.
                Some(kernel) => unsafe { (kernel.tile)(MR, gc, a_block, &scratch.wide, c, NR, NR, g0 > 0) },
                None => tile(isa, b.seven_bit, MR, gc, a_block, b_block, c, NR, NR, g0 > 0),
            }
        }
    }
}

/// Packs A: tiles of MR rows; per group of four k, each row's four bytes adjacent
/// (`tile[(g·MR + r)·4 + q]`); zero padding past k and past the last row.
fn pack_a(buf: &mut Vec<u8>, a: &[u8], lda: usize, m: usize, k: usize, k4: usize) {
    let tiles = m.div_ceil(MR);
    buf.clear();
    buf.resize(tiles * MR * k4, 0);
    for row in 0..m {
        let (t, r) = (row / MR, row % MR);
        let tile = &mut buf[t * MR * k4..(t + 1) * MR * k4];
        for (kk, &v) in a[row * lda..row * lda + k].iter().enumerate() {
            tile[((kk / 4) * MR + r) * 4 + kk % 4] = v;
        }
    }
}

/// One micro-tile on the chosen ISA.
#[allow(clippy::too_many_arguments)]
fn tile(
    isa: Isa,
    seven_bit: bool,
    rows: usize,
    groups: usize,
    a: &[u8],
    panel: &[u8],
    c: &mut [i32],
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    debug_assert!(a.len() >= groups * MR * 4 && panel.len() >= groups * NR * 4);
    debug_assert!(c.len() >= (rows - 1) * ldc + cols);
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: Avx512Vnni is only returned when avx512f/bw/vl/vnni were detected; the
        // buffers' sizes are checked above.
        Isa::Avx512Vnni => {
            return unsafe { x86::tile_avx512vnni(rows, groups, a, panel, c, ldc, cols, accumulate) }
        }
        // SAFETY: AvxVnni is only returned when avxvnni and avx2 were detected.
        Isa::AvxVnni => {
            return unsafe { x86::tile_avxvnni(rows, groups, a, panel, c, ldc, cols, accumulate) }
        }
        // SAFETY: Avx2 is only returned when avx2 was detected. Only 7-bit panels come here
        // (`wide_kernel` takes the others): `vpmaddubsw` cannot saturate on them.
        Isa::Avx2 => {
            debug_assert!(seven_bit, "8-bit weights on AVX2 go to the wide kernel");
            return unsafe { x86::tile_avx2_seven_bit(rows, groups, a, panel, c, ldc, cols, accumulate) };
        }
        Isa::Scalar | Isa::Simd128 | Isa::RelaxedSimd => {}
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    if isa == Isa::RelaxedSimd {
        return wasm::tile_relaxed(rows, groups, a, panel, c, ldc, cols, accumulate);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if isa == Isa::Simd128 || isa == Isa::RelaxedSimd {
        return wasm::tile_simd128(rows, groups, a, panel, c, ldc, cols, accumulate);
    }
    let _ = (isa, seven_bit);
    tile_scalar(rows, groups, a, panel, c, ldc, cols, accumulate);
}

/// Portable reference micro-kernel (also the wasm fallback): per row, 64 running sums that
/// the compiler can vectorise.
#[allow(clippy::too_many_arguments)]
fn tile_scalar(
    rows: usize,
    groups: usize,
    a: &[u8],
    panel: &[u8],
    c: &mut [i32],
    ldc: usize,
    cols: usize,
    accumulate: bool,
) {
    for r in 0..rows {
        let mut acc = [0i32; NR];
        for g in 0..groups {
            let x = &a[(g * MR + r) * 4..(g * MR + r) * 4 + 4];
            let w = &panel[g * NR * 4..(g + 1) * NR * 4];
            for (j, sum) in acc.iter_mut().enumerate() {
                for q in 0..4 {
                    *sum += x[q] as i32 * (w[j * 4 + q] as i8 as i32);
                }
            }
        }
        let out = &mut c[r * ldc..r * ldc + cols];
        for (o, v) in out.iter_mut().zip(acc) {
            *o = if accumulate { *o + v } else { v };
        }
    }
}

/// WebAssembly micro-kernels, compiled in when the build enables `simd128` / `relaxed-simd`.
/// Both are exact: every product and pair sum fits its lane, so they match the scalar kernel.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
    use super::{MR, NR};
    use core::arch::wasm32::*;

    /// Loads 16 bytes from the start of `bytes` (bounds checked by the slice index).
    #[inline(always)]
    fn load16(bytes: &[u8]) -> v128 {
        let s = &bytes[..16];
        // SAFETY: `s` is exactly 16 readable bytes; v128_load has no alignment requirement.
        unsafe { v128_load(s.as_ptr().cast()) }
    }

    /// Row `r`'s four activation bytes of group `g`, repeated in all four i32 lanes.
    #[inline(always)]
    fn activation(a: &[u8], g: usize, r: usize) -> v128 {
        let at = (g * MR + r) * 4;
        let s = &a[at..at + 4];
        // SAFETY: `s` is exactly 4 readable bytes; v128_load32_splat has no alignment requirement.
        unsafe { v128_load32_splat(s.as_ptr().cast()) }
    }

    /// Adds (or stores) finished column sums (four per vector) into `c[at..at + cols]`.
    #[inline(always)]
    fn store(c: &mut [i32], sums: &[v128], at: usize, cols: usize, accumulate: bool) {
        let mut lanes = [0i32; 16];
        for (q, v) in sums.iter().enumerate() {
            lanes[4 * q] = i32x4_extract_lane::<0>(*v);
            lanes[4 * q + 1] = i32x4_extract_lane::<1>(*v);
            lanes[4 * q + 2] = i32x4_extract_lane::<2>(*v);
            lanes[4 * q + 3] = i32x4_extract_lane::<3>(*v);
        }
        for (o, v) in c[at..at + cols].iter_mut().zip(lanes) {
            *o = if accumulate { *o + v } else { v };
        }
    }

    /// Rows computed together: the widened weights are shared by them.
    const ROWS: usize = 3;

    /// Calls `step(g)` for `g` in `0..n`, four per loop iteration: engines that spill the
    /// loop-carried accumulators at every back edge (wasmtime with epoch interruption: its
    /// check may call out, and every vector register is caller-saved) pay that once per four.
    #[inline(always)]
    fn unrolled(n: usize, mut step: impl FnMut(usize)) {
        let mut g = 0;
        while g + 4 <= n {
            step(g);
            step(g + 1);
            step(g + 2);
            step(g + 3);
            g += 4;
        }
        while g < n {
            step(g);
            g += 1;
        }
    }

    /// simd128: weights widened to i16, `i32x4.dot_i16x8_s` against the activations
    /// (u8 ≤ 255, so i16 is exact). Each dot leaves two half sums per column, added pairwise
    /// at the end. Blocks of 3 rows × 8 columns (12 accumulators: 2x the speed of one row at a time
    /// in V8); the packed A is zero-padded
    /// to MR rows, so a block may read rows past `rows` and only stores the real ones.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tile_simd128(
        rows: usize,
        groups: usize,
        a: &[u8],
        panel: &[u8],
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        for r0 in (0..rows).step_by(ROWS) {
            for chunk in 0..cols.div_ceil(8) {
                // acc[r][2h] holds columns 4h, 4h+1 as (k0+k1, k2+k3) pairs; acc[r][2h+1] 4h+2, 4h+3.
                let mut acc = [[i32x4_splat(0); 4]; ROWS];
                let step = |acc: &mut [[v128; 4]; ROWS], g: usize| {
                    let w = &panel[(g * NR + 8 * chunk) * 4..];
                    let (b0, b1) = (load16(w), load16(&w[16..]));
                    let wide = [
                        i16x8_extend_low_i8x16(b0),
                        i16x8_extend_high_i8x16(b0),
                        i16x8_extend_low_i8x16(b1),
                        i16x8_extend_high_i8x16(b1),
                    ];
                    for (r, sums) in acc.iter_mut().enumerate() {
                        let x = u16x8_extend_low_u8x16(activation(a, g, r0 + r));
                        for (sum, w) in sums.iter_mut().zip(wide) {
                            *sum = i32x4_add(*sum, i32x4_dot_i16x8(x, w));
                        }
                    }
                };
                unrolled(groups, |g| step(&mut acc, g));
                let left = (cols - 8 * chunk).min(8);
                for (r, halves) in acc.iter().enumerate().take(rows - r0) {
                    let sums: [v128; 2] = std::array::from_fn(|h| {
                        let (lo, hi) = (halves[2 * h], halves[2 * h + 1]);
                        i32x4_add(
                            i32x4_shuffle::<0, 2, 4, 6>(lo, hi),
                            i32x4_shuffle::<1, 3, 5, 7>(lo, hi),
                        )
                    });
                    store(c, &sums, (r0 + r) * ldc + 8 * chunk, left, accumulate);
                }
            }
        }
    }

    /// relaxed-simd: `i32x4.relaxed_dot_i8x16_i7x16_add_s` with the weights as the signed
    /// operand and the activations split into their low 7 bits and their top bit, so the
    /// second operand is always in [0, 127]: exact on every engine (pair sums ≤ 2·128·127).
    #[cfg(target_feature = "relaxed-simd")]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tile_relaxed(
        rows: usize,
        groups: usize,
        a: &[u8],
        panel: &[u8],
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        for r0 in (0..rows).step_by(ROWS) {
            for chunk in 0..cols.div_ceil(8) {
                let mut low = [[i32x4_splat(0); 2]; ROWS];
                let mut high = [[i32x4_splat(0); 2]; ROWS];
                let step = |low: &mut [[v128; 2]; ROWS], high: &mut [[v128; 2]; ROWS], g: usize| {
                    let w = &panel[(g * NR + 8 * chunk) * 4..];
                    let bytes = [load16(w), load16(&w[16..])];
                    for r in 0..ROWS {
                        let x = activation(a, g, r0 + r);
                        let x_low = v128_and(x, u8x16_splat(0x7f));
                        let x_high = u8x16_shr(x, 7);
                        for q in 0..2 {
                            low[r][q] = i32x4_relaxed_dot_i8x16_i7x16_add(bytes[q], x_low, low[r][q]);
                            high[r][q] = i32x4_relaxed_dot_i8x16_i7x16_add(bytes[q], x_high, high[r][q]);
                        }
                    }
                };
                unrolled(groups, |g| step(&mut low, &mut high, g));
                let left = (cols - 8 * chunk).min(8);
                for r in 0..ROWS.min(rows - r0) {
                    let sums: [v128; 2] =
                        std::array::from_fn(|q| i32x4_add(low[r][q], i32x4_shl(high[r][q], 7)));
                    store(c, &sums, (r0 + r) * ldc + 8 * chunk, left, accumulate);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// AVX-512 VNNI: an MR×64 tile in 4·MR zmm accumulators, `vpdpbusd` per group of 4 k.
    ///
    /// # Safety
    /// Requires avx512f/bw/vnni; `a` holds `groups·MR·4` bytes, `panel` `groups·NR·4`, and
    /// `c` holds `rows` rows of stride `ldc` with `cols` valid columns.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)] // unrolled register loops
    pub(super) unsafe fn tile_avx512vnni(
        rows: usize,
        groups: usize,
        a: &[u8],
        panel: &[u8],
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_si512(); 4]; MR];
        let (ap, bp) = (a.as_ptr(), panel.as_ptr());
        for g in 0..groups {
            // SAFETY: g < groups: the 256 bytes at bp + 256g and the 24 at ap + 24g are in bounds.
            unsafe {
                let b: [__m512i; 4] =
                    std::array::from_fn(|j| _mm512_loadu_si512(bp.add((g * NR + 16 * j) * 4).cast()));
                for r in 0..MR {
                    let x = _mm512_set1_epi32(ap.add((g * MR + r) * 4).cast::<i32>().read_unaligned());
                    for j in 0..4 {
                        acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], x, b[j]);
                    }
                }
            }
        }
        for r in 0..rows {
            for j in 0..4 {
                let left = cols.saturating_sub(16 * j).min(16);
                let mask: __mmask16 = if left == 16 {
                    0xffff
                } else {
                    ((1u32 << left) - 1) as u16
                };
                // SAFETY: the masked load/store touch columns 16j..16j+left < cols of row r < rows.
                unsafe {
                    let out = c.as_mut_ptr().add(r * ldc + 16 * j).cast();
                    let mut v = acc[r][j];
                    if accumulate {
                        v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, out));
                    }
                    _mm512_mask_storeu_epi32(out, mask, v);
                }
            }
        }
    }

    /// AVX-VNNI: `vpdpbusd` on ymm.
    ///
    /// # Safety
    /// Requires avx2 and avxvnni; buffer sizes as for [`tile_avx512vnni`].
    #[target_feature(enable = "avx2,avxvnni")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile_avxvnni(
        rows: usize,
        groups: usize,
        a: &[u8],
        panel: &[u8],
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        // SAFETY: the caller's contract, and avxvnni is enabled here.
        unsafe { tile_ymm::<VNNI>(rows, groups, a, panel, c, ldc, cols, accumulate) }
    }

    /// AVX2 for 7-bit weights: one `vpmaddubsw` + `vpmaddwd` per product is exact (pair sums
    /// of 255·64 fit i16). Compiled without avxvnni so no VNNI instruction appears.
    ///
    /// # Safety
    /// Requires avx2; every weight must be in [-64, 63]; buffer sizes as for [`tile_avx512vnni`].
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile_avx2_seven_bit(
        rows: usize,
        groups: usize,
        a: &[u8],
        panel: &[u8],
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        // SAFETY: the caller's contract; the VNNI branch is compiled out.
        unsafe { tile_ymm::<SEVEN_BIT>(rows, groups, a, panel, c, ldc, cols, accumulate) }
    }

    /// [`tile_ymm`] modes: `vpdpbusd`; one saturation-free `vpmaddubsw` (7-bit weights).
    const VNNI: u8 = 0;
    const SEVEN_BIT: u8 = 1;

    /// Widens one K block of a panel (`groups` × 64 columns × 4 bytes, the `vpdpbusd` layout)
    /// to i16 for [`tile_avx2_wide`]: per group, the 64 columns' (k0, k1) pairs, then their
    /// (k2, k3) pairs, each pair one i32 lane of `vpmaddwd`.
    ///
    /// # Safety
    /// Requires avx2; `block.len()` is a multiple of 256.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn widen_block(block: &[u8], wide: &mut Vec<i16>) {
        debug_assert_eq!(block.len() % (NR * 4), 0);
        wide.resize(block.len(), 0);
        // Within each 128-bit lane (4 columns × 4 k): the (k0, k1) bytes of the 4 columns,
        // then their (k2, k3) bytes.
        let pairs = _mm256_setr_epi8(
            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10,
            11, 14, 15,
        );
        let out = wide.as_mut_ptr();
        for (chunk, bytes) in block.chunks_exact(32).enumerate() {
            let (g, c) = (chunk / 8, chunk % 8);
            // SAFETY: `bytes` is 32 readable bytes; the two 32-byte stores land at i16 offsets
            // (2g + h)·128 + 16c + [0, 16) < 256(g + 1) ≤ block.len() = wide.len().
            unsafe {
                let v = _mm256_shuffle_epi8(_mm256_loadu_si256(bytes.as_ptr().cast()), pairs);
                // Quadwords [lane0 (k0,k1), lane1 (k0,k1), lane0 (k2,k3), lane1 (k2,k3)].
                let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(v);
                let low = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(v));
                let high = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(v));
                _mm256_storeu_si256(out.add(2 * g * 128 + 16 * c).cast(), low);
                _mm256_storeu_si256(out.add((2 * g + 1) * 128 + 16 * c).cast(), high);
            }
        }
    }

    /// AVX2 for any s8 weights, from a block widened by [`widen_block`]: each row's four
    /// activation bytes become two u16 pairs, one `vpmaddwd` per pair of k and 8 columns (exact:
    /// 2·255·128 fits i32). Same register blocking as [`tile_ymm`]: 2 rows × 32 columns.
    ///
    /// # Safety
    /// Requires avx2; `a` holds `groups·MR·4` bytes, `wide` `groups·NR·4` i16, and `c` holds
    /// `rows` rows of stride `ldc` with `cols` valid columns.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)] // unrolled register loops
    pub(super) unsafe fn tile_avx2_wide(
        rows: usize,
        groups: usize,
        a: &[u8],
        wide: &[i16],
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        debug_assert!(a.len() >= groups * MR * 4 && wide.len() >= groups * NR * 4);
        let (ap, bp) = (a.as_ptr(), wide.as_ptr());
        // Bytes 0, 1 (then 2, 3) of every i32 lane zero-extended to its two u16 halves.
        let z = -1i8;
        let halves = [
            _mm256_setr_epi8(
                0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1, z, 0, z, 1,
                z,
            ),
            _mm256_setr_epi8(
                2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3, z, 2, z, 3,
                z,
            ),
        ];
        for half in 0..2 {
            for r0 in (0..MR).step_by(2) {
                let mut acc = [[_mm256_setzero_si256(); 4]; 2];
                for g in 0..groups {
                    // SAFETY: g < groups; the loads stay inside this group's 256 widened
                    // weights and this tile's 24 A bytes.
                    unsafe {
                        let x: [__m256i; 2] = std::array::from_fn(|r| {
                            _mm256_set1_epi32(ap.add((g * MR + r0 + r) * 4).cast::<i32>().read_unaligned())
                        });
                        let [b0, b1] = [0, 1].map(|h| bp.add((2 * g + h) * 128 + 64 * half));
                        madd_pairs(&mut acc, x, halves[0], b0);
                        madd_pairs(&mut acc, x, halves[1], b1);
                    }
                }
                // SAFETY: avx2 is enabled here.
                unsafe { store_ymm(&acc, r0, rows, half, c, ldc, cols, accumulate) };
            }
        }
    }

    /// The 256-bit micro-kernel body shared by the AVX-VNNI and AVX2 wrappers.
    ///
    /// # Safety
    /// As for the wrappers; must be inlined into one of them.
    #[inline(always)]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)] // unrolled register loops
    unsafe fn tile_ymm<const MODE: u8>(
        rows: usize,
        groups: usize,
        a: &[u8],
        panel: &[u8],
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        // 16 ymm registers: 2 rows × 4 ymm (32 columns) of accumulators at a time, so the
        // 6×64 tile takes 2 column halves × 3 row pairs.
        let (ap, bp) = (a.as_ptr(), panel.as_ptr());
        // SAFETY: avx2 is enabled in every caller this body is inlined into.
        let ones = unsafe { _mm256_set1_epi16(1) };
        for half in 0..2 {
            for r0 in (0..MR).step_by(2) {
                // SAFETY: as above.
                let mut acc = unsafe { [[_mm256_setzero_si256(); 4]; 2] };
                for g in 0..groups {
                    // SAFETY: g < groups; the loads stay inside this group's 256 panel bytes
                    // and this tile's 24 A bytes.
                    unsafe {
                        let b: [__m256i; 4] = std::array::from_fn(|j| {
                            _mm256_loadu_si256(bp.add((g * NR + 32 * half + 8 * j) * 4).cast())
                        });
                        for r in 0..2 {
                            let x = _mm256_set1_epi32(
                                ap.add((g * MR + r0 + r) * 4).cast::<i32>().read_unaligned(),
                            );
                            for j in 0..4 {
                                acc[r][j] = match MODE {
                                    // VNNI only inside `tile_avxvnni`.
                                    VNNI => _mm256_dpbusd_avx_epi32(acc[r][j], x, b[j]),
                                    _ => {
                                        let pairs = _mm256_maddubs_epi16(x, b[j]);
                                        _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(pairs, ones))
                                    }
                                };
                            }
                        }
                    }
                }
                // SAFETY: avx2 is enabled in every caller this body is inlined into.
                unsafe { store_ymm(&acc, r0, rows, half, c, ldc, cols, accumulate) };
            }
        }
    }

    /// `acc[r][j] += vpmaddwd(pairs of x[r] picked by `select`, the 8 widened columns at
    /// `b + 16j`)` for 2 rows and 32 columns.
    ///
    /// # Safety
    /// Requires avx2 (inlined into [`tile_avx2_wide`]); `b` points at 64 readable i16.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // unrolled register loops
    unsafe fn madd_pairs(acc: &mut [[__m256i; 4]; 2], x: [__m256i; 2], select: __m256i, b: *const i16) {
        // SAFETY: the caller's contract.
        unsafe {
            // One weight vector live at a time: 8 accumulators + 2 rows + 1 weight + 1 product
            // leave room for the two selectors in 16 ymm registers.
            let x = x.map(|x| _mm256_shuffle_epi8(x, select));
            for j in 0..4 {
                let w = _mm256_loadu_si256(b.add(16 * j).cast());
                for r in 0..2 {
                    acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(x[r], w));
                }
            }
        }
    }

    /// Adds (or stores) a 2-row × 32-column block of accumulators, rows `r0`, `r0 + 1` and
    /// columns `32·half..`, into C, skipping rows ≥ `rows` and columns ≥ `cols`.
    ///
    /// # Safety
    /// Requires avx2 (inlined into the AVX2 kernels).
    #[inline(always)]
    #[allow(clippy::needless_range_loop, clippy::too_many_arguments)] // unrolled register loops
    unsafe fn store_ymm(
        acc: &[[__m256i; 4]; 2],
        r0: usize,
        rows: usize,
        half: usize,
        c: &mut [i32],
        ldc: usize,
        cols: usize,
        accumulate: bool,
    ) {
        for r in 0..2 {
            let row = r0 + r;
            if row >= rows {
                continue;
            }
            for j in 0..4 {
                let start = 32 * half + 8 * j;
                if start >= cols {
                    continue;
                }
                let out = &mut c[row * ldc + start..];
                if cols - start >= 8 && out.len() >= 8 {
                    // SAFETY: `out` has at least 8 values; avx2 (the caller's contract).
                    unsafe {
                        let at = out.as_mut_ptr().cast::<__m256i>();
                        let v = if accumulate {
                            _mm256_add_epi32(acc[r][j], _mm256_loadu_si256(at))
                        } else {
                            acc[r][j]
                        };
                        _mm256_storeu_si256(at, v);
                    }
                    continue;
                }
                let mut lanes = [0i32; 8];
                // SAFETY: storing into a local array of 8 i32.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc[r][j]) };
                let n = (cols - start).min(8);
                for (o, v) in out[..n].iter_mut().zip(lanes) {
                    *o = if accumulate { *o + v } else { v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(a: &[u8], lda: usize, m: usize, w: &[i8], n: usize, k: usize) -> Vec<i32> {
        let mut out = vec![0i32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * lda + p] as i32 * w[j * k + p] as i32).sum();
            }
        }
        out
    }

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    fn check_all_kernels(
        m: usize,
        k: usize,
        n: usize,
        a: &[u8],
        lda: usize,
        w: &[i8],
    ) -> Result<(), TestCaseError> {
        let want = reference(a, lda, m, w, n, k);
        let packed = PackedI8::from_transposed(w, n, k);
        for isa in Isa::available() {
            let mut c = vec![i32::MIN; m * n];
            matmul_u8i8_with(isa, &mut c, n, a, lda, m, &packed).unwrap();
            prop_assert_eq!(&c, &want, "kernel {:?}", isa);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn every_kernel_is_exact(m in 1usize..20, k in 1usize..200, n in 1usize..150, pad in 0usize..5, seed: u64, seven in any::<bool>()) {
            let lda = k + pad;
            let a = bytes(m * lda, seed);
            let w: Vec<i8> = bytes(n * k, seed ^ 0xabc).into_iter()
                .map(|b| if seven { (b as i8) >> 1 } else { b as i8 }).collect();
            check_all_kernels(m, k, n, &a, lda, &w)?;
        }
    }

    #[test]
    fn extreme_values_do_not_saturate() {
        // All 255 × all -128 (and 127): the worst case for 16-bit intermediates.
        for (m, k, n) in [(1, 1, 1), (7, 131, 67), (13, 768, 65), (7, 2101, 300)] {
            let a = vec![255u8; m * k];
            for v in [-128i8, 127, -64, 63] {
                let w = vec![v; n * k];
                check_all_kernels(m, k, n, &a, k, &w).unwrap();
                let c = reference(&a, k, m, &w, n, k);
                assert_eq!(c[0], 255 * v as i32 * k as i32);
            }
        }
    }

    #[test]
    fn several_k_blocks_and_column_chunks() {
        let (m, k, n) = (9, 2500, 270);
        let a = bytes(m * k, 1);
        let w: Vec<i8> = bytes(n * k, 2).into_iter().map(|b| b as i8).collect();
        check_all_kernels(m, k, n, &a, k, &w).unwrap();
        let seven: Vec<i8> = w.iter().map(|v| v >> 1).collect();
        check_all_kernels(m, k, n, &a, k, &seven).unwrap();
    }

    #[test]
    fn row_quantization_round_trips() {
        let row = [-1.0f32, -0.25, 0.0, 0.5, 3.0];
        let q = RowQuant::of(&row);
        assert_eq!(q.quantize(0.0) as i32, q.zero, "zero is exact");
        for v in row {
            let back = (q.quantize(v) as i32 - q.zero) as f32 * q.scale;
            assert!((back - v).abs() <= q.scale / 2.0 + 1e-6);
        }
        let flat = RowQuant::of(&[0.0; 4]);
        assert_eq!(flat.quantize(0.0) as i32, flat.zero);
    }

    proptest! {
        /// The dynamic INT8 product approximates the FP32 one within the quantization error,
        /// with threads and epilogues, and equals the exact integer formula (m past the
        /// epilogue's prefetch distance, so the prefetched rows are covered).
        #[test]
        fn quantized_matmul_matches_fp32(m in 1usize..40, k in 1usize..300, n in 1usize..140, threads in 1usize..3, seed: u64, fixed in any::<bool>()) {
            let x: Vec<f32> = bytes(m * k, seed).iter().map(|&b| b as f32 / 40.0 - 3.0).collect();
            let wq: Vec<i8> = bytes(n * k, seed ^ 7).into_iter().map(|b| b as i8).collect();
            let col_scale: Vec<f32> = (0..n).map(|j| 0.001 + j as f32 * 1e-5).collect();
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01).collect();
            let packed = PackedI8::from_transposed(&wq, n, k);
            let mut c = vec![1.0f32; m * n];
            let par = if threads > 1 { Parallelism::Threads(threads) } else { Parallelism::Sequential };
            let epilogue = Epilogue { accumulate: true, bias: Some(&bias), activation: None };
            // Static: one range for every row, a little narrower than the data so some values saturate.
            let tensor = RowQuant::of(&[-2.5, 2.5]);
            let act = if fixed { ActQuant::PerTensor(tensor) } else { ActQuant::PerRow };
            matmul_quantized(&mut c, n, &x, k, m, &packed, &col_scale, act, epilogue, par).unwrap();
            for i in 0..m {
                let q = if fixed { tensor } else { RowQuant::of(&x[i * k..(i + 1) * k]) };
                for j in 0..n {
                    let exact: i32 = (0..k).map(|p| (q.quantize(x[i * k + p]) as i32 - q.zero) * wq[j * k + p] as i32).sum();
                    let want = 1.0 + (exact as f32 * (q.scale * col_scale[j]) + bias[j]);
                    prop_assert_eq!(c[i * n + j], want);
                    let fp32: f32 = (0..k).map(|p| x[i * k + p] * wq[j * k + p] as f32 * col_scale[j]).sum::<f32>() + bias[j] + 1.0;
                    let bound = q.scale * 0.5 * col_scale[j] * 128.0 * k as f32 + 1e-4;
                    if !fixed {
                        prop_assert!((c[i * n + j] - fp32).abs() <= bound);
                    }
                }
            }
        }
    }

    #[test]
    fn avx2_is_exact_for_seven_bit_and_full_weights_at_the_extremes() {
        let full = PackedI8::from_transposed(&[-128, 5, 7, 9], 2, 2);
        let seven = PackedI8::from_transposed(&[-64, 5, 7, 63], 2, 2);
        assert!(!full.seven_bit() && seven.seven_bit());
        assert_eq!(full.col_sums(), &[-123, 16]);
        // Where one vpmaddubsw would saturate: 255·(-128) + 255·(-128) < i16::MIN.
        let (m, k, n) = (7, 67, 70);
        let a = vec![255u8; m * k];
        for w in [-128i8, 127, -64, 63] {
            let b = PackedI8::from_transposed(&vec![w; n * k], n, k);
            for isa in Isa::available() {
                let mut c = vec![0i32; m * n];
                matmul_u8i8_with(isa, &mut c, n, &a, k, m, &b).unwrap();
                assert!(
                    c.iter().all(|&v| v == 255 * w as i32 * k as i32),
                    "{isa:?}, w = {w}"
                );
            }
        }
    }

    #[test]
    fn rejects_short_buffers() {
        let packed = PackedI8::from_transposed(&[1; 6], 2, 3);
        let mut c = vec![0i32; 3];
        assert!(matmul_u8i8(&mut c, 2, &[1; 6], 3, 2, &packed).is_err());
        let mut c = vec![0i32; 4];
        assert!(matmul_u8i8(&mut c, 2, &[1; 5], 3, 2, &packed).is_err());
        matmul_u8i8(&mut c, 2, &[1; 6], 3, 2, &packed).unwrap();
        assert_eq!(c, vec![3; 4]);
    }
}
