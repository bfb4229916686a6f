//! The run configuration: data, model, loss weights, optimiser and schedule in one typed
//! struct, built from a named preset (or a TOML file), overridden by flags and `--set`, and
//! written into the run directory before the first step.

use std::path::Path;

use osips_data::{DataConfig, SourceSpec};
use osips_losses::LossWeights;
use osips_models::{ModelConfig, Preset};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Adam (one per network) and the generator's moving average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Learning rate of all four Adams. Default 2e-4.
    pub lr: f64,
    /// Adam β₁. Default 0.5 (DCGAN).
    pub beta1: f64,
    /// Adam β₂. Default 0.999.
    pub beta2: f64,
    /// Adam ε. Default 1e-8.
    pub eps: f64,
    /// Decay of the generator EMA per iteration, reached after a ramp
    /// (`min(decay, (1 + t) / (10 + t))`, see `optim::ema_decay_at`). Default 0.999.
    pub ema_decay: f64,
}

impl OptimizerConfig {
    /// lr 2e-4, betas (0.5, 0.999), eps 1e-8, EMA 0.999, no weight decay.
    pub fn paper() -> Self {
        OptimizerConfig {
            lr: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            ema_decay: 0.999,
        }
    }
}

/// How long to train and how often to log, draw samples and checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Stop after this many iterations (whichever of `steps` / `minutes` comes first).
    pub steps: Option<u64>,
    /// Stop after this many minutes of training.
    pub minutes: Option<f64>,
    /// Write a line to `stats.jsonl` every this many iterations.
    pub log_every: u64,
    /// Write a sample grid every this many iterations.
    pub sample_every: u64,
    /// Write a checkpoint every this many iterations (and at the end).
    pub checkpoint_every: u64,
    /// Keep this many most recent checkpoints.
    pub keep_checkpoints: usize,
    /// Evaluate on this many unseen synthetic identities at the end (0: skip).
    pub eval_identities: usize,
    /// Also evaluate every this many iterations, into `stats.jsonl` as `eval/*` keys, for
    /// eval curves (`cargo xtask report`). Off by default: on a CPU an evaluation costs
    /// about 30 iterations (200 identities, `tiny`: under 35 s on 2 cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<u64>,
}

/// How the encoder trunks start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrunkInit {
    /// Random (Kaiming) initialisation.
    Random,
    /// ImageNet VGG16 weights from `cargo xtask fetch-weights` (the `paper` preset only).
    Vgg16,
}

/// The whole configuration of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Short name, part of the run directory's name.
    pub name: String,
    /// Seed of the initial weights, the sampler and the reparameterisation noise.
    pub seed: u64,
    /// Trunk initialisation.
    pub init: TrunkInit,
    pub model: ModelConfig,
    pub data: DataConfig,
    pub loss: LossWeights,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
}

impl RunConfig {
    /// The named preset on synthetic faces (the main job uses `tiny`).
    pub fn preset(preset: Preset) -> RunConfig {
        let n_identities = 1000;
        let model = ModelConfig::preset(preset, n_identities);
        let (batch_size, steps) = match preset {
            Preset::Tiny => (16, None),
            Preset::Paper => (32, Some(100_000)),
        };
        RunConfig {
            name: preset.name().to_string(),
            seed: 0,
            init: TrunkInit::Random,
            data: DataConfig {
                source: SourceSpec::Synthetic {
                    n_identities: n_identities as u32,
                },
                unlabeled: None,
                image_size: model.image_size as u32,
                batch_size,
                flip: true,
                prefetch: 4,
                seed: 0,
            },
            model,
            loss: LossWeights::paper(),
            optimizer: OptimizerConfig::paper(),
            schedule: ScheduleConfig {
                steps,
                minutes: match preset {
                    Preset::Tiny => Some(20.0),
                    Preset::Paper => None,
                },
                log_every: 10,
                sample_every: 250,
                checkpoint_every: 500,
                keep_checkpoints: 3,
                eval_identities: 200,
                eval_every: None,
            },
        }
    }

    /// Read a TOML or JSON file holding a whole `RunConfig`.
    pub fn from_file(path: &Path) -> Result<RunConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        if is_json {
            serde_json::from_str(&text).map_err(|e| TrainError::file(path, e))
        } else {
            toml::from_str(&text).map_err(|e| TrainError::file(path, e))
        }
    }

    /// The config as pretty TOML.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| TrainError::Config(e.to_string()))
    }

    /// Apply `key.path=value` overrides (`--set loss.transform_lambda=0.01`). The value is
    /// parsed as JSON when it can be (numbers, booleans, null, quoted strings, arrays), else
    /// taken as a string. Unknown keys are errors.
    pub fn apply_overrides(&mut self, overrides: &[String]) -> Result<()> {
        if overrides.is_empty() {
            return Ok(());
        }
        let mut value =
            serde_json::to_value(&*self).map_err(|e| TrainError::Config(e.to_string()))?;
        for item in overrides {
            let (key, raw) = item.split_once('=').ok_or_else(|| {
                TrainError::Config(format!("override `{item}`: expected key.path=value"))
            })?;
            let new_value: serde_json::Value = serde_json::from_str(raw)
                .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
            let unknown = || {
                TrainError::Config(format!(
                    "override `{item}`: unknown key `{key}` (see --dry-run for the keys)"
                ))
            };
            let parts: Vec<&str> = key.split('.').collect();
            let (leaf, path) = parts.split_last().ok_or_else(unknown)?;
            let mut slot = &mut value;
            for part in path {
                slot = match slot {
                    serde_json::Value::Object(map) => map.get_mut(*part).ok_or_else(unknown)?,
                    _ => return Err(unknown()),
                };
            }
            let serde_json::Value::Object(map) = slot else {
                return Err(unknown());
            };
            // An optional key that is unset is absent from the serialized config (TOML has
            // no null), so a missing leaf may still be a real key: insert it and let
            // `deny_unknown_fields` decide.
            let absent = map.insert((*leaf).to_string(), new_value).is_none();
            if absent {
                if let Err(e) = serde_json::from_value::<RunConfig>(value.clone()) {
                    if e.to_string().contains("unknown field") {
                        return Err(unknown());
                    }
                }
            }
        }
        *self = serde_json::from_value(value)
            .map_err(|e| TrainError::Config(format!("after overrides: {e}")))?;
        Ok(())
    }

    /// Check the parts against each other.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.data.validate()?;
        if self.data.image_size as usize != self.model.image_size {
            return Err(TrainError::Config(format!(
                "data.image_size {} differs from model.image_size {}",
                self.data.image_size, self.model.image_size
            )));
        }
        if self.init == TrunkInit::Vgg16 && self.model.preset != Preset::Paper {
            return Err(TrainError::Config(
                "init = vgg16 needs the paper preset (VGG16-shaped trunks)".into(),
            ));
        }
        let o = &self.optimizer;
        if !(o.lr > 0.0
            && (0.0..1.0).contains(&o.beta1)
            && (0.0..1.0).contains(&o.beta2)
            && o.eps > 0.0
            && (0.0..=1.0).contains(&o.ema_decay))
        {
            return Err(TrainError::Config(format!(
                "optimizer settings out of range: {o:?}"
            )));
        }
        let s = &self.schedule;
        if s.log_every == 0
            || s.sample_every == 0
            || s.checkpoint_every == 0
            || s.keep_checkpoints == 0
        {
            return Err(TrainError::Config(
                "schedule: log_every, sample_every, checkpoint_every and keep_checkpoints must be at least 1".into(),
            ));
        }
        if s.eval_every == Some(0) {
            return Err(TrainError::Config(
                "schedule: eval_every must be at least 1 (or absent)".into(),
            ));
        }
        if s.steps.is_none() && s.minutes.is_none() {
            return Err(TrainError::Config(
                "schedule: set steps or minutes (or both)".into(),
            ));
        }
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(TrainError::Config(format!(
                "name `{}`: use letters, digits, '-' and '_'",
                self.name
            )));
        }
        Ok(())
    }
}
