//! The paper's update table (DESIGN §4), one process at a time.
//!
//! | phase | loss | updates | how the others are kept out |
//! |---|---|---|---|
//! | D step | L_D | D | x′ detached |
//! | I/C step | L_I on labeled x_s | I/C | only I's graph |
//! | A+G step | L_KL, L_GR | A, G | — |
//! |  | L_GD, L_GC | G only | see below |
//!
//! The identity vector that G receives is detached. L_GD and L_GC must train G but not A,
//! while L_GR trains both; the gradients that reach G's parameters and A's output are both
//! linear in ∂L/∂x′, so one backward pass cannot split them. The A+G step therefore feeds G
//! a leaf copy z̃ of z and runs three backward passes:
//!
//! 1. `w·L_GR` → G's gradient (part 1) and ∂L_GR/∂z̃ (through G only);
//! 2. `L_GD + L_GC` → G's gradient (part 2) (through D, C and G, which run frozen:
//!    [`osips_models::ops::frozen`], so D's and C's weight gradients are never computed);
//! 3. `L_KL + ⟨z, ∂L_GR/∂z̃⟩` → A's gradient: exactly ∂(L_KL + L_GR)/∂θ_A by the chain rule.
//!
//! This costs one extra backward pass through G, instead of a second forward of G.
//! A test checks it against the direct gradients.

use candle_core::{DType, Device, Tensor, Var};
use osips_data::{ImageBatch, ProcessBatch};
use osips_losses as losses;
use osips_models::{NetworkKind, Networks};

use crate::error::Result;
use crate::optim::{add_grads, collect_grads, GradMap};

/// Which of the two processes of an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// x_a = x_s (the same images).
    Reconstruction,
    /// x_a is another image, of another identity.
    Transformation,
}

impl Process {
    pub const ALL: [Process; 2] = [Process::Reconstruction, Process::Transformation];

    /// Short name used in stat keys: `recon`, `trans`.
    pub fn key(self) -> &'static str {
        match self {
            Process::Reconstruction => "recon",
            Process::Transformation => "trans",
        }
    }

    fn noise_stream(self) -> u64 {
        match self {
            Process::Reconstruction => 1,
            Process::Transformation => 2,
        }
    }
}

/// The outcome of one phase: named scalar stats and the gradients to apply, per network.
#[derive(Debug, Default)]
pub struct PhaseOutput {
    pub stats: Vec<(String, f64)>,
    pub updates: Vec<(NetworkKind, GradMap)>,
}

/// A process batch as tensors.
#[derive(Debug, Clone)]
pub struct ProcessTensors {
    /// x_s, `[N, 3, S, S]`.
    pub source: Tensor,
    /// x_a, `[N, 3, S, S]`.
    pub attribute: Tensor,
    /// Rows of x_s that carry a label, and the labels, `[L]` each.
    pub labeled_rows: Option<(Tensor, Tensor)>,
    /// Per-sample weights of L_GR, `[N]`.
    pub reconstruction_weights: Tensor,
}

/// An image batch as an NCHW tensor.
pub fn image_tensor(batch: &ImageBatch, device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        &batch.data,
        batch.shape().as_slice(),
        device,
    )?)
}

impl ProcessTensors {
    pub fn new(
        batch: &ProcessBatch,
        weights: &losses::LossWeights,
        device: &Device,
    ) -> Result<Self> {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for (i, label) in batch.source_labels.iter().enumerate() {
            if let Some(label) = label {
                rows.push(i as u32);
                labels.push(*label);
            }
        }
        let labeled_rows = if rows.is_empty() {
            None
        } else {
            let n = rows.len();
            Some((
                Tensor::from_vec(rows, n, device)?,
                Tensor::from_vec(labels, n, device)?,
            ))
        };
        let w = weights.reconstruction_sample_weights(&batch.same_image);
        let n = w.len();
        Ok(ProcessTensors {
            source: image_tensor(&batch.source, device)?,
            attribute: image_tensor(&batch.attribute, device)?,
            labeled_rows,
            reconstruction_weights: Tensor::from_vec(w, n, device)?,
        })
    }
}

/// The forward pass shared by the D and A+G steps.
pub struct Synthesis {
    /// z̃: a leaf copy of z that G reads, so that the gradient reaching A can be chosen.
    pub z_leaf: Var,
    /// z = μ + r ⊙ exp(ε), attached to A's graph.
    pub z: Tensor,
    pub mean: Tensor,
    pub log_std: Tensor,
    /// x′ = G([f_I(x_s) (detached); z̃]).
    pub fake: Tensor,
}

/// Forward: identity vector of x_s (I in eval mode, detached), z from A, x′ from G.
pub fn synthesize(nets: &Networks, batch: &ProcessTensors, noise: &Tensor) -> Result<Synthesis> {
    let identity = nets
        .identity
        .forward_t(&batch.source, false)?
        .identity
        .detach();
    let posterior = nets.attribute.forward_t(&batch.attribute, true)?;
    let z = posterior.sample(noise)?;
    let z_leaf = Var::from_tensor(&z.detach())?;
    let fake = nets
        .generator
        .forward_t(&identity, z_leaf.as_tensor(), true)?;
    Ok(Synthesis {
        z_leaf,
        z,
        mean: posterior.mean,
        log_std: posterior.log_std,
        fake,
    })
}

/// The reparameterisation noise r ~ N(0, I) of one process of one step: a pure function of
/// (seed, step, process), so a resumed run draws the same noise.
pub fn process_noise(
    seed: u64,
    step: u64,
    process: Process,
    n: usize,
    dim: usize,
    device: &Device,
) -> Result<Tensor> {
    let key = osips_data::rng::hash_words(&[seed, step, process.noise_stream(), 0x006e_6f69_7365]);
    Ok(osips_models::seeded_normal((n, dim), key, device)?)
}

/// D step: L_D on real x_a and detached x′.
pub fn discriminator_phase(
    nets: &Networks,
    batch: &ProcessTensors,
    synthesis: &Synthesis,
    weights: &losses::LossWeights,
) -> Result<PhaseOutput> {
    let real = nets.discriminator.forward_t(&batch.attribute, true)?;
    let fake = nets
        .discriminator
        .forward_t(&synthesis.fake.detach(), true)?;
    let loss = losses::discriminator_loss(&real.logit, &fake.logit)?;
    let grads = (&loss * weights.discriminator)?.backward()?;
    let update = collect_grads(&grads, &nets.discriminator_params);
    Ok(PhaseOutput {
        stats: vec![
            ("loss/d".into(), scalar(&loss)?),
            ("score/d/real".into(), scalar(&real.logit.mean_all()?)?),
            ("score/d/fake".into(), scalar(&fake.logit.mean_all()?)?),
        ],
        updates: vec![(NetworkKind::Discriminator, update)],
    })
}

/// I/C step: softmax loss on the labeled x_s only (nothing when the batch has no label).
pub fn identity_phase(
    nets: &Networks,
    batch: &ProcessTensors,
    weights: &losses::LossWeights,
) -> Result<PhaseOutput> {
    let Some((rows, labels)) = &batch.labeled_rows else {
        return Ok(PhaseOutput::default());
    };
    let labeled = batch.source.index_select(rows, 0)?;
    let out = nets.identity.forward_t(&labeled, true)?;
    let loss = losses::identity_loss(&out.logits, labels)?;
    let accuracy = out
        .logits
        .argmax(1)?
        .eq(&labels.to_dtype(DType::U32)?)?
        .to_dtype(DType::F32)?
        .mean_all()?;
    let grads = (&loss * weights.identity)?.backward()?;
    Ok(PhaseOutput {
        stats: vec![
            ("loss/i".into(), scalar(&loss)?),
            ("acc/i".into(), scalar(&accuracy)?),
        ],
        updates: vec![(
            NetworkKind::Identity,
            collect_grads(&grads, &nets.identity_params),
        )],
    })
}

/// A+G step: L_KL and L_GR train A and G; L_GD and L_GC train G only.
pub fn generator_phase(
    nets: &Networks,
    batch: &ProcessTensors,
    synthesis: &Synthesis,
    weights: &losses::LossWeights,
) -> Result<PhaseOutput> {
    let fake = &synthesis.fake;

    // 1. L_GR: G (part 1) and ∂L_GR/∂z̃.
    let l_gr = losses::reconstruction_loss(&batch.attribute, fake, &batch.reconstruction_weights)?;
    let grads_gr = (&l_gr * weights.reconstruction)?.backward()?;
    let g_gr = collect_grads(&grads_gr, &nets.generator_params);
    let dz = match grads_gr.get(synthesis.z_leaf.as_tensor()) {
        Some(g) => g.detach(),
        None => synthesis.z.zeros_like()?,
    };
    drop(grads_gr);

    // 2. L_GD + L_GC: G only. D in train mode as in its own step; C in eval mode so that
    //    synthesized images never enter the identity network's running statistics.
    //    Both run frozen: their weight gradients would be dropped, so they are never
    //    computed (the gradient still flows through them to x′).
    //    C runs on x′ and on x_s separately: in eval mode every image is independent, so
    //    this equals one pass over both, and the backward pass covers x′'s half only.
    let (d_fake, d_real, c_fake, c_real) = osips_models::ops::frozen(|| -> Result<_> {
        let d_fake = nets.discriminator.forward_t(fake, true)?;
        let d_real = nets.discriminator.forward_t(&batch.attribute, true)?;
        let c_fake = nets.identity.forward_t(fake, false)?.features;
        let c_real = nets.identity.forward_t(&batch.source, false)?.features;
        Ok((d_fake, d_real, c_fake, c_real))
    })?;
    let l_gd = losses::feature_matching_loss(&d_fake.features, &d_real.features)?;
    let l_gc = losses::feature_matching_loss(&c_fake, &c_real)?;
    let adversarial = ((&l_gd * weights.gd)? + (&l_gc * weights.gc)?)?;
    let grads_adv = adversarial.backward()?;
    let g_adv = collect_grads(&grads_adv, &nets.generator_params);
    drop(grads_adv);

    // 3. A: L_KL + L_GR through z.
    let l_kl = losses::kl_loss(&synthesis.mean, &synthesis.log_std)?;
    let a_loss = ((&l_kl * weights.kl)? + (&synthesis.z * &dz)?.sum_all()?)?;
    let grads_a = a_loss.backward()?;
    let g_a = collect_grads(&grads_a, &nets.attribute_params);
    drop(grads_a);

    Ok(PhaseOutput {
        stats: vec![
            ("loss/gr".into(), scalar(&l_gr)?),
            ("loss/gd".into(), scalar(&l_gd)?),
            ("loss/gc".into(), scalar(&l_gc)?),
            ("loss/kl".into(), scalar(&l_kl)?),
        ],
        updates: vec![
            (NetworkKind::Generator, add_grads(g_gr, g_adv)?),
            (NetworkKind::Attribute, g_a),
        ],
    })
}

pub(crate) fn scalar(t: &Tensor) -> Result<f64> {
    Ok(f64::from(t.to_dtype(DType::F32)?.to_scalar::<f32>()?))
}
