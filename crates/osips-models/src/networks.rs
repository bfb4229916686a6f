//! The four networks of the CVAE-GAN (DESIGN §3). Each is a struct with named fields built
//! by `new(cfg, vb)`; the field path is the tensor name in its safetensors file.

use candle_core::Tensor;
use candle_nn::init::NonLinearity;
use candle_nn::VarBuilder;

use crate::config::{DiscriminatorConfig, GeneratorConfig, ModelConfig, TrunkConfig};
use crate::error::{ModelError, Result};
use crate::layers::{flatten, leaky_relu, max_pool2x2, relu, BatchNorm, Conv2d, ConvSpec, Linear};
use crate::ops::Activation;

/// Check that `xs` is `[N, channels, size, size]` with N ≥ 1.
fn check_image(
    network: &'static str,
    input: &'static str,
    xs: &Tensor,
    channels: usize,
    size: usize,
) -> Result<usize> {
    match xs.dims() {
        &[n, c, h, w] if n > 0 && c == channels && h == size && w == size => Ok(n),
        dims => Err(ModelError::Shape {
            network,
            input,
            got: dims.to_vec(),
            expected: format!("[N, {channels}, {size}, {size}] with N ≥ 1"),
        }),
    }
}

/// Check that `xs` is `[N, dim]` with N ≥ 1.
fn check_vector(
    network: &'static str,
    input: &'static str,
    xs: &Tensor,
    dim: usize,
) -> Result<usize> {
    match xs.dims() {
        &[n, d] if n > 0 && d == dim => Ok(n),
        dims => Err(ModelError::Shape {
            network,
            input,
            got: dims.to_vec(),
            expected: format!("[N, {dim}] with N ≥ 1"),
        }),
    }
}

/// conv3×3 (with bias, so ImageNet VGG weights map onto it) → BN → ReLU.
#[derive(Debug, Clone)]
pub struct ConvBnRelu {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    fn new(in_channels: usize, out_channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let spec = ConvSpec {
            in_channels,
            out_channels,
            kernel: 3,
            stride: 1,
            padding: 1,
            bias: true,
            non_linearity: NonLinearity::ReLU,
        };
        Ok(ConvBnRelu {
            conv: Conv2d::new(spec, vb.pp("conv"))?,
            bn: BatchNorm::new(out_channels, vb.pp("bn"))?,
        })
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.bn
            .forward_act_t(&self.conv.forward(xs)?, train, Some(Activation::Relu))
    }
}

/// One VGG stage: its conv blocks, then a 2×2 max-pool.
#[derive(Debug, Clone)]
pub struct VggStage {
    pub convs: Vec<ConvBnRelu>,
}

/// A VGG trunk: stages of [conv3×3 → BN → ReLU]×n, then 2×2 max-pool.
#[derive(Debug, Clone)]
pub struct VggTrunk {
    pub stages: Vec<VggStage>,
    image_size: usize,
}

impl VggTrunk {
    pub fn new(cfg: &TrunkConfig, image_size: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let mut in_channels = 3;
        let mut stages = Vec::with_capacity(cfg.stages.len());
        for (s, stage) in cfg.stages.iter().enumerate() {
            let vb_stage = vb.pp("stages").pp(s);
            let mut convs = Vec::with_capacity(stage.convs);
            for j in 0..stage.convs {
                convs.push(ConvBnRelu::new(
                    in_channels,
                    stage.channels,
                    vb_stage.pp("convs").pp(j),
                )?);
                in_channels = stage.channels;
            }
            stages.push(VggStage { convs });
        }
        Ok(VggTrunk { stages, image_size })
    }

    /// # Shapes
    /// `[N, 3, S, S]` → `[N, C_last, S / 2^stages, S / 2^stages]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut xs = xs.clone();
        for stage in &self.stages {
            for block in &stage.convs {
                xs = block.forward_t(&xs, train)?;
            }
            xs = max_pool2x2(&xs)?;
        }
        Ok(xs)
    }

    /// Forward FLOPs (convolutions) for one image.
    pub fn flops(&self) -> u64 {
        let mut size = self.image_size;
        let mut total = 0;
        for stage in &self.stages {
            for block in &stage.convs {
                total += block.conv.flops(size * size);
            }
            size /= 2;
        }
        total
    }

    /// Number of values in the flattened output of the last pooling layer.
    pub fn out_features(&self) -> usize {
        let n = self.stages.len();
        let channels = self
            .stages
            .last()
            .and_then(|s| s.convs.last())
            .map_or(3, |b| b.conv.weight.dims()[0]);
        let side = self.image_size >> n;
        channels * side * side
    }
}

/// The outputs of [`IdentityNet`].
#[derive(Debug, Clone)]
pub struct IdentityOutput {
    /// f_I(x): the identity vector, `[N, identity_dim]`.
    pub identity: Tensor,
    /// f_C(x): the last hidden FC, `[N, feature_dim]` (feature matching target of L_GC).
    pub features: Tensor,
    /// Class logits over the training identities, `[N, n_identities]` (for L_I).
    pub logits: Tensor,
}

/// The identity network: the paper's I and C, one set of weights. A VGG trunk whose last
/// pooling output is flattened and projected to the identity vector, a hidden FC (the
/// features used by L_GC), and a softmax classifier over the training identities.
#[derive(Debug, Clone)]
pub struct IdentityNet {
    pub trunk: VggTrunk,
    pub projection: Linear,
    pub hidden: Linear,
    pub classifier: Linear,
    image_size: usize,
}

impl IdentityNet {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let trunk = VggTrunk::new(&cfg.identity_trunk, cfg.image_size, vb.pp("trunk"))?;
        let projection = Linear::new(trunk.out_features(), cfg.identity_dim, vb.pp("projection"))?;
        let hidden = Linear::new(cfg.identity_dim, cfg.feature_dim, vb.pp("hidden"))?;
        let classifier = Linear::new(cfg.feature_dim, cfg.n_identities, vb.pp("classifier"))?;
        Ok(IdentityNet {
            trunk,
            projection,
            hidden,
            classifier,
            image_size: cfg.image_size,
        })
    }

    /// # Shapes
    /// `xs`: `[N, 3, S, S]` in [-1, 1] → identity `[N, identity_dim]`, features
    /// `[N, feature_dim]`, logits `[N, n_identities]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<IdentityOutput> {
        check_image("IdentityNet", "xs", xs, 3, self.image_size)?;
        let pooled = flatten(&self.trunk.forward_t(xs, train)?)?;
        let identity = self.projection.forward(&pooled)?;
        let features = relu(&self.hidden.forward(&identity)?)?;
        let logits = self.classifier.forward(&features)?;
        Ok(IdentityOutput {
            identity,
            features,
            logits,
        })
    }

    /// Forward FLOPs for one image (convolutions and FCs).
    pub fn flops(&self) -> u64 {
        self.trunk.flops() + self.projection.flops() + self.hidden.flops() + self.classifier.flops()
    }
}

/// The outputs of [`AttributeEncoder`]: the Gaussian posterior q(z | x_a).
#[derive(Debug, Clone)]
pub struct AttributePosterior {
    /// μ, `[N, attribute_dim]`.
    pub mean: Tensor,
    /// ε = log σ, `[N, attribute_dim]`.
    pub log_std: Tensor,
}

impl AttributePosterior {
    /// Reparameterisation z = μ + r ⊙ exp(ε) with the standard-normal noise `r` passed in
    /// (so tests and inference are deterministic).
    ///
    /// # Shapes
    /// `noise`: `[N, attribute_dim]` → z `[N, attribute_dim]`.
    pub fn sample(&self, noise: &Tensor) -> Result<Tensor> {
        if noise.dims() != self.mean.dims() {
            return Err(ModelError::Shape {
                network: "AttributePosterior",
                input: "noise",
                got: noise.dims().to_vec(),
                expected: format!("{:?} (the shape of the mean)", self.mean.dims()),
            });
        }
        Ok((&self.mean + (noise * self.log_std.exp()?)?)?)
    }
}

/// The attribute encoder (the paper's A): a VGG trunk of its own and two FC heads giving the
/// mean and log-std of z.
#[derive(Debug, Clone)]
pub struct AttributeEncoder {
    pub trunk: VggTrunk,
    pub mean: Linear,
    pub log_std: Linear,
    image_size: usize,
}

impl AttributeEncoder {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let trunk = VggTrunk::new(&cfg.attribute_trunk, cfg.image_size, vb.pp("trunk"))?;
        let mean = Linear::new(trunk.out_features(), cfg.attribute_dim, vb.pp("mean"))?;
        let log_std = Linear::new(trunk.out_features(), cfg.attribute_dim, vb.pp("log_std"))?;
        Ok(AttributeEncoder {
            trunk,
            mean,
            log_std,
            image_size: cfg.image_size,
        })
    }

    /// # Shapes
    /// `xs`: `[N, 3, S, S]` → mean and log_std, each `[N, attribute_dim]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<AttributePosterior> {
        check_image("AttributeEncoder", "xs", xs, 3, self.image_size)?;
        let pooled = flatten(&self.trunk.forward_t(xs, train)?)?;
        Ok(AttributePosterior {
            mean: self.mean.forward(&pooled)?,
            log_std: self.log_std.forward(&pooled)?,
        })
    }

    /// Forward FLOPs for one image.
    pub fn flops(&self) -> u64 {
        self.trunk.flops() + self.mean.flops() + self.log_std.flops()
    }
}

/// One generator stage: 2× nearest upsample → conv3×3 → BN → ReLU.
#[derive(Debug, Clone)]
pub struct UpStage {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// The generator (the paper's G, an "inverse VGG"): FC from [identity; z] to a 4×4 map,
/// upsampling stages, and a final conv3×3 to RGB with tanh.
#[derive(Debug, Clone)]
pub struct Generator {
    pub input: Linear,
    pub input_bn: BatchNorm,
    pub stages: Vec<UpStage>,
    pub to_rgb: Conv2d,
    identity_dim: usize,
    attribute_dim: usize,
    base_channels: usize,
}

impl Generator {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let GeneratorConfig {
            base_channels,
            stages: widths,
        } = &cfg.generator;
        let input = Linear::new(
            cfg.identity_dim + cfg.attribute_dim,
            base_channels * 16,
            vb.pp("input"),
        )?;
        let input_bn = BatchNorm::new(*base_channels, vb.pp("input_bn"))?;
        let mut in_channels = *base_channels;
        let mut stages = Vec::with_capacity(widths.len());
        for (i, &out_channels) in widths.iter().enumerate() {
            let vb_stage = vb.pp("stages").pp(i);
            let spec = ConvSpec {
                in_channels,
                out_channels,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: false,
                non_linearity: NonLinearity::ReLU,
            };
            stages.push(UpStage {
                conv: Conv2d::new(spec, vb_stage.pp("conv"))?,
                bn: BatchNorm::new(out_channels, vb_stage.pp("bn"))?,
            });
            in_channels = out_channels;
        }
        let to_rgb = Conv2d::new(
            ConvSpec {
                in_channels,
                out_channels: 3,
                kernel: 3,
                stride: 1,
                padding: 1,
                bias: true,
                non_linearity: NonLinearity::Tanh,
            },
            vb.pp("to_rgb"),
        )?;
        Ok(Generator {
            input,
            input_bn,
            stages,
            to_rgb,
            identity_dim: cfg.identity_dim,
            attribute_dim: cfg.attribute_dim,
            base_channels: *base_channels,
        })
    }

    /// Synthesize x′ from an identity vector and an attribute vector.
    ///
    /// # Shapes
    /// `identity`: `[N, identity_dim]`, `attribute`: `[N, attribute_dim]` → `[N, 3, S, S]` in
    /// (-1, 1).
    pub fn forward_t(&self, identity: &Tensor, attribute: &Tensor, train: bool) -> Result<Tensor> {
        let n = check_vector("Generator", "identity", identity, self.identity_dim)?;
        let m = check_vector("Generator", "attribute", attribute, self.attribute_dim)?;
        if n != m {
            return Err(ModelError::Shape {
                network: "Generator",
                input: "attribute",
                got: attribute.dims().to_vec(),
                expected: format!("[{n}, {}] (the batch of identity)", self.attribute_dim),
            });
        }
        let code = Tensor::cat(&[identity, attribute], 1)?;
        let xs = self
            .input
            .forward(&code)?
            .reshape((n, self.base_channels, 4, 4))?;
        let mut xs = self
            .input_bn
            .forward_act_t(&xs, train, Some(Activation::Relu))?;
        for stage in &self.stages {
            xs = stage.conv.forward_upsample2x(&xs)?;
            xs = stage.bn.forward_act_t(&xs, train, Some(Activation::Relu))?;
        }
        Ok(self.to_rgb.forward(&xs)?.tanh()?)
    }

    /// Forward FLOPs for one image.
    pub fn flops(&self) -> u64 {
        let mut size = 4;
        let mut total = self.input.flops();
        for stage in &self.stages {
            size *= 2;
            total += stage.conv.flops(size * size);
        }
        total + self.to_rgb.flops(size * size)
    }
}

/// One discriminator layer: conv4×4 stride 2 → (BN) → LeakyReLU(0.2).
#[derive(Debug, Clone)]
pub struct DownLayer {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
}

/// The outputs of [`Discriminator`].
#[derive(Debug, Clone)]
pub struct DiscriminatorOutput {
    /// Real/fake logit, `[N]` (positive = real).
    pub logit: Tensor,
    /// The last intermediate layer, `[N, C_last, 4, 4]` (feature matching target of L_GD).
    pub features: Tensor,
}

/// The DCGAN discriminator (the paper's D).
#[derive(Debug, Clone)]
pub struct Discriminator {
    pub layers: Vec<DownLayer>,
    pub head: Linear,
    image_size: usize,
}

impl Discriminator {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder<'_>) -> Result<Self> {
        cfg.validate()?;
        let DiscriminatorConfig { channels } = &cfg.discriminator;
        let mut in_channels = 3;
        let mut layers = Vec::with_capacity(channels.len());
        for (i, &out_channels) in channels.iter().enumerate() {
            let vb_layer = vb.pp("layers").pp(i);
            let with_bn = i > 0;
            let spec = ConvSpec {
                in_channels,
                out_channels,
                kernel: 4,
                stride: 2,
                padding: 1,
                bias: !with_bn,
                non_linearity: NonLinearity::ExplicitGain((2.0 / (1.0 + 0.2f64 * 0.2)).sqrt()),
            };
            layers.push(DownLayer {
                conv: Conv2d::new(spec, vb_layer.pp("conv"))?,
                bn: if with_bn {
                    Some(BatchNorm::new(out_channels, vb_layer.pp("bn"))?)
                } else {
                    None
                },
            });
            in_channels = out_channels;
        }
        let side = cfg.image_size >> channels.len();
        let head = Linear::new(in_channels * side * side, 1, vb.pp("head"))?;
        Ok(Discriminator {
            layers,
            head,
            image_size: cfg.image_size,
        })
    }

    /// # Shapes
    /// `xs`: `[N, 3, S, S]` → logit `[N]`, features `[N, C_last, 4, 4]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<DiscriminatorOutput> {
        check_image("Discriminator", "xs", xs, 3, self.image_size)?;
        let mut xs = xs.clone();
        for layer in &self.layers {
            xs = layer.conv.forward(&xs)?;
            xs = match &layer.bn {
                Some(bn) => bn.forward_act_t(&xs, train, Some(Activation::LeakyRelu(0.2)))?,
                None => leaky_relu(&xs, 0.2)?,
            };
        }
        let logit = self.head.forward(&flatten(&xs)?)?.squeeze(1)?;
        Ok(DiscriminatorOutput {
            logit,
            features: xs,
        })
    }

    /// Forward FLOPs for one image.
    pub fn flops(&self) -> u64 {
        let mut size = self.image_size;
        let mut total = 0;
        for layer in &self.layers {
            size /= 2;
            total += layer.conv.flops(size * size);
        }
        total + self.head.flops()
    }
}
