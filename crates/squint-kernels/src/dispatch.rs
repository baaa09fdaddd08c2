//! Instruction-set selection: detected once per process, overridable with `SQUINT_ISA`
//! (`scalar|avx2|avxvnni|avx512vnni`) so tests and benchmarks can force a kernel.

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
}

impl Isa {
    /// The name used by `SQUINT_ISA` and printed by `squint bench`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// Parses a `SQUINT_ISA` value.
    pub fn parse(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "avxvnni" => Some(Isa::AvxVnni),
            "avx512vnni" | "avx512" => Some(Isa::Avx512Vnni),
            _ => None,
        }
    }

    /// Every ISA this CPU can run, most portable first.
    pub fn available() -> Vec<Isa> {
        let best = detect();
        [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni]
            .into_iter()
            .filter(|isa| supported(*isa, best))
            .collect()
    }
}

/// Whether `isa` runs on a CPU whose best ISA is `best` (AVX-512 machines may lack AVX-VNNI).
fn supported(isa: Isa, best: Isa) -> bool {
    match isa {
        Isa::AvxVnni => has_avxvnni(),
        other => other <= best,
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
                        "squint: unknown SQUINT_ISA={value:?} (expected scalar|avx2|avxvnni|avx512vnni); using {}",
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
    Isa::Scalar
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
        for isa in [Isa::Scalar, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni] {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse("sse9"), None);
    }

    #[test]
    fn chosen_isa_is_available() {
        assert!(Isa::available().contains(&isa()));
        assert_eq!(Isa::available()[0], Isa::Scalar);
    }
}
