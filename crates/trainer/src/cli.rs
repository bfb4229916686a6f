//! The command-line flags of training, shared by `cargo run -p trainer` and `osips train`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use osips_data::SourceSpec;
use osips_models::Preset;

use crate::config::{RunConfig, TrunkInit};
use crate::error::{Result, TrainError};
use crate::run::RunOptions;

/// The presets, for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// 64×64, narrow trunks: CPU training (the default).
    Tiny,
    /// 128×128, VGG16 trunks: the paper's setting, for GPUs.
    Paper,
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Preset {
        match p {
            PresetArg::Tiny => Preset::Tiny,
            PresetArg::Paper => Preset::Paper,
        }
    }
}

/// How the encoder trunks start, for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    /// Random initialisation.
    Random,
    /// ImageNet VGG16 (run `cargo xtask fetch-weights` first; paper preset only).
    Vgg16,
}

/// Train the identity-preserving face synthesis model.
///
/// With no flags: the tiny preset on synthetic faces for 20 minutes, then an evaluation on
/// 200 unseen identities. The run directory (config, stats.jsonl, sample grids, loss curves,
/// checkpoints, eval.json) is printed at the end.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// Named preset.
    #[arg(long, value_enum, default_value = "tiny")]
    pub preset: PresetArg,
    /// A whole run config (TOML or JSON) instead of a preset, e.g. data/presets/tiny.toml.
    #[arg(long, conflicts_with = "preset")]
    pub config: Option<PathBuf>,
    /// Training data: synthetic:N, folder:PATH (CASIA-WebFace layout), tsv:PATH (MS-Celeb-1M),
    /// recordio:PATH (insightface train.rec/.idx).
    #[arg(long, value_name = "KIND:PATH")]
    pub data: Option<String>,
    /// A folder of extra face images without identity labels.
    #[arg(long, value_name = "PATH")]
    pub unlabeled: Option<PathBuf>,
    /// Stop after this many iterations in total.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Stop after this many minutes.
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Pairs per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Seed of weights, sampling and noise.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run name (the run directory is runs/<id>-<name>).
    #[arg(long)]
    pub name: Option<String>,
    /// Trunk initialisation.
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Override any config key, e.g. --set loss.transform_lambda=0.01 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue a run directory from its newest checkpoint, with the run's own config (flags
    /// such as --steps, --minutes or --set override it).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Where run directories are created.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Print the resolved config and exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Skip the evaluation at the end.
    #[arg(long)]
    pub no_eval: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// The config these flags describe.
    pub fn resolve(&self) -> Result<RunConfig> {
        // A resumed run starts from its own config (its schedule included), so that
        // `--resume RUN` alone carries on as the run was set up; flags still override.
        let mut config = match (&self.config, &self.resume) {
            (Some(path), _) => RunConfig::from_file(path)?,
            (None, Some(run)) => RunConfig::from_file(&run.join("config.json"))?,
            (None, None) => RunConfig::preset(self.preset.into()),
        };
        if let Some(data) = &self.data {
            config.data.source = SourceSpec::parse(data)?;
            if let SourceSpec::Synthetic { n_identities } = config.data.source {
                config.model.n_identities = n_identities as usize;
            }
        }
        if let Some(path) = &self.unlabeled {
            config.data.unlabeled = Some(path.clone());
        }
        if let Some(steps) = self.steps {
            config.schedule.steps = Some(steps);
            if self.minutes.is_none() {
                config.schedule.minutes = None;
            }
        }
        if let Some(minutes) = self.minutes {
            config.schedule.minutes = Some(minutes);
            if self.steps.is_none() {
                config.schedule.steps = None;
            }
        }
        if let Some(b) = self.batch_size {
            config.data.batch_size = b;
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
            config.data.seed = seed;
        }
        if let Some(name) = &self.name {
            config.name = name.clone();
        }
        if let Some(init) = self.init {
            config.init = match init {
                InitArg::Random => TrunkInit::Random,
                InitArg::Vgg16 => TrunkInit::Vgg16,
            };
        }
        config.apply_overrides(&self.overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// The run options, with Ctrl-C wired to a clean stop.
    pub fn options(&self) -> Result<RunOptions> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        ctrlc::set_handler(move || {
            if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                // Second Ctrl-C: the user insists.
                std::process::exit(130);
            }
            eprintln!("\nstopping after this step; writing a checkpoint (Ctrl-C again to abort)");
        })
        .map_err(|e| TrainError::Config(format!("cannot install the Ctrl-C handler: {e}")))?;
        Ok(RunOptions {
            runs_root: self.runs_dir.clone(),
            resume: self.resume.clone(),
            progress: !self.quiet,
            stop,
            evaluate: !self.no_eval,
        })
    }
}
