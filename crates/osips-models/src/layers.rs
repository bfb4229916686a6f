//! The building blocks of the four networks: convolution, batch normalisation and the
//! activations, each a struct whose fields are its tensors (the field path is the name).
//!
//! Convolutions go through [`crate::ops`], the one place that decides which kernel runs.

use candle_core::{Module, Tensor, D};
use candle_nn::init::{FanInOut, Init, NonLinearity, NormalOrUniform};
use candle_nn::VarBuilder;

use crate::error::Result;
use crate::ops::{self, Activation};

/// How to build a [`Conv2d`].
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// False when a BatchNorm follows (its shift makes a bias redundant).
    pub bias: bool,
    /// The activation that follows, for the initialisation gain.
    pub non_linearity: NonLinearity,
}

/// A 2-D convolution with square kernels, no dilation and no groups.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[C_out, C_in, K, K]`.
    pub weight: Tensor,
    /// `[C_out]`, absent when a BatchNorm follows.
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    /// Kaiming-normal weights (fan-in, gain for the following non-linearity) and, with a
    /// bias, PyTorch's uniform bias initialisation.
    pub fn new(spec: ConvSpec, vb: VarBuilder<'_>) -> Result<Self> {
        let ConvSpec {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            bias,
            non_linearity,
        } = spec;
        let weight = vb.get_with_hints(
            (out_channels, in_channels, kernel, kernel),
            "weight",
            Init::Kaiming {
                dist: NormalOrUniform::Normal,
                fan: FanInOut::FanIn,
                non_linearity,
            },
        )?;
        let bias = if bias {
            let bound = 1.0 / ((in_channels * kernel * kernel) as f64).sqrt();
            Some(vb.get_with_hints(
                out_channels,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Conv2d {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// # Shapes
    /// `[N, C_in, H, W]` → `[N, C_out, (H + 2p − K)/s + 1, (W + 2p − K)/s + 1]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = ops::conv2d(xs, &ops::param(&self.weight), self.stride, self.padding)?;
        self.add_bias(ys)
    }

    /// Nearest-neighbour 2× upsampling followed by this (stride-1) convolution.
    ///
    /// # Shapes
    /// `[N, C_in, H, W]` → `[N, C_out, 2H + 2p − K + 1, 2W + 2p − K + 1]`.
    pub fn forward_upsample2x(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = ops::upsample2x_conv2d(xs, &ops::param(&self.weight), self.padding)?;
        self.add_bias(ys)
    }

    fn add_bias(&self, ys: Tensor) -> Result<Tensor> {
        match &self.bias {
            None => Ok(ys),
            Some(bias) => Ok(ops::add_channel_bias(&ys, &ops::param(bias))?),
        }
    }

    /// Multiply–adds ×2 of one forward pass for one image of `out_hw` output pixels.
    pub fn flops(&self, out_hw: usize) -> u64 {
        let dims = self.weight.dims();
        2 * (dims.iter().product::<usize>() * out_hw) as u64
    }
}

/// Batch normalisation over the channel axis (dim 1) of `[N, C]` or `[N, C, H, W]`, with
/// PyTorch's semantics: biased batch variance to normalise, unbiased to update the running
/// variance, momentum 0.1, eps 1e-5.
///
/// The running statistics are variables of the network's parameter set, so they are saved
/// and restored with it, but no optimiser ever touches them.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: candle_core::Var,
    pub running_var: candle_core::Var,
    pub momentum: f64,
    pub eps: f64,
}

impl BatchNorm {
    pub fn new(channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        Ok(BatchNorm {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            running_mean: candle_core::Var::from_tensor(&running_mean)?,
            running_var: candle_core::Var::from_tensor(&running_var)?,
            momentum: 0.1,
            eps: 1e-5,
        })
    }

    /// With `train`, normalise by the batch statistics and update the running ones; without,
    /// normalise by the running statistics.
    ///
    /// # Shapes
    /// `[N, C]` or `[N, C, H, W]` → the same.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act_t(xs, train, None)
    }

    /// [`BatchNorm::forward_t`] followed by `act`, fused into one op on the CPU.
    pub fn forward_act_t(
        &self,
        xs: &Tensor,
        train: bool,
        act: Option<Activation>,
    ) -> Result<Tensor> {
        let (weight, bias) = (ops::param(&self.weight), ops::param(&self.bias));
        if train {
            let out = match act {
                None => ops::batch_norm_train(xs, &weight, &bias, self.eps)?,
                Some(act) => ops::batch_norm_train_act(xs, &weight, &bias, self.eps, act)?,
            };
            let count = xs.elem_count() / self.weight.dim(0)?;
            let m = self.momentum;
            // PyTorch's running variance uses the unbiased batch variance.
            let unbias = if count > 1 {
                count as f64 / (count as f64 - 1.0)
            } else {
                1.0
            };
            let new_mean = ((self.running_mean.as_tensor() * (1.0 - m))? + (out.mean * m)?)?;
            let new_var =
                ((self.running_var.as_tensor() * (1.0 - m))? + (out.var * (m * unbias))?)?;
            self.running_mean.set(&new_mean)?;
            self.running_var.set(&new_var)?;
            Ok(out.y)
        } else {
            let scale = (self.running_var.as_tensor() + self.eps)?
                .sqrt()?
                .recip()?
                .mul(&weight)?;
            let shift = (&bias - self.running_mean.as_tensor().mul(&scale)?)?;
            Ok(match act {
                None => ops::channel_scale_shift(xs, &scale, &shift)?,
                Some(act) => ops::channel_scale_shift_act(xs, &scale, &shift, act)?,
            })
        }
    }
}

/// A fully connected layer (`candle_nn::Linear`, named `weight` / `bias`).
#[derive(Debug, Clone)]
pub struct Linear {
    pub inner: candle_nn::Linear,
    pub in_dim: usize,
    pub out_dim: usize,
}

impl Linear {
    pub fn new(in_dim: usize, out_dim: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Linear {
            inner: candle_nn::linear(in_dim, out_dim, vb)?,
            in_dim,
            out_dim,
        })
    }

    /// # Shapes
    /// `[N, in_dim]` → `[N, out_dim]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !ops::is_frozen() {
            return Ok(self.inner.forward(xs)?);
        }
        let frozen = candle_nn::Linear::new(
            ops::param(self.inner.weight()),
            self.inner.bias().map(ops::param),
        );
        Ok(frozen.forward(xs)?)
    }

    pub fn flops(&self) -> u64 {
        2 * (self.in_dim * self.out_dim) as u64
    }
}

/// LeakyReLU with negative slope `slope`.
pub fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor> {
    Ok(ops::leaky_relu(xs, slope)?)
}

/// `max(x, 0)` (our kernel on the CPU).
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    Ok(ops::relu(xs)?)
}

/// 2×2 max-pooling, stride 2.
pub fn max_pool2x2(xs: &Tensor) -> Result<Tensor> {
    Ok(ops::max_pool2x2(xs)?)
}

/// Flatten `[N, ...]` to `[N, rest]`.
pub fn flatten(xs: &Tensor) -> Result<Tensor> {
    Ok(xs.flatten_from(1)?)
}

/// Split `[N, a + b]` into `[N, a]`, `[N, b]`.
pub fn split_last(xs: &Tensor, a: usize) -> Result<(Tensor, Tensor)> {
    let total = xs.dim(D::Minus1)?;
    Ok((xs.narrow(1, 0, a)?, xs.narrow(1, a, total - a)?))
}
