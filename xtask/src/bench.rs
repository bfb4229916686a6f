//! `cargo xtask bench [conv|networks|train|data]…`: the project's benchmarks, built in release, one after the
//! other (never side by side: the machine has two cores and each bench uses both).
//!
//! Each bench prints its own markdown table, with the reference it is compared against
//! measured in the same run (candle's own ops for the kernels), so ratios are meaningful
//! on a shared, noisy machine even when absolute times drift.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// osips-kernels against candle: conv2d, upsample+conv, their gradients.
    Conv,
    /// osips-data: decode/resize throughput, synthetic renders, index sizes and open times.
    Data,
    /// osips-models: parameters, FLOPs and forward / forward+backward time per network.
    Networks,
    /// trainer: one full training iteration (both processes, all phases), pairs per second.
    Train,
}

impl Which {
    fn package_and_bench(self) -> (&'static str, &'static str) {
        match self {
            Which::Conv => ("osips-kernels", "conv"),
            Which::Data => ("osips-data", "data"),
            Which::Networks => ("osips-models", "networks"),
            Which::Train => ("trainer", "train"),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Which benchmarks (all when none is named).
    #[arg(value_enum)]
    pub which: Vec<Which>,
    /// A quick smoke run: fewer repetitions, smaller indexes.
    #[arg(long)]
    pub quick: bool,
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

pub fn run(args: Args) -> Result<()> {
    let which = if args.which.is_empty() {
        vec![Which::Conv, Which::Networks, Which::Train, Which::Data]
    } else {
        args.which
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for bench in which {
        let (package, name) = bench.package_and_bench();
        println!("\n## {package} / {name}\n");
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(workspace_root())
            .args(["bench", "--quiet", "-p", package, "--bench", name]);
        if args.quick {
            cmd.env("OSIPS_BENCH_QUICK", "1")
                .env("BENCH_REPS", "2")
                .env("BENCH_ITERS", "3")
                .env("BENCH_WARMUP", "1");
        }
        let status = cmd
            .status()
            .with_context(|| format!("cannot run `cargo bench -p {package} --bench {name}`"))?;
        if !status.success() {
            bail!("`cargo bench -p {package} --bench {name}` failed ({status})");
        }
    }
    Ok(())
}
