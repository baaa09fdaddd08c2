//! A pool of sandboxed instances, one per core by default, as the HTTP server's backend. A
//! request takes an idle instance; an instance that trapped is dropped and a replacement is
//! built on a background thread while the others keep serving.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use squint_cloud::server::{Backend, Failure};
use squint_cloud::wire::Version;
use squint_core::{Answer, Precision, QaParams};

use crate::instance::{Instance, Limits};
use crate::runtime::Runtime;
use crate::{EdgeError, GuestFailure, ModelFiles};

struct Shared {
    runtime: Runtime,
    files: Vec<ModelFiles>,
    limits: Limits,
    size: usize,
    idle: Mutex<Vec<Instance>>,
    returned: Condvar,
    /// Instances replaced after a trap.
    replaced: AtomicUsize,
}

/// The instances and what they serve.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
    models: Vec<(Version, &'static str)>,
    kernel: String,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("size", &self.shared.size)
            .field("models", &self.models)
            .field("kernel", &self.kernel)
            .finish()
    }
}

/// The `&'static` name of a precision a guest reported.
fn precision_name(name: &str) -> &'static str {
    [Precision::Fp32, Precision::Int8Static, Precision::Int8Dynamic]
        .into_iter()
        .map(Precision::name)
        .find(|n| *n == name)
        .unwrap_or("unknown")
}

impl Pool {
    /// Starts `size` instances in parallel and returns once the first has its models loaded
    /// (the rest join as they finish); a model refused by the first instance is an error.
    pub fn start(
        runtime: Runtime,
        files: Vec<ModelFiles>,
        limits: Limits,
        size: usize,
    ) -> Result<Pool, EdgeError> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            runtime,
            files,
            limits,
            size,
            idle: Mutex::new(Vec::with_capacity(size)),
            returned: Condvar::new(),
            replaced: AtomicUsize::new(0),
        });
        let (done, first) = mpsc::channel();
        for n in 0..size {
            let shared = shared.clone();
            let done = done.clone();
            std::thread::Builder::new()
                .name(format!("squint-instance-{n}"))
                .spawn(move || {
                    let built = build(&shared, n);
                    let summary = built.as_ref().map(|i| describe(i)).map_err(Clone::clone);
                    if let Ok(instance) = built {
                        shared.give_back(instance);
                    }
                    let _ = done.send(summary);
                })
                .map_err(|e| EdgeError::Engine(format!("instance thread: {e}")))?;
        }
        drop(done);
        let (models, kernel) = first
            .recv()
            .map_err(|_| EdgeError::Engine("every instance thread ended without a result".into()))??;
        Ok(Pool {
            shared,
            models,
            kernel,
        })
    }

    /// How many instances the pool runs.
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// The INT8 kernel the guests run (`simd128`, `relaxed-simd`).
    pub fn kernel(&self) -> &str {
        &self.kernel
    }

    /// Instances replaced after a trap since start.
    pub fn replaced(&self) -> usize {
        self.shared.replaced.load(Ordering::SeqCst)
    }

    /// Instances idle right now.
    pub fn idle(&self) -> usize {
        self.shared.idle.lock().map(|idle| idle.len()).unwrap_or(0)
    }

    /// Runs `call` on an idle instance (waiting for one if all are busy); an instance the
    /// call left trapped is replaced in the background.
    pub fn with_instance<T>(
        &self,
        call: impl FnOnce(&mut Instance) -> Result<T, GuestFailure>,
    ) -> Result<T, GuestFailure> {
        let mut instance = self.shared.take()?;
        let result = call(&mut instance);
        match &result {
            Err(failure) if !failure.instance_survives() => {
                tracing::warn!(error = %failure, "instance lost: replacing it");
                drop(instance);
                self.shared.replaced.fetch_add(1, Ordering::SeqCst);
                let shared = self.shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("squint-instance-replace".into())
                    .spawn(move || replace(&shared));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "could not start a replacement instance");
                }
            }
            _ => self.shared.give_back(instance),
        }
        result
    }
}

impl Shared {
    fn give_back(&self, instance: Instance) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(instance);
        }
        self.returned.notify_one();
    }

    /// An idle instance, waiting for one as long as building a replacement may take.
    fn take(&self) -> Result<Instance, GuestFailure> {
        let until = Instant::now() + self.limits.load_deadline;
        let mut idle = self
            .idle
            .lock()
            .map_err(|_| GuestFailure::Internal("instance pool lock poisoned".into()))?;
        loop {
            if let Some(instance) = idle.pop() {
                return Ok(instance);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(GuestFailure::Internal(
                    "no sandbox instance became free in time (replacements keep failing?)".into(),
                ));
            }
            idle = self
                .returned
                .wait_timeout(idle, left)
                .map_err(|_| GuestFailure::Internal("instance pool lock poisoned".into()))?
                .0;
        }
    }
}

fn build(shared: &Shared, n: usize) -> Result<Instance, GuestFailure> {
    let start = Instant::now();
    let instance = Instance::start(&shared.runtime, &shared.files, shared.limits)?;
    tracing::info!(
        instance = n,
        ms = start.elapsed().as_millis() as u64,
        memory_mib = instance.memory_peak() >> 20,
        "instance ready"
    );
    Ok(instance)
}

/// Builds a replacement, retrying with a growing pause (the files loaded before, so a failure
/// here is transient: memory pressure, say).
fn replace(shared: &Shared) {
    let mut pause = Duration::from_millis(100);
    for attempt in 1..=10 {
        match build(shared, shared.size + attempt) {
            Ok(instance) => return shared.give_back(instance),
            Err(e) => {
                tracing::error!(attempt, error = %e, "replacement instance failed");
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// What an instance serves: its models' versions and formats, and its kernel.
fn describe(instance: &Instance) -> (Vec<(Version, &'static str)>, String) {
    let models = instance
        .models()
        .iter()
        .map(|m| (m.version, precision_name(&m.precision)))
        .collect();
    let kernel = instance
        .models()
        .first()
        .map(|m| m.kernel.clone())
        .unwrap_or_default();
    (models, kernel)
}

impl Backend for Pool {
    fn models(&self) -> Vec<(Version, &'static str)> {
        self.models.clone()
    }

    fn concurrency(&self) -> usize {
        self.shared.size
    }

    fn answer(
        &self,
        version: Version,
        question: &str,
        context: &str,
        params: &QaParams,
    ) -> Result<(Vec<Answer>, usize), Failure> {
        self.with_instance(|instance| instance.answer(version, question, context, params))
            .map_err(|e| match e {
                GuestFailure::Input(m) => Failure::BadInput(m),
                GuestFailure::Deadline(_) => Failure::Deadline(format!(
                    "{e}: the sandbox instance was replaced (the limit is --deadline-ms)"
                )),
                GuestFailure::MemoryCap(_) => Failure::TooLarge(format!(
                    "{e}: send a shorter context (the limit is --memory-mb); the instance was replaced"
                )),
                GuestFailure::Trap(_) => Failure::Internal(format!("{e}; the instance was replaced")),
                GuestFailure::Model(m) | GuestFailure::Internal(m) => Failure::Internal(m),
            })
    }
}
