//! The training state (networks, optimisers, EMA, step) and one iteration.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Device;
use osips_data::PairBatch;
use osips_models::checkpoint::{generator_for_file, new_generator, GENERATOR_EMA_FILE};
use osips_models::{Generator, NetworkKind, Networks, ParamSet};

use crate::config::{RunConfig, TrunkInit};
use crate::error::{Result, TrainError};
use crate::optim::{ema_decay_at, grad_norm, update_ema, Adam};
use crate::phases::{
    discriminator_phase, generator_phase, identity_phase, process_noise, synthesize, PhaseOutput,
    Process, ProcessTensors,
};

/// File of the four Adams' state inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Everything that changes during training.
pub struct Trainer {
    pub config: RunConfig,
    pub nets: Networks,
    /// The generator's exponential moving average (used for samples and evaluation).
    pub ema: Generator,
    pub ema_params: ParamSet,
    optimizers: BTreeMap<NetworkKind, Adam>,
    /// Iterations done.
    pub step: u64,
    pub device: Device,
}

/// Named scalars of one iteration (`loss/recon/gr`, `score/trans/d/real`, …).
pub type StepStats = BTreeMap<String, f64>;

impl Trainer {
    /// Fresh networks from the config's seed (and VGG16 trunks with `init = vgg16`).
    pub fn new(config: RunConfig, device: &Device) -> Result<Self> {
        Self::build(config, device, None)
    }

    /// Networks to be loaded from the checkpoint `dir` next ([`Trainer::load_weights`]):
    /// each may allocate no more than its weight file could hold, whatever the config says.
    pub fn for_checkpoint(config: RunConfig, device: &Device, dir: &Path) -> Result<Self> {
        Self::build(config, device, Some(dir))
    }

    fn build(config: RunConfig, device: &Device, checkpoint: Option<&Path>) -> Result<Self> {
        config.validate()?;
        // Find the weights before building anything: a missing download fails at once.
        // A resumed run overwrites the trunks from its checkpoint and needs none.
        let vgg = match (config.init, checkpoint) {
            (TrunkInit::Vgg16, None) => Some(crate::vgg_weights_path()?),
            _ => None,
        };
        let nets = match checkpoint {
            Some(dir) => Networks::for_checkpoint(&config.model, config.seed, device, dir)?,
            None => Networks::new(&config.model, config.seed, device)?,
        };
        if let Some(path) = vgg {
            osips_models::vgg::import_vgg16(&path, &nets.identity_params)?;
            osips_models::vgg::import_vgg16(&path, &nets.attribute_params)?;
        }
        let (ema, ema_params) = match checkpoint {
            Some(dir) => generator_for_file(
                &config.model,
                config.seed,
                device,
                &dir.join(GENERATOR_EMA_FILE),
            )?,
            None => new_generator(&config.model, config.seed, device)?,
        };
        ema_params.copy_from(&nets.generator_params)?;
        let optimizers = NetworkKind::ALL
            .into_iter()
            .map(|kind| (kind, Adam::new(config.optimizer)))
            .collect();
        Ok(Trainer {
            config,
            nets,
            ema,
            ema_params,
            optimizers,
            step: 0,
            device: device.clone(),
        })
    }

    /// Apply a phase's gradients with the optimisers of the networks it names. A non-finite
    /// loss is an error before anything is updated, so the networks keep their last good
    /// values.
    pub fn apply(
        &mut self,
        output: &PhaseOutput,
        stats: &mut StepStats,
        prefix: &str,
    ) -> Result<()> {
        for (name, value) in &output.stats {
            let key = match name.split_once('/') {
                Some((head, tail)) => format!("{head}/{prefix}/{tail}"),
                None => format!("{name}/{prefix}"),
            };
            if !value.is_finite() {
                return Err(TrainError::NonFinite {
                    name: key,
                    value: *value,
                    step: self.step + 1,
                });
            }
            stats.insert(key, *value);
        }
        for (kind, grads) in &output.updates {
            let key = format!("grad_norm/{prefix}/{}", kind.name());
            let norm = grad_norm(grads)?;
            if !norm.is_finite() {
                return Err(TrainError::NonFinite {
                    name: key,
                    value: norm,
                    step: self.step + 1,
                });
            }
            stats.insert(key, norm);
        }
        for (kind, grads) in &output.updates {
            let params = self.nets.params(*kind).clone();
            let optimizer = self
                .optimizers
                .get_mut(kind)
                .ok_or_else(|| TrainError::Config(format!("no optimizer for {kind:?}")))?;
            optimizer.step(&params, grads)?;
        }
        Ok(())
    }

    /// One iteration: the reconstruction process, then the transformation process, each
    /// D step → I/C step → A+G step; then the generator EMA.
    ///
    /// The iteration runs on one of rayon's worker threads (`rayon::scope`), not on the
    /// calling thread. Called from outside the pool, each of the thousand-odd parallel
    /// kernel calls of an iteration would be injected into the pool, wake a worker and put
    /// the caller to sleep until it is done; from a worker, the kernels split their work
    /// with the other worker directly. In 16 alternating pairs of `cargo bench -p trainer
    /// --bench train` runs, the median `tiny` iteration took 637 ms this way against 676 ms
    /// on the calling thread (−6 %); 11 pairs were faster, 4 slower (the machine is noisy).
    pub fn train_step(&mut self, batch: &PairBatch) -> Result<StepStats> {
        rayon::scope(|_| self.train_step_here(batch))
    }

    fn train_step_here(&mut self, batch: &PairBatch) -> Result<StepStats> {
        let mut stats = StepStats::new();
        for process in Process::ALL {
            let data = match process {
                Process::Reconstruction => &batch.reconstruction,
                Process::Transformation => &batch.transformation,
            };
            let tensors = ProcessTensors::new(data, &self.config.loss, &self.device)?;
            let n = data.source.n;
            let noise = process_noise(
                self.config.seed,
                self.step,
                process,
                n,
                self.config.model.attribute_dim,
                &self.device,
            )?;
            let synthesis = synthesize(&self.nets, &tensors, &noise)?;
            let weights = self.config.loss;
            let d = discriminator_phase(&self.nets, &tensors, &synthesis, &weights)?;
            self.apply(&d, &mut stats, process.key())?;
            let i = identity_phase(&self.nets, &tensors, &weights)?;
            self.apply(&i, &mut stats, process.key())?;
            let g = generator_phase(&self.nets, &tensors, &synthesis, &weights)?;
            self.apply(&g, &mut stats, process.key())?;
        }
        update_ema(
            &self.ema_params,
            &self.nets.generator_params,
            ema_decay_at(self.config.optimizer.ema_decay, self.step),
        )?;
        self.step += 1;
        Ok(stats)
    }

    /// Write weights, EMA and optimiser state into `dir` (which must exist).
    pub fn save_weights(&self, dir: &Path) -> Result<()> {
        self.nets.save(dir)?;
        self.ema_params.save(&dir.join(GENERATOR_EMA_FILE))?;
        let mut tensors = Vec::new();
        for (kind, adam) in &self.optimizers {
            tensors.extend(adam.state_tensors(kind.name())?);
        }
        osips_models::vars::save_tensors(&tensors, &dir.join(OPTIMIZER_FILE))?;
        Ok(())
    }

    /// Load weights, EMA and optimiser state from a checkpoint directory.
    pub fn load_weights(&mut self, dir: &Path) -> Result<()> {
        self.nets.load(dir)?;
        self.ema_params.load(&dir.join(GENERATOR_EMA_FILE))?;
        let path = dir.join(OPTIMIZER_FILE);
        let tensors = osips_models::vars::load_tensors(&path)?;
        for kind in NetworkKind::ALL {
            let params = self.nets.params(kind).clone();
            if let Some(adam) = self.optimizers.get_mut(&kind) {
                adam.load_state(kind.name(), &tensors, &params, &path)?;
            }
        }
        Ok(())
    }
}
