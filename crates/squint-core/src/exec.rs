//! Threading boundary: a rayon pool of a chosen size on native hosts, the calling thread on
//! wasm. The encoder only ever asks this module for parallel loops.

use squint_kernels::Parallelism;

#[cfg(not(target_arch = "wasm32"))]
use crate::error::Error;
use crate::error::Result;

/// Where a forward pass runs.
#[derive(Debug)]
pub struct Executor {
    threads: usize,
    #[cfg(not(target_arch = "wasm32"))]
    pool: rayon::ThreadPool,
}

impl Executor {
    /// A pool of `threads` threads (`None`: all available cores).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(threads: Option<usize>) -> Result<Executor> {
        let threads = match threads {
            Some(0) => return Err(Error::parameter("threads", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("squint-{i}"))
            .build()
            .map_err(|e| Error::Threads(e.to_string()))?;
        Ok(Executor { threads, pool })
    }

    /// wasm hosts run on the calling thread.
    #[cfg(target_arch = "wasm32")]
    pub fn new(_threads: Option<usize>) -> Result<Executor> {
        Ok(Executor { threads: 1 })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// What to tell a kernel that may split its own work.
    pub fn parallelism(&self) -> Parallelism {
        if self.threads > 1 {
            Parallelism::Threads(self.threads)
        } else {
            Parallelism::Sequential
        }
    }

    /// Runs `f` with this executor's threads available to the parallel loops below.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.pool.install(f)
        }
        #[cfg(target_arch = "wasm32")]
        {
            f()
        }
    }
}

/// Calls `f(i, chunk_a_i, chunk_b_i)` for the i-th chunks of `a` and `b`, in parallel inside
/// [`Executor::run`]. Both slices must split into the same number of chunks.
pub fn for_each_chunk_pair<A: Send, B: Send>(
    a: &mut [A],
    chunk_a: usize,
    b: &mut [B],
    chunk_b: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(chunk_a)
            .zip(b.par_chunks_mut(chunk_b))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
    #[cfg(target_arch = "wasm32")]
    {
        for (i, (x, y)) in a.chunks_mut(chunk_a).zip(b.chunks_mut(chunk_b)).enumerate() {
            f(i, x, y);
        }
    }
}

/// Calls `f(i, chunk_i)` for consecutive chunks of `rows_per_chunk · row_len` elements.
pub fn for_each_rows(
    data: &mut [f32],
    row_len: usize,
    rows_per_chunk: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let chunk = (row_len * rows_per_chunk).max(1);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
    #[cfg(target_arch = "wasm32")]
    {
        for (i, c) in data.chunks_mut(chunk).enumerate() {
            f(i, c);
        }
    }
}
