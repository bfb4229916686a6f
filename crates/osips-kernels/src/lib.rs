//! Fast CPU convolution kernels for OSIPS, as candle custom ops with their own gradients.
//!
//! candle 0.11.1 computes a conv2d's input gradient with a direct-loop `conv_transpose2d`
//! that reaches 3–7 GFLOP/s on our 2-core AVX2 machines. The ops here lower every pass
//! (forward, input gradient, weight gradient) to im2col / col2im over L2-sized pixel tiles
//! and the pure-Rust `gemm` crate, with rayon spreading images or tiles over the cores.
//!
//! * [`conv2d`] — `x.conv2d(w, padding, stride, 1, 1)`;
//! * [`upsample2x_conv2d`] — `x.upsample_nearest2d(2h, 2w).conv2d(w, padding, 1, 1, 1)`
//!   with the upsampling fused into the lowering (the upsampled tensor never exists);
//! * the gradients on their own ([`conv2d_input_grad`], [`conv2d_weight_grad`],
//!   [`upsample2x_conv2d_input_grad`], [`upsample2x_conv2d_weight_grad`]), used by the
//!   ops' backward passes and by the benchmark.
//!
//! Around them, the memory-bound layers as single-pass ops with closed-form backward
//! passes: [`batch_norm_train`] (train-mode BatchNorm returning the batch statistics),
//! [`channel_scale_shift`] (eval-mode BatchNorm), [`add_channel_bias`], [`relu`],
//! [`leaky_relu`] and [`max_pool2x2`]; and Adam's update of a variable in place
//! ([`adam_update`]), for the trainer.
//!
//! All ops are differentiable through candle's autograd (`CustomOp2::bwd`). On any device
//! other than the CPU, or any dtype other than f32, they fall back to candle's own ops, so
//! results mean the same everywhere. Non-contiguous inputs are made contiguous first.

mod adam;
mod channel;
mod direct;
mod geom;
mod kernels;
mod pointwise;
pub mod profile;
mod scratch;
mod sgemm;
mod subpixel;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

pub use adam::{adam_applies, adam_update, AdamStep};
pub use channel::{
    add_channel_bias, batch_norm_train, batch_norm_train_act, batch_norm_train_reference,
    channel_scale_shift, channel_scale_shift_act, leaky_relu, max_pool2x2, max_pool2x2_reference,
    relu, BatchNormTrain, FusedActivation,
};
pub use geom::Geom;

fn fast_path(a: &Tensor, b: &Tensor) -> bool {
    a.device().is_cpu()
        && b.device().is_cpu()
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
        && a.rank() == 4
        && b.rank() == 4
        && b.dim(2).ok() == b.dim(3).ok()
}

pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("osips-kernels: {what} must be contiguous"),
    }
}

fn geom(
    x: (usize, usize, usize, usize),
    w: (usize, usize, usize, usize),
    up: usize,
    stride: usize,
    pad: usize,
) -> Result<Geom> {
    Geom::new(x, w, up, stride, pad).map_err(candle_core::Error::msg)
}

/// The profile key of one conv pass: pass, channels, kernel, stride, upsampling, input.
fn profile_key(pass: &str, g: &Geom) -> String {
    format!(
        "conv {pass:<5} {:>3}>{:<3} k{} s{} up{} [{}, {}, {}, {}]",
        g.c_in, g.c_out, g.kh, g.stride, g.up, g.n, g.c_in, g.h, g.w
    )
}

/// Nominal FLOPs of one pass (the upsampled conv counted as the plain conv it equals).
fn pass_flops(g: &Geom) -> f64 {
    2.0 * (g.n * g.c_out * g.kdim() * g.ohw()) as f64
}

fn conv_fwd(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    profile::timed(
        || profile_key("fwd", g),
        pass_flops(g),
        || conv_fwd_untimed(g, x, w),
    )
}

fn conv_input_grad(g: &Geom, gy: &[f32], w: &[f32]) -> Vec<f32> {
    profile::timed(
        || profile_key("dgrad", g),
        pass_flops(g),
        || conv_input_grad_untimed(g, gy, w),
    )
}

fn conv_weight_grad(g: &Geom, x: &[f32], gy: &[f32]) -> Vec<f32> {
    profile::timed(
        || profile_key("wgrad", g),
        pass_flops(g),
        || conv_weight_grad_untimed(g, x, gy),
    )
}

fn conv_fwd_untimed(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    if subpixel::applies(g) {
        subpixel::conv_fwd(g, x, w)
    } else {
        kernels::conv_fwd(g, x, w)
    }
}

fn conv_input_grad_untimed(g: &Geom, gy: &[f32], w: &[f32]) -> Vec<f32> {
    if subpixel::applies(g) {
        subpixel::conv_input_grad(g, gy, w)
    } else {
        kernels::conv_input_grad(g, gy, w)
    }
}

fn conv_weight_grad_untimed(g: &Geom, x: &[f32], gy: &[f32]) -> Vec<f32> {
    if subpixel::applies(g) {
        subpixel::conv_weight_grad(g, x, gy)
    } else {
        kernels::conv_weight_grad(g, x, gy)
    }
}

/// The forward op: `conv(upsample_up(x), w)`.
#[derive(Clone, Copy, Debug)]
struct ConvOp {
    up: usize,
    stride: usize,
    pad: usize,
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "osips-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geom(
            l1.shape().dims4()?,
            l2.shape().dims4()?,
            self.up,
            self.stride,
            self.pad,
        )?;
        let x = f32_slice(s1, l1, "input")?;
        let w = f32_slice(s2, l2, "kernel")?;
        let y = conv_fwd(&g, x, w);
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.c_out, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gy = gy.contiguous()?;
        let dx = if x.track_op() {
            let (_, _, h, wd) = x.dims4()?;
            Some(gy.apply_op2_no_bwd(
                w,
                &InputGradOp {
                    op: *self,
                    h,
                    w: wd,
                },
            )?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(
                &gy,
                &WeightGradOp {
                    op: *self,
                    k: w.dim(2)?,
                },
            )?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `(gy, w) -> dx` for a [`ConvOp`] whose real input is `h × w`.
struct InputGradOp {
    op: ConvOp,
    h: usize,
    w: usize,
}

impl CustomOp2 for InputGradOp {
    fn name(&self) -> &'static str {
        "osips-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c_out, oh, ow) = l1.shape().dims4()?;
        let wd = l2.shape().dims4()?;
        let g = geom(
            (n, wd.1, self.h, self.w),
            wd,
            self.op.up,
            self.op.stride,
            self.op.pad,
        )?;
        if (g.c_out, g.oh, g.ow) != (c_out, oh, ow) {
            candle_core::bail!(
                "osips-kernels: gradient shape {:?} does not match conv output {:?}",
                l1.shape(),
                (g.n, g.c_out, g.oh, g.ow)
            );
        }
        let gy = f32_slice(s1, l1, "output gradient")?;
        let w = f32_slice(s2, l2, "kernel")?;
        let dx = conv_input_grad(&g, gy, w);
        Ok((CpuStorage::F32(dx), Shape::from((g.n, g.c_in, g.h, g.w))))
    }
}

/// `(x, gy) -> dw` for a [`ConvOp`] with a `k × k` kernel.
struct WeightGradOp {
    op: ConvOp,
    k: usize,
}

impl CustomOp2 for WeightGradOp {
    fn name(&self) -> &'static str {
        "osips-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xd = l1.shape().dims4()?;
        let (n, c_out, oh, ow) = l2.shape().dims4()?;
        let g = geom(
            xd,
            (c_out, xd.1, self.k, self.k),
            self.op.up,
            self.op.stride,
            self.op.pad,
        )?;
        if (g.n, g.oh, g.ow) != (n, oh, ow) {
            candle_core::bail!(
                "osips-kernels: gradient shape {:?} does not match conv output {:?}",
                l2.shape(),
                (g.n, g.c_out, g.oh, g.ow)
            );
        }
        let x = f32_slice(s1, l1, "input")?;
        let gy = f32_slice(s2, l2, "output gradient")?;
        let dw = conv_weight_grad(&g, x, gy);
        Ok((
            CpuStorage::F32(dw),
            Shape::from((g.c_out, g.c_in, g.kh, g.kw)),
        ))
    }
}

/// y = conv2d(x, w), no bias, groups 1, dilation 1. x: [N, C_in, H, W], w: [C_out, C_in, K, K];
/// same semantics and output shape as `x.conv2d(w, padding, stride, 1, 1)` in candle.
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    if !fast_path(x, w) {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        ConvOp {
            up: 1,
            stride,
            pad: padding,
        },
    )
}

/// conv2d(upsample_nearest2d(x, 2H, 2W), w, stride 1, padding) fused: the upsampled tensor
/// is never materialised.
pub fn upsample2x_conv2d(x: &Tensor, w: &Tensor, padding: usize) -> Result<Tensor> {
    if !fast_path(x, w) {
        let (_, _, h, wd) = x.dims4()?;
        return x
            .upsample_nearest2d(2 * h, 2 * wd)?
            .conv2d(w, padding, 1, 1, 1);
    }
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        ConvOp {
            up: 2,
            stride: 1,
            pad: padding,
        },
    )
}

/// Input gradient of [`conv2d`]: `gy` is the gradient of its output, `input_hw` the input's
/// height and width. Not differentiable itself.
pub fn conv2d_input_grad(
    gy: &Tensor,
    w: &Tensor,
    input_hw: (usize, usize),
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    if !fast_path(gy, w) {
        let (_, _, oh, ow) = gy.dims4()?;
        let k = w.dim(2)?;
        // candle's own backward: conv_transpose2d with the output padding that restores
        // (h, w); it takes one output padding for both, so use the larger and crop.
        let out_pad_h = (input_hw.0 + 2 * padding).saturating_sub((oh - 1) * stride + k);
        let out_pad_w = (input_hw.1 + 2 * padding).saturating_sub((ow - 1) * stride + k);
        return gy
            .conv_transpose2d(w, padding, out_pad_h.max(out_pad_w), stride, 1)?
            .narrow(2, 0, input_hw.0)?
            .narrow(3, 0, input_hw.1);
    }
    gy.contiguous()?.apply_op2_no_bwd(
        &w.contiguous()?,
        &InputGradOp {
            op: ConvOp {
                up: 1,
                stride,
                pad: padding,
            },
            h: input_hw.0,
            w: input_hw.1,
        },
    )
}

/// Weight gradient of [`conv2d`] with a `kernel × kernel` kernel: `gy` is the gradient of its
/// output. Not differentiable itself.
pub fn conv2d_weight_grad(
    x: &Tensor,
    gy: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    if !fast_path(x, gy) {
        // candle's own backward formula.
        let gw = x
            .transpose(0, 1)?
            .conv2d(&gy.transpose(0, 1)?, padding, 1, stride, 1)?
            .transpose(0, 1)?;
        let (_, _, gh, gwd) = gw.dims4()?;
        let gw = match (gh > kernel, gwd > kernel) {
            (true, _) | (_, true) => gw.narrow(2, 0, kernel)?.narrow(3, 0, kernel)?,
            _ => gw,
        };
        return Ok(gw);
    }
    x.contiguous()?.apply_op2_no_bwd(
        &gy.contiguous()?,
        &WeightGradOp {
            op: ConvOp {
                up: 1,
                stride,
                pad: padding,
            },
            k: kernel,
        },
    )
}

/// Input gradient of [`upsample2x_conv2d`] (gradient w.r.t. the *small* input, `input_hw`).
pub fn upsample2x_conv2d_input_grad(
    gy: &Tensor,
    w: &Tensor,
    input_hw: (usize, usize),
    padding: usize,
) -> Result<Tensor> {
    if !fast_path(gy, w) {
        let (h, wd) = input_hw;
        let dxu = conv2d_input_grad(gy, w, (2 * h, 2 * wd), 1, padding)?;
        let (n, c, _, _) = dxu.dims4()?;
        return dxu.reshape((n, c, h, 2, wd, 2))?.sum(5)?.sum(3);
    }
    gy.contiguous()?.apply_op2_no_bwd(
        &w.contiguous()?,
        &InputGradOp {
            op: ConvOp {
                up: 2,
                stride: 1,
                pad: padding,
            },
            h: input_hw.0,
            w: input_hw.1,
        },
    )
}

/// Weight gradient of [`upsample2x_conv2d`] with a `kernel × kernel` kernel.
pub fn upsample2x_conv2d_weight_grad(
    x: &Tensor,
    gy: &Tensor,
    kernel: usize,
    padding: usize,
) -> Result<Tensor> {
    if !fast_path(x, gy) {
        let (_, _, h, wd) = x.dims4()?;
        let xu = x.upsample_nearest2d(2 * h, 2 * wd)?;
        return conv2d_weight_grad(&xu, gy, kernel, 1, padding);
    }
    x.contiguous()?.apply_op2_no_bwd(
        &gy.contiguous()?,
        &WeightGradOp {
            op: ConvOp {
                up: 2,
                stride: 1,
                pad: padding,
            },
            k: kernel,
        },
    )
}
