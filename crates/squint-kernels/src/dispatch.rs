//! Instruction-set selection: detected once per process, overridable with `SQUINT_ISA`
//! (`scalar|avx2|avxvnni|avx512vnni`) so tests and benchmarks can force a kernel. WebAssembly
//! cannot probe features at run time: a wasm build runs the SIMD it was compiled with
//! (`-C target-feature=+simd128` or `+relaxed-simd`), and hosts load the matching `.wasm`.

use std::sync::OnceLock;

/// The kernel family a process runs. Ordered from the most portable to the fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, any target (wasm included).
    Scalar,
    /// x86-64 AVX2 + FMA (Haswell and later).
    Avx2,
    /// x86-64 AVX-VNNI on 256-bit registers (Alder Lake and later).
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL + VNNI (Ice Lake, Zen 4 and later).
    Avx512Vnni,
    /// wasm32 fixed-width SIMD (`simd128`: every browser since 2021, wasmtime).
    Simd128,
    /// wasm32 relaxed SIMD (`i32x4.relaxed_dot_i8x16_i7x16_add`: Chrome 114+, wasmtime).
    RelaxedSimd,
}

/// Every ISA, in the order [`Isa::available`] lists them.
const ALL: [Isa; 6] = [
    Isa::Scalar,
    Isa::Simd128,
    Isa::RelaxedSimd,
    Isa::Avx2,
    Isa::AvxVnni,
    Isa::Avx512Vnni,
];

impl Isa {
    /// The name used by `SQUINT_ISA` and printed by `squint bench`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Simd128 => "simd128",
            Isa::RelaxedSimd => "relaxed-simd",
        }
    }

    /// Parses a `SQUINT_ISA` value.
    pub fn parse(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avxvnni" => Some(Isa::AvxVnni),
            "avx512vnni" | "avx512" => Some(Isa::Avx512Vnni),
            "simd128" => Some(Isa::Simd128),
            "relaxed-simd" | "relaxedsimd" => Some(Isa::RelaxedSimd),
            _ => None,
        }
    }

    /// Every ISA this CPU can run, most portable first.
    pub fn available() -> Vec<Isa> {
        let best = detect();
        ALL.into_iter().filter(|isa| supported(*isa, best)).collect()
    }
}

/// Whether `isa` runs on a CPU whose best ISA is `best` (AVX-512 machines may lack AVX-VNNI).
fn supported(isa: Isa, best: Isa) -> bool {
    match isa {
        Isa::Scalar => true,
        Isa::AvxVnni => has_avxvnni(),
        Isa::Avx2 | Isa::Avx512Vnni => cfg!(target_arch = "x86_64") && isa <= best,
        // A wasm build can only run the SIMD it was compiled with, or plain code.
        Isa::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
        Isa::RelaxedSimd => cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")),
    }
}

/// The ISA this process uses: `SQUINT_ISA` if set and supported, else the best detected.
/// An unsupported or unknown override falls back to detection (with a message on stderr),
/// because a forced instruction the CPU lacks would crash the process.
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let best = detect();
        match std::env::var("SQUINT_ISA") {
            Ok(value) => match Isa::parse(&value) {
                Some(forced) if supported(forced, best) => forced,
                Some(forced) => {
                    eprintln!(
                        "squint: SQUINT_ISA={} is not supported by this CPU; using {}",
                        forced.name(),
                        best.name()
                    );
                    best
                }
                None => {
                    eprintln!(
                        "squint: unknown SQUINT_ISA={value:?} (expected scalar|avx2|avxvnni|avx512vnni|simd128|relaxed-simd); using {}",
                        best.name()
                    );
                    best
                }
            },
            Err(_) => best,
        }
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
    {
        Isa::Avx512Vnni
    } else if has_avxvnni() {
        Isa::AvxVnni
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avxvnni() -> bool {
    is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
        Isa::RelaxedSimd
    } else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
        Isa::Simd128
    } else {
        Isa::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avxvnni() -> bool {
    false
}

/// Hints the CPU to bring `data`'s cache lines into L1, for rows read or written at strides the
/// hardware prefetchers do not follow (a head's rows in the fused QKV buffer, 9 KiB apart in
/// bert-base; a GEMM epilogue's output rows). Only a hint: a no-op off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = data.as_ptr().cast::<i8>();
        for offset in line_offsets(std::mem::size_of_val(data)) {
            // SAFETY: `line_offsets` yields offsets below the slice's size, so the address is
            // inside `data`; a prefetch never faults or writes.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(start.add(offset))
            };
        }
    }
    let _ = data;
}

/// One offset per 64-byte line of a `size`-byte slice, all below `size`.
#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // only x86-64 prefetches
fn line_offsets(size: usize) -> std::iter::StepBy<std::ops::Range<usize>> {
    (0..size).step_by(64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in ALL {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse("sse9"), None);
    }

    #[test]
    fn chosen_isa_is_available() {
        assert!(Isa::available().contains(&isa()));
        assert_eq!(Isa::available()[0], Isa::Scalar);
        // A wasm build runs the SIMD it was compiled with (so the kernel tests cover it).
        if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
            assert_eq!(isa(), Isa::RelaxedSimd);
            assert!(Isa::available().contains(&Isa::Simd128));
        } else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            assert_eq!(isa(), Isa::Simd128);
        }
    }

    #[test]
    fn prefetch_offsets_cover_the_lines_inside_the_slice() {
        for size in [0usize, 1, 63, 64, 65, 256, 1000] {
            let offsets: Vec<usize> = line_offsets(size).collect();
            assert_eq!(offsets.len(), size.div_ceil(64), "size {size}");
            assert!(offsets.iter().enumerate().all(|(i, &o)| o == 64 * i && o < size));
        }
        // And the hint itself, on slices ending at their allocation's end, changes nothing.
        let data: Vec<f32> = (0..100).map(|i| i as f32).collect();
        prefetch(&data[37..]);
        prefetch(&data[..0]);
        assert!(data.iter().enumerate().all(|(i, &v)| v == i as f32));
    }
}
