//! Times this build's INT8 GEMM and attention kernels at MiniLM/BERT layer shapes (best of 5).
//! Used to tune the wasm kernels in Node:
//!   CARGO_TARGET_WASM32_WASIP1_RUNNER="node scripts/wasi-run.mjs" \
//!   CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128" \
//!   cargo run --release -p squint-kernels --example kernel_speed --target wasm32-wasip1
//! (natively: `cargo run --release -p squint-kernels --example kernel_speed`; `SQUINT_SHAPES=bert-base`
//! times bert-base's four GEMMs instead of MiniLM's).

use squint_kernels::attention::{attention_head, HeadInputs, Numerics};
use squint_kernels::int8::{matmul_u8i8, PackedI8};

/// The fastest of 5 timed calls after 3 untimed ones (V8 runs a wasm function in its baseline
/// compiler until it has been hot for a while).
fn best_of_5(mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let isa = squint_kernels::isa().name();
    let shapes = match std::env::var("SQUINT_SHAPES").as_deref() {
        Ok("bert-base") => vec![
            (384, 768, 3072),
            (384, 3072, 768),
            (384, 768, 2304),
            (384, 768, 768),
        ],
        _ => vec![(384, 384, 1536), (384, 1536, 384), (384, 384, 1152)],
    };
    for (m, k, n) in shapes {
        let a: Vec<u8> = (0..m * k).map(|i| (i * 31 % 251) as u8).collect();
        // Full 8-bit weights, then the 7-bit grid ([-63, 63]) that AVX2 multiplies in one step.
        for (bits, modulus) in [(8, 255), (7, 127)] {
            let w: Vec<i8> = (0..n * k)
                .map(|i| ((i * 17 % modulus) as i32 - modulus as i32 / 2) as i8)
                .collect();
            let b = PackedI8::from_transposed(&w, n, k);
            let mut c = vec![0i32; m * n];
            let mut result = Ok(());
            let secs = best_of_5(|| result = matmul_u8i8(&mut c, n, &a, k, m, &b));
            result?;
            let gops = 2.0 * (m * k * n) as f64 / secs / 1e9;
            println!(
                "{isa} int8 w{bits} {m}x{k}x{n}: {:.2} ms, {gops:.1} GOP/s",
                secs * 1e3
            );
        }
    }
    for (l, d, heads) in [(384usize, 32usize, 12usize), (384, 64, 12)] {
        let stride = 3 * heads * d;
        let qkv: Vec<f32> = (0..l * stride)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let head = HeadInputs {
            q: &qkv,
            k: &qkv[heads * d..],
            v: &qkv[2 * heads * d..],
            stride,
            queries: l,
            keys: l,
            dim: d,
        };
        for numerics in [Numerics::F32, Numerics::Int16, Numerics::Int8] {
            let (mut scores, mut out) = (vec![0.0; l * l], vec![0.0; l * d]);
            let mut result = Ok(());
            let secs = best_of_5(|| result = attention_head(head, 0.125, numerics, &mut scores, l, &mut out));
            result?;
            let gflops = 4.0 * (l * l * d) as f64 / secs / 1e9;
            println!(
                "{isa} attention ({}) seq {l} dim {d}: {:.2} ms per head, {gflops:.1} G(FL)OP/s",
                numerics.name(),
                secs * 1e3
            );
        }
    }
    Ok(())
}
