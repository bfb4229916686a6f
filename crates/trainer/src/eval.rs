//! Evaluation on identities never seen in training (DESIGN §8), with the synthetic renderer
//! as ground truth: for a pair (s, a) the correct swap is y = render(id_s, attr_a).
//!
//! - swap PSNR / SSIM of x′ = G(f_I(x_s), μ(x_a)) against y, next to the two trivial
//!   baselines "return x_a" and "return x_s";
//! - identity retrieval top-1: among y and 9 renders of *other* unseen identities with
//!   attr_a, is y the nearest to x′ (pixel L2)? Chance is 10 %;
//! - attribute retrieval top-1: among y and 9 renders of id_s with other attributes, is y
//!   the nearest to x′? Chance is 10 %;
//! - both retrievals also for the baselines (x_s, resp. x_a, in place of x′), and identity
//!   retrieval by the identity encoder alone (f_I(y) against f_I of the 9 others, nearest
//!   to f_I(x_s) by cosine): the most G could carry over from the vector it is given;
//! - how much x′ moves when only the identity vector, or only z, changes, as a share of how
//!   much the ground truth moves (1: as much as the renderer);
//! - identity cosine cos(f_I(x′), f_I(x_s)) against the baseline cos(f_I(x_a), f_I(x_s));
//! - reconstruction PSNR of G(f_I(x_s), μ(x_s)) against x_s.
//!
//! The generator is the EMA copy, all networks in eval mode, z = μ.

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use osips_data::synthetic::{attribute_seed, eval_identity_seed, render, Attributes, Identity};
use osips_data::{image_to_chw, ImageBatch};
use osips_models::synthesizer::cosine;
use osips_models::{AttributeEncoder, Generator, IdentityNet, Synthesizer};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::phases::image_tensor;
use crate::trainer::Trainer;

/// Candidates per retrieval query (the correct one included).
pub const CANDIDATES: usize = 10;

/// The numbers of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub n_identities: usize,
    pub step: u64,
    pub swap_psnr: f64,
    pub swap_ssim: f64,
    pub baseline_attribute_psnr: f64,
    pub baseline_attribute_ssim: f64,
    pub baseline_source_psnr: f64,
    pub baseline_source_ssim: f64,
    pub identity_top1: f64,
    pub attribute_top1: f64,
    pub chance_top1: f64,
    pub identity_cosine: f64,
    pub identity_cosine_baseline: f64,
    pub reconstruction_psnr: f64,
    /// Identity retrieval with x_s in place of x′ (the "return x_s" baseline).
    #[serde(default)]
    pub identity_top1_baseline_source: f64,
    /// Attribute retrieval with x_a in place of x′ (the "return x_a" baseline).
    #[serde(default)]
    pub attribute_top1_baseline_attribute: f64,
    /// The identity encoder alone: among y and the 9 other identities rendered with
    /// attr_a, is f_I(y) the nearest (cosine) to f_I(x_s)? What G could at best carry over
    /// from the identity vector it is given.
    #[serde(default)]
    pub encoder_identity_top1: f64,
    /// How much G's output changes when only the identity vector changes (x_s's against
    /// x_a's, z = μ(x_a) fixed), as a share of how much the ground truth changes
    /// (y against x_a); 1 is as much as the renderer.
    #[serde(default)]
    pub identity_effect: f64,
    /// The same for a change of the attributes only (μ(x_a) against μ(x_s), identity
    /// fixed; truth: y against x_s).
    #[serde(default)]
    pub attribute_effect: f64,
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "evaluation on {} unseen synthetic identities (step {}):",
            self.n_identities, self.step
        )?;
        writeln!(
            f,
            "  swap PSNR {:.2} dB  SSIM {:.3}   (baselines: x_a {:.2} dB / {:.3}, x_s {:.2} dB / {:.3})",
            self.swap_psnr,
            self.swap_ssim,
            self.baseline_attribute_psnr,
            self.baseline_attribute_ssim,
            self.baseline_source_psnr,
            self.baseline_source_ssim
        )?;
        writeln!(
            f,
            "  identity retrieval top-1 {:.1} %   attribute retrieval top-1 {:.1} %   (chance {:.1} %; baselines x_s {:.1} %, x_a {:.1} %)",
            100.0 * self.identity_top1,
            100.0 * self.attribute_top1,
            100.0 * self.chance_top1,
            100.0 * self.identity_top1_baseline_source,
            100.0 * self.attribute_top1_baseline_attribute
        )?;
        writeln!(
            f,
            "  identity encoder alone: top-1 {:.1} % (f_I(y) nearest to f_I(x_s) among 10 identities)",
            100.0 * self.encoder_identity_top1
        )?;
        writeln!(
            f,
            "  output change for an identity change {:.2}, for an attribute change {:.2} (ground truth: 1)",
            self.identity_effect, self.attribute_effect
        )?;
        writeln!(
            f,
            "  identity cosine x′·x_s {:.3}   (baseline x_a·x_s {:.3})",
            self.identity_cosine, self.identity_cosine_baseline
        )?;
        write!(
            f,
            "  reconstruction PSNR {:.2} dB",
            self.reconstruction_psnr
        )
    }
}

/// The rendered inputs of one evaluation pair.
struct Case {
    source: Vec<f32>,
    attribute: Vec<f32>,
    truth: Vec<f32>,
    identity_candidates: Vec<Vec<f32>>,
    attribute_candidates: Vec<Vec<f32>>,
}

fn render_case(k: usize, n: usize, size: u32) -> Case {
    let id = |j: usize| Identity::from_seed(eval_identity_seed(j as u32));
    let s_seed = eval_identity_seed(k as u32);
    let a_index = (k + n / 2) % n;
    let a_seed = eval_identity_seed(a_index as u32);
    let attr_s = Attributes::from_seed(attribute_seed(s_seed, 0));
    let attr_a = Attributes::from_seed(attribute_seed(a_seed, 1));
    let id_s = id(k);
    let chw = |identity: &Identity, attributes: &Attributes| {
        image_to_chw(&render(identity, attributes, size))
    };
    let identity_candidates = (1..CANDIDATES)
        .map(|j| chw(&id((k + j) % n), &attr_a))
        .collect();
    let attribute_candidates = (1..CANDIDATES)
        .map(|j| {
            chw(
                &id_s,
                &Attributes::from_seed(attribute_seed(s_seed, 100 + j as u64)),
            )
        })
        .collect();
    Case {
        source: chw(&id_s, &attr_s),
        attribute: chw(&id(a_index), &attr_a),
        truth: chw(&id_s, &attr_a),
        identity_candidates,
        attribute_candidates,
    }
}

/// The networks an evaluation runs, all in eval mode.
#[derive(Clone, Copy)]
pub struct EvalNets<'a> {
    pub identity: &'a IdentityNet,
    pub attribute: &'a AttributeEncoder,
    /// The generator to evaluate (the trainer's EMA copy).
    pub generator: &'a Generator,
    pub device: &'a Device,
    /// Side of the model's square images.
    pub image_size: usize,
}

impl<'a> EvalNets<'a> {
    /// The networks of a trained checkpoint.
    pub fn of_synthesizer(model: &'a Synthesizer) -> Self {
        EvalNets {
            identity: model.identity_net(),
            attribute: model.attribute_net(),
            generator: model.generator_net(),
            device: model.device(),
            image_size: model.image_size(),
        }
    }
}

/// Evaluate the trainer's networks (EMA generator) on `n` unseen synthetic identities.
pub fn evaluate(trainer: &Trainer, n: usize, progress: bool) -> Result<EvalReport> {
    let nets = EvalNets {
        identity: &trainer.nets.identity,
        attribute: &trainer.nets.attribute,
        generator: &trainer.ema,
        device: &trainer.device,
        image_size: trainer.config.model.image_size,
    };
    evaluate_networks(nets, trainer.step, n, progress)
}

/// Evaluate `nets` on `n` unseen synthetic identities; `step` is recorded in the report.
pub fn evaluate_networks(
    nets: EvalNets<'_>,
    step: u64,
    n: usize,
    progress: bool,
) -> Result<EvalReport> {
    let n = n.max(CANDIDATES + 1);
    let size = nets.image_size as u32;
    let bar = if progress {
        let bar = ProgressBar::new(n as u64);
        if let Ok(style) =
            ProgressStyle::with_template("evaluating [{wide_bar}] {pos}/{len} ETA {eta}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let chunk = 25;
    let mut sums = Sums::default();
    for start in (0..n).step_by(chunk) {
        let end = (start + chunk).min(n);
        let cases: Vec<Case> = (start..end)
            .into_par_iter()
            .map(|k| render_case(k, n, size))
            .collect();
        let batch = |f: &dyn Fn(&Case) -> &Vec<f32>| -> Result<Tensor> {
            let data: Vec<f32> = cases.iter().flat_map(|c| f(c).iter().copied()).collect();
            image_tensor(
                &ImageBatch {
                    data,
                    n: cases.len(),
                    size: size as usize,
                },
                nets.device,
            )
        };
        let source = batch(&|c| &c.source)?;
        let attribute = batch(&|c| &c.attribute)?;
        let id_source = nets.identity.forward_t(&source, false)?.identity;
        let id_attribute = nets.identity.forward_t(&attribute, false)?.identity;
        let z_attribute = nets.attribute.forward_t(&attribute, false)?.mean;
        let z_source = nets.attribute.forward_t(&source, false)?.mean;
        let swapped = nets.generator.forward_t(&id_source, &z_attribute, false)?;
        let reconstructed = nets.generator.forward_t(&id_source, &z_source, false)?;
        // x_a's own identity with x_a's attributes: differs from x′ in the identity only.
        let other_identity = nets
            .generator
            .forward_t(&id_attribute, &z_attribute, false)?;
        let other_identity: Vec<f32> = other_identity.flatten_all()?.to_vec1()?;
        let id_swapped = nets.identity.forward_t(&swapped, false)?.identity;
        // f_I of y and of the other identities with attr_a, case by case.
        let mut encoder_hits = Vec::with_capacity(cases.len());
        for (i, case) in cases.iter().enumerate() {
            let mut data = case.truth.clone();
            for c in &case.identity_candidates {
                data.extend_from_slice(c);
            }
            let images = image_tensor(
                &ImageBatch {
                    data,
                    n: CANDIDATES,
                    size: size as usize,
                },
                nets.device,
            )?;
            let ids = nets.identity.forward_t(&images, false)?.identity;
            let query = id_source.narrow(0, i, 1)?.broadcast_as(ids.shape())?;
            let cos: Vec<f32> = cosine(&ids, &query.contiguous()?)?.to_vec1()?;
            encoder_hits.push(cos[1..].iter().all(|&c| c < cos[0]));
        }
        let cos_swap: Vec<f32> = cosine(&id_swapped, &id_source)?.to_vec1()?;
        let cos_base: Vec<f32> = cosine(&id_attribute, &id_source)?.to_vec1()?;
        let swapped: Vec<f32> = swapped.flatten_all()?.to_vec1()?;
        let reconstructed: Vec<f32> = reconstructed.flatten_all()?.to_vec1()?;
        let per = 3 * (size * size) as usize;
        for (i, case) in cases.iter().enumerate() {
            let x = &swapped[i * per..(i + 1) * per];
            let r = &reconstructed[i * per..(i + 1) * per];
            let out = CaseOutputs {
                swapped: x,
                reconstructed: r,
                other_identity: &other_identity[i * per..(i + 1) * per],
                cos: f64::from(cos_swap[i]),
                cos_base: f64::from(cos_base[i]),
                encoder_hit: encoder_hits[i],
            };
            sums.add(case, &out, size as usize);
        }
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    Ok(sums.report(n, step))
}

/// What the networks made of one case.
#[derive(Clone, Copy)]
struct CaseOutputs<'a> {
    swapped: &'a [f32],
    reconstructed: &'a [f32],
    /// G(f_I(x_a), μ(x_a)): x′ with the identity changed to x_a's.
    other_identity: &'a [f32],
    /// cos(f_I(x′), f_I(x_s)) and the baseline cos(f_I(x_a), f_I(x_s)).
    cos: f64,
    cos_base: f64,
    /// Whether f_I(y) is the nearest to f_I(x_s) among the identity candidates.
    encoder_hit: bool,
}

#[derive(Default)]
struct Sums {
    count: f64,
    swap_psnr: f64,
    swap_ssim: f64,
    attribute_psnr: f64,
    attribute_ssim: f64,
    source_psnr: f64,
    source_ssim: f64,
    identity_hits: f64,
    attribute_hits: f64,
    cosine: f64,
    cosine_baseline: f64,
    reconstruction_psnr: f64,
    identity_hits_source: f64,
    attribute_hits_attribute: f64,
    encoder_identity_hits: f64,
    identity_change: f64,
    identity_change_truth: f64,
    attribute_change: f64,
    attribute_change_truth: f64,
}

impl Sums {
    fn add(&mut self, case: &Case, out: &CaseOutputs<'_>, size: usize) {
        let CaseOutputs {
            swapped,
            reconstructed,
            other_identity,
            cos,
            cos_base,
            encoder_hit,
        } = *out;
        self.count += 1.0;
        self.swap_psnr += psnr(swapped, &case.truth);
        self.swap_ssim += ssim(swapped, &case.truth, size);
        self.attribute_psnr += psnr(&case.attribute, &case.truth);
        self.attribute_ssim += ssim(&case.attribute, &case.truth, size);
        self.source_psnr += psnr(&case.source, &case.truth);
        self.source_ssim += ssim(&case.source, &case.truth, size);
        self.reconstruction_psnr += psnr(reconstructed, &case.source);
        // Is y nearer to `query` (pixel L2) than every candidate?
        let nearest = |query: &[f32], candidates: &[Vec<f32>]| {
            let truth_distance = squared_distance(query, &case.truth);
            let hit = candidates
                .iter()
                .all(|c| squared_distance(query, c) > truth_distance);
            f64::from(u8::from(hit))
        };
        self.identity_hits += nearest(swapped, &case.identity_candidates);
        self.attribute_hits += nearest(swapped, &case.attribute_candidates);
        self.identity_hits_source += nearest(&case.source, &case.identity_candidates);
        self.attribute_hits_attribute += nearest(&case.attribute, &case.attribute_candidates);
        self.encoder_identity_hits += f64::from(u8::from(encoder_hit));
        // How much the output moves when only the identity, or only the attributes,
        // change, against how much the ground truth moves.
        self.identity_change += squared_distance(swapped, other_identity);
        self.identity_change_truth += squared_distance(&case.truth, &case.attribute);
        self.attribute_change += squared_distance(swapped, reconstructed);
        self.attribute_change_truth += squared_distance(&case.truth, &case.source);
        self.cosine += cos;
        self.cosine_baseline += cos_base;
    }

    fn report(&self, n: usize, step: u64) -> EvalReport {
        let c = self.count.max(1.0);
        EvalReport {
            n_identities: n,
            step,
            swap_psnr: self.swap_psnr / c,
            swap_ssim: self.swap_ssim / c,
            baseline_attribute_psnr: self.attribute_psnr / c,
            baseline_attribute_ssim: self.attribute_ssim / c,
            baseline_source_psnr: self.source_psnr / c,
            baseline_source_ssim: self.source_ssim / c,
            identity_top1: self.identity_hits / c,
            attribute_top1: self.attribute_hits / c,
            chance_top1: 1.0 / CANDIDATES as f64,
            identity_cosine: self.cosine / c,
            identity_cosine_baseline: self.cosine_baseline / c,
            reconstruction_psnr: self.reconstruction_psnr / c,
            identity_top1_baseline_source: self.identity_hits_source / c,
            attribute_top1_baseline_attribute: self.attribute_hits_attribute / c,
            encoder_identity_top1: self.encoder_identity_hits / c,
            identity_effect: self.identity_change
                / self.identity_change_truth.max(f64::MIN_POSITIVE),
            attribute_effect: self.attribute_change
                / self.attribute_change_truth.max(f64::MIN_POSITIVE),
        }
    }
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum()
}

/// PSNR in dB of images in [-1, 1] (peak-to-peak 2), capped at 100 dB for identical images.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = squared_distance(a, b) / a.len().max(1) as f64;
    if mse <= 1e-10 {
        100.0
    } else {
        10.0 * (4.0 / mse).log10()
    }
}

/// SSIM (Wang et al. 2004: 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03) of two
/// CHW images in [-1, 1], averaged over the channels and the valid window positions.
pub fn ssim(a: &[f32], b: &[f32], size: usize) -> f64 {
    const RADIUS: usize = 5;
    let weights: Vec<f64> = (0..=2 * RADIUS)
        .map(|i| {
            let d = i as f64 - RADIUS as f64;
            (-d * d / (2.0 * 1.5 * 1.5)).exp()
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let (c1, c2) = ((0.01f64 * 1.0).powi(2), (0.03f64 * 1.0).powi(2));
    let plane = size * size;
    if size <= 2 * RADIUS {
        return 0.0;
    }
    let valid = size - 2 * RADIUS;
    let mut acc = 0.0;
    let mut count = 0.0;
    for ch in 0..3 {
        let to_unit = |v: &[f32]| -> Vec<f64> {
            v[ch * plane..(ch + 1) * plane]
                .iter()
                .map(|&x| (f64::from(x) + 1.0) / 2.0)
                .collect()
        };
        let (x, y) = (to_unit(a), to_unit(b));
        let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
        let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
        let xy: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
        let blur = |img: &[f64]| -> Vec<f64> {
            // Separable: rows then columns, valid region only.
            let mut rows = vec![0.0; size * valid];
            for r in 0..size {
                for c in 0..valid {
                    rows[r * valid + c] = (0..=2 * RADIUS)
                        .map(|k| weights[k] * img[r * size + c + k])
                        .sum();
                }
            }
            let mut out = vec![0.0; valid * valid];
            for r in 0..valid {
                for c in 0..valid {
                    out[r * valid + c] = (0..=2 * RADIUS)
                        .map(|k| weights[k] * rows[(r + k) * valid + c])
                        .sum();
                }
            }
            out
        };
        let (mx, my, mxx, myy, mxy) = (blur(&x), blur(&y), blur(&xx), blur(&yy), blur(&xy));
        for i in 0..valid * valid {
            let (vx, vy, cov) = (
                mxx[i] - mx[i] * mx[i],
                myy[i] - my[i] * my[i],
                mxy[i] - mx[i] * my[i],
            );
            acc += ((2.0 * mx[i] * my[i] + c1) * (2.0 * cov + c2))
                / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2));
            count += 1.0;
        }
    }
    acc / count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_and_ssim_of_identical_and_different_images() {
        let size = 16;
        let a: Vec<f32> = (0..3 * size * size)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect();
        assert_eq!(psnr(&a, &a), 100.0);
        assert!((ssim(&a, &a, size) - 1.0).abs() < 1e-9);
        let b: Vec<f32> = a.iter().map(|x| x + 0.1).collect();
        // MSE 0.01 over a peak-to-peak range of 2: 10 log10(4 / 0.01) = 26.02 dB.
        assert!((psnr(&a, &b) - 26.0206).abs() < 1e-3);
        let c: Vec<f32> = a.iter().map(|x| -x).collect();
        assert!(ssim(&a, &c, size) < 0.0);
    }
}
