//! The one place that decides which kernel runs for the convolutions, normalisations and
//! activations of the networks. Everything here is differentiable through candle's
//! autograd.
//!
//! On the CPU in f32 these are `osips-kernels`' ops (convolutions lowered to `gemm` with
//! their own backward passes; single-pass channel ops), several times faster than candle
//! 0.11's compositions; elsewhere each falls back to candle's own ops with the same
//! meaning.

use std::cell::Cell;

use candle_core::{Result, Tensor};
pub use osips_kernels::profile;
pub use osips_kernels::{adam_applies, adam_update, AdamStep};
pub use osips_kernels::{BatchNormTrain, FusedActivation as Activation};

/// `conv2d(xs, w)` without bias: `[N, C_in, H, W]` × `[C_out, C_in, K, K]`.
pub fn conv2d(xs: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    osips_kernels::conv2d(xs, w, stride, padding)
}

/// Nearest 2× upsampling then a stride-1 convolution without bias, fused on the CPU so
/// the upsampled tensor never exists.
pub fn upsample2x_conv2d(xs: &Tensor, w: &Tensor, padding: usize) -> Result<Tensor> {
    osips_kernels::upsample2x_conv2d(xs, w, padding)
}

/// `xs + bias[c]` over the channel axis of `[N, C, …]`.
pub fn add_channel_bias(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    osips_kernels::add_channel_bias(xs, bias)
}

/// Train-mode batch normalisation over dim 1 (batch mean, biased variance), returning the
/// batch statistics for the running averages.
pub fn batch_norm_train(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> Result<BatchNormTrain> {
    osips_kernels::batch_norm_train(xs, weight, bias, eps)
}

/// [`batch_norm_train`] then `act`, as one op.
pub fn batch_norm_train_act(
    xs: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    act: Activation,
) -> Result<BatchNormTrain> {
    osips_kernels::batch_norm_train_act(xs, weight, bias, eps, act)
}

/// [`channel_scale_shift`] then `act`, as one op.
pub fn channel_scale_shift_act(
    xs: &Tensor,
    scale: &Tensor,
    shift: &Tensor,
    act: Activation,
) -> Result<Tensor> {
    osips_kernels::channel_scale_shift_act(xs, scale, shift, act)
}

/// `xs · scale[c] + shift[c]` over dim 1: eval-mode batch normalisation.
pub fn channel_scale_shift(xs: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    osips_kernels::channel_scale_shift(xs, scale, shift)
}

/// `max(x, 0)`.
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    osips_kernels::relu(xs)
}

/// `max(x, slope·x)` for `0 ≤ slope < 1`.
pub fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor> {
    osips_kernels::leaky_relu(xs, slope)
}

/// 2×2 max-pooling with stride 2, the whole gradient to each window's maximum. (candle
/// 0.11.1's `max_pool2d` backward scales it by ¼: see `osips-kernels`.)
pub fn max_pool2x2(xs: &Tensor) -> Result<Tensor> {
    osips_kernels::max_pool2x2(xs)
}

thread_local! {
    static FROZEN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the parameters of every layer it builds detached, like PyTorch's
/// `torch.autograd.grad(loss, inputs=other_params)`: the graph still carries gradients
/// through the layers to their inputs, but the backward pass computes no weight gradient
/// for them. For a network that a phase only passes gradients through (D and C in the
/// generator's adversarial pass), this skips a third of its backward work.
///
/// The running statistics of BatchNorm layers in train mode are still updated.
pub fn frozen<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            FROZEN.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(FROZEN.with(|c| c.replace(true)));
    f()
}

/// Whether layers are being built inside [`frozen`] on this thread.
pub fn is_frozen() -> bool {
    FROZEN.with(Cell::get)
}

/// A layer's parameter as the graph should see it: detached inside [`frozen`], itself
/// otherwise (a cheap handle clone either way; the storage is shared).
pub fn param(t: &Tensor) -> Tensor {
    if is_frozen() {
        t.detach()
    } else {
        t.clone()
    }
}
