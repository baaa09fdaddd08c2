//! `squint-edge bench`: the gateway's latency beside the native server, in one run. Every
//! server runs in this process on loopback (the cold-start check starts a real second process);
//! requests are real questions whose context fills one 384-token window.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use squint_cloud::loadtest::{self, LoadOptions, Report};
use squint_cloud::server::{load_models, serve, AppState, Backend, Limits as HttpLimits, ModelSpec};
use squint_cloud::wire::Version;
use squint_core::QaParams;
use squint_edge::pool::Pool;

use crate::{async_runtime, start_pool, GuestArgs};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// The INT8 model directory.
    #[arg(long, default_value = "models/minilm-l6-squad-int8")]
    int8: PathBuf,
    /// The FP32 model directory (the checkpoint the INT8 one was quantized from).
    #[arg(long)]
    fp32: PathBuf,
    /// Timed requests per measurement.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

const SENTENCES: [&str; 4] = [
    "The Amazon rainforest, also known in English as Amazonia or the Amazon Jungle, is a moist broadleaf forest that covers most of the Amazon basin of South America.",
    "This basin encompasses seven million square kilometres, of which five and a half million square kilometres are covered by the rainforest.",
    "The region includes territory belonging to nine nations, and the majority of the forest is contained within Brazil, with sixty percent of the rainforest.",
    "The rainforest likely formed during the Eocene era, following a global reduction of tropical temperatures when the Atlantic Ocean had widened sufficiently.",
];
const QUESTION: &str = "Which name is also used to describe the Amazon rainforest in English?";

/// The longest context (whole sentences) that still fits one window at the default settings.
fn one_window_context(pipeline: &squint_core::Pipeline) -> Result<String> {
    let params = QaParams::default();
    let mut context = String::new();
    for i in 0.. {
        let next = format!(
            "{context}{}{}",
            if i == 0 { "" } else { " " },
            SENTENCES[i % SENTENCES.len()]
        );
        let (_, windows) = pipeline.answer_counted(QUESTION, &next, &params)?;
        if windows > 1 {
            break;
        }
        context = next;
    }
    Ok(context)
}

fn body(context: &str, version: Version) -> String {
    json!({"inputs": {"question": QUESTION, "context": context}, "version": version.label()}).to_string()
}

/// A server on a loopback port over `backend`, stopped when the sender is dropped or fired.
struct Running {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start<B: Backend>(backend: B) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/invocations", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(HttpLimits::default());
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = serve(listener, state, move || Ok(backend), shutdown).await {
            tracing::error!(error = %e, "bench server");
        }
    });
    // Ready once /ping answers 200.
    let ping = url.replace("/invocations", "/ping");
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client
            .get(&ping)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(Running {
                url,
                stop: Some(stop),
                task,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the bench server at {url} never became ready")
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }
}

async fn load(url: &str, body: String, requests: usize, concurrency: usize) -> Result<Report> {
    let options = LoadOptions {
        url: url.to_string(),
        requests,
        concurrency,
        warmup: 2,
        timeout: Duration::from_secs(60),
    };
    let report = loadtest::run(&options, Arc::new(vec![body]), Arc::new(|_| {}))
        .await
        .map_err(anyhow::Error::msg)?;
    if report.ok != requests {
        bail!(
            "{url}: {} of {requests} requests failed: {:?}",
            requests - report.ok,
            report.errors
        );
    }
    Ok(report)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    loadtest::percentile(&v, 50.0)
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let dirs = vec![args.int8.clone(), args.fp32.clone()];
    let specs: Vec<ModelSpec> = dirs
        .iter()
        .map(|dir| ModelSpec {
            dir: dir.clone(),
            precision: None,
        })
        .collect();
    let rt = async_runtime()?;
    let mut rows: Vec<Value> = Vec::new();
    let mut table: Vec<String> = Vec::new();
    let mut record = |what: &str, version: Version, p50: f64, qps: f64, rows: &mut Vec<Value>| {
        table.push(format!("{what:<44} {:<5} {p50:>9.2} {qps:>8.2}", version.label()));
        rows.push(json!({"what": what, "version": version.label(), "p50_ms": p50, "qps": qps}));
    };

    // Native, one and two threads.
    let native = load_models(&specs, Some(1)).map_err(anyhow::Error::msg)?;
    let context = one_window_context(&native[0].pipeline)?;
    let tokenizer = native[0].pipeline.tokenizer();
    let tokens =
        tokenizer.encode_question(QUESTION)?.len() + tokenizer.encode_context(&context)?.ids.len() + 3;
    drop(native);
    for threads in [1, 2] {
        let models = load_models(&specs, Some(threads)).map_err(anyhow::Error::msg)?;
        rt.block_on(async {
            let server = start(models).await?;
            for version in [Version::Int8, Version::Fp32] {
                let r = load(&server.url, body(&context, version), args.requests, 1).await?;
                record(
                    &format!("native squint serve, {threads} thread(s), c=1"),
                    version,
                    r.p50_ms,
                    r.queries_per_second,
                    &mut rows,
                );
            }
            server.stop().await;
            anyhow::Ok(())
        })?;
    }

    // The gateway: one instance (HTTP and direct), then two instances with two clients.
    let mut overhead = None;
    for instances in [1, 2] {
        let pool = start_pool(&args.guest, &dirs, instances)?;
        // Every instance up before timing.
        let until = Instant::now() + Duration::from_secs(60);
        while pool.idle() < instances && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        if instances == 1 {
            for version in [Version::Int8, Version::Fp32] {
                let params = QaParams::default();
                let mut times = Vec::with_capacity(args.requests);
                for i in 0..args.requests + 2 {
                    let start = Instant::now();
                    pool.answer(version, QUESTION, &context, &params)
                        .map_err(|e| anyhow::anyhow!("direct call: {e}"))?;
                    if i >= 2 {
                        times.push(start.elapsed().as_secs_f64() * 1e3);
                    }
                }
                let p50 = median(times);
                record(
                    "edge, direct guest call (no HTTP), 1 instance",
                    version,
                    p50,
                    1e3 / p50,
                    &mut rows,
                );
            }
        }
        let kernel = pool.kernel().to_string();
        let direct = pool.clone();
        rt.block_on(async {
            let server = start(pool).await?;
            for version in [Version::Int8, Version::Fp32] {
                let r = load(&server.url, body(&context, version), args.requests, instances).await?;
                record(
                    &format!("edge gateway ({kernel}), {instances} instance(s), c={instances}"),
                    version,
                    r.p50_ms,
                    r.queries_per_second,
                    &mut rows,
                );
            }
            if instances == 1 {
                overhead = Some(paired_overhead(&server.url, direct).await?);
            }
            server.stop().await;
            anyhow::Ok(())
        })?;
    }

    // Cold start of a real process with the compiled component cached (the runs above cached it).
    let cold = cold_start(&args)?;

    println!("question + context: {tokens} tokens (one window at max_seq_len 384)");
    println!("{:<44} {:<5} {:>9} {:>8}", "server", "model", "P50 ms", "req/s");
    for line in &table {
        println!("{line}");
    }
    let overhead = overhead.context("the one-instance gateway was not measured")?;
    println!(
        "gateway overhead over a direct guest call (median of {OVERHEAD_PAIRS} alternated pairs, INT8, {:?}): {:.2} ms; GET /ping round trip {:.2} ms",
        SHORT.1, overhead.answer_ms, overhead.ping_ms
    );
    println!("cold start with cached .cwasm to first answer: {cold:.0} ms");
    if let Some(path) = &args.json {
        let out = json!({"tokens": tokens, "rows": rows, "overhead_ms": overhead.answer_ms,
            "ping_ms": overhead.ping_ms, "cold_start_ms": cold});
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A question and a one-sentence context (20 tokens): the inference is short, so the
/// timing noise of the guest call does not swamp the gateway's own cost.
const SHORT: (&str, &str) = (
    "What is Amazonia?",
    "Amazonia is the moist broadleaf forest of the Amazon basin.",
);

/// Pairs timed for the gateway's overhead (each pair is two short inferences).
const OVERHEAD_PAIRS: usize = 200;

/// The gateway's own cost, measured two ways on loopback.
struct Overhead {
    /// Median of (HTTP − direct guest call) over alternated pairs, so drift hits both.
    answer_ms: f64,
    /// Median round trip of `GET /ping`: the HTTP floor every request pays.
    ping_ms: f64,
}

/// Times a direct guest call and the same short question over HTTP, alternated, plus `/ping`.
async fn paired_overhead(url: &str, pool: Pool) -> Result<Overhead> {
    let client = reqwest::Client::new();
    let (question, context) = SHORT;
    let body = json!({"question": question, "context": context}).to_string();
    let ping_url = url.replace("/invocations", "/ping");
    let (mut diffs, mut pings) = (Vec::new(), Vec::new());
    for i in 0..OVERHEAD_PAIRS + 2 {
        let pool = pool.clone();
        let direct = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            pool.answer(Version::Int8, question, context, &QaParams::default())
                .map(|_| start.elapsed().as_secs_f64() * 1e3)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("direct call: {e}"))?;
        let start = Instant::now();
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{url}: {}", response.status());
        }
        response.bytes().await?;
        let http = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        client.get(&ping_url).send().await?.bytes().await?;
        let ping = start.elapsed().as_secs_f64() * 1e3;
        if i >= 2 {
            diffs.push(http - direct);
            pings.push(ping);
        }
    }
    Ok(Overhead {
        answer_ms: median(diffs),
        ping_ms: median(pings),
    })
}

/// Milliseconds from spawning `squint-edge serve` (one instance, INT8) to its first answer.
fn cold_start(args: &BenchArgs) -> Result<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe()?;
    let start = Instant::now();
    let mut child = std::process::Command::new(exe)
        .arg("serve")
        .args(["--bind", &format!("127.0.0.1:{port}"), "--instances", "1"])
        .arg("--component")
        .arg(args.guest.component())
        .arg("--cache")
        .arg(args.guest.cache())
        .arg("--model")
        .arg(&args.int8)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting squint-edge serve")?;
    let url = format!("http://127.0.0.1:{port}/invocations");
    let body = json!({"question": QUESTION, "context": SENTENCES[0]}).to_string();
    let answered = async_runtime()?.block_on(async {
        let client = reqwest::Client::new();
        while start.elapsed() < Duration::from_secs(60) {
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            if sent.is_ok_and(|r| r.status().is_success()) {
                return Some(start.elapsed().as_secs_f64() * 1e3);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    });
    let _ = child.kill();
    let _ = child.wait();
    answered.context("the gateway did not answer within 60 s")
}
