//! The wasmtime engine the gateway runs guests on, and the component compiled once: native
//! code is cached as a `.cwasm` file named by the component's sha256 and the engine's
//! compatibility hash (wasmtime version, settings and the CPU features it compiled for), so a
//! restart skips compilation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::EdgeError;

/// How often the epoch advances: the resolution of every guest deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Where the component's native code came from at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    /// A cached `.cwasm` was loaded.
    Cache,
    /// The component was compiled (and the result cached).
    Compiled,
}

/// The engine, the compiled component and the epoch ticker (stopped on drop).
#[derive(Debug)]
pub struct Runtime {
    engine: Engine,
    component: Component,
    source: CodeSource,
    cwasm: PathBuf,
    ticking: Arc<AtomicBool>,
}

/// The engine settings every instance runs with: epoch interruption for deadlines, SIMD and
/// relaxed SIMD for the INT8 kernels.
fn engine() -> Result<Engine, EdgeError> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_simd(true)
        .wasm_relaxed_simd(true)
        .epoch_interruption(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    // `SQUINT_EDGE_PROFILE=perfmap`: name guest functions for `perf record` / `perf report`.
    if std::env::var("SQUINT_EDGE_PROFILE").is_ok_and(|v| v == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Engine::new(&config).map_err(|e| EdgeError::Engine(format!("{e:#}")))
}

impl Runtime {
    /// Loads `wasm` (a component file), from the `.cwasm` cache in `cache_dir` when it holds a
    /// matching entry, compiling and caching it otherwise.
    pub fn load(wasm: &Path, cache_dir: &Path) -> Result<Runtime, EdgeError> {
        let engine = engine()?;
        let bytes = std::fs::read(wasm).map_err(|e| EdgeError::io(wasm, e))?;
        let cwasm = cache_dir.join(cache_name(&engine, &bytes));
        let start = Instant::now();
        let (component, source) = match load_cached(&engine, &cwasm) {
            Some(component) => (component, CodeSource::Cache),
            None => {
                let code = engine
                    .precompile_component(&bytes)
                    .map_err(|e| EdgeError::Engine(format!("compiling {}: {e:#}", wasm.display())))?;
                store_cached(cache_dir, &cwasm, &code)?;
                // Deserializing what was just compiled keeps one code path for both sources.
                let component = load_cached(&engine, &cwasm)
                    .ok_or_else(|| EdgeError::Engine(format!("{} did not load back", cwasm.display())))?;
                (component, CodeSource::Compiled)
            }
        };
        tracing::info!(
            source = ?source,
            cwasm = %cwasm.display(),
            ms = start.elapsed().as_millis() as u64,
            "component ready"
        );
        let ticking = Arc::new(AtomicBool::new(true));
        let ticker_engine = engine.clone();
        let running = ticking.clone();
        std::thread::Builder::new()
            .name("squint-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| EdgeError::Engine(format!("epoch thread: {e}")))?;
        Ok(Runtime {
            engine,
            component,
            source,
            cwasm,
            ticking,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn component(&self) -> &Component {
        &self.component
    }

    pub fn source(&self) -> CodeSource {
        self.source
    }

    /// The cache file this component's native code lives in.
    pub fn cwasm(&self) -> &Path {
        &self.cwasm
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

/// `<component sha256, 16 hex>-<arch>-<engine compatibility hash>.cwasm`.
fn cache_name(engine: &Engine, wasm: &[u8]) -> String {
    let digest = Sha256::digest(wasm);
    let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "{short}-{}-{:016x}.cwasm",
        std::env::consts::ARCH,
        hasher.finish()
    )
}

/// The `.sha256` file written beside a `.cwasm`.
fn digest_path(cwasm: &Path) -> PathBuf {
    cwasm.with_extension("cwasm.sha256")
}

/// The cached component, if the file is there, matches its recorded digest and deserializes.
fn load_cached(engine: &Engine, cwasm: &Path) -> Option<Component> {
    let code = std::fs::read(cwasm).ok()?;
    let recorded = std::fs::read_to_string(digest_path(cwasm)).ok()?;
    let actual: String = Sha256::digest(&code).iter().map(|b| format!("{b:02x}")).collect();
    if recorded.trim() != actual {
        tracing::warn!(cwasm = %cwasm.display(), "cached code does not match its digest: recompiling");
        return None;
    }
    // SAFETY: wasmtime runs these bytes as native code without checking them. They are the
    // output of `Engine::precompile_component` written by this process's code (`store_cached`),
    // named by the engine's compatibility hash, and their sha256 was just checked against the
    // digest written with them, so a truncated or altered file is refused above.
    match unsafe { Component::deserialize(engine, &code) } {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(cwasm = %cwasm.display(), error = %e, "cached code refused: recompiling");
            None
        }
    }
}

/// Writes the code and its digest, each through a temporary file renamed into place.
fn store_cached(cache_dir: &Path, cwasm: &Path, code: &[u8]) -> Result<(), EdgeError> {
    std::fs::create_dir_all(cache_dir).map_err(|e| EdgeError::io(cache_dir, e))?;
    let digest: String = Sha256::digest(code).iter().map(|b| format!("{b:02x}")).collect();
    for (path, bytes) in [
        (cwasm.to_path_buf(), code),
        (digest_path(cwasm), digest.as_bytes()),
    ] {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| EdgeError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| EdgeError::io(&path, e))?;
    }
    Ok(())
}
