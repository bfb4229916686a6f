//! Inference from a trained checkpoint: identity from one face, attributes from another.
//!
//! ```no_run
//! use candle_core::{Device, Tensor};
//! use osips_models::Synthesizer;
//!
//! let model = Synthesizer::load("runs/00000-tiny/checkpoints/step-00001000")?;
//! let s = model.image_size();
//! // Two batches of aligned faces, NCHW in [-1, 1] (e.g. from `image` files).
//! let who = Tensor::zeros((1, 3, s, s), candle_core::DType::F32, &Device::Cpu)?;
//! let how = Tensor::zeros((1, 3, s, s), candle_core::DType::F32, &Device::Cpu)?;
//! let swapped = model.swap(&who, &how)?; // [1, 3, s, s]
//! # Ok::<(), osips_models::ModelError>(())
//! ```
//!
//! Every method runs the networks in eval mode (BatchNorm with its running statistics)
//! and the generator's moving average, as the trainer's samples and evaluation do.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, D};

use crate::checkpoint::{read_checkpoint_meta, CheckpointMeta, NetworkKind, GENERATOR_EMA_FILE};
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::networks::{AttributeEncoder, Generator, IdentityNet};
use crate::vars::{seeded_normal, ParamSet};

/// A trained model, ready for swaps, open-set sampling, morphing, frontalization and the
/// adversarial-example check.
#[derive(Debug)]
pub struct Synthesizer {
    config: ModelConfig,
    meta: CheckpointMeta,
    dir: PathBuf,
    identity: IdentityNet,
    attribute: AttributeEncoder,
    generator: Generator,
    device: Device,
    // The parameter sets own the variables the networks read.
    _params: [ParamSet; 3],
}

impl Synthesizer {
    /// Load a checkpoint directory (`…/checkpoints/step-NNNNNNNN`) onto the CPU. Checks the
    /// format version and the preset, and every tensor's name and shape.
    pub fn load(checkpoint_dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_on(checkpoint_dir, &Device::Cpu)
    }

    /// [`Synthesizer::load`] onto `device`.
    pub fn load_on(checkpoint_dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = checkpoint_dir.as_ref();
        let (config, meta) = read_checkpoint_meta(dir)?;
        config.validate()?;
        // Fresh (seed 0) variables, then every one overwritten from the files, which must
        // hold exactly these names and shapes. Each set may allocate no more than its file
        // could hold, whatever the checkpoint's config.json claims.
        let identity_params = ParamSet::for_file(0, &dir.join(NetworkKind::Identity.file_name()))?;
        let attribute_params =
            ParamSet::for_file(0, &dir.join(NetworkKind::Attribute.file_name()))?;
        let generator_params = ParamSet::for_file(0, &dir.join(GENERATOR_EMA_FILE))?;
        let identity = IdentityNet::new(&config, identity_params.var_builder(device))?;
        let attribute = AttributeEncoder::new(&config, attribute_params.var_builder(device))?;
        let generator = Generator::new(&config, generator_params.var_builder(device))?;
        identity_params.load(&dir.join(NetworkKind::Identity.file_name()))?;
        attribute_params.load(&dir.join(NetworkKind::Attribute.file_name()))?;
        generator_params.load(&dir.join(GENERATOR_EMA_FILE))?;
        Ok(Synthesizer {
            config,
            meta,
            dir: dir.to_path_buf(),
            identity,
            attribute,
            generator,
            device: device.clone(),
            _params: [identity_params, attribute_params, generator_params],
        })
    }

    /// The model's configuration (preset, image size, vector sizes).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The training step the checkpoint was written at.
    pub fn step(&self) -> u64 {
        self.meta.step
    }

    /// The checkpoint directory.
    pub fn checkpoint_dir(&self) -> &Path {
        &self.dir
    }

    /// Side of the square images the model reads and writes.
    pub fn image_size(&self) -> usize {
        self.config.image_size
    }

    /// The device the networks live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The identity network (I and C).
    pub fn identity_net(&self) -> &IdentityNet {
        &self.identity
    }

    /// The attribute encoder (A).
    pub fn attribute_net(&self) -> &AttributeEncoder {
        &self.attribute
    }

    /// The generator (G, its moving average as trained).
    pub fn generator_net(&self) -> &Generator {
        &self.generator
    }

    /// The identity vector f_I(x) (the projected output of the last pooling layer).
    ///
    /// # Shapes
    /// `images`: `[N, 3, S, S]` → `[N, identity_dim]`.
    pub fn identity_vector(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.identity.forward_t(images, false)?.identity)
    }

    /// The attribute vector: the mean μ of the attribute posterior.
    ///
    /// # Shapes
    /// `images`: `[N, 3, S, S]` → `[N, attribute_dim]`.
    pub fn attribute_vector(&self, images: &Tensor) -> Result<Tensor> {
        Ok(self.attribute.forward_t(images, false)?.mean)
    }

    /// The generator on given vectors.
    ///
    /// # Shapes
    /// `identity`: `[N, identity_dim]`, `attribute`: `[N, attribute_dim]` → `[N, 3, S, S]`.
    pub fn generate(&self, identity: &Tensor, attribute: &Tensor) -> Result<Tensor> {
        self.generator.forward_t(identity, attribute, false)
    }

    /// Identity of `identity_images`, attributes of `attribute_images`, pair by pair.
    ///
    /// # Shapes
    /// both `[N, 3, S, S]` → `[N, 3, S, S]` in (-1, 1).
    pub fn swap(&self, identity_images: &Tensor, attribute_images: &Tensor) -> Result<Tensor> {
        same_batch("swap", identity_images, attribute_images)?;
        let identity = self.identity_vector(identity_images)?;
        let attribute = self.attribute_vector(attribute_images)?;
        self.generate(&identity, &attribute)
    }

    /// Open-set synthesis: `n` new faces of each identity, with attribute vectors drawn
    /// from N(0, I) (a pure function of `seed`, the same draws for every identity).
    ///
    /// # Shapes
    /// `identity_images`: `[B, 3, S, S]` → `[B·n, 3, S, S]`, identity-major (the `n`
    /// samples of the first identity first).
    pub fn sample(&self, identity_images: &Tensor, n: usize, seed: u64) -> Result<Tensor> {
        if n == 0 {
            return Err(ModelError::Config("sample: n must be at least 1".into()));
        }
        let identity = self.identity_vector(identity_images)?;
        let b = identity.dim(0)?;
        let z = seeded_normal((n, self.config.attribute_dim), seed, &self.device)?;
        let identity = repeat_rows(&identity, n)?;
        let z = Tensor::cat(&vec![z; b], 0)?;
        self.generate(&identity, &z)
    }

    /// Attribute morphing: for each identity, `steps` images whose attribute vectors go in
    /// equal steps from those of `attributes_from` to those of `attributes_to`.
    ///
    /// # Shapes
    /// all three `[B, 3, S, S]` → `[B·steps, 3, S, S]`, identity-major.
    pub fn morph(
        &self,
        identity_images: &Tensor,
        attributes_from: &Tensor,
        attributes_to: &Tensor,
        steps: usize,
    ) -> Result<Tensor> {
        if steps < 2 {
            return Err(ModelError::Config("morph: steps must be at least 2".into()));
        }
        same_batch("morph", identity_images, attributes_from)?;
        same_batch("morph", identity_images, attributes_to)?;
        let identity = self.identity_vector(identity_images)?;
        let from = self.attribute_vector(attributes_from)?;
        let to = self.attribute_vector(attributes_to)?;
        let b = identity.dim(0)?;
        let mut rows = Vec::with_capacity(b * steps);
        for i in 0..b {
            let (f, t) = (from.narrow(0, i, 1)?, to.narrow(0, i, 1)?);
            for k in 0..steps {
                let alpha = k as f64 / (steps - 1) as f64;
                rows.push(((&f * (1.0 - alpha))? + (&t * alpha)?)?);
            }
        }
        let z = Tensor::cat(&rows, 0)?;
        self.generate(&repeat_rows(&identity, steps)?, &z)
    }

    /// Frontalization: each face's identity with the attributes (pose, expression, light)
    /// of one frontal face.
    ///
    /// # Shapes
    /// `images`: `[N, 3, S, S]`, `frontal`: `[1, 3, S, S]` → `[N, 3, S, S]`.
    pub fn frontalize(&self, images: &Tensor, frontal: &Tensor) -> Result<Tensor> {
        if frontal.dims().first() != Some(&1) {
            return Err(ModelError::Shape {
                network: "Synthesizer::frontalize",
                input: "frontal",
                got: frontal.dims().to_vec(),
                expected: format!("[1, 3, {0}, {0}]", self.image_size()),
            });
        }
        let identity = self.identity_vector(images)?;
        let attribute = self.attribute_vector(frontal)?;
        let attribute = repeat_rows(&attribute, identity.dim(0)?)?;
        self.generate(&identity, &attribute)
    }

    /// The paper's adversarial-example check: 1 − cos(f_I(x), f_I(x̂)) with x̂ the
    /// reconstruction of x from its own identity and attribute vectors. Real faces
    /// reconstruct to the same identity (small distance); adversarially perturbed ones,
    /// whose identity vector the generator cannot reproduce, do not.
    ///
    /// # Shapes
    /// `images`: `[N, 3, S, S]` → `[N]`, in [0, 2].
    pub fn reconstruction_distance(&self, images: &Tensor) -> Result<Tensor> {
        let identity = self.identity_vector(images)?;
        let reconstruction = self.generate(&identity, &self.attribute_vector(images)?)?;
        let again = self.identity_vector(&reconstruction)?;
        Ok((1.0 - cosine(&identity, &again)?)?)
    }
}

/// Row-wise cosine similarity of two `[N, D]` tensors → `[N]`.
pub fn cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dot = (a * b)?.sum(D::Minus1)?;
    let norms = (a.sqr()?.sum(D::Minus1)?.sqrt()? * b.sqr()?.sum(D::Minus1)?.sqrt()?)?;
    Ok(dot.broadcast_div(&(norms + 1e-12)?)?)
}

/// Each row of `[B, D]` repeated `n` times in place → `[B·n, D]`.
fn repeat_rows(xs: &Tensor, n: usize) -> Result<Tensor> {
    let (b, d) = xs.dims2()?;
    Ok(xs.unsqueeze(1)?.repeat((1, n, 1))?.reshape((b * n, d))?)
}

fn same_batch(what: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims().first() != b.dims().first() {
        return Err(ModelError::Shape {
            network: what,
            input: "attribute images",
            got: b.dims().to_vec(),
            expected: format!("the batch of the identity images {:?}", a.dims()),
        });
    }
    Ok(())
}
