//! `squint eval`: SQuAD v1.1 exact match and F1 of one model, or of two side by side.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use squint_core::evaluate::{predict, score, Score};
use squint_core::squad::{read_squad, Question};
use squint_core::{Pipeline, PipelineOptions, Precision};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model directory (FP32 checkpoint or INT8 artifact); give it twice to compare two
    /// models on the same questions.
    #[arg(long, num_args = 1)]
    model: Vec<PathBuf>,
    /// Compare two model directories (the same as giving --model twice).
    #[arg(long, num_args = 2, value_names = ["DIR_A", "DIR_B"], conflicts_with = "model")]
    compare: Option<Vec<PathBuf>>,
    /// SQuAD v1.1 JSON file.
    #[arg(long)]
    data: PathBuf,
    /// Only the first N questions.
    #[arg(long)]
    limit: Option<usize>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Windows per forward pass (padded to the longest and masked; answers do not change).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Linear-layer arithmetic, one for all models or one per model (comma-separated):
    /// fp32, int8-dynamic, int8-static. Default: as stored.
    #[arg(long, value_delimiter = ',')]
    precision: Vec<String>,
    /// Write predictions as the official `{id: answer}` JSON; once per model.
    #[arg(long)]
    out: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// One model's run over the questions.
struct Run {
    model: PathBuf,
    format: &'static str,
    answers: Vec<String>,
    score: Score,
    seconds: f64,
}

impl Run {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "model": self.model.display().to_string(),
            "format": self.format,
            "kernel": squint_kernels::isa().name(),
            "exact_match": self.score.exact_match,
            "f1": self.score.f1,
            "questions": self.score.questions,
            "seconds": self.seconds,
            "questions_per_second": self.score.questions as f64 / self.seconds.max(1e-9),
        })
    }

    fn summary(&self) -> String {
        format!(
            "{}: {} ({}), EM {:.3}, F1 {:.3} on {} questions, {:.1} s ({:.1} questions/s)",
            self.model.display(),
            self.format,
            squint_kernels::isa().name(),
            self.score.exact_match,
            self.score.f1,
            self.score.questions,
            self.seconds,
            self.score.questions as f64 / self.seconds.max(1e-9)
        )
    }
}

pub fn run(args: EvalArgs) -> Result<()> {
    let models = args.compare.clone().unwrap_or_else(|| args.model.clone());
    if models.is_empty() || models.len() > 2 {
        bail!("give one --model, two --model, or --compare DIR_A DIR_B");
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if args.out.len() > models.len() {
        bail!(
            "--out is given {} times for {} model(s)",
            args.out.len(),
            models.len()
        );
    }
    let precisions = crate::precisions_for(&args.precision, models.len())?;
    let bytes = std::fs::read(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let name = args.data.display().to_string();
    let mut questions = read_squad(&name, &bytes)?;
    if let Some(limit) = args.limit {
        if limit == 0 {
            bail!("--limit must be at least 1");
        }
        questions.truncate(limit);
    }
    let mut runs = Vec::new();
    for (model, precision) in models.iter().zip(precisions) {
        runs.push(evaluate(model, precision, &questions, &args)?);
    }
    for (run, out) in runs.iter().zip(&args.out) {
        write_predictions(out, &questions, &run.answers)?;
    }
    print_report(&runs, args.json)
}

fn evaluate(
    model: &Path,
    precision: Option<Precision>,
    questions: &[Question],
    args: &EvalArgs,
) -> Result<Run> {
    let options = PipelineOptions {
        threads: args.threads,
        batch: args.batch,
        precision,
    };
    let pipeline = Pipeline::from_dir(model, options)
        .with_context(|| format!("loading the model in {}", model.display()))?;
    let format = pipeline.model().precision().name();
    let bar = ProgressBar::new(questions.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} questions, {per_sec}, ETA {eta}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} ({format})", model.display()));
    let start = Instant::now();
    let answers = predict(&pipeline, questions, 8 * args.batch, &mut |done| {
        bar.set_position(done as u64)
    })?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(Run {
        model: model.to_path_buf(),
        format,
        score: score(questions, &answers),
        answers,
        seconds,
    })
}

fn write_predictions(path: &Path, questions: &[Question], answers: &[String]) -> Result<()> {
    let map: serde_json::Map<String, serde_json::Value> = questions
        .iter()
        .zip(answers)
        .map(|(q, a)| (q.id.clone(), serde_json::Value::String(a.clone())))
        .collect();
    let text = serde_json::to_string_pretty(&map)?;
    std::fs::write(path, text).with_context(|| format!("writing predictions to {}", path.display()))
}

fn print_report(runs: &[Run], as_json: bool) -> Result<()> {
    match runs {
        [one] if as_json => println!("{}", serde_json::to_string_pretty(&one.to_json())?),
        [one] => println!("{}", one.summary()),
        [a, b] => {
            let differ = a.answers.iter().zip(&b.answers).filter(|(x, y)| x != y).count();
            let share = differ as f64 / a.answers.len().max(1) as f64;
            let (d_em, d_f1) = (b.score.exact_match - a.score.exact_match, b.score.f1 - a.score.f1);
            if as_json {
                let report = json!({
                    "a": a.to_json(),
                    "b": b.to_json(),
                    "delta_exact_match": d_em,
                    "delta_f1": d_f1,
                    "answers_differ": differ,
                    "answers_differ_share": share,
                });
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("A {}", a.summary());
                println!("B {}", b.summary());
                println!(
                    "B - A: EM {d_em:+.3}, F1 {d_f1:+.3}; answers differ on {differ} of {} questions ({:.2}%)",
                    a.answers.len(),
                    100.0 * share
                );
            }
        }
        _ => bail!("nothing was evaluated"),
    }
    Ok(())
}
