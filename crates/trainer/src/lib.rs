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
pub use error::{Result, TrainError};
pub use eval::{evaluate, EvalReport};
pub use run::{run, RunOptions, RunSummary, TrainState};
pub use trainer::{StepStats, Trainer};

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
