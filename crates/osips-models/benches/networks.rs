//! `cargo bench -p osips-models --bench networks`: per network of a preset, the trained
//! parameter count, the forward FLOPs per image, and the time of one forward and of one
//! forward + backward pass in train mode at batch 16 (best of N after a warm-up).
//! Prints a markdown table.
//!
//! Env: `OSIPS_PRESET=tiny|paper` (default tiny), `BENCH_REPS=n` (default 5),
//! `RAYON_NUM_THREADS` for the thread count.

use std::time::Instant;

use candle_core::{Device, Tensor};
use osips_models::{ModelConfig, NetworkKind, Networks};

const BATCH: usize = 16;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn best_ms(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

fn main() -> Result<()> {
    let preset = std::env::var("OSIPS_PRESET").unwrap_or_else(|_| "tiny".into());
    let reps = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let config = match preset.as_str() {
        "tiny" => ModelConfig::tiny(1000),
        "paper" => ModelConfig::paper(1000),
        other => return Err(format!("OSIPS_PRESET={other}: use tiny or paper").into()),
    };
    let dev = Device::Cpu;
    let nets = Networks::new(&config, 0, &dev)?;
    let s = config.image_size;
    let images = Tensor::randn(0f32, 1., (BATCH, 3, s, s), &dev)?;
    let identity = Tensor::randn(0f32, 1., (BATCH, config.identity_dim), &dev)?;
    let z = Tensor::randn(0f32, 1., (BATCH, config.attribute_dim), &dev)?;

    println!(
        "preset {preset}, batch {BATCH}, {} rayon threads, best of {reps}\n",
        rayon::current_num_threads()
    );
    println!("| network | parameters | forward GFLOP / image | forward ms | forward + backward ms | fwd+bwd GFLOP/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut totals = (0usize, 0u64, 0f64, 0f64);
    for kind in NetworkKind::ALL {
        // The scalar loss of each network's main output, in train mode.
        let forward = || -> Result<Tensor> {
            Ok(match kind {
                NetworkKind::Identity => {
                    nets.identity.forward_t(&images, true)?.logits.sum_all()?
                }
                NetworkKind::Attribute => {
                    let p = nets.attribute.forward_t(&images, true)?;
                    (p.mean.sum_all()? + p.log_std.sum_all()?)?
                }
                NetworkKind::Generator => {
                    nets.generator.forward_t(&identity, &z, true)?.sum_all()?
                }
                NetworkKind::Discriminator => {
                    let d = nets.discriminator.forward_t(&images, true)?;
                    (d.logit.sum_all()? + d.features.sum_all()?)?
                }
            })
        };
        let flops = match kind {
            NetworkKind::Identity => nets.identity.flops(),
            NetworkKind::Attribute => nets.attribute.flops(),
            NetworkKind::Generator => nets.generator.flops(),
            NetworkKind::Discriminator => nets.discriminator.flops(),
        };
        let params = nets.params(kind).n_trainable();
        let fwd = best_ms(reps, || forward().map(drop))?;
        let fwd_bwd = best_ms(reps, || Ok(forward()?.backward().map(drop)?))?;
        // backward ≈ 2× forward FLOPs (input and weight gradients).
        let gflops = 3.0 * (flops as f64) * BATCH as f64 / 1e9 / (fwd_bwd / 1e3);
        println!(
            "| {} | {params} | {:.3} | {fwd:.1} | {fwd_bwd:.1} | {gflops:.1} |",
            kind.name(),
            flops as f64 / 1e9
        );
        totals.0 += params;
        totals.1 += flops;
        totals.2 += fwd;
        totals.3 += fwd_bwd;
    }
    println!(
        "| **all** | {} | {:.3} | {:.1} | {:.1} | {:.1} |",
        totals.0,
        totals.1 as f64 / 1e9,
        totals.2,
        totals.3,
        3.0 * (totals.1 as f64) * BATCH as f64 / 1e9 / (totals.3 / 1e3)
    );
    Ok(())
}
