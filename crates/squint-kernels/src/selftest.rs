//! The INT8 kernels of this build checked against the scalar reference on random shapes, in
//! the engine that runs them: relaxed SIMD is lowered differently by each engine (browsers,
//! wasmtime), and only a run inside the real one shows the result is exact there.

use crate::int8::{matmul_u8i8_with, PackedI8};
use crate::Isa;

/// Runs `cases` random products (odd sizes, extremes included) on every kernel this build
/// has; returns the kernels checked, or the first difference.
pub fn int8_kernels(cases: usize, seed: u64) -> Result<Vec<&'static str>, String> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let kernels = Isa::available();
    for case in 0..cases {
        let (m, k, n) = (
            1 + next() as usize % 13,
            1 + next() as usize % 300,
            1 + next() as usize % 150,
        );
        let extreme = case % 4 == 0;
        let a: Vec<u8> = (0..m * k)
            .map(|_| if extreme { 255 } else { next() as u8 })
            .collect();
        let w: Vec<i8> = (0..n * k)
            .map(|_| if extreme { -128 } else { next() as i8 })
            .collect();
        let b = PackedI8::from_transposed(&w, n, k);
        let mut want = vec![0i32; m * n];
        matmul_u8i8_with(Isa::Scalar, &mut want, n, &a, k, m, &b).map_err(|e| e.to_string())?;
        // The definition, to catch a wrong scalar kernel too.
        for (i, row) in want.chunks(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let exact: i32 = (0..k).map(|t| a[i * k + t] as i32 * w[j * k + t] as i32).sum();
                if v != exact {
                    return Err(format!(
                        "scalar kernel: {m}x{k}x{n} C[{i},{j}] = {v}, want {exact}"
                    ));
                }
            }
        }
        for &isa in &kernels {
            let mut got = vec![0i32; m * n];
            matmul_u8i8_with(isa, &mut got, n, &a, k, m, &b).map_err(|e| e.to_string())?;
            if let Some(at) = got.iter().zip(&want).position(|(g, w)| g != w) {
                return Err(format!(
                    "{} kernel: {m}x{k}x{n} C[{}] = {}, want {}",
                    isa.name(),
                    at,
                    got[at],
                    want[at]
                ));
            }
        }
    }
    Ok(kernels.iter().map(|isa| isa.name()).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_native_kernel_passes() {
        let kernels = super::int8_kernels(40, 7).expect("exact");
        assert!(kernels.contains(&"scalar"));
    }
}
