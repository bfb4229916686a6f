//! Adam with its state in our hands (candle's `AdamW` hides its moments, so a resumed run
//! could not continue exactly, and it applies weight decay 0.01 by default where the paper's
//! Adam has none), and the generator's exponential moving average.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use osips_models::ops::{self, AdamStep};
use osips_models::ParamSet;

use crate::config::OptimizerConfig;
use crate::error::{Result, TrainError};

/// Per-variable Adam state. On the CPU the moments are updated in place
/// (`ops::adam_update`), so a slot's tensors share their storage with nothing else: they
/// are created here or copied on load, and `Adam` is not `Clone`.
#[derive(Debug)]
struct Slot {
    m: Tensor,
    v: Tensor,
    step: u64,
}

/// Adam without weight decay over one network's trainable variables.
#[derive(Debug)]
pub struct Adam {
    config: OptimizerConfig,
    slots: BTreeMap<String, Slot>,
}

/// Gradients of one network's trainable variables, by variable name.
pub type GradMap = BTreeMap<String, Tensor>;

/// Take the gradients of `params`' trainable variables out of a `GradStore`.
pub fn collect_grads(grads: &candle_core::backprop::GradStore, params: &ParamSet) -> GradMap {
    params
        .trainable_vars()
        .into_iter()
        .filter_map(|(name, var)| grads.get(var.as_tensor()).map(|g| (name, g.clone())))
        .collect()
}

/// The L2 norm of all gradients of a map together.
pub fn grad_norm(grads: &GradMap) -> Result<f64> {
    let mut norm_sq = 0.0f64;
    for g in grads.values() {
        norm_sq += f64::from(
            g.sqr()?
                .sum_all()?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?,
        );
    }
    Ok(norm_sq.sqrt())
}

/// Adam's step composed from candle ops, for tensors `ops::adam_update` does not take (off
/// the CPU, other dtypes); it returns the new moments and sets the variable. The same
/// arithmetic, operation for operation, as the in-place kernel.
fn composed_update(
    var: &candle_core::Var,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    s: &AdamStep,
) -> Result<(Tensor, Tensor)> {
    let m = ((m * s.beta1)? + (g * (1.0 - s.beta1))?)?;
    let v = ((v * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?;
    let t = i32::try_from(s.step).unwrap_or(i32::MAX);
    let bias1 = 1.0 - s.beta1.powi(t);
    let bias2 = 1.0 - s.beta2.powi(t);
    let update = ((&m * (s.lr / bias1))? / ((&v * (1.0 / bias2))?.sqrt()? + s.eps)?)?;
    var.set(&(var.as_tensor() - update)?)?;
    Ok((m, v))
}

/// Sum two gradient maps name by name.
pub fn add_grads(mut a: GradMap, b: GradMap) -> Result<GradMap> {
    for (name, g) in b {
        let sum = match a.remove(&name) {
            Some(prev) => (prev + g)?,
            None => g,
        };
        a.insert(name, sum);
    }
    Ok(a)
}

impl Adam {
    pub fn new(config: OptimizerConfig) -> Self {
        Adam {
            config,
            slots: BTreeMap::new(),
        }
    }

    /// One Adam update of every variable of `params` that has a gradient in `grads`.
    pub fn step(&mut self, params: &ParamSet, grads: &GradMap) -> Result<()> {
        let OptimizerConfig {
            lr,
            beta1,
            beta2,
            eps,
            ..
        } = self.config;
        for (name, var) in params.trainable_vars() {
            let Some(g) = grads.get(&name) else { continue };
            let slot = match self.slots.remove(&name) {
                Some(slot) => slot,
                None => Slot {
                    m: g.zeros_like()?,
                    v: g.zeros_like()?,
                    step: 0,
                },
            };
            let step = slot.step + 1;
            let hyper = AdamStep {
                lr,
                beta1,
                beta2,
                eps,
                step,
            };
            let (m, v) = if ops::adam_applies(var.as_tensor(), &slot.m, &slot.v, g) {
                ops::adam_update(var.as_tensor(), &slot.m, &slot.v, g, &hyper)?;
                (slot.m, slot.v)
            } else {
                composed_update(&var, &slot.m, &slot.v, g, &hyper)?
            };
            self.slots.insert(name, Slot { m, v, step });
        }
        Ok(())
    }

    /// The state as named tensors: `<prefix>.<var>.m`, `.v`, `.step` (f64 scalar). The
    /// moments share their storage with the optimiser, which updates them in place on the
    /// CPU: write them out before the next step, or `copy` them to keep a snapshot.
    pub fn state_tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::with_capacity(self.slots.len() * 3);
        for (name, slot) in &self.slots {
            out.push((format!("{prefix}.{name}.m"), slot.m.clone()));
            out.push((format!("{prefix}.{name}.v"), slot.v.clone()));
            out.push((
                format!("{prefix}.{name}.step"),
                Tensor::new(slot.step as f64, &Device::Cpu)?,
            ));
        }
        Ok(out)
    }

    /// Restore the state written by [`Adam::state_tensors`]; every slot must belong to a
    /// trainable variable of `params` with its shape.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &BTreeMap<String, Tensor>,
        params: &ParamSet,
        path: &Path,
    ) -> Result<()> {
        let shapes = params.shapes();
        self.slots.clear();
        let dotted = format!("{prefix}.");
        for (key, m) in tensors.range(dotted.clone()..) {
            let Some(rest) = key.strip_prefix(&dotted) else {
                break;
            };
            let Some(name) = rest.strip_suffix(".m") else {
                continue;
            };
            let expected = shapes.get(name).ok_or_else(|| {
                TrainError::file(
                    path,
                    format!("optimizer state for unknown variable `{prefix}.{name}`"),
                )
            })?;
            let v = tensors.get(&format!("{dotted}{name}.v"));
            let step = tensors.get(&format!("{dotted}{name}.step"));
            let (Some(v), Some(step)) = (v, step) else {
                return Err(TrainError::file(
                    path,
                    format!("incomplete optimizer state for `{prefix}.{name}`"),
                ));
            };
            if m.dims() != expected.as_slice() || v.dims() != expected.as_slice() {
                return Err(TrainError::file(
                    path,
                    format!("optimizer state for `{prefix}.{name}` has shape {:?}, expected {expected:?}", m.dims()),
                ));
            }
            let step = step.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            if !(step >= 0.0 && step.fract() == 0.0) {
                return Err(TrainError::file(
                    path,
                    format!("bad step for `{prefix}.{name}`"),
                ));
            }
            self.slots.insert(
                name.to_string(),
                Slot {
                    // `copy`: the update runs in place, and `to_dtype` of an f32 tensor
                    // shares the caller's storage.
                    m: m.to_dtype(DType::F32)?.copy()?,
                    v: v.to_dtype(DType::F32)?.copy()?,
                    step: step as u64,
                },
            );
        }
        Ok(())
    }
}

/// The EMA decay at iteration `step` (0-based): `min(decay, (1 + step) / (10 + step))`.
///
/// With a fixed 0.999 the average of a short CPU run is mostly its random initialisation
/// (0.999^838 = 0.43 of it after the default 20-minute run, whose samples and evaluation
/// were noise while the raw generator reconstructed at ~17 dB). The ramp lets the average
/// follow early training and reach `decay` after ~9,000 iterations (TensorFlow's
/// `ExponentialMovingAverage(num_updates=…)` rule).
pub fn ema_decay_at(decay: f64, step: u64) -> f64 {
    let t = step as f64;
    decay.min((1.0 + t) / (10.0 + t))
}

/// ema ← d·ema + (1 − d)·current for every variable of the generator, running statistics
/// included.
pub fn update_ema(ema: &ParamSet, current: &ParamSet, decay: f64) -> Result<()> {
    let current: BTreeMap<String, candle_core::Var> = current.named_vars().into_iter().collect();
    for (name, var) in ema.named_vars() {
        let src = current
            .get(&name)
            .ok_or_else(|| TrainError::Config(format!("EMA: `{name}` missing in the generator")))?;
        let mixed = ((var.as_tensor() * decay)? + (src.as_tensor() * (1.0 - decay))?)?;
        var.set(&mixed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ema_decay_at;

    /// The in-place kernel and the composition give the same bits, step after step,
    /// including tiny, huge, zero and negative-zero gradients.
    #[test]
    fn in_place_adam_matches_the_composed_update_bit_for_bit() -> super::Result<()> {
        use candle_core::{Device, Tensor, Var};
        use osips_models::ops::{self, AdamStep};
        let dev = Device::Cpu;
        let n = 40_000; // several rayon chunks and a short last one
        let value = |i: usize, k: usize| {
            let x = ((i * 7919 + k * 104_729) % 10_007) as f32 / 10_007.0 - 0.5;
            match i % 97 {
                0 => 0.0,
                1 => -0.0,
                2 => x * 1e-30,
                3 => x * 1e20,
                _ => x,
            }
        };
        let p0: Vec<f32> = (0..n).map(|i| value(i, 99)).collect();
        let fused = Var::from_tensor(&Tensor::from_vec(p0.clone(), n, &dev)?)?;
        let composed = Var::from_tensor(&Tensor::from_vec(p0, n, &dev)?)?;
        let (fm, fv) = (
            Tensor::zeros(n, candle_core::DType::F32, &dev)?,
            Tensor::zeros(n, candle_core::DType::F32, &dev)?,
        );
        let (fm, fv) = (fm.copy()?, fv.copy()?);
        let (mut cm, mut cv) = (fm.copy()?, fv.copy()?);
        for step in 1..=4u64 {
            let g = Tensor::from_vec(
                (0..n).map(|i| value(i, step as usize)).collect::<Vec<_>>(),
                n,
                &dev,
            )?;
            let s = AdamStep {
                lr: 2e-4,
                beta1: 0.5,
                beta2: 0.999,
                eps: 1e-8,
                step,
            };
            assert!(ops::adam_applies(fused.as_tensor(), &fm, &fv, &g));
            ops::adam_update(fused.as_tensor(), &fm, &fv, &g, &s)?;
            (cm, cv) = super::composed_update(&composed, &cm, &cv, &g, &s)?;
            for (what, a, b) in [
                ("param", fused.as_tensor(), composed.as_tensor()),
                ("m", &fm, &cm),
                ("v", &fv, &cv),
            ] {
                let (a, b) = (a.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
                let bad = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x.to_bits() != y.to_bits());
                assert_eq!(
                    bad,
                    None,
                    "{what} differs at step {step}: {:?}",
                    bad.map(|i| (a[i], b[i]))
                );
            }
        }
        Ok(())
    }

    #[test]
    fn in_place_adam_declines_other_dtypes_and_layouts() -> candle_core::Result<()> {
        use candle_core::{DType, Device, Tensor};
        use osips_models::ops::adam_applies;
        let dev = Device::Cpu;
        let p = Tensor::zeros((4, 6), DType::F32, &dev)?;
        let z = || Tensor::zeros((4, 6), DType::F32, &dev);
        assert!(adam_applies(&p, &z()?, &z()?, &z()?));
        assert!(!adam_applies(&p, &z()?, &z()?, &p.to_dtype(DType::F64)?));
        assert!(!adam_applies(
            &p,
            &z()?,
            &z()?,
            &Tensor::zeros((6, 4), DType::F32, &dev)?.t()?
        ));
        assert!(!adam_applies(
            &p,
            &z()?,
            &z()?,
            &Tensor::zeros((24,), DType::F32, &dev)?
        ));
        Ok(())
    }

    #[test]
    fn ema_decay_ramps_up_to_the_configured_value() {
        assert!((ema_decay_at(0.999, 0) - 0.1).abs() < 1e-12);
        assert!((ema_decay_at(0.999, 90) - 0.91).abs() < 1e-12);
        assert_eq!(ema_decay_at(0.999, 100_000), 0.999);
        assert_eq!(ema_decay_at(0.5, 10), 0.5);
        let mut last = 0.0;
        for step in 0..20_000 {
            let d = ema_decay_at(0.999, step);
            assert!(d >= last && d <= 0.999);
            last = d;
        }
    }
}
