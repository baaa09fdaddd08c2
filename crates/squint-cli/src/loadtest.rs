//! `squint loadtest`: real SQuAD questions against a running `/invocations`, the reference
//! recipe's table (P50/P90/P99, queries/s, $ per 1M queries).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use squint_cloud::loadtest::{cost_per_million, percentile, run, LoadOptions, Report};
use squint_core::squad::read_squad;
use squint_core::{Pipeline, PipelineOptions, QaParams};

#[derive(Args, Debug)]
pub struct LoadtestArgs {
    /// Server URL: its /invocations, or the base URL (then /invocations is appended).
    #[arg(long)]
    url: String,
    /// Timed requests per concurrency level.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// Concurrent connections, comma-separated for several runs (e.g. 1,4).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    concurrency: Vec<usize>,
    /// SQuAD v1.1 JSON whose questions and contexts are sent, in order, cycled.
    #[arg(long)]
    data: PathBuf,
    /// Instance price in USD per hour, for $ per 1M queries. Default: EC2 c6i.2xlarge on-demand,
    /// Linux, us-east-1 ($0.34); pass your SageMaker instance's price.
    #[arg(long, default_value_t = 0.34)]
    price_per_hour: f64,
    /// Ask for this model (INT8 or FP32) when the server has both.
    #[arg(long)]
    version: Option<String>,
    /// Untimed requests first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Seconds before one request counts as failed.
    #[arg(long, default_value_t = 70)]
    timeout: u64,
    /// Also answer the same questions in this process with this model directory (sequentially,
    /// up to 300) and report the server's P50 overhead over it.
    #[arg(long)]
    in_process: Option<PathBuf>,
    /// Threads for --in-process (match the server's).
    #[arg(long)]
    threads: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run_cli(args: LoadtestArgs) -> Result<()> {
    if args.concurrency.contains(&0) || args.requests == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    if !args.price_per_hour.is_finite() || args.price_per_hour <= 0.0 {
        bail!("--price-per-hour must be positive");
    }
    let url = if args.url.trim_end_matches('/').ends_with("/invocations") {
        args.url.clone()
    } else {
        format!("{}/invocations", args.url.trim_end_matches('/'))
    };
    let bytes = std::fs::read(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let questions = read_squad(&args.data.display().to_string(), &bytes)?;
    let bodies: Vec<String> = questions
        .iter()
        .take(args.requests)
        .map(|q| {
            let mut body = json!({"question": q.question, "context": q.context});
            if let Some(v) = &args.version {
                body["version"] = json!(v);
            }
            body.to_string()
        })
        .collect();
    let bodies = Arc::new(bodies);
    let runtime = crate::async_runtime()?;
    let mut reports = Vec::new();
    for &concurrency in &args.concurrency {
        let options = LoadOptions {
            url: url.clone(),
            requests: args.requests,
            concurrency,
            warmup: args.warmup,
            timeout: Duration::from_secs(args.timeout),
        };
        let bar = ProgressBar::new(args.requests as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "concurrency {prefix} [{bar:30}] {pos}/{len} requests, {per_sec}, ETA {eta}",
            )
            .context("progress bar template")?
            .progress_chars("=> "),
        );
        bar.set_prefix(concurrency.to_string());
        let tick = bar.clone();
        let report = runtime
            .block_on(run(
                &options,
                bodies.clone(),
                Arc::new(move |done| tick.set_position(done as u64)),
            ))
            .map_err(anyhow::Error::msg)?;
        bar.finish_and_clear();
        reports.push(report);
    }
    let in_process = match &args.in_process {
        Some(dir) => Some(in_process_p50(
            dir,
            args.threads,
            &questions,
            args.requests.min(300),
        )?),
        None => None,
    };
    print(&reports, in_process, args.price_per_hour, args.json)
}

/// Median milliseconds of `Pipeline::answer` on the first `n` questions, after 3 warm-ups.
fn in_process_p50(
    dir: &std::path::Path,
    threads: Option<usize>,
    questions: &[squint_core::squad::Question],
    n: usize,
) -> Result<f64> {
    let options = PipelineOptions {
        threads,
        ..PipelineOptions::default()
    };
    let pipeline = Pipeline::from_dir(dir, options).with_context(|| format!("loading {}", dir.display()))?;
    let params = QaParams::default();
    let n = n.min(questions.len());
    for q in questions.iter().take(3) {
        pipeline.answer(&q.question, &q.context, &params)?;
    }
    let mut times = Vec::with_capacity(n);
    for q in questions.iter().take(n) {
        let start = Instant::now();
        pipeline.answer(&q.question, &q.context, &params)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(percentile(&times, 50.0))
}

fn print(reports: &[Report], in_process: Option<f64>, price: f64, as_json: bool) -> Result<()> {
    if as_json {
        let runs: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["usd_per_million_queries"] = json!(cost_per_million(price, r.queries_per_second));
                v["price_per_hour"] = json!(price);
                if let Some(p50) = in_process.filter(|_| r.concurrency == 1) {
                    v["in_process_p50_ms"] = json!(p50);
                    v["server_overhead_p50_ms"] = json!(r.p50_ms - p50);
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    println!(
        "{:>11} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>12}  errors",
        "concurrency", "requests", "P50 ms", "P90 ms", "P99 ms", "queries/s", "ok", "$ per 1M"
    );
    for r in reports {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        println!(
            "{:>11} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>8} {:>12.2}  {}",
            r.concurrency,
            r.requests,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.queries_per_second,
            r.ok,
            cost_per_million(price, r.queries_per_second),
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            }
        );
    }
    if let (Some(p50), Some(r)) = (in_process, reports.iter().find(|r| r.concurrency == 1)) {
        println!(
            "in-process P50 {p50:.2} ms on the same questions; server overhead at P50 {:.2} ms",
            r.p50_ms - p50
        );
    }
    println!("$ per 1M queries at ${price}/hour");
    Ok(())
}
