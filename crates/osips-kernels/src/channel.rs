//! Candle custom ops for the memory-bound layers around the convolutions: train-mode
//! BatchNorm, per-channel affine maps (eval-mode BatchNorm, bias), ReLU / LeakyReLU and
//! 2×2 max-pooling, each with its own backward.
//!
//! candle composes these from 5–10 ops each; the gradients of its broadcasts are strided
//! `sum_keepdim` reductions over `[0, 2, 3]`, which ran single-threaded at a fraction of
//! memory bandwidth and took a fifth of a `tiny` training step. Here each forward is one
//! pass and each backward one reduction pass plus one map pass.
//!
//! Off the CPU or for dtypes other than f32, every function is candle's own composition
//! (the one the tests compare against), so results mean the same everywhere.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

use crate::f32_slice;
use crate::pointwise::{self, Activation, Affine, Planes};

fn on_cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// `[N, C, …]` → its planes; rank ≥ 2.
fn planes_of(shape: &Shape) -> Result<Planes> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("osips-kernels: expected [N, C, …], got {shape:?}");
    }
    Ok(Planes {
        n: dims[0],
        c: dims[1],
        s: dims[2..].iter().product(),
    })
}

fn channel_vec<'a>(s: &'a CpuStorage, l: &Layout, c: usize, what: &str) -> Result<&'a [f32]> {
    let v = f32_slice(s, l, what)?;
    if l.shape().rank() != 1 || v.len() != c {
        candle_core::bail!(
            "osips-kernels: {what} must be [{c}] (one per channel), got {:?}",
            l.shape()
        );
    }
    Ok(v)
}

/// The shape `[1, C, 1, …]` of a per-channel vector broadcast over `x`.
fn bshape(x: &Tensor) -> Result<Vec<usize>> {
    let c = x.dim(1)?;
    Ok((0..x.rank()).map(|d| if d == 1 { c } else { 1 }).collect())
}

fn reduce_dims(x: &Tensor) -> Vec<usize> {
    (0..x.rank()).filter(|&d| d != 1).collect()
}

fn from_channels(v: Vec<f32>, x: &Tensor) -> Result<Tensor> {
    let c = v.len();
    Tensor::from_vec(v, c, x.device())
}

// ---------------------------------------------------------------- reductions (no bwd) ---

/// `(g, x) → [Σ g ; Σ g·(x − center)]` per channel, `[2C]`.
struct SumDotOp {
    center: Vec<f32>,
}

impl CustomOp2 for SumDotOp {
    fn name(&self) -> &'static str {
        "osips-channel-sum-dot"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l1.dims()));
        let p = planes_of(l1.shape())?;
        if l1.shape() != l2.shape() || self.center.len() != p.c {
            candle_core::bail!("osips-kernels: channel sum-dot shape mismatch");
        }
        let g = f32_slice(s1, l1, "gradient")?;
        let x = f32_slice(s2, l2, "input")?;
        let out = pointwise::channel_sum_dot(p, g, x, &self.center);
        Ok((CpuStorage::F32(out), Shape::from(2 * p.c)))
    }
}

/// `g → Σ g` per channel, `[C]`.
struct ChannelSumOp;

impl CustomOp1 for ChannelSumOp {
    fn name(&self) -> &'static str {
        "osips-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l.dims()));
        let p = planes_of(l.shape())?;
        let g = f32_slice(s, l, "gradient")?;
        Ok((
            CpuStorage::F32(pointwise::channel_sum(p, g)),
            Shape::from(p.c),
        ))
    }
}

/// `u → a[c]·u + k[c]` (op1) or `(u, v) → a[c]·u + b[c]·(v − center[c]) + k[c]` (op2).
struct AffineOp {
    a: Vec<f32>,
    /// `(b, center)`, for the op2 form.
    b: Option<(Vec<f32>, Vec<f32>)>,
    k: Vec<f32>,
}

impl AffineOp {
    fn run(
        &self,
        u: (&CpuStorage, &Layout),
        v: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let p = planes_of(u.1.shape())?;
        if self.a.len() != p.c || self.k.len() != p.c {
            candle_core::bail!("osips-kernels: channel affine shape mismatch");
        }
        let us = f32_slice(u.0, u.1, "input")?;
        let out = match (&self.b, v) {
            (Some((b, center)), Some((vs, vl))) => {
                if vl.shape() != u.1.shape() || b.len() != p.c || center.len() != p.c {
                    candle_core::bail!("osips-kernels: channel affine shape mismatch");
                }
                let vs = f32_slice(vs, vl, "input")?;
                pointwise::channel_affine(
                    p,
                    us,
                    &Affine {
                        a: &self.a,
                        b: Some((vs, b, center)),
                        k: &self.k,
                    },
                )
            }
            _ => pointwise::channel_affine(
                p,
                us,
                &Affine {
                    a: &self.a,
                    b: None,
                    k: &self.k,
                },
            ),
        };
        Ok((CpuStorage::F32(out), u.1.shape().clone()))
    }
}

impl CustomOp1 for AffineOp {
    fn name(&self) -> &'static str {
        "osips-channel-affine"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _span =
            crate::profile::Span::new(|| format!("{} {:?}", CustomOp1::name(self), l.dims()));
        self.run((s, l), None)
    }
}

impl CustomOp2 for AffineOp {
    fn name(&self) -> &'static str {
        "osips-channel-affine2"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span =
            crate::profile::Span::new(|| format!("{} {:?}", CustomOp2::name(self), l1.dims()));
        self.run((s1, l1), Some((s2, l2)))
    }
}

/// Per-channel Σ gy and Σ gy·(x − center) as two host vectors.
fn sum_dot(gy: &Tensor, x: &Tensor, center: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut v = gy
        .apply_op2_no_bwd(
            x,
            &SumDotOp {
                center: center.to_vec(),
            },
        )?
        .to_vec1::<f32>()?;
    let dots = v.split_off(center.len());
    Ok((v, dots))
}

/// `gy` pulled back through the activation fused at the end of an op whose output is `y`.
fn through_activation(act: Option<Activation>, y: &Tensor, gy: &Tensor) -> Result<Tensor> {
    let gy = gy.contiguous()?;
    match act {
        None => Ok(gy),
        Some(act) => y.contiguous()?.apply_op2_no_bwd(
            &gy,
            &ActBwdOp {
                act,
                from_output: true,
            },
        ),
    }
}

/// An activation fused at the end of a normalisation, for
/// [`batch_norm_train_act`] and [`channel_scale_shift_act`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusedActivation {
    /// `max(x, 0)`.
    Relu,
    /// `max(x, slope·x)` with `0 ≤ slope < 1`.
    LeakyRelu(f64),
}

impl FusedActivation {
    fn kernel(self) -> Option<Activation> {
        match self {
            // With slope 0 every negative input gives an output of 0, which would be read
            // as a tie: it is a ReLU.
            FusedActivation::Relu | FusedActivation::LeakyRelu(0.0) => Some(Activation::Relu),
            FusedActivation::LeakyRelu(s) if (0.0..1.0).contains(&s) => {
                Some(Activation::Leaky(s as f32))
            }
            FusedActivation::LeakyRelu(_) => None,
        }
    }

    /// candle's own composition (the fallback and the tests' reference).
    pub fn apply_reference(self, x: &Tensor) -> Result<Tensor> {
        match self {
            FusedActivation::Relu => x.relu(),
            FusedActivation::LeakyRelu(s) => x.maximum(&(x * s)?),
        }
    }
}

// ---------------------------------------------------------------------- BatchNorm ---

/// The result of [`batch_norm_train`].
#[derive(Debug, Clone)]
pub struct BatchNormTrain {
    /// The normalised, scaled and shifted input, same shape; differentiable w.r.t. the
    /// input (through the batch statistics too), the weight and the bias.
    pub y: Tensor,
    /// Batch mean per channel, `[C]`, detached.
    pub mean: Tensor,
    /// Biased batch variance per channel, `[C]`, detached.
    pub var: Tensor,
}

/// `(x, weight, bias) → y` with the batch statistics fixed in the op.
struct BnTrainOp {
    mean: Vec<f32>,
    invstd: Vec<f32>,
    act: Option<Activation>,
}

impl CustomOp3 for BnTrainOp {
    fn name(&self) -> &'static str {
        "osips-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l1.dims()));
        let p = planes_of(l1.shape())?;
        let x = f32_slice(s1, l1, "input")?;
        let w = channel_vec(s2, l2, p.c, "weight")?;
        let b = channel_vec(s3, l3, p.c, "bias")?;
        let scale: Vec<f32> = w.iter().zip(&self.invstd).map(|(w, i)| w * i).collect();
        let mut y = pointwise::normalize(p, x, &self.mean, &scale, b);
        if let Some(act) = self.act {
            pointwise::activation_in_place(act, &mut y);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    /// With x̂ = (x − μ)·σ⁻¹ and M values per channel: ∂b = Σ gy, ∂w = Σ gy·x̂, and
    /// ∂x = w·σ⁻¹·(gy − Σgy/M − x̂·Σ(gy·x̂)/M) (the closed form through μ and σ²).
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gy = through_activation(self.act, y, gy)?;
        let p = planes_of(x.shape())?;
        let m = p.per_channel().max(1) as f32;
        let (sums, dots) = sum_dot(&gy, x, &self.mean)?;
        let dw = if w.track_op() {
            let v = dots.iter().zip(&self.invstd).map(|(d, i)| d * i).collect();
            Some(from_channels(v, x)?)
        } else {
            None
        };
        let db = if b.track_op() {
            Some(from_channels(sums.clone(), x)?)
        } else {
            None
        };
        let dx = if x.track_op() {
            let wv = w.to_vec1::<f32>()?;
            let mut a = Vec::with_capacity(p.c);
            let mut bc = Vec::with_capacity(p.c);
            let mut k = Vec::with_capacity(p.c);
            for ch in 0..p.c {
                let inv = self.invstd[ch];
                let ac = wv[ch] * inv;
                a.push(ac);
                bc.push(-ac * inv * inv * dots[ch] / m);
                k.push(-ac * sums[ch] / m);
            }
            Some(gy.apply_op2_no_bwd(
                x,
                &AffineOp {
                    a,
                    b: Some((bc, self.mean.clone())),
                    k,
                },
            )?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

/// Per-channel mean and biased variance, `[2C]`.
struct StatsOp;

impl CustomOp1 for StatsOp {
    fn name(&self) -> &'static str {
        "osips-channel-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l.dims()));
        let p = planes_of(l.shape())?;
        let x = f32_slice(s, l, "input")?;
        let (mut mean, var) = pointwise::channel_stats(p, x);
        mean.extend(var);
        Ok((CpuStorage::F32(mean), Shape::from(2 * p.c)))
    }
}

/// Train-mode batch normalisation over the channel axis (dim 1) of `[N, C, …]`, PyTorch's
/// semantics: normalise by the batch mean and *biased* variance, `y = (x − μ)/√(σ² + eps)
/// · weight + bias`. Returns `y` and the (detached) statistics, for the running averages.
///
/// The same as candle's composition `(x − mean_keepdim) · (var + eps)^-½ · w + b` (with
/// gradients through the mean and variance), in one pass forward and two backward.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<BatchNormTrain> {
    bn_train(x, weight, bias, eps, None)
}

/// [`batch_norm_train`] followed by an activation, as one op: one node of the autograd
/// graph instead of two, so one gradient buffer less to zero and accumulate. The gradient
/// slope is read off the output (at an output of exactly 0, ReLU passes no gradient).
pub fn batch_norm_train_act(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    act: FusedActivation,
) -> Result<BatchNormTrain> {
    match act.kernel() {
        Some(kernel) => bn_train(x, weight, bias, eps, Some((act, kernel))),
        None => {
            let out = batch_norm_train_reference(x, weight, bias, eps)?;
            Ok(BatchNormTrain {
                y: act.apply_reference(&out.y)?,
                ..out
            })
        }
    }
}

fn bn_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    act: Option<(FusedActivation, Activation)>,
) -> Result<BatchNormTrain> {
    if !on_cpu_f32(&[x, weight, bias]) || x.rank() < 2 {
        let out = batch_norm_train_reference(x, weight, bias, eps)?;
        return match act {
            None => Ok(out),
            Some((act, _)) => Ok(BatchNormTrain {
                y: act.apply_reference(&out.y)?,
                ..out
            }),
        };
    }
    let x = x.contiguous()?;
    let c = x.dim(1)?;
    let stats = x.apply_op1_no_bwd(&StatsOp)?;
    let mut mean = stats.to_vec1::<f32>()?;
    let var = mean.split_off(c);
    let invstd: Vec<f32> = var
        .iter()
        .map(|v| (1.0 / (f64::from(*v) + eps).sqrt()) as f32)
        .collect();
    let y = x.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        BnTrainOp {
            mean: mean.clone(),
            invstd,
            act: act.map(|(_, k)| k),
        },
    )?;
    Ok(BatchNormTrain {
        y,
        mean: from_channels(mean, &x)?,
        var: from_channels(var, &x)?,
    })
}

/// candle's own composition of [`batch_norm_train`] (the fallback and the tests' reference).
pub fn batch_norm_train_reference(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<BatchNormTrain> {
    let bs = bshape(x)?;
    let reduce = reduce_dims(x);
    let mean = x.mean_keepdim(reduce.as_slice())?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(reduce.as_slice())?;
    let scale = (&var + eps)?
        .sqrt()?
        .recip()?
        .broadcast_mul(&weight.reshape(bs.as_slice())?)?;
    let y = centered
        .broadcast_mul(&scale)?
        .broadcast_add(&bias.reshape(bs.as_slice())?)?;
    Ok(BatchNormTrain {
        y,
        mean: mean.detach().flatten_all()?,
        var: var.detach().flatten_all()?,
    })
}

// ------------------------------------------------------------- per-channel affine ---

/// `(x, scale, shift) → act(x·scale[c] + shift[c])`.
struct ScaleShiftOp(Option<Activation>);

impl CustomOp3 for ScaleShiftOp {
    fn name(&self) -> &'static str {
        "osips-channel-scale-shift"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l1.dims()));
        let p = planes_of(l1.shape())?;
        let x = f32_slice(s1, l1, "input")?;
        let a = channel_vec(s2, l2, p.c, "scale")?;
        let k = channel_vec(s3, l3, p.c, "shift")?;
        let mut y = pointwise::channel_affine(p, x, &Affine { a, b: None, k });
        if let Some(act) = self.0 {
            pointwise::activation_in_place(act, &mut y);
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gy = through_activation(self.0, y, gy)?;
        let c = x.dim(1)?;
        let (sums, dots) = if scale.track_op() || shift.track_op() {
            sum_dot(&gy, x, &vec![0.0; c])?
        } else {
            (Vec::new(), Vec::new())
        };
        let dx = if x.track_op() {
            Some(gy.apply_op1_no_bwd(&AffineOp {
                a: scale.to_vec1::<f32>()?,
                b: None,
                k: vec![0.0; c],
            })?)
        } else {
            None
        };
        let ds = if scale.track_op() {
            Some(from_channels(dots, x)?)
        } else {
            None
        };
        let dk = if shift.track_op() {
            Some(from_channels(sums, x)?)
        } else {
            None
        };
        Ok((dx, ds, dk))
    }
}

/// `x·scale[c] + shift[c]` over the channel axis of `[N, C, …]` (`scale`, `shift`: `[C]`);
/// eval-mode BatchNorm. Differentiable w.r.t. all three.
pub fn channel_scale_shift(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    if !on_cpu_f32(&[x, scale, shift]) || x.rank() < 2 {
        let bs = bshape(x)?;
        return x
            .broadcast_mul(&scale.reshape(bs.as_slice())?)?
            .broadcast_add(&shift.reshape(bs.as_slice())?);
    }
    x.contiguous()?.apply_op3(
        &scale.contiguous()?,
        &shift.contiguous()?,
        ScaleShiftOp(None),
    )
}

/// [`channel_scale_shift`] followed by an activation, as one op (eval-mode BatchNorm +
/// activation); gradient conventions as [`batch_norm_train_act`].
pub fn channel_scale_shift_act(
    x: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    act: FusedActivation,
) -> Result<Tensor> {
    match act.kernel() {
        Some(kernel) if on_cpu_f32(&[x, scale, shift]) && x.rank() >= 2 => {
            x.contiguous()?.apply_op3(
                &scale.contiguous()?,
                &shift.contiguous()?,
                ScaleShiftOp(Some(kernel)),
            )
        }
        _ => act.apply_reference(&channel_scale_shift(x, scale, shift)?),
    }
}

/// `(x, bias) → x + bias[c]`.
struct BiasOp;

impl CustomOp2 for BiasOp {
    fn name(&self) -> &'static str {
        "osips-channel-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l1.dims()));
        let p = planes_of(l1.shape())?;
        let x = f32_slice(s1, l1, "input")?;
        let k = channel_vec(s2, l2, p.c, "bias")?;
        let ones = vec![1f32; p.c];
        let y = pointwise::channel_affine(
            p,
            x,
            &Affine {
                a: &ones,
                b: None,
                k,
            },
        );
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.track_op().then(|| gy.clone());
        let db = if bias.track_op() {
            Some(gy.contiguous()?.apply_op1_no_bwd(&ChannelSumOp)?)
        } else {
            None
        };
        Ok((dx, db))
    }
}

/// `x + bias[c]` over the channel axis of `[N, C, …]` (`bias`: `[C]`).
pub fn add_channel_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if !on_cpu_f32(&[x, bias]) || x.rank() < 2 {
        let bs = bshape(x)?;
        return x.broadcast_add(&bias.reshape(bs.as_slice())?);
    }
    x.contiguous()?.apply_op2(&bias.contiguous()?, BiasOp)
}

// ------------------------------------------------------------------- activations ---

struct ActOp(Activation);

impl CustomOp1 for ActOp {
    fn name(&self) -> &'static str {
        "osips-activation"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l.dims()));
        let x = f32_slice(s, l, "input")?;
        Ok((
            CpuStorage::F32(pointwise::activation_fwd(self.0, x)),
            l.shape().clone(),
        ))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(
            &gy.contiguous()?,
            &ActBwdOp {
                act: self.0,
                from_output: false,
            },
        )?))
    }
}

/// `(v, gy) → gy · act′`, with `v` the activation's input, or its output when
/// `from_output` (for activations fused into another op, whose input is not kept).
struct ActBwdOp {
    act: Activation,
    from_output: bool,
}

impl CustomOp2 for ActBwdOp {
    fn name(&self) -> &'static str {
        "osips-activation-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l1.dims()));
        if l1.shape() != l2.shape() {
            candle_core::bail!("osips-kernels: activation gradient shape mismatch");
        }
        let v = f32_slice(s1, l1, "activation input or output")?;
        let g = f32_slice(s2, l2, "gradient")?;
        let dx = if self.from_output {
            pointwise::activation_bwd_from_output(self.act, v, g)
        } else {
            pointwise::activation_bwd(self.act, v, g)
        };
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// `max(x, 0)`, with candle's gradient (1 where `x ≥ 0`).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !on_cpu_f32(&[x]) {
        return x.relu();
    }
    x.contiguous()?.apply_op1(ActOp(Activation::Relu))
}

/// `max(x, slope·x)` for `0 ≤ slope < 1`, with the gradient of candle's `maximum` (1 for
/// `x > 0`, `slope` for `x < 0`, their mean at 0).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if !on_cpu_f32(&[x]) || !(0.0..1.0).contains(&slope) {
        return x.maximum(&(x * slope)?);
    }
    x.contiguous()?
        .apply_op1(ActOp(Activation::Leaky(slope as f32)))
}

// ------------------------------------------------------------------- max pooling ---

struct MaxPoolOp;

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "osips-max-pool2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l.dims()));
        let (n, c, h, w) = l.shape().dims4()?;
        let x = f32_slice(s, l, "input")?;
        let y = pointwise::max_pool2_fwd(n * c, h, w, x);
        Ok((CpuStorage::F32(y), Shape::from((n, c, h / 2, w / 2))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&gy.contiguous()?, &MaxPoolBwdOp)?))
    }
}

struct MaxPoolBwdOp;

impl CustomOp2 for MaxPoolBwdOp {
    fn name(&self) -> &'static str {
        "osips-max-pool2x2-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _span = crate::profile::Span::new(|| format!("{} {:?}", self.name(), l1.dims()));
        let (n, c, h, w) = l1.shape().dims4()?;
        if l2.shape().dims4()? != (n, c, h / 2, w / 2) {
            candle_core::bail!("osips-kernels: max-pool gradient shape mismatch");
        }
        let x = f32_slice(s1, l1, "input")?;
        let g = f32_slice(s2, l2, "gradient")?;
        Ok((
            CpuStorage::F32(pointwise::max_pool2_bwd(n * c, h, w, x, g)),
            l1.shape().clone(),
        ))
    }
}

/// 2×2 max-pooling with stride 2 of `[N, C, H, W]` (a trailing odd row or column is
/// dropped). The gradient goes to the maximum of each window (the first one on ties, as
/// in PyTorch).
///
/// Note: candle 0.11.1's own `max_pool2d` backward scales that gradient by the share of the
/// window that attains the maximum (¼ for a unique maximum), so it is not used, not even as
/// the fallback: off the CPU this is the same max as a reduction over a reshaped view,
/// whose gradient is the true one (split-free; every tied maximum gets it).
pub fn max_pool2x2(x: &Tensor) -> Result<Tensor> {
    if !on_cpu_f32(&[x]) {
        return max_pool2x2_reference(x);
    }
    x.dims4()?;
    x.contiguous()?.apply_op1(MaxPoolOp)
}

/// [`max_pool2x2`] composed from candle's reshape and max reductions.
pub fn max_pool2x2_reference(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (h / 2, w / 2);
    x.narrow(2, 0, 2 * oh)?
        .narrow(3, 0, 2 * ow)?
        .reshape((n, c, oh, 2, ow, 2))?
        .max(5)?
        .max(3)
}
