//! One sandboxed guest: a wasmtime store with a memory cap, no filesystem, network or
//! environment, its stderr captured, the models loaded inside it, and every call bounded by an
//! epoch deadline. A call that traps (deadline, memory cap, guest panic) leaves the instance
//! unusable; the pool replaces it.

use std::time::Duration;

use squint_cloud::wire::Version;
use wasmtime::component::{Linker, ResourceAny, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::exports::squint::qa::engine::{self as wit, ErrorKind};
use crate::bindings::Qa;
use crate::runtime::{Runtime, EPOCH_TICK};
use crate::{GuestFailure, ModelFiles};

/// How much a guest's stderr keeps (a panic message fits).
const STDERR_CAPACITY: usize = 64 * 1024;

/// Sandbox limits of each instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most linear memory an instance may grow to, in bytes.
    pub memory: usize,
    /// Longest one request may run inside the guest.
    pub deadline: Duration,
    /// Longest loading the models may take.
    pub load_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 1024 << 20,
            deadline: Duration::from_secs(30),
            load_deadline: Duration::from_secs(120),
        }
    }
}

/// Refuses memory growth past the cap and remembers that it did (to tell a cap from a crash).
#[derive(Debug)]
struct MemoryCap {
    cap: usize,
    peak: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The store's data: WASI with nothing granted, and the memory cap.
struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: MemoryCap,
    stderr: MemoryOutputPipe,
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A loaded model inside an instance.
#[derive(Debug, Clone)]
pub struct GuestModel {
    pub version: Version,
    pub precision: String,
    pub kernel: String,
    handle: ResourceAny,
}

/// One live guest with its models.
pub struct Instance {
    store: Store<Sandbox>,
    qa: Qa,
    models: Vec<GuestModel>,
    limits: Limits,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("models", &self.models)
            .field("memory_peak", &self.store.data().memory.peak)
            .finish()
    }
}

/// The wire `parameters` as the WIT record.
fn params(p: &squint_core::QaParams) -> wit::Params {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    wit::Params {
        top_k: n(p.top_k),
        max_answer_len: n(p.max_answer_len),
        max_seq_len: p.max_seq_len.map(n),
        doc_stride: p.doc_stride.map(n),
        max_question_len: n(p.max_question_len),
        handle_impossible_answer: p.handle_impossible_answer,
        align_to_words: p.align_to_words,
    }
}

impl Instance {
    /// Instantiates the component and loads every model into it (INT8 and FP32 must differ).
    pub fn start(runtime: &Runtime, files: &[ModelFiles], limits: Limits) -> Result<Instance, GuestFailure> {
        let mut linker: Linker<Sandbox> = Linker::new(runtime.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| GuestFailure::Internal(format!("linking WASI: {e:#}")))?;
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let sandbox = Sandbox {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                cap: limits.memory,
                peak: 0,
                refused: false,
            },
            stderr,
        };
        let mut store = Store::new(runtime.engine(), sandbox);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(limits.load_deadline));
        let qa = Qa::instantiate(&mut store, runtime.component(), &linker)
            .map_err(|e| GuestFailure::Internal(format!("instantiating the component: {e:#}")))?;
        let mut instance = Instance {
            store,
            qa,
            models: Vec::new(),
            limits,
        };
        for model in files {
            instance.load(model)?;
        }
        Ok(instance)
    }

    fn load(&mut self, files: &ModelFiles) -> Result<(), GuestFailure> {
        self.store.set_epoch_deadline(ticks(self.limits.load_deadline));
        let loaded = self
            .qa
            .squint_qa_engine()
            .model()
            .call_load(&mut self.store, &files.wit);
        let handle = self.settle(loaded, self.limits.load_deadline, &files.name)?;
        let info = self
            .qa
            .squint_qa_engine()
            .model()
            .call_info(&mut self.store, handle);
        let info = info.map_err(|e| self.trapped(e, self.limits.load_deadline))?;
        let version = if info.precision == "fp32" {
            Version::Fp32
        } else {
            Version::Int8
        };
        if self.models.iter().any(|m| m.version == version) {
            return Err(GuestFailure::Model(format!(
                "{} and another model are both {}: give one INT8 and one FP32 model",
                files.name,
                version.label()
            )));
        }
        self.models.push(GuestModel {
            version,
            precision: info.precision,
            kernel: info.kernel,
            handle,
        });
        Ok(())
    }

    /// The models loaded, default (first given) first.
    pub fn models(&self) -> &[GuestModel] {
        &self.models
    }

    /// Highest linear memory the guest has used, in bytes.
    pub fn memory_peak(&self) -> usize {
        self.store.data().memory.peak
    }

    fn handle(&self, version: Version) -> Result<ResourceAny, GuestFailure> {
        self.models
            .iter()
            .find(|m| m.version == version)
            .map(|m| m.handle)
            .ok_or_else(|| GuestFailure::Internal(format!("{} is not loaded", version.label())))
    }

    /// Answers one question on the model `version`, within the deadline.
    pub fn answer(
        &mut self,
        version: Version,
        question: &str,
        context: &str,
        p: &squint_core::QaParams,
    ) -> Result<(Vec<squint_core::Answer>, usize), GuestFailure> {
        let handle = self.handle(version)?;
        self.store.set_epoch_deadline(ticks(self.limits.deadline));
        let result = self.qa.squint_qa_engine().model().call_answer(
            &mut self.store,
            handle,
            question,
            context,
            params(p),
        );
        let found = self.settle(result, self.limits.deadline, "")?;
        let answers = found
            .best
            .into_iter()
            .map(|a| squint_core::Answer {
                score: a.score,
                start: a.start as usize,
                end: a.end as usize,
                answer: a.text,
            })
            .collect();
        Ok((answers, found.windows as usize))
    }

    /// Start and end logits of every window, concatenated (parity with native builds).
    pub fn logits(
        &mut self,
        version: Version,
        question: &str,
        context: &str,
        p: &squint_core::QaParams,
    ) -> Result<Vec<f32>, GuestFailure> {
        let handle = self.handle(version)?;
        self.store.set_epoch_deadline(ticks(self.limits.deadline));
        let result = self.qa.squint_qa_engine().model().call_logits(
            &mut self.store,
            handle,
            question,
            context,
            params(p),
        );
        self.settle(result, self.limits.deadline, "")
    }

    /// One encoder pass over `seq` synthetic tokens (benchmarks).
    pub fn forward(&mut self, version: Version, seq: usize) -> Result<(), GuestFailure> {
        let handle = self.handle(version)?;
        self.store.set_epoch_deadline(ticks(self.limits.deadline));
        let result = self.qa.squint_qa_engine().model().call_forward(
            &mut self.store,
            handle,
            u32::try_from(seq).unwrap_or(u32::MAX),
        );
        self.settle(result, self.limits.deadline, "")
    }

    /// The guest's INT8 kernels checked against the scalar reference inside wasmtime.
    pub fn self_test(&mut self, cases: u32, seed: u64) -> Result<Vec<String>, GuestFailure> {
        self.store.set_epoch_deadline(ticks(self.limits.load_deadline));
        let result = self
            .qa
            .squint_qa_engine()
            .call_self_test(&mut self.store, cases, seed);
        match result {
            Ok(Ok(kernels)) => Ok(kernels),
            Ok(Err(message)) => Err(GuestFailure::Internal(message)),
            Err(e) => Err(self.trapped(e, self.limits.load_deadline)),
        }
    }

    /// A guest call's outcome: its own error (the instance is fine) or a trap (it is not).
    fn settle<T>(
        &mut self,
        result: wasmtime::Result<Result<T, wit::Error>>,
        deadline: Duration,
        what: &str,
    ) -> Result<T, GuestFailure> {
        let at = if what.is_empty() {
            String::new()
        } else {
            format!("{what}: ")
        };
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(match e.kind {
                ErrorKind::Input => GuestFailure::Input(format!("{at}{}", e.message)),
                ErrorKind::Model => GuestFailure::Model(format!("{at}{}", e.message)),
                ErrorKind::Internal => GuestFailure::Internal(format!("{at}{}", e.message)),
            }),
            Err(e) => Err(self.trapped(e, deadline)),
        }
    }

    /// Classifies a trap: the deadline, the memory cap, or a crash (with the guest's stderr).
    fn trapped(&mut self, error: wasmtime::Error, deadline: Duration) -> GuestFailure {
        if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            return GuestFailure::Deadline(deadline);
        }
        if self.store.data().memory.refused {
            return GuestFailure::MemoryCap(self.limits.memory);
        }
        let stderr = self.store.data().stderr.contents();
        let said = String::from_utf8_lossy(&stderr);
        let said = said.trim();
        GuestFailure::Trap(if said.is_empty() {
            format!("{error:#}")
        } else {
            format!("{error:#}; the guest said: {said}")
        })
    }
}

/// Epoch ticks covering `d` (at least one).
fn ticks(d: Duration) -> u64 {
    (d.as_micros() / EPOCH_TICK.as_micros()).max(1) as u64 + 1
}
