//! # osips-losses
//!
//! The six losses of the CVAE-GAN of Bao et al. (CVPR 2018) as pure functions of tensors,
//! and their weights. Networks know nothing of losses; the trainer decides which network
//! each loss updates (DESIGN §4):
//!
//! | loss | function | updates |
//! |---|---|---|
//! | L_I  | [`identity_loss`] | I/C |
//! | L_KL | [`kl_loss`] | A |
//! | L_GR | [`reconstruction_loss`] | A, G |
//! | L_GD | [`feature_matching_loss`] on D's features | G |
//! | L_GC | [`feature_matching_loss`] on C's features | G |
//! | L_D  | [`discriminator_loss`] | D |
//!
//! Every per-sample term is a *sum* over its elements, exactly as the paper writes it
//! (½‖·‖², Σ over the attribute dimensions), averaged over the batch.

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

/// Errors of the loss functions: shape mismatches and candle failures.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{loss}: {problem}")]
    Shape { loss: &'static str, problem: String },
}

/// `Result` with [`LossError`].
pub type Result<T> = std::result::Result<T, LossError>;

/// Weights of the loss terms. Serialised with the run config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossWeights {
    /// Weight of L_I, the identity network's softmax loss. Default 1.
    pub identity: f64,
    /// Weight of L_KL on the attribute posterior. Default 1.
    pub kl: f64,
    /// Weight of L_GR as a whole. Default 1.
    pub reconstruction: f64,
    /// λ: the per-sample weight of L_GR when x_a is not the image x_s (transformation).
    /// Default 0.1, the paper's choice among {0.01, 0.1, 1}.
    pub transform_lambda: f64,
    /// Weight of L_GD, feature matching on the discriminator. Default 1.
    pub gd: f64,
    /// Weight of L_GC, feature matching on the identity classifier. Default 1.
    pub gc: f64,
    /// Weight of L_D. Default 1.
    pub discriminator: f64,
}

impl LossWeights {
    /// The documented defaults (all 1, λ = 0.1).
    pub fn paper() -> Self {
        LossWeights {
            identity: 1.0,
            kl: 1.0,
            reconstruction: 1.0,
            transform_lambda: 0.1,
            gd: 1.0,
            gc: 1.0,
            discriminator: 1.0,
        }
    }

    /// Per-sample weights of L_GR: 1 where x_a is the very image x_s, λ elsewhere.
    pub fn reconstruction_sample_weights(&self, same_image: &[bool]) -> Vec<f32> {
        same_image
            .iter()
            .map(|&same| {
                if same {
                    1.0
                } else {
                    self.transform_lambda as f32
                }
            })
            .collect()
    }
}

impl Default for LossWeights {
    fn default() -> Self {
        Self::paper()
    }
}

/// Numerically stable softplus log(1 + eˣ) = max(x, 0) + log(1 + e^{−|x|}).
///
/// Finite with finite gradient for any finite x (e^{−|x|} ≤ 1 never overflows); never
/// computed as log(sigmoid), which gives log(0) once the sigmoid saturates.
pub fn softplus(xs: &Tensor) -> Result<Tensor> {
    let tail = (xs.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((xs.relu()? + tail)?)
}

/// L_I: softmax cross-entropy of the identity logits, averaged over the batch.
///
/// # Shapes
/// `logits`: `[N, K]`, `labels`: `[N]` (u32 in 0..K) → scalar.
pub fn identity_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (n, k) = logits.dims2()?;
    if labels.dims() != [n] {
        return Err(LossError::Shape {
            loss: "identity_loss",
            problem: format!("labels {:?} for logits [{n}, {k}]", labels.dims()),
        });
    }
    let max = logits.max_keepdim(1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum_exp = shifted.exp()?.sum_keepdim(1)?.log()?;
    let labels = labels.to_dtype(DType::U32)?.unsqueeze(1)?;
    let picked = shifted.gather(&labels, 1)?;
    Ok((log_sum_exp - picked)?.mean_all()?)
}

/// L_KL: KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_j (μ_j² + e^{2ε_j} − 2ε_j − 1) with ε = log σ, summed over
/// the attribute dimensions and averaged over the batch.
///
/// # Shapes
/// `mean`, `log_std`: `[N, Z]` → scalar.
pub fn kl_loss(mean: &Tensor, log_std: &Tensor) -> Result<Tensor> {
    same_shape("kl_loss", mean, log_std)?;
    let n = mean.dim(0)? as f64;
    let terms = ((mean.sqr()? + (log_std * 2.0)?.exp()?)? - (log_std * 2.0)?)? - 1.0;
    Ok((terms?.sum_all()? * (0.5 / n))?)
}

/// L_GR: ½‖x_a − x′‖² per sample, times the per-sample weight (1 for reconstruction, λ for
/// transformation; see [`LossWeights::reconstruction_sample_weights`]), averaged over the batch.
///
/// # Shapes
/// `attribute_images`, `synthesized`: `[N, ...]`, `sample_weights`: `[N]` → scalar.
pub fn reconstruction_loss(
    attribute_images: &Tensor,
    synthesized: &Tensor,
    sample_weights: &Tensor,
) -> Result<Tensor> {
    same_shape("reconstruction_loss", attribute_images, synthesized)?;
    let n = attribute_images.dim(0)?;
    if sample_weights.dims() != [n] {
        return Err(LossError::Shape {
            loss: "reconstruction_loss",
            problem: format!(
                "sample weights {:?} for a batch of {n}",
                sample_weights.dims()
            ),
        });
    }
    let per_sample = (attribute_images - synthesized)?
        .sqr()?
        .flatten_from(1)?
        .sum(D::Minus1)?;
    Ok(((per_sample * sample_weights)?.sum_all()? * (0.5 / n as f64))?)
}

/// Pairwise feature matching ½‖f(x′) − f(target)‖², summed over the features and averaged
/// over the batch: L_GD with D's intermediate features (target x_a), L_GC with C's last FC
/// features (target x_s). The target is detached: only the synthesized side gets gradient.
///
/// # Shapes
/// `features`, `target_features`: `[N, ...]` → scalar.
pub fn feature_matching_loss(features: &Tensor, target_features: &Tensor) -> Result<Tensor> {
    same_shape("feature_matching_loss", features, target_features)?;
    let n = features.dim(0)? as f64;
    Ok(((features - target_features.detach())?.sqr()?.sum_all()? * (0.5 / n))?)
}

/// L_D = −log D(x_a) − log(1 − D(x′)) on logits: softplus(−real) + softplus(fake), each
/// averaged over its batch.
///
/// # Shapes
/// `real_logits`: `[N]`, `fake_logits`: `[M]` → scalar.
pub fn discriminator_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    let real = softplus(&real_logits.neg()?)?.mean_all()?;
    let fake = softplus(fake_logits)?.mean_all()?;
    Ok((real + fake)?)
}

fn same_shape(loss: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() || a.rank() == 0 || a.dim(0)? == 0 {
        return Err(LossError::Shape {
            loss,
            problem: format!(
                "shapes {:?} and {:?} must be equal and non-empty",
                a.dims(),
                b.dims()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(values, shape, &Device::Cpu).expect("tensor")
    }

    fn scalar(x: &Tensor) -> f32 {
        x.to_scalar::<f32>().expect("scalar")
    }

    fn close(a: f32, b: f32) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }

    #[test]
    fn softplus_matches_hand_values_and_is_finite_at_extremes() {
        let xs = t(&[-100.0, -1.0, 0.0, 1.0, 100.0], &[5]);
        let ys: Vec<f32> = softplus(&xs).expect("softplus").to_vec1().expect("vec");
        let expected = [0.0, 0.313_261_7, std::f32::consts::LN_2, 1.313_261_7, 100.0];
        for (y, e) in ys.iter().zip(expected) {
            close(*y, e);
        }
    }

    #[test]
    fn identity_loss_matches_hand_computation() {
        // logits [[1,2,3],[0,0,0]], labels [2,1]:
        // row 0: lse = 3 + ln(e^-2 + e^-1 + 1) = 3.407606; nll = 0.407606
        // row 1: ln 3 = 1.098612
        let logits = t(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]);
        let labels = Tensor::from_slice(&[2u32, 1], 2, &Device::Cpu).expect("labels");
        let loss = identity_loss(&logits, &labels).expect("loss");
        close(scalar(&loss), (0.407_606 + 1.098_612) / 2.0);
    }

    #[test]
    fn identity_loss_rejects_mismatched_labels() {
        let logits = t(&[1.0, 2.0, 3.0, 0.0, 0.0, 0.0], &[2, 3]);
        let labels = Tensor::from_slice(&[2u32], 1, &Device::Cpu).expect("labels");
        assert!(matches!(
            identity_loss(&logits, &labels),
            Err(LossError::Shape { .. })
        ));
    }

    #[test]
    fn kl_matches_hand_computation() {
        // sample 0: mu (1, 0), eps (0, ln 2): ½[(1+1-0-1) + (0+4-2ln2-1)] = ½(1 + 3 - 1.386294) = 1.306853
        // sample 1: mu (0, 0), eps (0, 0): 0
        let mean = t(&[1.0, 0.0, 0.0, 0.0], &[2, 2]);
        let log_std = t(&[0.0, std::f32::consts::LN_2, 0.0, 0.0], &[2, 2]);
        let loss = kl_loss(&mean, &log_std).expect("kl");
        close(scalar(&loss), 1.306_853 / 2.0);
    }

    #[test]
    fn reconstruction_weights_each_sample() {
        // sample 0: diff (1, 2) -> ½·5 = 2.5, weight 1; sample 1: diff (2, 0) -> 2, weight 0.1
        let xa = t(&[1.0, 2.0, 2.0, 0.0], &[2, 2]);
        let xp = t(&[0.0, 0.0, 0.0, 0.0], &[2, 2]);
        let weights = LossWeights::paper().reconstruction_sample_weights(&[true, false]);
        let w = t(&weights, &[2]);
        let loss = reconstruction_loss(&xa, &xp, &w).expect("gr");
        close(scalar(&loss), (2.5 + 0.2) / 2.0);
    }

    #[test]
    fn feature_matching_matches_hand_computation_and_detaches_target() {
        let f = Var::from_tensor(&t(&[1.0, 1.0, 0.0, 3.0], &[2, 2])).expect("var");
        let target = Var::from_tensor(&t(&[0.0, 1.0, 0.0, 1.0], &[2, 2])).expect("var");
        let loss = feature_matching_loss(f.as_tensor(), target.as_tensor()).expect("fm");
        close(scalar(&loss), (0.5 + 2.0) / 2.0);
        let grads = loss.backward().expect("backward");
        assert!(
            grads.get(target.as_tensor()).is_none(),
            "target must be detached"
        );
        let g: Vec<f32> = grads
            .get(f.as_tensor())
            .expect("grad")
            .flatten_all()
            .expect("flat")
            .to_vec1()
            .expect("vec");
        // d/df ½Σ(f-t)²/N = (f - t)/N
        assert_eq!(g, vec![0.5, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn discriminator_loss_matches_hand_computation() {
        // real logit 0 -> ln 2; fake logit 0 -> ln 2
        let real = t(&[0.0, 0.0], &[2]);
        let fake = t(&[0.0], &[1]);
        close(
            scalar(&discriminator_loss(&real, &fake).expect("d")),
            2.0 * std::f32::consts::LN_2,
        );
        // real 2 -> softplus(-2) = 0.126928; fake -1 -> softplus(-1) = 0.313262
        let real = t(&[2.0], &[1]);
        let fake = t(&[-1.0], &[1]);
        close(
            scalar(&discriminator_loss(&real, &fake).expect("d")),
            0.126_928 + 0.313_262,
        );
    }

    #[test]
    fn adversarial_losses_are_finite_with_finite_gradients_at_saturation() {
        for (r, f) in [
            (100.0f32, -100.0f32),
            (-100.0, 100.0),
            (100.0, 100.0),
            (-100.0, -100.0),
        ] {
            let real = Var::from_tensor(&t(&[r], &[1])).expect("var");
            let fake = Var::from_tensor(&t(&[f], &[1])).expect("var");
            let loss = discriminator_loss(real.as_tensor(), fake.as_tensor()).expect("d");
            let value = scalar(&loss);
            assert!(value.is_finite(), "loss {value} at ({r}, {f})");
            let grads = loss.backward().expect("backward");
            for v in [&real, &fake] {
                let g: Vec<f32> = grads
                    .get(v.as_tensor())
                    .expect("grad")
                    .to_vec1()
                    .expect("vec");
                assert!(g.iter().all(|x| x.is_finite()), "grad {g:?} at ({r}, {f})");
            }
        }
        // Saturated the wrong way: loss ≈ 200, gradients ≈ ±1 (not 0, not NaN).
        let real = Var::from_tensor(&t(&[-100.0], &[1])).expect("var");
        let fake = Var::from_tensor(&t(&[100.0], &[1])).expect("var");
        let loss = discriminator_loss(real.as_tensor(), fake.as_tensor()).expect("d");
        close(scalar(&loss), 200.0);
        let grads = loss.backward().expect("backward");
        let gr: Vec<f32> = grads
            .get(real.as_tensor())
            .expect("g")
            .to_vec1()
            .expect("v");
        let gf: Vec<f32> = grads
            .get(fake.as_tensor())
            .expect("g")
            .to_vec1()
            .expect("v");
        close(gr[0], -1.0);
        close(gf[0], 1.0);
    }

    #[test]
    fn loss_weights_roundtrip_through_json_with_documented_defaults() {
        let w = LossWeights::default();
        assert_eq!(w.transform_lambda, 0.1);
        let json = serde_json::to_string(&w).expect("json");
        let back: LossWeights = serde_json::from_str(&json).expect("parse");
        assert_eq!(w, back);
        assert!(serde_json::from_str::<LossWeights>(r#"{"kl": 1}"#).is_err());
    }
}
