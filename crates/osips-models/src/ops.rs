//! The one place that decides which kernel runs for the convolutions and activations of the
//! networks. Everything here is differentiable through candle's autograd.

use candle_core::{Result, Tensor};

/// `conv2d(xs, w)` without bias: `[N, C_in, H, W]` × `[C_out, C_in, K, K]`.
pub fn conv2d(xs: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    xs.conv2d(w, padding, stride, 1, 1)
}

/// Nearest 2× upsampling then a stride-1 convolution without bias.
pub fn upsample2x_conv2d(xs: &Tensor, w: &Tensor, padding: usize) -> Result<Tensor> {
    let (_, _, h, wd) = xs.dims4()?;
    xs.upsample_nearest2d(2 * h, 2 * wd)?
        .conv2d(w, padding, 1, 1, 1)
}

/// `max(x, slope·x)` for `0 ≤ slope < 1`.
pub fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor> {
    xs.maximum(&(xs * slope)?)
}
