//! Deterministic test data shared by the kernels' unit tests.

/// `len` values in [-1, 1], a fixed hash of the index and `seed` (reproducible, no RNG state).
pub fn fill(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 9) % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}
