//! Where a forward pass runs: a rayon pool of a chosen size on native hosts, the calling thread
//! on wasm. Parallel loops themselves go through `squint_kernels::parallel`, inside
//! [`Executor::run`].

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
