//! `squint logits`: raw start/end logits of SQuAD questions as JSON Lines, with every float's
//! bits, so hosts (native, browser, edge) can be compared bit for bit.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use squint_core::{Pipeline, PipelineOptions, QaParams};

#[derive(Args, Debug)]
pub struct LogitsArgs {
    /// Model directory (default: the bundled INT8 model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// SQuAD v1.1 JSON file.
    #[arg(long)]
    data: PathBuf,
    /// How many questions.
    #[arg(long, default_value_t = 200)]
    limit: usize,
    /// Take every N-th question of the file.
    #[arg(long, default_value_t = 10)]
    every: usize,
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: LogitsArgs) -> Result<()> {
    let dir = match args.model {
        Some(dir) => dir,
        None => crate::default_model()?,
    };
    let options = PipelineOptions {
        threads: Some(1),
        batch: 1,
        precision: None,
    };
    let pipeline = Pipeline::from_dir(&dir, options).with_context(|| format!("loading {}", dir.display()))?;
    let bytes = std::fs::read(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let questions = squint_core::squad::read_squad(&args.data.display().to_string(), &bytes)?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let params = QaParams::default();
    for q in questions.iter().step_by(args.every.max(1)).take(args.limit) {
        let windowed = pipeline
            .window_logits(&q.question, &q.context, &params)
            .with_context(|| format!("question {} (article {})", q.id, q.article))?;
        let bits: Vec<String> = windowed
            .concatenated()
            .iter()
            .map(|v| format!("{:08x}", v.to_bits()))
            .collect();
        let line = serde_json::json!({
            "id": q.id,
            "question": q.question,
            "context": q.context,
            "bits": bits.concat(),
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}
