//! # trainer
//!
//! The training procedure of the CVAE-GAN of Bao et al. (CVPR 2018) on `osips-models`,
//! `osips-losses` and `osips-data`: the update table of [`phases`], Adam per network with
//! saved state ([`optim`]), the generator EMA, run directories with `stats.jsonl`, sample
//! grids, loss curves and atomic checkpoints, exact resume ([`run`]), and the open-set
//! evaluation on synthetic faces ([`eval`]).
//!
//! `cargo run --release -p trainer` trains the `tiny` preset on synthetic faces.

pub mod cli;
pub mod config;
pub mod error;
pub mod eval;
pub mod optim;
pub mod phases;
pub mod plot;
pub mod run;
pub mod samples;
pub mod trainer;

use std::path::PathBuf;

pub use config::{OptimizerConfig, RunConfig, ScheduleConfig, TrunkInit};
pub use error::{error_line, Result, TrainError};
pub use eval::{evaluate, EvalReport};
pub use run::{run, RunOptions, RunSummary, TrainState};
pub use trainer::{StepStats, Trainer};

/// Call first thing in `main`, before any thread exists: [`configure_cpu_threads`] and
/// [`configure_allocator`].
pub fn configure_process() {
    configure_cpu_threads();
    configure_allocator();
}

/// On glibc, keeps the large, short-lived buffers of a training step (activations,
/// gradients, lowered matrices: 1–16 MiB each, thousands per step) in the heap instead of
/// giving each its own `mmap`, and stops trimming the heap after every free.
///
/// glibc serves blocks above its mmap threshold (128 KiB, adapting upwards only on some
/// frees) with a fresh mapping each time: every allocation then pays page faults and the
/// kernel's zeroing, every free an `munmap`. With the threshold at 32 MiB (glibc's
/// maximum) and trimming above 1 GiB, a `tiny` iteration ran about 7 % faster
/// (657/669/654 ms against 719/710/796 ms, alternating, `cargo bench -p trainer --bench
/// train` with the equivalent `GLIBC_TUNABLES`). The heap then stays at its peak size
/// (a few hundred MiB for `tiny`) instead of shrinking between steps. A user's
/// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=…` is respected. Elsewhere it does nothing.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc"));
        if !user_set {
            #[allow(unsafe_code)]
            // SAFETY: `mallopt` only changes the allocator's parameters under its own
            // lock; it takes plain integers and touches no memory of ours. Both options and
            // values are valid for glibc (the threshold is at most its 32 MiB maximum on
            // 64-bit). It is called before other threads exist, though it would be safe
            // after too.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        }
    }
}

/// Call first thing in `main`, before any thread exists: unless the user set
/// `CANDLE_NUM_THREADS`, candle's elementwise ops run on the calling thread.
///
/// candle 0.11.1 spreads large elementwise ops (the gradient accumulation of every
/// backward pass, Adam's updates) over its own spinning thread pool, next to rayon's
/// workers that our kernels keep busy. On two cores they fight: a full `tiny` iteration ran
/// 11 % faster with `CANDLE_NUM_THREADS=1` (1279/1186/1231 ms against 1379/1310/1404 ms,
/// alternating, `cargo bench -p trainer --bench train`). Matmuls and our kernels still use
/// every core.
pub fn configure_cpu_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Sound: called before any other thread is started, so nothing reads the
        // environment concurrently.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// The Hugging Face cache directory: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (the layout of `huggingface_hub` and `hf-hub`).
pub fn hf_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/huggingface/hub"))
}

/// Where `cargo xtask fetch-weights` put timm's VGG16 (`$OSIPS_VGG16_WEIGHTS` overrides).
pub fn vgg_weights_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("OSIPS_VGG16_WEIGHTS") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TrainError::file(
                path,
                "OSIPS_VGG16_WEIGHTS points to no file",
            ))
        };
    }
    let repo = osips_models::vgg::VGG16_REPO.replace('/', "--");
    let missing = || {
        TrainError::Config(format!(
            "the VGG16 weights ({}/{}) are not in the Hugging Face cache: run `cargo xtask fetch-weights` first, or set OSIPS_VGG16_WEIGHTS to a copy of the file",
            osips_models::vgg::VGG16_REPO,
            osips_models::vgg::VGG16_FILE
        ))
    };
    let cache = hf_cache_dir().ok_or_else(missing)?;
    let repo_dir = cache.join(format!("models--{repo}"));
    let revision = std::fs::read_to_string(repo_dir.join("refs/main")).map_err(|_| missing())?;
    let path = repo_dir
        .join("snapshots")
        .join(revision.trim())
        .join(osips_models::vgg::VGG16_FILE);
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing())
    }
}
