//! `squint-edge`: the edge gateway. `serve` answers the cloud's wire API from sandboxed
//! wasmtime instances; `bench` times it beside the native server in one run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use squint_cloud::server::{serve, shutdown_signal, AppState, Limits as HttpLimits, DEFAULT_MAX_PAYLOAD_MB};
use squint_edge::instance::Limits;
use squint_edge::pool::Pool;
use squint_edge::runtime::Runtime;
use squint_edge::ModelFiles;

mod bench;

#[derive(Parser, Debug)]
#[command(
    name = "squint-edge",
    version,
    about = "squint's edge gateway: question answering in sandboxed WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve /ping and /invocations (the cloud's wire API) from a pool of wasm instances.
    Serve(ServeArgs),
    /// Time the gateway (1 and 2 instances, INT8 and FP32) beside the native server.
    Bench(bench::BenchArgs),
}

/// Where the guest and its compiled code live, and the sandbox's limits.
#[derive(Args, Debug, Clone)]
pub struct GuestArgs {
    /// The squint:qa component (edge/build.sh builds it). Default: $SQUINT_EDGE_COMPONENT, else
    /// target/edge/squint-qa-simd128.wasm.
    #[arg(long, env = "SQUINT_EDGE_COMPONENT")]
    component: Option<PathBuf>,
    /// Where compiled components (.cwasm) are cached. Default: $XDG_CACHE_HOME/squint-edge or
    /// ~/.cache/squint-edge.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Linear memory each instance may use, in MiB.
    #[arg(long, default_value_t = 1024)]
    memory_mb: usize,
    /// Longest one question may run inside an instance, in milliseconds (then 504).
    #[arg(long, default_value_t = 30_000)]
    deadline_ms: u64,
}

impl GuestArgs {
    fn component(&self) -> PathBuf {
        self.component
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/edge/squint-qa-simd128.wasm"))
    }

    fn cache(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("squint-edge")
        })
    }

    fn limits(&self) -> Result<Limits> {
        if self.memory_mb < 16 || self.memory_mb > 4096 {
            bail!("--memory-mb must be between 16 and 4096 (wasm32 memory is at most 4 GiB)");
        }
        if self.deadline_ms == 0 {
            bail!("--deadline-ms must be at least 1");
        }
        Ok(Limits {
            memory: self.memory_mb << 20,
            deadline: Duration::from_millis(self.deadline_ms),
            ..Limits::default()
        })
    }

    /// Compiles (or loads from the cache) the component.
    fn runtime(&self) -> Result<Runtime> {
        let component = self.component();
        if !component.is_file() {
            bail!(
                "no component at {}: build it with edge/build.sh or give --component",
                component.display()
            );
        }
        Runtime::load(&component, &self.cache()).map_err(anyhow::Error::from)
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Model directory; give it twice to serve one INT8 and one FP32 model (requests choose with
    /// "version"; the first is the default). Default: $SQUINT_MODEL_DIR, else the bundled
    /// models/minilm-l6-squad-int8.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// Pull the model from this S3 prefix (s3://bucket/prefix/) into --model (or the cache's
    /// model/ directory) at start; files already there and matching the manifest are kept.
    #[arg(long, env = "SQUINT_MODEL_S3_URI")]
    model_s3: Option<String>,
    /// Sandboxed instances (requests answered at once). Default: the number of cores.
    #[arg(long)]
    instances: Option<usize>,
    /// Requests waiting or running at once; more get 503.
    #[arg(long, default_value_t = 32)]
    queue: usize,
    /// Largest request body in MB.
    #[arg(long, default_value_t = DEFAULT_MAX_PAYLOAD_MB)]
    max_payload_mb: usize,
}

fn async_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Reads every model directory, then starts the pool.
fn start_pool(guest: &GuestArgs, dirs: &[PathBuf], instances: usize) -> Result<Pool> {
    let limits = guest.limits()?;
    let runtime = guest.runtime()?;
    let files = dirs
        .iter()
        .map(|dir| ModelFiles::read(dir))
        .collect::<Result<Vec<_>, _>>()?;
    Pool::start(runtime, files, limits, instances).map_err(anyhow::Error::from)
}

fn run_serve(args: ServeArgs) -> Result<()> {
    let mut dirs = args.model.clone();
    if dirs.is_empty() {
        dirs.push(match std::env::var_os("SQUINT_MODEL_DIR") {
            Some(dir) => PathBuf::from(dir),
            None if args.model_s3.is_some() => args.guest.cache().join("model"),
            None => PathBuf::from("models/minilm-l6-squad-int8"),
        });
    }
    if dirs.len() > 2 {
        bail!("at most two --model (one INT8, one FP32)");
    }
    if args.queue == 0 || args.max_payload_mb == 0 {
        bail!("--queue and --max-payload-mb must be at least 1");
    }
    if args.instances == Some(0) {
        bail!("--instances must be at least 1");
    }
    args.guest.limits()?;
    let instances = args.instances.unwrap_or_else(cores);
    let state = AppState::new(HttpLimits {
        max_payload: args.max_payload_mb << 20,
        queue: args.queue,
    });
    let rt = async_runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("binding {}", args.bind))?;
        tracing::info!(address = %listener.local_addr()?, instances, "listening");
        let handle = tokio::runtime::Handle::current();
        let guest = args.guest.clone();
        let s3 = args.model_s3.clone();
        let load = move || -> Result<Pool, String> {
            if let Some(uri) = s3 {
                handle
                    .block_on(squint_cloud::artifacts::pull_model(&uri, &dirs[0]))
                    .map_err(|e| format!("pulling {uri}: {e}"))?;
            }
            let pool = start_pool(&guest, &dirs, instances).map_err(|e| format!("{e:#}"))?;
            tracing::info!(kernel = pool.kernel(), instances = pool.size(), "sandbox pool up");
            Ok(pool)
        };
        serve(listener, state, load, shutdown_signal())
            .await
            .map_err(anyhow::Error::msg)
    })
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => run_serve(args),
        Command::Bench(args) => bench::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
