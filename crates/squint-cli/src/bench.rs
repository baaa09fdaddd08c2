//! `squint bench`: encoder + QA head latency on synthetic inputs of exact lengths, so numbers
//! compare with other engines timed the same way (../shared/anchors).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use squint_core::quant::WeightBits;
use squint_core::{Batch, Bert, BertConfig, Executor, ModelFiles, Precision, Workspace};
use squint_kernels::attention::Numerics;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model directory to time (its weights and shape).
    #[arg(long, conflicts_with = "shape", required_unless_present = "shape")]
    model: Option<PathBuf>,
    /// A standard shape with random weights: bert-base, bert-large, minilm-l6.
    #[arg(long)]
    shape: Option<String>,
    /// Sequence lengths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "128,384")]
    seq: Vec<usize>,
    /// Sequences per forward pass, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    batch: Vec<usize>,
    /// Thread counts, comma-separated (default: all cores).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Timed iterations per configuration.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed warm-up iterations per configuration.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Linear-layer arithmetics to time, comma-separated: fp32, int8-dynamic, int8-static.
    /// Default: the model as stored (--model), fp32 (--shape).
    #[arg(long, value_delimiter = ',')]
    precision: Vec<String>,
    /// Attention's products for INT8 models built in memory (random --shape weights,
    /// --precision int8-dynamic): int16 (default) or int8. Artifacts use their metadata's.
    #[arg(long)]
    attention: Option<String>,
    /// Weight grid of INT8 --shape models: 8 (default) or 7 (AVX2's one-instruction path).
    #[arg(long, default_value = "8")]
    weight_bits: String,
    /// Time the linear layers' GEMMs alone (shapes of --shape, M = each --seq) and print GOP/s.
    #[arg(long)]
    gemm: bool,
}

#[derive(Serialize, Debug)]
struct Measurement {
    precision: &'static str,
    /// How attention's products were computed (f32, int16, int8).
    attention: &'static str,
    seq: usize,
    batch: usize,
    threads: usize,
    median_ms: f64,
    p90_ms: f64,
    min_ms: f64,
    /// Matmul FLOPs (or integer ops for INT8) per second.
    gflops: f64,
}

#[derive(Serialize, Debug)]
struct Report {
    model: String,
    kernel: &'static str,
    iters: usize,
    results: Vec<Measurement>,
}

/// Matmul FLOPs of one forward pass (a multiply-add counts 2), as ../shared/anchors counts them.
fn flops(c: &BertConfig, batch: usize, seq: usize) -> f64 {
    let (l, h, i) = (seq as f64, c.hidden_size as f64, c.intermediate_size as f64);
    let per_layer = 8.0 * l * h * h + 4.0 * l * h * i + 4.0 * l * l * h;
    per_layer * c.num_hidden_layers as f64 * batch as f64
}

fn load(args: &BenchArgs, precision: Option<Precision>) -> Result<(String, Bert)> {
    let label = precision.map_or("as stored", Precision::name);
    let spinner = ProgressBar::new_spinner().with_message(format!("loading model ({label})"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let bits = WeightBits::parse(&args.weight_bits)
        .with_context(|| format!("unknown --weight-bits {:?} (8, 7)", args.weight_bits))?;
    let loaded = if let Some(dir) = &args.model {
        if bits != WeightBits::Eight {
            bail!("--weight-bits is for --shape models; quantize a checkpoint with `squint quantize --weight-bits`");
        }
        let files = ModelFiles::from_dir(dir)?;
        let config = BertConfig::from_json(&files.config, "config.json")?;
        let model = squint_core::pipeline::load_model_as(&config, &files.weights, precision)?;
        (dir.display().to_string(), model)
    } else {
        let name = args.shape.as_deref().unwrap_or("bert-base");
        let config = BertConfig::shape(name)
            .with_context(|| format!("unknown --shape {name:?} (bert-base, bert-large, minilm-l6)"))?;
        let model = squint_core::random::random_model_with(&config, 42, precision.unwrap_or_default(), bits)?;
        (format!("{name} (random weights)"), model)
    };
    spinner.finish_and_clear();
    let Some(name) = &args.attention else {
        return Ok(loaded);
    };
    let numerics = Numerics::parse(name)
        .filter(|n| *n != Numerics::F32)
        .with_context(|| format!("unknown --attention {name:?} (int16, int8)"))?;
    let (label, model) = loaded;
    let in_memory = args.shape.is_some() || precision == Some(Precision::Int8Dynamic);
    match model.precision() {
        Precision::Fp32 => Ok((label, model)),
        _ if in_memory => Ok((label, model.with_attention(numerics)?)),
        _ => bail!(
            "--attention is for INT8 models built in memory; {label} computes attention as its metadata says"
        ),
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    if args.gemm {
        return run_gemm(&args);
    }
    if args.batch.contains(&0) {
        bail!("--batch must be at least 1");
    }
    let mut precisions = args
        .precision
        .iter()
        .map(|p| {
            Precision::parse(p)
                .map(Some)
                .with_context(|| format!("unknown --precision {p:?} (fp32, int8-dynamic, int8-static)"))
        })
        .collect::<Result<Vec<_>>>()?;
    if precisions.is_empty() {
        precisions.push(None);
    }
    let threads = if args.threads.is_empty() {
        vec![std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)]
    } else {
        args.threads.clone()
    };
    let configs = args.seq.len() * args.batch.len() * threads.len() * precisions.len();
    let bar = ProgressBar::new((configs * (args.iters + args.warmup)) as u64).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} forward passes {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results = Vec::new();
    let mut ws = Workspace::default();
    let mut model_name = String::new();
    for &precision in &precisions {
        let (name, model) = load(&args, precision)?;
        let precision = model.precision();
        let config = model.config().clone();
        if !model.has_qa_head() {
            bail!("{name} has no QA head (qa_outputs); bench times encoder + QA head");
        }
        if let Some(s) = args
            .seq
            .iter()
            .find(|&&s| s == 0 || s > config.max_position_embeddings)
        {
            bail!("--seq {s} is outside 1..={}", config.max_position_embeddings);
        }
        model_name = name;
        for &t in &threads {
            let exec = Executor::new(Some(t))?;
            for &seq in &args.seq {
                for &batch in &args.batch {
                    bar.set_message(format!(
                        "{} seq {seq} batch {batch} threads {t}",
                        precision.name()
                    ));
                    // Deterministic token ids of exactly `seq` tokens, question/context types.
                    let ids: Vec<u32> = (0..batch * seq)
                        .map(|i| ((1000 + i * 7919) % config.vocab_size) as u32)
                        .collect();
                    let types: Vec<u32> = (0..batch * seq).map(|i| ((i % seq) >= seq / 4) as u32).collect();
                    let lengths = vec![seq; batch];
                    let input = Batch {
                        ids: &ids,
                        types: &types,
                        lengths: &lengths,
                        seq_len: seq,
                    };
                    let mut times = Vec::with_capacity(args.iters);
                    for i in 0..args.warmup + args.iters {
                        let start = Instant::now();
                        let logits = model.qa_logits(&input, &mut ws, &exec)?;
                        let elapsed = start.elapsed().as_secs_f64() * 1e3;
                        std::hint::black_box(logits);
                        if i >= args.warmup {
                            times.push(elapsed);
                        }
                        bar.inc(1);
                    }
                    times.sort_by(f64::total_cmp);
                    let median = times[times.len() / 2];
                    results.push(Measurement {
                        precision: precision.name(),
                        attention: model.attention_numerics().name(),
                        seq,
                        batch,
                        threads: t,
                        median_ms: median,
                        p90_ms: times[((times.len() * 9) / 10).min(times.len() - 1)],
                        min_ms: times[0],
                        gflops: flops(&config, batch, seq) / (median * 1e6),
                    });
                }
            }
        }
    }
    bar.finish_and_clear();
    let report = Report {
        model: model_name,
        kernel: squint_kernels::isa().name(),
        iters: args.iters,
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "model: {}  kernel: {}  iters: {}",
            report.model, report.kernel, report.iters
        );
        println!(
            "{:>13} {:>9} {:>5} {:>5} {:>7} {:>10} {:>10} {:>10} {:>8}",
            "precision", "attention", "seq", "batch", "threads", "median ms", "p90 ms", "min ms", "G(FL)OP/s"
        );
        for m in &report.results {
            println!(
                "{:>13} {:>9} {:>5} {:>5} {:>7} {:>10.2} {:>10.2} {:>10.2} {:>8.1}",
                m.precision,
                m.attention,
                m.seq,
                m.batch,
                m.threads,
                m.median_ms,
                m.p90_ms,
                m.min_ms,
                m.gflops
            );
        }
    }
    Ok(())
}

/// The GEMMs of one encoder layer, `(name, k, n)`.
fn layer_gemms(c: &BertConfig) -> [(&'static str, usize, usize); 4] {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    [
        ("qkv", h, 3 * h),
        ("attention out", h, h),
        ("ffn in", h, i),
        ("ffn out", i, h),
    ]
}

fn run_gemm(args: &BenchArgs) -> Result<()> {
    use squint_kernels::{matmul_packed, PackedMatrix, Parallelism};
    let name = args.shape.as_deref().unwrap_or("bert-base");
    let config = BertConfig::shape(name).with_context(|| format!("unknown --shape {name:?}"))?;
    if let Some(s) = args
        .seq
        .iter()
        .find(|&&s| s == 0 || s > config.max_position_embeddings)
    {
        bail!("--seq {s} is outside 1..={}", config.max_position_embeddings);
    }
    if args.threads.contains(&0) {
        bail!("--threads must be at least 1");
    }
    let threads = if args.threads.is_empty() {
        vec![1]
    } else {
        args.threads.clone()
    };
    println!(
        "fp32 GEMM and the int8 layer, kernel {}, {} iterations (median)",
        squint_kernels::isa().name(),
        args.iters
    );
    println!(
        "{:>14} {:>5} {:>5} {:>5} {:>7} {:>10} {:>8}",
        "layer", "M", "K", "N", "threads", "median ms", "GFLOP/s"
    );
    for &t in &threads {
        let exec = Executor::new(Some(t))?;
        for &m in &args.seq {
            for (layer, k, n) in layer_gemms(&config) {
                let w: Vec<f32> = (0..n * k).map(|i| ((i % 97) as f32 - 48.0) / 480.0).collect();
                let packed = PackedMatrix::from_transposed(&w, n, k);
                let a: Vec<f32> = (0..m * k).map(|i| ((i % 89) as f32 - 44.0) / 440.0).collect();
                let mut c = vec![0.0f32; m * n];
                let par = if t > 1 {
                    Parallelism::Threads(t)
                } else {
                    Parallelism::Sequential
                };
                let mut times = Vec::new();
                for i in 0..args.warmup + args.iters {
                    let start = Instant::now();
                    exec.run(|| matmul_packed(&mut c, n, &a, k, m, &packed, Default::default(), par))?;
                    if i >= args.warmup {
                        times.push(start.elapsed().as_secs_f64() * 1e3);
                    }
                }
                times.sort_by(f64::total_cmp);
                let median = times[times.len() / 2];
                let gflops = 2.0 * (m * k * n) as f64 / (median * 1e6);
                println!("{layer:>14} {m:>5} {k:>5} {n:>5} {t:>7} {median:>10.3} {gflops:>8.1}");
                run_int8_gemm(&exec, m, k, n, par, args)?;
            }
            run_attention(&config, m, args)?;
        }
    }
    Ok(())
}

/// One layer's attention (every head, one thread) as the model runs it, softmax(Q·Kᵀ)·V with
/// f32 (FP32 models) and exact int16 products (INT8 models); G(FL)OP/s counts the products.
fn run_attention(config: &BertConfig, seq: usize, args: &BenchArgs) -> Result<()> {
    use squint_kernels::attention::{attention_head, HeadInputs, Numerics};
    let (h, heads, d) = (config.hidden_size, config.num_attention_heads, config.head_dim());
    let qkv: Vec<f32> = (0..seq * 3 * h)
        .map(|i| ((i % 83) as f32 - 41.0) / 41.0)
        .collect();
    let mut scores = vec![0.0f32; seq * seq];
    let mut out = vec![0.0f32; seq * d];
    let scale = 1.0 / (d as f32).sqrt();
    for numerics in [Numerics::F32, Numerics::Int16, Numerics::Int8] {
        let mut times = Vec::new();
        for i in 0..args.warmup + args.iters {
            let start = Instant::now();
            for head in 0..heads {
                let inputs = HeadInputs {
                    q: &qkv[head * d..],
                    k: &qkv[h + head * d..],
                    v: &qkv[2 * h + head * d..],
                    stride: 3 * h,
                    queries: seq,
                    keys: seq,
                    dim: d,
                };
                attention_head(inputs, scale, numerics, &mut scores, seq, &mut out)?;
            }
            if i >= args.warmup {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let gflops = 4.0 * (heads * seq * seq * d) as f64 / (median * 1e6);
        println!(
        "{:>14} {seq:>5} {d:>5} {seq:>5} {:>7} {median:>10.3} {gflops:>8.1}  ({heads} heads, {} products, softmax included)",
        "attention", 1, numerics.name()
    );
    }
    Ok(())
}

/// The same layer in INT8 as the model runs it: f32 rows quantized per row to u8, exact
/// u8 × s8 GEMM, dequantized with bias in the epilogue; GOP/s of the whole call.
fn run_int8_gemm(
    exec: &Executor,
    m: usize,
    k: usize,
    n: usize,
    par: squint_kernels::Parallelism,
    args: &BenchArgs,
) -> Result<()> {
    use squint_kernels::int8::PackedI8;
    for bits in [WeightBits::Eight, WeightBits::Seven] {
        let levels = 2 * bits.qmax() as usize + 1;
        let w: Vec<i8> = (0..n * k)
            .map(|i| ((i * 37) % levels) as i8 - bits.qmax())
            .collect();
        let packed = PackedI8::from_transposed(&w, n, k);
        time_int8_gemm(exec, m, k, n, &packed, bits, par, args)?;
    }
    Ok(())
}

/// Times [`run_int8_gemm`]'s call for one packed weight matrix.
#[allow(clippy::too_many_arguments)]
fn time_int8_gemm(
    exec: &Executor,
    m: usize,
    k: usize,
    n: usize,
    packed: &squint_kernels::int8::PackedI8,
    bits: WeightBits,
    par: squint_kernels::Parallelism,
    args: &BenchArgs,
) -> Result<()> {
    use squint_kernels::int8::{int8_kernel, matmul_quantized, ActQuant};
    let x: Vec<f32> = (0..m * k).map(|i| ((i % 89) as f32 - 44.0) / 440.0).collect();
    let (scale, bias) = (vec![0.01f32; n], vec![0.5f32; n]);
    let epilogue = squint_kernels::Epilogue {
        bias: Some(&bias),
        ..Default::default()
    };
    let mut c = vec![0.0f32; m * n];
    let mut times = Vec::new();
    for i in 0..args.warmup + args.iters {
        let start = Instant::now();
        exec.run(|| {
            matmul_quantized(
                &mut c,
                n,
                &x,
                k,
                m,
                packed,
                &scale,
                ActQuant::PerRow,
                epilogue,
                par,
            )
        })?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let gops = 2.0 * (m * k * n) as f64 / (median * 1e6);
    let kernel = int8_kernel(packed).name();
    let threads = match par {
        squint_kernels::Parallelism::Threads(t) => t,
        squint_kernels::Parallelism::Sequential => 1,
    };
    println!(
        "{:>14} {m:>5} {k:>5} {n:>5} {threads:>7} {median:>10.3} {gops:>8.1}  (GOP/s, {kernel}, quantize+GEMM+dequantize)",
        format!("int8 w{}", bits.name())
    );
    Ok(())
}
