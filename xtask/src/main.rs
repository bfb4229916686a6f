//! `cargo xtask`: the project's automation. Fetch the VGG16 weights from the Hugging Face
//! Hub, and run every benchmark in one command.

mod bench;
mod fetch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "OSIPS automation: pretrained weights, benchmarks"
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
    /// Run the project's benchmarks (convolution kernels, data pipeline) in release and
    /// print their markdown tables.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::FetchWeights(args) => fetch::run(args),
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
