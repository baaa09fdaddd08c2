//! The threading boundary of squint: work split across the caller's rayon pool on native
//! hosts, done in order on wasm. The kernels split GEMM columns with it, and the encoder its
//! per-head and per-row loops.

/// How many threads a kernel may use. `Threads(n)` runs on the caller's current rayon pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    Sequential,
    Threads(usize),
}

/// A raw pointer to C that may cross threads (each thread owns disjoint columns).
pub(crate) struct OutPtr<T>(pub(crate) *mut T);
// SAFETY: only used by the GEMM drivers, whose threads write disjoint elements of C.
unsafe impl<T> Send for OutPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for OutPtr<T> {}

/// Runs `job(0..threads)`, in parallel on the current rayon pool.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn run_parallel(threads: usize, job: &(dyn Fn(usize) + Sync)) {
    rayon::scope(|s| {
        for t in 1..threads {
            s.spawn(move |_| job(t));
        }
        job(0);
    });
}

/// Runs `job(0..threads)` one after the other (no threads on wasm).
#[cfg(target_arch = "wasm32")]
pub(crate) fn run_parallel(threads: usize, job: &(dyn Fn(usize) + Sync)) {
    for t in 0..threads {
        job(t);
    }
}

impl<T> Clone for OutPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutPtr<T> {}

/// Calls `f(i, a_i, b_i)` for the i-th chunks of `a` and `b` (which split into the same number
/// of chunks): on the current rayon pool with `Parallelism::Threads`, in order otherwise and on wasm.
pub fn for_each_chunk_pair<A: Send, B: Send>(
    a: &mut [A],
    chunk_a: usize,
    b: &mut [B],
    chunk_b: usize,
    parallelism: Parallelism,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    if let Parallelism::Threads(2..) = parallelism {
        use rayon::prelude::*;
        a.par_chunks_mut(chunk_a)
            .zip(b.par_chunks_mut(chunk_b))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
        return;
    }
    let _ = parallelism;
    for (i, (x, y)) in a.chunks_mut(chunk_a).zip(b.chunks_mut(chunk_b)).enumerate() {
        f(i, x, y);
    }
}

/// Calls `f(i, chunk_i)` for consecutive chunks of `chunk` elements, like [`for_each_chunk_pair`].
pub fn for_each_chunk<A: Send>(
    data: &mut [A],
    chunk: usize,
    parallelism: Parallelism,
    f: impl Fn(usize, &mut [A]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    if let Parallelism::Threads(2..) = parallelism {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    let _ = parallelism;
    for (i, c) in data.chunks_mut(chunk).enumerate() {
        f(i, c);
    }
}
