//! Adam's update of one variable as three in-place passes over its storage, instead of the
//! twelve candle ops (each a fresh tensor, on one thread) of the composed update.
//!
//! Every value is computed with the same f32 operations in the same order as the
//! composition `trainer::optim` falls back to, so both give the same bits:
//!
//! ```text
//! m ← (m·β₁ + 0) + (g·(1 − β₁) + 0)
//! v ← (v·β₂ + 0) + ((g·g)·(1 − β₂) + 0)
//! p ← p − (m·(lr / (1 − β₁ᵗ)) + 0) / (√(v·(1 / (1 − β₂ᵗ)) + 0)·1 + ε)
//! ```
//!
//! (`x·a + b` is candle's `affine`, which the composition's scalar products and sums are;
//! the constants are computed in f64 and rounded to f32 once, as candle does.)

use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

/// The hyper-parameters of one Adam step `t` (1-based).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub step: u64,
}

/// Whether [`adam_update`] runs in place: all four tensors f32, contiguous and on the CPU,
/// of one shape. Otherwise the caller composes the update from candle ops.
pub fn adam_applies(param: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor) -> bool {
    [param, m, v, g].iter().all(|t| {
        t.device().is_cpu()
            && t.dtype() == DType::F32
            && t.is_contiguous()
            && t.dims() == param.dims()
    })
}

/// One Adam step, in place: `m`, `v` and `param` are overwritten (every tensor sharing
/// their storage sees the new values). `g` is read only. Call it only where
/// [`adam_applies`]; `m`, `v` and `g` must not share storage with each other or `param`.
pub fn adam_update(param: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor, s: &AdamStep) -> Result<()> {
    let _span = crate::profile::Span::new(|| format!("osips-adam {:?}", param.dims()));
    m.inplace_op2(
        g,
        &Moment {
            beta: s.beta1,
            square: false,
        },
    )?;
    v.inplace_op2(
        g,
        &Moment {
            beta: s.beta2,
            square: true,
        },
    )?;
    let t = i32::try_from(s.step).unwrap_or(i32::MAX);
    param.inplace_op3(
        m,
        v,
        &Apply {
            c1: (s.lr / (1.0 - s.beta1.powi(t))) as f32,
            c2: (1.0 / (1.0 - s.beta2.powi(t))) as f32,
            eps: s.eps as f32,
        },
    )
}

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("osips-adam: {what} must be f32")
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&mut data[a..b]),
        None => candle_core::bail!("osips-adam: {what} must be contiguous"),
    }
}

fn same_len(a: usize, b: usize) -> Result<()> {
    if a != b {
        candle_core::bail!("osips-adam: {a} values against {b}")
    }
    Ok(())
}

/// `x ← (x·β + 0) + (h(g)·(1 − β) + 0)` with `h(g) = g` or `g·g`.
struct Moment {
    beta: f64,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "osips-adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let x = slice_mut(s1, l1, "moment")?;
        let g = crate::f32_slice(s2, l2, "gradient")?;
        same_len(x.len(), g.len())?;
        let (b, c) = (self.beta as f32, (1.0 - self.beta) as f32);
        let square = self.square;
        x.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(x, g)| {
                for (x, &g) in x.iter_mut().zip(g) {
                    let h = if square { g * g } else { g };
                    *x = (*x * b + 0.0) + (h * c + 0.0);
                }
            });
        Ok(())
    }
}

/// `p ← p − (m·c1 + 0) / (√(v·c2 + 0)·1 + ε)`.
struct Apply {
    c1: f32,
    c2: f32,
    eps: f32,
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "osips-adam-apply"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let p = slice_mut(s1, l1, "parameter")?;
        let m = crate::f32_slice(s2, l2, "first moment")?;
        let v = crate::f32_slice(s3, l3, "second moment")?;
        same_len(p.len(), m.len())?;
        same_len(p.len(), v.len())?;
        let (c1, c2, eps) = (self.c1, self.c2, self.eps);
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    let update = (m * c1 + 0.0) / ((v * c2 + 0.0).sqrt() * 1.0 + eps);
                    *p -= update;
                }
            });
        Ok(())
    }
}
