//! `squint serve`: the SageMaker container's server (`docker run IMAGE serve`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use squint_cloud::artifacts::pull_model;
use squint_cloud::server::{
    load_models, serve, shutdown_signal, AppState, Limits, ModelSpec, DEFAULT_MAX_PAYLOAD_MB,
};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on. Default: 0.0.0.0 on $SAGEMAKER_BIND_TO_PORT, else 8080.
    #[arg(long)]
    bind: Option<SocketAddr>,
    /// Model directory; give it twice to serve one INT8 and one FP32 model (requests choose with
    /// "version"; the first is the default). Default: $SQUINT_MODEL_DIR, else /opt/ml/model.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// Precision of every model (fp32, int8-dynamic, int8-static), or one per --model,
    /// comma-separated. Default: $SQUINT_PRECISION, else as stored.
    #[arg(long, env = "SQUINT_PRECISION", value_delimiter = ',')]
    precision: Vec<String>,
    /// Inference threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Requests waiting or running at once; more get 503.
    #[arg(long, default_value_t = 32)]
    queue: usize,
    /// Largest request body in MB. Default: $SAGEMAKER_MAX_PAYLOAD_IN_MB, else 6.
    #[arg(long, env = "SAGEMAKER_MAX_PAYLOAD_IN_MB")]
    max_payload_mb: Option<usize>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let bind = match args.bind {
        Some(addr) => addr,
        None => {
            let port = match std::env::var("SAGEMAKER_BIND_TO_PORT") {
                Ok(p) => p
                    .parse::<u16>()
                    .with_context(|| format!("SAGEMAKER_BIND_TO_PORT={p:?} is not a port"))?,
                Err(_) => 8080,
            };
            SocketAddr::from(([0, 0, 0, 0], port))
        }
    };
    let dirs = if args.model.is_empty() {
        vec![std::env::var_os("SQUINT_MODEL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/ml/model"))]
    } else {
        args.model.clone()
    };
    if dirs.len() > 2 {
        bail!("at most two --model (one INT8, one FP32)");
    }
    let precisions = crate::precisions_for(&args.precision, dirs.len())?;
    if args.queue == 0 {
        bail!("--queue must be at least 1");
    }
    let mb = args.max_payload_mb.unwrap_or(DEFAULT_MAX_PAYLOAD_MB);
    if mb == 0 {
        bail!("the payload limit must be at least 1 MB");
    }
    let specs: Vec<ModelSpec> = dirs
        .into_iter()
        .zip(precisions)
        .map(|(dir, precision)| ModelSpec { dir, precision })
        .collect();
    let threads = args.threads;
    let state = AppState::new(Limits {
        max_payload: mb * 1024 * 1024,
        queue: args.queue,
    });
    let runtime = crate::async_runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("binding {bind}"))?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        let handle = tokio::runtime::Handle::current();
        let load = move || {
            // SQUINT_MODEL_S3_URI: fill an empty model directory from S3 first.
            if let Ok(uri) = std::env::var("SQUINT_MODEL_S3_URI") {
                let dir = &specs[0].dir;
                if !dir.join("config.json").is_file() {
                    handle
                        .block_on(pull_model(&uri, dir))
                        .map_err(|e| format!("pulling {uri}: {e}"))?;
                }
            }
            load_models(&specs, threads)
        };
        serve(listener, state, load, shutdown_signal())
            .await
            .map_err(anyhow::Error::msg)
    })
}
