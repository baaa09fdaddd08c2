//! `squint ask`: one question, one context, answers on stdout (text or the wire API's JSON).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use squint_core::{Answer, Pipeline, PipelineOptions, Precision, QaParams};

#[derive(Args, Debug)]
pub struct AskArgs {
    /// Model directory: a Hugging Face BERT QA checkpoint or an INT8 artifact from `squint
    /// quantize`. Default: $SQUINT_MODEL_DIR, else the repository's models/minilm-l6-squad-int8.
    #[arg(long, env = "SQUINT_MODEL_DIR")]
    model: Option<PathBuf>,
    /// The question.
    #[arg(long, short)]
    question: String,
    /// The context to find the answer in.
    #[arg(
        long,
        short,
        conflicts_with = "context_file",
        required_unless_present = "context_file"
    )]
    context: Option<String>,
    /// Read the context from a file (`-` for stdin).
    #[arg(long)]
    context_file: Option<PathBuf>,
    /// Number of answers.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 15)]
    max_answer_len: usize,
    /// Window length in tokens (default: min(model maximum, 384)).
    #[arg(long)]
    max_seq_len: Option<usize>,
    /// Tokens shared by consecutive windows (default: min(max_seq_len / 2, 128)).
    #[arg(long)]
    doc_stride: Option<usize>,
    /// Questions are cut to this many tokens.
    #[arg(long, default_value_t = 64)]
    max_question_len: usize,
    /// Also consider "no answer" (returned as an empty answer).
    #[arg(long)]
    handle_impossible_answer: bool,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Linear-layer arithmetic. Default: as stored (FP32 checkpoint or INT8 artifact);
    /// int8-dynamic quantizes an FP32 checkpoint at load.
    #[arg(long)]
    precision: Option<String>,
    /// Print the wire API's JSON response.
    #[arg(long)]
    json: bool,
}

pub fn run(args: AskArgs) -> Result<()> {
    let context = match (&args.context, &args.context_file) {
        (Some(c), _) => c.clone(),
        (None, Some(path)) if path.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading the context from stdin")?
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the context from {}", path.display()))?,
        (None, None) => bail!("give --context or --context-file"),
    };
    let params = QaParams {
        top_k: args.top_k,
        max_answer_len: args.max_answer_len,
        max_seq_len: args.max_seq_len,
        doc_stride: args.doc_stride,
        max_question_len: args.max_question_len,
        handle_impossible_answer: args.handle_impossible_answer,
        align_to_words: true,
    };
    let precision = args
        .precision
        .as_deref()
        .map(|p| {
            Precision::parse(p)
                .with_context(|| format!("unknown --precision {p:?} (fp32, int8-dynamic, int8-static)"))
        })
        .transpose()?;
    let model = match args.model {
        Some(dir) => dir,
        None => crate::default_model()?,
    };
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!("loading {}", model.display()));
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    let options = PipelineOptions {
        threads: args.threads,
        batch: 4,
        precision,
    };
    let pipeline = Pipeline::from_dir(&model, options);
    spinner.finish_and_clear();
    let pipeline = pipeline.with_context(|| format!("loading the model from {}", model.display()))?;
    let answers = pipeline.answer(&args.question, &context, &params)?;
    if args.json {
        println!("{}", wire_json(&answers)?);
    } else {
        for a in &answers {
            println!(
                "{}\t(score {:.4}, characters {}..{})",
                a.answer, a.score, a.start, a.end
            );
        }
    }
    Ok(())
}

/// The pipeline's response shape: one object for one answer, a list otherwise.
pub fn wire_json(answers: &[Answer]) -> Result<String> {
    Ok(match answers {
        [one] => serde_json::to_string(one)?,
        many => serde_json::to_string(many)?,
    })
}
