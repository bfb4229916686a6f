//! Network configurations and their named presets.

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The largest image side a config may ask for (the paper works at 128).
pub const MAX_IMAGE_SIZE: usize = 2048;

/// The named presets. `Tiny` is the CPU default (tests, demos, the main job); `Paper` is the
/// paper's resolution with VGG16-width encoders initialised from ImageNet VGG16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// 64×64 images, narrow trunks: a training iteration in about a second on 2 CPU cores.
    Tiny,
    /// 128×128 images, VGG16 trunks (13 convolutions, 64…512 channels): for GPUs.
    Paper,
}

impl Preset {
    /// All presets, for listings and help texts.
    pub const ALL: [Preset; 2] = [Preset::Tiny, Preset::Paper];

    /// The preset's lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Paper => "paper",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ModelError::Config(format!("unknown preset `{s}` (tiny, paper)")))
    }
}

/// One stage of a VGG trunk: `convs` × [conv3×3 → BN → ReLU] at `channels`, then 2×2 max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub channels: usize,
    pub convs: usize,
}

/// A VGG trunk: its stages in order. Each stage halves the resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub stages: Vec<StageConfig>,
}

impl TrunkConfig {
    /// VGG16's convolutional trunk (the `features` of torchvision / timm `vgg16`).
    pub fn vgg16() -> Self {
        let stages = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
            .into_iter()
            .map(|(channels, convs)| StageConfig { channels, convs })
            .collect();
        TrunkConfig { stages }
    }

    /// Output channels of the last stage.
    pub fn out_channels(&self) -> usize {
        self.stages.last().map_or(3, |s| s.channels)
    }
}

/// The generator ("inverse VGG"): FC → `base_channels`×4×4, then one stage per entry of
/// `stages` of [2× nearest upsample → conv3×3 → BN → ReLU] with that many output channels,
/// then conv3×3 → 3 channels → tanh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    pub base_channels: usize,
    pub stages: Vec<usize>,
}

/// The DCGAN discriminator: one conv4×4 stride-2 layer per entry of `channels`, LeakyReLU 0.2,
/// BatchNorm after every layer but the first; the last layer's activations are the features
/// for L_GD, and a linear head gives the real/fake logit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscriminatorConfig {
    pub channels: Vec<usize>,
}

/// Everything that fixes the shapes of the four networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The preset this config was built from (checked when a checkpoint is loaded).
    pub preset: Preset,
    /// Square image side in pixels.
    pub image_size: usize,
    /// Number of training identities (classes of the identity classifier).
    pub n_identities: usize,
    /// Trunk of the identity network (the paper's I and C).
    pub identity_trunk: TrunkConfig,
    /// Trunk of the attribute encoder (the paper's A).
    pub attribute_trunk: TrunkConfig,
    /// Length of the identity vector f_I(x).
    pub identity_dim: usize,
    /// Width of the identity network's last hidden FC (f_C for L_GC).
    pub feature_dim: usize,
    /// Length of the attribute vector z.
    pub attribute_dim: usize,
    pub generator: GeneratorConfig,
    pub discriminator: DiscriminatorConfig,
}

impl ModelConfig {
    /// The CPU preset: 64×64 faces.
    pub fn tiny(n_identities: usize) -> Self {
        let trunk = TrunkConfig {
            stages: [(16, 1), (32, 1), (64, 2), (128, 2)]
                .into_iter()
                .map(|(channels, convs)| StageConfig { channels, convs })
                .collect(),
        };
        ModelConfig {
            preset: Preset::Tiny,
            image_size: 64,
            n_identities,
            identity_trunk: trunk.clone(),
            attribute_trunk: trunk,
            identity_dim: 128,
            feature_dim: 256,
            attribute_dim: 64,
            generator: GeneratorConfig {
                base_channels: 128,
                stages: vec![128, 64, 32, 16],
            },
            discriminator: DiscriminatorConfig {
                channels: vec![32, 64, 128, 256],
            },
        }
    }

    /// The paper's preset: 128×128 faces, VGG16 trunks (loadable from ImageNet weights).
    pub fn paper(n_identities: usize) -> Self {
        ModelConfig {
            preset: Preset::Paper,
            image_size: 128,
            n_identities,
            identity_trunk: TrunkConfig::vgg16(),
            attribute_trunk: TrunkConfig::vgg16(),
            identity_dim: 256,
            feature_dim: 512,
            attribute_dim: 256,
            generator: GeneratorConfig {
                base_channels: 512,
                stages: vec![512, 256, 128, 64, 32],
            },
            discriminator: DiscriminatorConfig {
                channels: vec![64, 128, 256, 512, 512],
            },
        }
    }

    /// The config of a preset.
    pub fn preset(preset: Preset, n_identities: usize) -> Self {
        match preset {
            Preset::Tiny => Self::tiny(n_identities),
            Preset::Paper => Self::paper(n_identities),
        }
    }

    /// Check that the depths match the image size and every width is positive.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(ModelError::Config(msg));
        // `image_size >> n`, 0 once every bit is shifted out (a plain `>>` panics at n ≥ 64).
        let halve = |size: usize, n: usize| {
            u32::try_from(n)
                .ok()
                .and_then(|n| size.checked_shr(n))
                .unwrap_or(0)
        };
        if self.n_identities == 0 {
            return bad("n_identities must be at least 1".into());
        }
        if self.image_size > MAX_IMAGE_SIZE {
            return bad(format!(
                "image_size {} is above the largest supported, {MAX_IMAGE_SIZE}",
                self.image_size
            ));
        }
        for (name, trunk) in [
            ("identity_trunk", &self.identity_trunk),
            ("attribute_trunk", &self.attribute_trunk),
        ] {
            if trunk.stages.is_empty()
                || trunk.stages.iter().any(|s| s.channels == 0 || s.convs == 0)
            {
                return bad(format!(
                    "{name}: every stage needs channels > 0 and convs > 0"
                ));
            }
            let out = halve(self.image_size, trunk.stages.len());
            if out != 4 || !self.image_size.is_multiple_of(4) {
                return bad(format!(
                    "{name}: {} stages take {}px to {}px, expected 4px",
                    trunk.stages.len(),
                    self.image_size,
                    out
                ));
            }
        }
        let generated = u32::try_from(self.generator.stages.len())
            .ok()
            .and_then(|n| 4usize.checked_shl(n))
            .unwrap_or(0);
        if generated != self.image_size {
            return bad(format!(
                "generator: {} upsampling stages take 4px to {}, expected {}px",
                self.generator.stages.len(),
                if generated == 0 {
                    "more than memory can hold".to_string()
                } else {
                    format!("{generated}px")
                },
                self.image_size
            ));
        }
        let out = halve(self.image_size, self.discriminator.channels.len());
        if out != 4 {
            return bad(format!(
                "discriminator: {} stride-2 layers take {}px to {}px, expected 4px",
                self.discriminator.channels.len(),
                self.image_size,
                out
            ));
        }
        if [
            self.identity_dim,
            self.feature_dim,
            self.attribute_dim,
            self.generator.base_channels,
        ]
        .contains(&0)
            || self.generator.stages.contains(&0)
            || self.discriminator.channels.contains(&0)
        {
            return bad("every width must be positive".into());
        }
        Ok(())
    }
}
