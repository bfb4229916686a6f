//! # osips-models
//!
//! The networks of *Towards Open-Set Identity Preserving Face Synthesis* (Bao et al.,
//! CVPR 2018): the identity network ([`IdentityNet`], the paper's I and C with one set of
//! weights), the attribute encoder ([`AttributeEncoder`], A), the generator
//! ([`Generator`], G) and the discriminator ([`Discriminator`], D); their configs and
//! presets; the checkpoint format; and [`Synthesizer`], inference from a checkpoint.
//!
//! Tensors are NCHW, f32, RGB, in [-1, 1]. This crate depends on no data, loss, trainer or
//! CLI crate: adding it alone is enough to run a trained model.

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod layers;
pub mod networks;
pub mod ops;
pub mod synthesizer;
pub mod vars;
pub mod vgg;

pub use checkpoint::{NetworkKind, Networks, FORMAT_VERSION};
pub use config::{
    DiscriminatorConfig, GeneratorConfig, ModelConfig, Preset, StageConfig, TrunkConfig,
};
pub use error::{ModelError, Result};
pub use networks::{
    AttributeEncoder, AttributePosterior, Discriminator, DiscriminatorOutput, Generator,
    IdentityNet, IdentityOutput, VggTrunk,
};
pub use synthesizer::Synthesizer;
pub use vars::{seeded_normal, ParamSet};
