//! The four networks with their parameter sets, and the checkpoint directory format
//! (DESIGN §3):
//!
//! ```text
//! <checkpoint>/config.json                 the full resolved run config (its `model` field is a ModelConfig)
//! <checkpoint>/state.json                  format_version, preset, step (+ the trainer's own fields)
//! <checkpoint>/identity.safetensors        IdentityNet (I and C)
//! <checkpoint>/attribute.safetensors       AttributeEncoder (A)
//! <checkpoint>/generator.safetensors       Generator (G)
//! <checkpoint>/generator_ema.safetensors   exponential moving average of G
//! <checkpoint>/discriminator.safetensors   Discriminator (D)
//! <checkpoint>/optimizer.safetensors       Adam moments per variable (the trainer's)
//! ```

use std::path::Path;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, Preset};
use crate::error::{ModelError, Result};
use crate::networks::{AttributeEncoder, Discriminator, Generator, IdentityNet};
use crate::vars::ParamSet;

/// Version of the checkpoint layout and tensor names. Bumped by any rename.
pub const FORMAT_VERSION: u32 = 1;

/// The four parameter sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetworkKind {
    Identity,
    Attribute,
    Generator,
    Discriminator,
}

impl NetworkKind {
    pub const ALL: [NetworkKind; 4] = [
        NetworkKind::Identity,
        NetworkKind::Attribute,
        NetworkKind::Generator,
        NetworkKind::Discriminator,
    ];

    /// Lowercase name: `identity`, `attribute`, `generator`, `discriminator`.
    pub fn name(self) -> &'static str {
        match self {
            NetworkKind::Identity => "identity",
            NetworkKind::Attribute => "attribute",
            NetworkKind::Generator => "generator",
            NetworkKind::Discriminator => "discriminator",
        }
    }

    /// The safetensors file of this network in a checkpoint directory.
    pub fn file_name(self) -> String {
        format!("{}.safetensors", self.name())
    }

    fn seed_offset(self) -> u64 {
        match self {
            NetworkKind::Identity => 1,
            NetworkKind::Attribute => 2,
            NetworkKind::Generator => 3,
            NetworkKind::Discriminator => 4,
        }
    }
}

/// File name of the generator's moving average.
pub const GENERATOR_EMA_FILE: &str = "generator_ema.safetensors";

/// The four networks and their parameter sets, initialised from one seed.
#[derive(Debug, Clone)]
pub struct Networks {
    pub config: ModelConfig,
    pub identity: IdentityNet,
    pub attribute: AttributeEncoder,
    pub generator: Generator,
    pub discriminator: Discriminator,
    pub identity_params: ParamSet,
    pub attribute_params: ParamSet,
    pub generator_params: ParamSet,
    pub discriminator_params: ParamSet,
}

impl Networks {
    /// Build all four networks with fresh weights derived from `seed`.
    pub fn new(config: &ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        Self::build(config, seed, device, None)
    }

    /// Build the four networks to be loaded from the checkpoint directory `dir` next: each
    /// may allocate no more than its weight file could hold ([`ParamSet::for_file`]).
    pub fn for_checkpoint(
        config: &ModelConfig,
        seed: u64,
        device: &Device,
        dir: &Path,
    ) -> Result<Self> {
        Self::build(config, seed, device, Some(dir))
    }

    fn build(
        config: &ModelConfig,
        seed: u64,
        device: &Device,
        checkpoint: Option<&Path>,
    ) -> Result<Self> {
        config.validate()?;
        let params = |kind: NetworkKind| {
            let seed = seed.wrapping_mul(31).wrapping_add(kind.seed_offset());
            match checkpoint {
                Some(dir) => ParamSet::for_file(seed, &dir.join(kind.file_name())),
                None => Ok(ParamSet::new(seed)),
            }
        };
        let identity_params = params(NetworkKind::Identity)?;
        let attribute_params = params(NetworkKind::Attribute)?;
        let generator_params = params(NetworkKind::Generator)?;
        let discriminator_params = params(NetworkKind::Discriminator)?;
        Ok(Networks {
            config: config.clone(),
            identity: IdentityNet::new(config, identity_params.var_builder(device))?,
            attribute: AttributeEncoder::new(config, attribute_params.var_builder(device))?,
            generator: Generator::new(config, generator_params.var_builder(device))?,
            discriminator: Discriminator::new(config, discriminator_params.var_builder(device))?,
            identity_params,
            attribute_params,
            generator_params,
            discriminator_params,
        })
    }

    /// The parameter set of one network.
    pub fn params(&self, kind: NetworkKind) -> &ParamSet {
        match kind {
            NetworkKind::Identity => &self.identity_params,
            NetworkKind::Attribute => &self.attribute_params,
            NetworkKind::Generator => &self.generator_params,
            NetworkKind::Discriminator => &self.discriminator_params,
        }
    }

    /// Write the four weight files into `dir` (each atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        for kind in NetworkKind::ALL {
            self.params(kind).save(&dir.join(kind.file_name()))?;
        }
        Ok(())
    }

    /// Load the four weight files from `dir`, each checked name by name and shape by shape.
    pub fn load(&self, dir: &Path) -> Result<()> {
        for kind in NetworkKind::ALL {
            self.params(kind).load(&dir.join(kind.file_name()))?;
        }
        Ok(())
    }
}

/// A generator on its own (the EMA copy, or inference).
pub fn new_generator(
    config: &ModelConfig,
    seed: u64,
    device: &Device,
) -> Result<(Generator, ParamSet)> {
    generator_in(config, ParamSet::new(generator_seed(seed)), device)
}

/// A generator on its own, to be loaded from the safetensors file `path` next (allocating
/// no more than the file could hold, [`ParamSet::for_file`]).
pub fn generator_for_file(
    config: &ModelConfig,
    seed: u64,
    device: &Device,
    path: &Path,
) -> Result<(Generator, ParamSet)> {
    generator_in(
        config,
        ParamSet::for_file(generator_seed(seed), path)?,
        device,
    )
}

fn generator_seed(seed: u64) -> u64 {
    seed.wrapping_mul(31)
        .wrapping_add(NetworkKind::Generator.seed_offset())
}

fn generator_in(
    config: &ModelConfig,
    params: ParamSet,
    device: &Device,
) -> Result<(Generator, ParamSet)> {
    config.validate()?;
    let generator = Generator::new(config, params.var_builder(device))?;
    Ok((generator, params))
}

/// The part of `state.json` that every reader of a checkpoint needs. The trainer writes more
/// fields (seed, sampler position); they are ignored here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format_version: u32,
    pub preset: Preset,
    pub step: u64,
}

#[derive(Deserialize)]
struct ConfigFile {
    model: ModelConfig,
}

/// Read and check a checkpoint directory's `state.json` and the model part of its
/// `config.json`: the format version must be [`FORMAT_VERSION`] and the presets must agree.
pub fn read_checkpoint_meta(dir: &Path) -> Result<(ModelConfig, CheckpointMeta)> {
    if !dir.is_dir() {
        return Err(ModelError::checkpoint(
            dir,
            "not a checkpoint directory (expected config.json, state.json and *.safetensors)",
        ));
    }
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| ModelError::io(&state_path, e))?;
    let meta: CheckpointMeta = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: state_path.clone(),
        source,
    })?;
    if meta.format_version != FORMAT_VERSION {
        return Err(ModelError::checkpoint(
            &state_path,
            format!(
                "checkpoint format version {} is not supported by this build (version {FORMAT_VERSION})",
                meta.format_version
            ),
        ));
    }
    let config_path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
    let config: ConfigFile = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: config_path.clone(),
        source,
    })?;
    if config.model.preset != meta.preset {
        return Err(ModelError::checkpoint(
            &config_path,
            format!(
                "config.json says preset {} but state.json says {}",
                config.model.preset, meta.preset
            ),
        ));
    }
    config.model.validate()?;
    Ok((config.model, meta))
}
