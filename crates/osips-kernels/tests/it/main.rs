//! Every kernel against candle's reference op: forward, input gradient and weight gradient
//! (through `Var` + `backward()`), on random and on network shapes.

mod channel;

use candle_core::{DType, Device, Result, Tensor, Var};
use osips_kernels::{
    conv2d, conv2d_input_grad, conv2d_weight_grad, upsample2x_conv2d, upsample2x_conv2d_input_grad,
    upsample2x_conv2d_weight_grad,
};

const RTOL: f32 = 1e-4;

/// Tiny deterministic generator so that failures are reproducible without extra crates.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() as usize) % (hi - lo + 1)
    }
}

/// max |a - b| / max |b|, over all elements.
fn rel_err(a: &Tensor, b: &Tensor) -> Result<f32> {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let a = a.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let b = b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    Ok(diff / scale)
}

fn assert_close(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    let e = rel_err(a, b)?;
    assert!(e <= RTOL, "{what}: relative error {e:e} > {RTOL:e}");
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Case {
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    /// 2: upsample2x_conv2d (stride must be 1), 1: conv2d.
    up: usize,
}

impl Case {
    fn ours(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if self.up == 2 {
            upsample2x_conv2d(x, w, self.pad)
        } else {
            conv2d(x, w, self.stride, self.pad)
        }
    }
    fn reference(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if self.up == 2 {
            x.upsample_nearest2d(2 * self.h, 2 * self.w)?
                .conv2d(w, self.pad, 1, 1, 1)
        } else {
            x.conv2d(w, self.pad, self.stride, 1, 1)
        }
    }
    /// candle 0.11.1's conv2d backward derives the transposed conv's output padding from the
    /// height only, so its input gradient has the wrong width (a shape error) when
    /// `(h + 2p - k) % s != (w + 2p - k) % s`.
    fn candle_backward_broken(&self) -> bool {
        let (p, k, s) = (self.pad, self.k, self.stride);
        self.up == 1 && (self.h + 2 * p - k) % s != (self.w + 2 * p - k) % s
    }
    /// The same convolution built so that candle's backward is right for any shape: pad
    /// explicitly, crop to the extent the output reads (so no output padding is needed),
    /// then convolve without padding.
    fn reference_for_grads(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if !self.candle_backward_broken() {
            return self.reference(x, w);
        }
        let (p, k, s) = (self.pad, self.k, self.stride);
        let oh = (self.h + 2 * p - k) / s + 1;
        let ow = (self.w + 2 * p - k) / s + 1;
        x.pad_with_zeros(2, p, p)?
            .pad_with_zeros(3, p, p)?
            .narrow(2, 0, (oh - 1) * s + k)?
            .narrow(3, 0, (ow - 1) * s + k)?
            .conv2d(w, 0, s, 1, 1)
    }
}

/// Forward and both gradients of the fused op against candle's, plus the standalone
/// gradient functions.
fn check(case: Case, seed: u64) -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::randn(0f32, 1., (case.n, case.c_in, case.h, case.w), &dev)?;
    let w = Var::randn(0f32, 0.3, (case.c_out, case.c_in, case.k, case.k), &dev)?;
    let ours = case.ours(x.as_tensor(), w.as_tensor())?;
    let refy = case.reference(x.as_tensor(), w.as_tensor())?;
    let ctx = format!("{case:?} seed {seed}");
    assert_close(&format!("forward {ctx}"), &ours, &refy)?;

    let gy = Tensor::randn(0f32, 1., refy.dims(), &dev)?;
    let g_ours = (&ours * &gy)?.sum_all()?.backward()?;
    let refg = case.reference_for_grads(x.as_tensor(), w.as_tensor())?;
    let g_ref = (&refg * &gy)?.sum_all()?.backward()?;
    let dx_ref = g_ref.get(&x).expect("ref dx");
    let dw_ref = g_ref.get(&w).expect("ref dw");
    assert_close(
        &format!("input grad {ctx}"),
        g_ours.get(&x).expect("dx"),
        dx_ref,
    )?;
    assert_close(
        &format!("weight grad {ctx}"),
        g_ours.get(&w).expect("dw"),
        dw_ref,
    )?;

    // The standalone gradient entry points.
    let hw = (case.h, case.w);
    let (dx, dw) = if case.up == 2 {
        (
            upsample2x_conv2d_input_grad(&gy, w.as_tensor(), hw, case.pad)?,
            upsample2x_conv2d_weight_grad(x.as_tensor(), &gy, case.k, case.pad)?,
        )
    } else {
        (
            conv2d_input_grad(&gy, w.as_tensor(), hw, case.stride, case.pad)?,
            conv2d_weight_grad(x.as_tensor(), &gy, case.k, case.stride, case.pad)?,
        )
    };
    assert_close(&format!("standalone input grad {ctx}"), &dx, dx_ref)?;
    assert_close(&format!("standalone weight grad {ctx}"), &dw, dw_ref)?;
    Ok(())
}

fn random_case(rng: &mut Lcg, up: usize) -> Case {
    let k = rng.range(1, 5);
    let pad = rng.range(0, 2);
    let stride = if up == 2 { 1 } else { rng.range(1, 2) };
    // at least k after padding (and upsampling), odd and even sizes
    let min = (k.saturating_sub(2 * pad)).div_ceil(up).max(1);
    Case {
        n: [1, 1, 2, 3, 4][rng.range(0, 4)],
        c_in: rng.range(1, 11),
        c_out: rng.range(1, 13),
        h: rng.range(min, min + 11),
        w: rng.range(min, min + 11),
        k,
        stride,
        pad,
        up,
    }
}

#[test]
fn conv2d_random_shapes() -> Result<()> {
    for seed in 0..60u64 {
        let mut rng = Lcg(seed * 7919 + 17);
        check(random_case(&mut rng, 1), seed)?;
    }
    Ok(())
}

#[test]
fn upsample2x_conv2d_random_shapes() -> Result<()> {
    for seed in 0..40u64 {
        let mut rng = Lcg(seed * 104729 + 3);
        check(random_case(&mut rng, 2), seed)?;
    }
    Ok(())
}

/// Every stride × padding × kernel combination once, odd sizes, batch 1.
#[test]
fn conv2d_all_small_configs_batch1() -> Result<()> {
    for k in 1..=5 {
        for stride in 1..=2 {
            for pad in 0..=2 {
                let case = Case {
                    n: 1,
                    c_in: 3,
                    c_out: 5,
                    h: 7,
                    w: 9,
                    k,
                    stride,
                    pad,
                    up: 1,
                };
                check(case, 0)?;
            }
        }
    }
    Ok(())
}

/// Shapes of the tiny preset's layers (scaled down in batch and size so that debug builds
/// stay quick), including several im2col tiles per image, SIMD-unfriendly channel counts,
/// and the single-image path that threads inside gemm and col2im.
#[test]
fn network_like_shapes() -> Result<()> {
    let cases = [
        // conv3x3 s1 p1 encoders: 3->32, 32->64, 64->128 (several tiles per image)
        (2, 3, 32, 20, 20, 3, 1, 1, 1),
        (2, 32, 64, 16, 16, 3, 1, 1, 1),
        (3, 64, 128, 8, 8, 3, 1, 1, 1),
        (1, 64, 72, 17, 15, 3, 1, 1, 1),
        // discriminator conv4x4 s2 p1
        (2, 3, 64, 32, 32, 4, 2, 1, 1),
        (1, 64, 128, 16, 16, 4, 2, 1, 1),
        (3, 128, 40, 8, 8, 4, 2, 1, 1),
        // pointwise
        (2, 24, 17, 9, 11, 1, 1, 0, 1),
        (1, 33, 8, 12, 12, 1, 1, 0, 1),
        // generator upsample2x + conv3x3 p1 and the final conv 32->3
        (2, 64, 32, 8, 8, 3, 1, 1, 2),
        (1, 48, 24, 9, 7, 3, 1, 1, 2),
        (3, 16, 8, 16, 16, 3, 1, 1, 2),
        (2, 32, 3, 32, 32, 3, 1, 1, 1),
    ];
    for (i, &(n, c_in, c_out, h, w, k, stride, pad, up)) in cases.iter().enumerate() {
        let case = Case {
            n,
            c_in,
            c_out,
            h,
            w,
            k,
            stride,
            pad,
            up,
        };
        check(case, i as u64)?;
    }
    Ok(())
}

/// Non-contiguous inputs are handled (made contiguous) with the same result.
#[test]
fn non_contiguous_inputs() -> Result<()> {
    let dev = Device::Cpu;
    let xt = Var::randn(0f32, 1., (2, 5, 9, 4), &dev)?;
    let x = xt.as_tensor().transpose(1, 3)?; // [2, 4, 9, 5], strided
    assert!(!x.is_contiguous());
    let w = Var::randn(0f32, 0.3, (6, 4, 3, 3), &dev)?;
    let wv = w.as_tensor().flip(&[2])?;
    for (ours, refy) in [
        (conv2d(&x, &wv, 2, 1)?, x.conv2d(&wv, 1, 2, 1, 1)?),
        (
            upsample2x_conv2d(&x, &wv, 1)?,
            x.upsample_nearest2d(18, 10)?.conv2d(&wv, 1, 1, 1, 1)?,
        ),
    ] {
        assert_close("non-contiguous forward", &ours, &refy)?;
        let gy = Tensor::randn(0f32, 1., refy.dims(), &dev)?;
        let go = (&ours * &gy)?.sum_all()?.backward()?;
        let gr = (&refy * &gy)?.sum_all()?.backward()?;
        for v in [xt.as_tensor(), w.as_tensor()] {
            assert_close(
                "non-contiguous grad",
                go.get(v).expect("ours"),
                gr.get(v).expect("ref"),
            )?;
        }
    }
    Ok(())
}

/// Gradients flow only to tensors that track them; a constant input gets none.
#[test]
fn constant_input_gets_no_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (2, 3, 8, 8), &dev)?;
    let w = Var::randn(0f32, 0.3, (4, 3, 3, 3), &dev)?;
    let g = conv2d(&x, w.as_tensor(), 1, 1)?
        .sqr()?
        .sum_all()?
        .backward()?;
    assert!(g.get(&x).is_none());
    let gr = x
        .conv2d(w.as_tensor(), 1, 1, 1, 1)?
        .sqr()?
        .sum_all()?
        .backward()?;
    assert_close(
        "weight grad",
        g.get(&w).expect("ours"),
        gr.get(&w).expect("ref"),
    )
}

/// Other dtypes fall back to candle's own ops: results are identical, gradients too.
#[test]
fn f64_falls_back_to_candle() -> Result<()> {
    let dev = Device::Cpu;
    let x = Var::randn(0f64, 1., (2, 3, 7, 7), &dev)?;
    let w = Var::randn(0f64, 0.3, (4, 3, 3, 3), &dev)?;
    let a = conv2d(x.as_tensor(), w.as_tensor(), 2, 1)?;
    let b = x.as_tensor().conv2d(w.as_tensor(), 1, 2, 1, 1)?;
    assert_eq!(rel_err(&a, &b)?, 0.0);
    let a = upsample2x_conv2d(x.as_tensor(), w.as_tensor(), 1)?;
    let b = x
        .as_tensor()
        .upsample_nearest2d(14, 14)?
        .conv2d(w.as_tensor(), 1, 1, 1, 1)?;
    assert_eq!(rel_err(&a, &b)?, 0.0);
    // standalone gradients on the fallback path agree with the f32 fast path
    let gy = Tensor::randn(0f64, 1., (2, 4, 7, 7), &dev)?;
    let dx64 = conv2d_input_grad(&gy, w.as_tensor(), (7, 7), 1, 1)?;
    let dw64 = conv2d_weight_grad(x.as_tensor(), &gy, 3, 1, 1)?;
    let f = |t: &Tensor| t.to_dtype(DType::F32);
    let dx32 = conv2d_input_grad(&f(&gy)?, &f(w.as_tensor())?, (7, 7), 1, 1)?;
    let dw32 = conv2d_weight_grad(&f(x.as_tensor())?, &f(&gy)?, 3, 1, 1)?;
    assert_close("fallback input grad", &dx32, &dx64)?;
    assert_close("fallback weight grad", &dw32, &dw64)?;
    let gy = Tensor::randn(0f64, 1., (2, 4, 14, 14), &dev)?;
    let dx64 = upsample2x_conv2d_input_grad(&gy, w.as_tensor(), (7, 7), 1)?;
    let dw64 = upsample2x_conv2d_weight_grad(x.as_tensor(), &gy, 3, 1)?;
    let dx32 = upsample2x_conv2d_input_grad(&f(&gy)?, &f(w.as_tensor())?, (7, 7), 1)?;
    let dw32 = upsample2x_conv2d_weight_grad(&f(x.as_tensor())?, &f(&gy)?, 3, 1)?;
    assert_close("fallback upsample input grad", &dx32, &dx64)?;
    assert_close("fallback upsample weight grad", &dw32, &dw64)?;
    Ok(())
}

/// Shape errors are reported like candle's, not panics.
#[test]
fn bad_shapes_are_errors() -> Result<()> {
    let dev = Device::Cpu;
    let x = Tensor::zeros((1, 3, 4, 4), DType::F32, &dev)?;
    let w = Tensor::zeros((2, 4, 3, 3), DType::F32, &dev)?;
    assert!(conv2d(&x, &w, 1, 1).is_err()); // channel mismatch
    let w = Tensor::zeros((2, 3, 7, 7), DType::F32, &dev)?;
    assert!(conv2d(&x, &w, 1, 1).is_err()); // kernel larger than padded input
    Ok(())
}

/// A non-square stride-2 input whose height and width leave different remainders: candle's
/// own conv2d backward fails on it (shape error), ours is right (checked against the
/// explicitly padded and cropped reference).
#[test]
fn stride2_mixed_remainders() -> Result<()> {
    let case = Case {
        n: 1,
        c_in: 7,
        c_out: 5,
        h: 8,
        w: 9,
        k: 3,
        stride: 2,
        pad: 1,
        up: 1,
    };
    assert!(case.candle_backward_broken());
    let dev = Device::Cpu;
    let x = Var::randn(0f32, 1., (1, 7, 8, 9), &dev)?;
    let w = Var::randn(0f32, 0.3, (5, 7, 3, 3), &dev)?;
    let y = x.as_tensor().conv2d(w.as_tensor(), 1, 2, 1, 1)?;
    assert!(
        y.sum_all()?.backward().is_err(),
        "candle fixed its backward?"
    );
    check(case, 0)
}

/// Layers with at most 4 output channels at stride 1 take the direct kernels (the
/// generator's RGB conv): every kernel size 1 to 5 with every padding below it, output
/// rows from one vector wide (8) to odd widths with a remainder, batch 1 and 3.
#[test]
fn direct_path_few_output_channels() -> Result<()> {
    let mut seed = 0;
    for k in 1..=5usize {
        for pad in 0..k.min(3) {
            for (c_out, ow, n) in [(1, 8, 1), (3, 13, 3), (4, 21, 1), (2, 9, 3)] {
                let w = ow + k - 1 - 2 * pad;
                let case = Case {
                    n,
                    c_in: [1, 5, 32][seed % 3],
                    c_out,
                    h: 3 + seed % 5 + k,
                    w,
                    k,
                    stride: 1,
                    pad,
                    up: 1,
                };
                check(case, seed as u64)?;
                seed += 1;
            }
        }
    }
    Ok(())
}

/// An upsampling conv with few output channels: its phase convolutions have asymmetric
/// padding, which the direct kernels must decline (they assume the same padding on both
/// sides). With 12 input columns the phases are 12 wide, wide enough for the direct path.
#[test]
fn upsample_few_output_channels() -> Result<()> {
    for (seed, (c_out, k, pad)) in [(3, 3, 1), (1, 3, 0), (4, 2, 0), (2, 5, 2)]
        .into_iter()
        .enumerate()
    {
        let case = Case {
            n: 2,
            c_in: 5,
            c_out,
            h: 9,
            w: 12,
            k,
            stride: 1,
            pad,
            up: 2,
        };
        check(case, seed as u64)?;
    }
    Ok(())
}
