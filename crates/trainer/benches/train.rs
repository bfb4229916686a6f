//! `cargo bench -p trainer --bench train` (or `cargo xtask bench train`): one full training
//! iteration of a preset — both processes, every phase (D, I/C, A+G), the four Adam steps
//! and the EMA — timed over many iterations after a warm-up, in image pairs per second.
//!
//! The batches are prepared before the clock starts, so this measures the trainer alone
//! (the data pipeline has its own bench). An iteration handles `2 × batch` pairs: one
//! reconstruction batch and one transformation batch.
//!
//! Env: `OSIPS_PRESET=tiny|paper` (default tiny), `BENCH_ITERS` (default 20),
//! `BENCH_WARMUP` (default 3), `BENCH_BATCH` (default 16), `RAYON_NUM_THREADS`,
//! `BENCH_PROFILE=1` (also print the wall time of the timed iterations by kernel op and
//! shape, and the time outside those ops).

use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use osips_data::{Dataset, Loader, SamplerState};
use osips_models::Preset;
use trainer::{RunConfig, Trainer};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the trainer binary does.
    trainer::configure_process();
    let preset = match std::env::var("OSIPS_PRESET").as_deref() {
        Ok("paper") => Preset::Paper,
        Ok("tiny") | Err(_) => Preset::Tiny,
        Ok(other) => return Err(format!("OSIPS_PRESET={other}: use tiny or paper").into()),
    };
    let iters = env_or("BENCH_ITERS", 20).max(1);
    let warmup = env_or("BENCH_WARMUP", 3);
    let mut config = RunConfig::preset(preset);
    config.data.batch_size = env_or("BENCH_BATCH", 16);
    config.data.prefetch = 0;
    let dataset = Arc::new(Dataset::open(&config.data)?);
    config.model.n_identities = dataset.n_identities();
    let mut loader = Loader::new(dataset, &config.data, SamplerState::start(0))?;
    let batches = (0..(warmup + iters).min(8))
        .map(|_| loader.next_batch().map(|(b, _)| b))
        .collect::<Result<Vec<_>, _>>()?;
    let mut trainer = Trainer::new(config.clone(), &Device::Cpu)?;
    for k in 0..warmup {
        trainer.train_step(&batches[k % batches.len()])?;
    }
    let profiling = std::env::var("BENCH_PROFILE").is_ok_and(|v| v == "1");
    osips_models::ops::profile::set_enabled(profiling);
    let mut times = Vec::with_capacity(iters);
    for k in 0..iters {
        let t = Instant::now();
        trainer.train_step(&batches[(warmup + k) % batches.len()])?;
        times.push(t.elapsed().as_secs_f64());
    }
    osips_models::ops::profile::set_enabled(false);
    if profiling {
        print_profile(&times);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let pairs = 2.0 * config.data.batch_size as f64;
    println!(
        "| preset | batch | threads | iterations | median ms / iteration | mean ms | pairs / s (median) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {iters} | {:.1} | {:.1} | {:.2} |",
        preset.name(),
        config.data.batch_size,
        rayon::current_num_threads(),
        median * 1e3,
        mean * 1e3,
        pairs / median
    );
    // For `cargo xtask bench train --vs-pytorch`, the same line as bench/pytorch prints.
    println!(
        "RESULT median_ms={:.3} pairs_per_s={:.3}",
        median * 1e3,
        pairs / median
    );
    Ok(())
}

/// The op table of the timed iterations, per iteration, biggest first; then the convs by
/// pass and what lies outside the kernel ops.
fn print_profile(times: &[f64]) {
    let table = osips_models::ops::profile::take();
    let iters = times.len() as f64;
    let total: f64 = times.iter().sum::<f64>() / iters;
    let mut rows: Vec<_> = table.into_iter().collect();
    rows.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
    println!("| op and input shape | calls / iter | ms / iter | share | GFLOP/s |");
    println!("|---|---:|---:|---:|---:|");
    let mut by_kind: std::collections::BTreeMap<String, f64> = Default::default();
    let mut inside = 0.0;
    for (key, e) in &rows {
        let ms = e.seconds / iters * 1e3;
        inside += e.seconds / iters;
        let kind = key.split(" [").next().unwrap_or(key);
        let kind = match key.strip_prefix("conv ") {
            Some(rest) => format!("conv {}", rest.split_whitespace().next().unwrap_or("")),
            None => kind.split_whitespace().next().unwrap_or(kind).to_string(),
        };
        *by_kind.entry(kind).or_default() += ms;
        let gflops = if e.flops > 0.0 {
            format!("{:.1}", e.flops / e.seconds / 1e9)
        } else {
            "—".into()
        };
        println!(
            "| {key} | {:.0} | {ms:.1} | {:.1} % | {gflops} |",
            e.calls as f64 / iters,
            100.0 * ms / (total * 1e3)
        );
    }
    println!();
    println!("| group | ms / iter | share |");
    println!("|---|---:|---:|");
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (kind, ms) in kinds {
        println!("| {kind} | {ms:.1} | {:.1} % |", 100.0 * ms / (total * 1e3));
    }
    let outside = (total - inside).max(0.0);
    println!(
        "| outside the kernel ops (candle ops, autograd, EMA, gradient norms) | {:.1} | {:.1} % |",
        outside * 1e3,
        100.0 * outside / total
    );
    println!("| iteration (mean) | {:.1} | 100 % |", total * 1e3);
    println!();
}
