//! `cargo xtask bench [conv|networks|train|data]…`: the project's benchmarks, built in release, one after the
//! other (never side by side: the machine has two cores and each bench uses both).
//!
//! Each bench prints its own markdown table, with the reference it is compared against
//! measured in the same run (candle's own ops for the kernels), so ratios are meaningful
//! on a shared, noisy machine even when absolute times drift.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::workspace_root;

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
    /// With `train`: run ours and the PyTorch reference (bench/pytorch) in turn, A B A B…,
    /// and print the ratio of each pair and the median ratio.
    #[arg(long)]
    pub vs_pytorch: bool,
    /// Rounds of `--vs-pytorch` (each runs both once).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

pub fn run(args: Args) -> Result<()> {
    if args.vs_pytorch {
        if args.which != [Which::Train] {
            bail!("--vs-pytorch compares the training iteration: use `cargo xtask bench train --vs-pytorch`");
        }
        return vs_pytorch(args.rounds.max(1), args.quick);
    }
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

/// `median_ms` and `pairs_per_s` from a `RESULT median_ms=… pairs_per_s=…` line.
fn parse_result(output: &str) -> Option<(f64, f64)> {
    let line = output.lines().rev().find(|l| l.starts_with("RESULT "))?;
    let mut median = None;
    let mut pairs = None;
    for field in line.split_whitespace().skip(1) {
        match field.split_once('=') {
            Some(("median_ms", v)) => median = v.parse().ok(),
            Some(("pairs_per_s", v)) => pairs = v.parse().ok(),
            _ => {}
        }
    }
    Some((median?, pairs?))
}

fn run_captured(cmd: &mut Command, what: &str) -> Result<(f64, f64)> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_result(&stdout).with_context(|| format!("{what} printed no RESULT line:\n{stdout}"))
}

/// Ours and PyTorch in turn on the same machine and thread count, so drifting load hits
/// both alike; the ratio is ours / PyTorch in pairs per second (above 1: we are faster).
fn vs_pytorch(rounds: usize, quick: bool) -> Result<()> {
    let root = workspace_root();
    let python = std::env::var_os("OSIPS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/pytorch/.venv/bin/python"));
    if !python.exists() {
        bail!(
            "no Python with torch at {} (set OSIPS_PYTHON, or see bench/pytorch/README.md)",
            python.display()
        );
    }
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "2".into());
    let (iters, warmup) = if quick { ("3", "1") } else { ("20", "3") };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Build first, so that compiling never overlaps a timed run.
    let status = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "bench", "--quiet", "-p", "trainer", "--bench", "train", "--no-run",
        ])
        .status()
        .context("cannot run cargo bench --no-run")?;
    if !status.success() {
        bail!("building the trainer bench failed ({status})");
    }
    println!("tiny preset, batch 16, {threads} threads, {iters} timed iterations after {warmup} warm-up, {rounds} rounds\n");
    println!("| round | ours ms | ours pairs/s | PyTorch ms | PyTorch pairs/s | ours / PyTorch |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut ratios = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let ours = run_captured(
            Command::new(&cargo)
                .current_dir(&root)
                .args(["bench", "--quiet", "-p", "trainer", "--bench", "train"])
                .env("RAYON_NUM_THREADS", &threads)
                .env("BENCH_ITERS", iters)
                .env("BENCH_WARMUP", warmup),
            "the trainer bench",
        )?;
        let torch = run_captured(
            Command::new(&python)
                .current_dir(&root)
                .arg("bench/pytorch/osips_tiny.py")
                .env("THREADS", &threads)
                .env("ITERS", iters)
                .env("WARMUP", warmup),
            "bench/pytorch/osips_tiny.py",
        )?;
        let ratio = ours.1 / torch.1;
        ratios.push(ratio);
        println!(
            "| {round} | {:.1} | {:.2} | {:.1} | {:.2} | {ratio:.3} |",
            ours.0, ours.1, torch.0, torch.1
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "\nmedian ours / PyTorch: {:.3} (pairs per second; above 1 means ours is faster)",
        ratios[ratios.len() / 2]
    );
    Ok(())
}
