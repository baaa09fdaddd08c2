//! `squint`: extractive question answering with BERT. This binary only parses flags and wires
//! squint-core together; every behaviour a test would want lives in the libraries.

mod ask;
mod bench;

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
    /// Answer a question about a context.
    Ask(ask::AskArgs),
    /// Time the encoder on synthetic inputs of exact lengths.
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ask(args) => ask::run(args),
        Command::Bench(args) => bench::run(args),
    };
    if let Err(e) = result {
        eprintln!("squint: error: {e:#}");
        std::process::exit(1);
    }
}
