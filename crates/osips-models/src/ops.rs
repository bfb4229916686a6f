//! The one place that decides which kernel runs for the convolutions and activations of the
//! networks. Everything here is differentiable through candle's autograd.

use candle_core::{Result, Tensor};

/// `conv2d(xs, w)` without bias: `[N, C_in, H, W]` × `[C_out, C_in, K, K]`.
///
/// On the CPU in f32 this is `osips-kernels`' op (im2col over `gemm`, with its own
/// backward), several times faster than candle 0.11's conv2d and its gradient; elsewhere
/// it is candle's own op.
pub fn conv2d(xs: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    osips_kernels::conv2d(xs, w, stride, padding)
}

/// Nearest 2× upsampling then a stride-1 convolution without bias, fused on the CPU so
/// the upsampled tensor never exists.
pub fn upsample2x_conv2d(xs: &Tensor, w: &Tensor, padding: usize) -> Result<Tensor> {
    osips_kernels::upsample2x_conv2d(xs, w, padding)
}

/// `max(x, slope·x)` for `0 ≤ slope < 1`.
pub fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor> {
    xs.maximum(&(xs * slope)?)
}
