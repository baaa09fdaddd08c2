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
}
