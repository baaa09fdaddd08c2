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
