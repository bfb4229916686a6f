//! `cargo xtask`: the project's automation. Fetch the VGG16 weights from the Hugging Face
//! Hub; run, sweep and compare training runs; run every benchmark in one command.

mod bench;
mod fetch;
mod runs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "OSIPS automation: pretrained weights, training runs, benchmarks"
)]
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
    /// Run every combination of a grid of config overrides described by a TOML file, then
    /// write their report.
    Sweep(runs::SweepArgs),
    /// Compare finished runs: a markdown table of their differing config keys and eval
    /// numbers, and one PNG of their loss and eval curves.
    Report(runs::ReportArgs),
    /// Run the project's benchmarks (convolution kernels, data pipeline) in release and
    /// print their markdown tables.
    Bench(bench::Args),
}

/// The repository root (xtask lives in `<root>/xtask`), whatever the working directory.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::FetchWeights(args) => fetch::run(args),
        Command::Train(args) => runs::train(args),
        Command::Sweep(args) => runs::sweep(args),
        Command::Report(args) => runs::report(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
