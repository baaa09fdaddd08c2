//! `squint quantize`: FP32 model directory in, INT8 model directory out.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use squint_core::artifact::Recipe;
use squint_core::calibrate::Observer;
use squint_core::quant::{Role, WeightBits};
use squint_core::quantize::{default_per_token, quantize_model, write_dir, CalibrationData, QuantizeOptions};
use squint_core::ModelFiles;
use squint_kernels::attention::Numerics;

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// FP32 model directory (Hugging Face BERT checkpoint).
    #[arg(long)]
    model: PathBuf,
    /// Output directory (created; files in it are replaced).
    #[arg(long)]
    out: PathBuf,
    /// static (calibrated activation ranges) or dynamic (per-token ranges at run time).
    #[arg(long, default_value = "static")]
    recipe: String,
    /// SQuAD v1.1 JSON to calibrate on (static recipe; use training data, not the eval set).
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Questions drawn from --calib (shuffled with --seed).
    #[arg(long, default_value_t = 128)]
    samples: usize,
    /// Seed of the calibration draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Range observer: minmax or percentile-P (e.g. percentile-99.99).
    #[arg(long, default_value = "minmax")]
    observer: String,
    /// Static recipe: layer inputs kept per token, comma-separated (qkv, attention-output,
    /// ffn-in, ffn-out), or `none`. Default: ffn-in,ffn-out.
    #[arg(long, value_delimiter = ',')]
    per_token: Option<Vec<String>>,
    /// Threads for calibration (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Attention's two products: int16 (exact integer, ~15% faster end to end on bert-base),
    /// int8 (on the int8 GEMM kernels, coarser) or f32 (as the FP32 model).
    #[arg(long, default_value = "int16")]
    attention: String,
    /// Linear-layer weight grid: 8 ([-127, 127]) or 7 ([-63, 63]: one exact vpmaddubsw per
    /// product, about twice the INT8 speed on AVX2 CPUs without VNNI, a coarser grid).
    #[arg(long, default_value = "8")]
    weight_bits: String,
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    let recipe = Recipe::parse(&args.recipe)
        .with_context(|| format!("unknown --recipe {:?} (static, dynamic)", args.recipe))?;
    let observer = Observer::parse(&args.observer).with_context(|| {
        format!(
            "unknown --observer {:?} (minmax, percentile-P with 50 < P <= 100)",
            args.observer
        )
    })?;
    let per_token: BTreeSet<Role> = match &args.per_token {
        None => default_per_token(),
        Some(names) if names.iter().any(|n| n == "none") => BTreeSet::new(),
        Some(names) => names
            .iter()
            .map(|n| {
                Role::parse(n).with_context(|| {
                    format!("unknown --per-token layer {n:?} (qkv, attention-output, ffn-in, ffn-out, none)")
                })
            })
            .collect::<Result<_>>()?,
    };
    let attention = Numerics::parse(&args.attention)
        .with_context(|| format!("unknown --attention {:?} (int16, int8, f32)", args.attention))?;
    let weight_bits = WeightBits::parse(&args.weight_bits)
        .with_context(|| format!("unknown --weight-bits {:?} (8, 7)", args.weight_bits))?;
    if recipe == Recipe::Dynamic && args.calib.is_some() {
        bail!("--calib is for the static recipe; the dynamic recipe needs no calibration");
    }
    let files = ModelFiles::from_dir(&args.model)
        .with_context(|| format!("reading the model from {}", args.model.display()))?;
    let calib_bytes;
    let questions;
    let calibration = match (recipe, &args.calib) {
        (Recipe::Static, None) => bail!("the static recipe needs --calib FILE (SQuAD v1.1 training data)"),
        (Recipe::Static, Some(path)) => {
            calib_bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            questions = squint_core::squad::read_squad(&name, &calib_bytes)?;
            Some(CalibrationData {
                name,
                bytes: &calib_bytes,
                questions: &questions,
                samples: args.samples,
                seed: args.seed,
                observer,
            })
        }
        (Recipe::Dynamic, _) => None,
    };
    let options = QuantizeOptions {
        recipe,
        per_token,
        calibration,
        threads: args.threads,
        attention,
        weight_bits,
    };
    let bar = ProgressBar::new(args.samples as u64).with_style(
        ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} questions, {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if recipe == Recipe::Dynamic {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let out = quantize_model(&files, &options, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    write_dir(&args.out, &out).with_context(|| format!("writing {}", args.out.display()))?;
    let total: usize = out.iter().map(|(_, b)| b.len()).sum();
    println!(
        "wrote {} ({} recipe, {:.1} MB): {}",
        args.out.display(),
        recipe.name(),
        total as f64 / 1e6,
        out.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
