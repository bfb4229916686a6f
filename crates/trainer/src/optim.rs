//! Adam with its state in our hands (candle's `AdamW` hides its moments, so a resumed run
//! could not continue exactly, and it applies weight decay 0.01 by default where the paper's
//! Adam has none), and the generator's exponential moving average.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use osips_models::ParamSet;

use crate::config::OptimizerConfig;
use crate::error::{Result, TrainError};

/// Per-variable Adam state.
#[derive(Debug, Clone)]
struct Slot {
    m: Tensor,
    v: Tensor,
    step: u64,
}

/// Adam without weight decay over one network's trainable variables.
#[derive(Debug, Clone)]
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
    /// Returns the global L2 norm of the gradients applied.
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
            let m = ((&slot.m * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let bias1 = 1.0 - beta1.powi(step as i32);
            let bias2 = 1.0 - beta2.powi(step as i32);
            let update = ((&m * (lr / bias1))? / ((&v * (1.0 / bias2))?.sqrt()? + eps)?)?;
            var.set(&(var.as_tensor() - update)?)?;
            self.slots.insert(name, Slot { m, v, step });
        }
        Ok(())
    }

    /// The state as named tensors: `<prefix>.<var>.m`, `.v`, `.step` (f64 scalar).
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
                    m: m.to_dtype(DType::F32)?,
                    v: v.to_dtype(DType::F32)?,
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
