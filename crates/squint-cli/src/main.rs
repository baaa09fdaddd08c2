//! `squint`: extractive question answering with BERT. This binary only parses flags and wires
//! squint-core together; every behaviour a test would want lives in the libraries.

mod artifacts;
mod ask;
mod bench;
mod eval;
mod loadtest;
mod logits;
mod quantize;
mod serve;
mod web;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "squint",
    version,
    about = "Answer questions about a text with BERT, fast, on CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Move model directories to and from S3 (model.tar.gz + manifest.json).
    Artifacts(artifacts::ArtifactsArgs),
    /// Answer a question about a context.
    Ask(ask::AskArgs),
    /// Time the encoder on synthetic inputs of exact lengths.
    Bench(bench::BenchArgs),
    /// SQuAD v1.1 exact match and F1 of a model, or of two compared.
    Eval(eval::EvalArgs),
    /// Raw start/end logits of SQuAD questions (bit-exact JSON Lines, for cross-host parity).
    Logits(logits::LogitsArgs),
    /// Load-test a running server with real questions: P50/P90/P99, queries/s, $ per 1M.
    Loadtest(loadtest::LoadtestArgs),
    /// Make an INT8 model directory from an FP32 checkpoint.
    Quantize(quantize::QuantizeArgs),
    /// Serve the SageMaker container contract (/ping, /invocations) over HTTP.
    Serve(serve::ServeArgs),
    /// Serve the browser demo and model files on loopback (inference runs in the page).
    Web(web::WebArgs),
}

/// The model used when none is given: the INT8 MiniLM committed in the repository.
pub fn default_model() -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/minilm-l6-squad-int8"
    ));
    if dir.join("config.json").is_file() {
        Ok(dir)
    } else {
        anyhow::bail!(
            "no --model given, $SQUINT_MODEL_DIR is unset, and the bundled model is not at {}",
            dir.display()
        )
    }
}

/// `--precision` for `models` models: none (each as stored), one for all, or one per model.
pub fn precisions_for(
    names: &[String],
    models: usize,
) -> anyhow::Result<Vec<Option<squint_core::Precision>>> {
    use anyhow::Context;
    let parse = |p: &String| {
        squint_core::Precision::parse(p)
            .map(Some)
            .with_context(|| format!("unknown --precision {p:?} (fp32, int8-dynamic, int8-static)"))
    };
    match names {
        [] => Ok(vec![None; models]),
        [one] => Ok(vec![parse(one)?; models]),
        many if many.len() == models => many.iter().map(parse).collect(),
        many => anyhow::bail!("--precision has {} values for {models} model(s)", many.len()),
    }
}

/// The async runtime of the network commands (serve, loadtest, artifacts): two workers, since
/// the heavy work runs on the inference pool, not here.
pub fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Artifacts(args) => artifacts::run(args),
        Command::Ask(args) => ask::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Loadtest(args) => loadtest::run_cli(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Logits(args) => logits::run(args),
        Command::Web(args) => web::run(args),
    };
    if let Err(e) = result {
        eprintln!("squint: error: {e:#}");
        std::process::exit(1);
    }
}
