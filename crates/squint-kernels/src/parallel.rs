//! Splitting a GEMM's columns across the caller's rayon pool (native) or running the parts
//! one after the other (wasm).

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

/// Calls `f(i, a_i, b_i)` for the i-th chunks of `a` and `b`, on up to `threads` threads of
/// the current rayon pool (native) or in order (wasm). Both split into the same number of chunks.
pub(crate) fn for_each_chunk_pair<A: Send, B: Send>(
    a: &mut [A],
    chunk_a: usize,
    b: &mut [B],
    chunk_b: usize,
    threads: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    if threads > 1 {
        use rayon::prelude::*;
        a.par_chunks_mut(chunk_a)
            .zip(b.par_chunks_mut(chunk_b))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
        return;
    }
    let _ = threads;
    for (i, (x, y)) in a.chunks_mut(chunk_a).zip(b.chunks_mut(chunk_b)).enumerate() {
        f(i, x, y);
    }
}
