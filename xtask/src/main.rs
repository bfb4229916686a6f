//! `cargo xtask`: the project's automation. Fetch the VGG16 weights from the Hugging Face
//! Hub, run, sweep and compare training runs, and run every benchmark in one command.

mod bench;
mod fetch;
mod runs;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "OSIPS automation: weights, training runs, benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download ImageNet VGG16 weights (timm `vgg16.tv_in1k`) into the Hugging Face cache,
    /// pinned and verified by `data/weights.toml`.
    FetchWeights(fetch::Args),
    /// Build the trainer in release and run one or more training runs in turn.
    Train(runs::TrainArgs),
    /// Run a grid of config overrides described by a TOML file.
    Sweep(runs::SweepArgs),
    /// Write a markdown table and a PNG of curves comparing finished runs.
    Report(runs::ReportArgs),
    /// Run the project's benchmarks and print one markdown table.
    Bench(bench::Args),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::FetchWeights(args) => fetch::run(args),
        Command::Train(args) => runs::train(args),
        Command::Sweep(args) => runs::sweep(args),
        Command::Report(args) => runs::report(args),
        Command::Bench(args) => bench::run(args),
    }
}
