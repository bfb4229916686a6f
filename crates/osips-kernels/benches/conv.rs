//! candle vs osips-kernels on the convolution shapes of the tiny preset (batch 16, 64×64)
//! and the issue-7 reference layer. Prints a markdown table.
//!
//! `cargo bench -p osips-kernels --bench conv` (env: `BENCH_FILTER=substr` to pick shapes,
//! `BENCH_REPS=n` to fix the repetitions, `RAYON_NUM_THREADS` for the thread count).
//!
//! Each timing is the best of N runs after a warm-up; candle and ours alternate (A B A B …)
//! so that load from other processes hits both alike.
//!
//! Rows: `forward`, `input grad`, `weight grad` (each alone, no autograd), `3 kernels` (the
//! three back to back), and `fwd+bwd`: `(conv(x, w) * gy).sum_all().backward()` with `x` and
//! `w` as `Var`s, i.e. what a network sees, including candle's autograd glue (the product,
//! the sum, and the zero-and-add of every gradient). GFLOP/s are nominal: `2·N·C_out·OH·OW
//! ·C_in·K²` per pass, also for the upsampling convs, whose phase decomposition does 2.25×
//! fewer.

use std::time::Instant;

use candle_core::{Device, Result, Tensor, Var};
use osips_kernels::{
    conv2d, conv2d_input_grad, conv2d_weight_grad, upsample2x_conv2d, upsample2x_conv2d_input_grad,
    upsample2x_conv2d_weight_grad,
};

#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    n: usize,
    c_in: usize,
    c_out: usize,
    /// input (before upsampling) height = width
    hw: usize,
    k: usize,
    stride: usize,
    pad: usize,
    up: bool,
}

#[allow(clippy::too_many_arguments)]
const fn s(
    name: &'static str,
    n: usize,
    c_in: usize,
    c_out: usize,
    hw: usize,
    k: usize,
    stride: usize,
    pad: usize,
    up: bool,
) -> Shape {
    Shape {
        name,
        n,
        c_in,
        c_out,
        hw,
        k,
        stride,
        pad,
        up,
    }
}

const SHAPES: &[Shape] = &[
    s("issue7 c3 64>128 @64", 16, 64, 128, 64, 3, 1, 1, false),
    s("enc c3 3>32 @64", 16, 3, 32, 64, 3, 1, 1, false),
    s("enc c3 32>32 @64", 16, 32, 32, 64, 3, 1, 1, false),
    s("enc c3 32>64 @32", 16, 32, 64, 32, 3, 1, 1, false),
    s("enc c3 64>128 @16", 16, 64, 128, 16, 3, 1, 1, false),
    s("enc c3 128>256 @8", 16, 128, 256, 8, 3, 1, 1, false),
    s("disc c4s2 3>64 @64", 16, 3, 64, 64, 4, 2, 1, false),
    s("disc c4s2 64>128 @32", 16, 64, 128, 32, 4, 2, 1, false),
    s("disc c4s2 128>256 @16", 16, 128, 256, 16, 4, 2, 1, false),
    s("disc c4s2 256>512 @8", 16, 256, 512, 8, 4, 2, 1, false),
    s("tiny disc c4s2 32>64 @32", 16, 32, 64, 32, 4, 2, 1, false),
    s("gen up+c3 256>128 @4>8", 16, 256, 128, 4, 3, 1, 1, true),
    s("gen up+c3 128>64 @8>16", 16, 128, 64, 8, 3, 1, 1, true),
    s("gen up+c3 64>32 @16>32", 16, 64, 32, 16, 3, 1, 1, true),
    s("gen up+c3 32>32 @32>64", 16, 32, 32, 32, 3, 1, 1, true),
    s("gen c3 32>3 @64", 16, 32, 3, 64, 3, 1, 1, false),
    s("up+c3 128>64 @32>64", 16, 128, 64, 32, 3, 1, 1, true),
    s("batch1 c3 64>128 @64", 1, 64, 128, 64, 3, 1, 1, false),
];

impl Shape {
    fn xhw(&self) -> usize {
        if self.up {
            2 * self.hw
        } else {
            self.hw
        }
    }
    fn out_hw(&self) -> usize {
        (self.xhw() + 2 * self.pad - self.k) / self.stride + 1
    }
    fn gflop(&self) -> f64 {
        let o = self.out_hw();
        2.0 * (self.n * self.c_out * o * o) as f64 * (self.c_in * self.k * self.k) as f64 / 1e9
    }
    fn desc(&self) -> String {
        format!(
            "{} [{},{},{},{}] k{} s{} p{}",
            self.name, self.n, self.c_in, self.hw, self.hw, self.k, self.stride, self.pad
        )
    }
}

/// candle's ops, written as candle's own autograd computes them.
mod candle_ref {
    use super::*;
    pub fn fwd(sh: &Shape, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        if sh.up {
            x.upsample_nearest2d(2 * sh.hw, 2 * sh.hw)?
                .conv2d(w, sh.pad, 1, 1, 1)
        } else {
            x.conv2d(w, sh.pad, sh.stride, 1, 1)
        }
    }
    pub fn input_grad(sh: &Shape, gy: &Tensor, w: &Tensor) -> Result<Tensor> {
        let oh = gy.dim(2)?;
        let out_size = (oh - 1) * sh.stride + sh.k - 2 * sh.pad;
        let dxu = gy.conv_transpose2d(w, sh.pad, sh.xhw() - out_size, sh.stride, 1)?;
        if sh.up {
            // candle's upsample_nearest2d backward (integer factor): sum over each 2×2 block
            let (n, c, _, _) = dxu.dims4()?;
            dxu.reshape((n, c, sh.hw, 2, sh.hw, 2))?.sum(5)?.sum(3)
        } else {
            Ok(dxu)
        }
    }
    pub fn weight_grad(sh: &Shape, x: &Tensor, gy: &Tensor) -> Result<Tensor> {
        let xu = if sh.up {
            x.upsample_nearest2d(2 * sh.hw, 2 * sh.hw)?
        } else {
            x.clone()
        };
        let g = xu
            .transpose(0, 1)?
            .conv2d(&gy.transpose(0, 1)?, sh.pad, 1, sh.stride, 1)?
            .transpose(0, 1)?;
        let (_, _, gk, _) = g.dims4()?;
        if gk > sh.k {
            g.narrow(2, 0, sh.k)?.narrow(3, 0, sh.k)
        } else {
            Ok(g)
        }
    }
}

fn ours_fwd(sh: &Shape, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if sh.up {
        upsample2x_conv2d(x, w, sh.pad)
    } else {
        conv2d(x, w, sh.stride, sh.pad)
    }
}

fn time<F: FnMut() -> Result<()>>(f: &mut F) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Best-of-`reps` times of `a` and `b`, run alternately after one warm-up each.
fn ab<A, B>(reps: Option<usize>, mut a: A, mut b: B) -> Result<(f64, f64)>
where
    A: FnMut() -> Result<()>,
    B: FnMut() -> Result<()>,
{
    let (mut ta, mut tb) = (time(&mut a)?, time(&mut b)?);
    // about 1.5 s per pass and shape unless fixed
    let reps = reps.unwrap_or_else(|| ((1.5 / (ta + tb)) as usize).clamp(3, 25));
    for _ in 0..reps {
        ta = ta.min(time(&mut a)?);
        tb = tb.min(time(&mut b)?);
    }
    Ok((ta, tb))
}

fn main() -> Result<()> {
    let filter = std::env::var("BENCH_FILTER").unwrap_or_default();
    let reps = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok());
    let dev = Device::Cpu;
    println!(
        "threads: {} (rayon), best-of-N, candle and ours alternating\n",
        rayon::current_num_threads()
    );
    println!("| shape [N,C_in,H,W] | GFLOP | pass | candle ms | candle GFLOP/s | ours ms | ours GFLOP/s | speed-up |");
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for sh in SHAPES.iter().filter(|s| s.name.contains(filter.as_str())) {
        let x = Var::randn(0f32, 1., (sh.n, sh.c_in, sh.hw, sh.hw), &dev)?;
        let w = Var::randn(0f32, 0.05, (sh.c_out, sh.c_in, sh.k, sh.k), &dev)?;
        let o = sh.out_hw();
        let gy = Tensor::randn(0f32, 1., (sh.n, sh.c_out, o, o), &dev)?;
        let (xt, wt) = (x.as_tensor(), w.as_tensor());
        let gf = sh.gflop();
        let xhw = (sh.hw, sh.hw);
        let ours_dx = || {
            if sh.up {
                upsample2x_conv2d_input_grad(&gy, wt, xhw, sh.pad)
            } else {
                conv2d_input_grad(&gy, wt, xhw, sh.stride, sh.pad)
            }
        };
        let ours_dw = || {
            if sh.up {
                upsample2x_conv2d_weight_grad(xt, &gy, sh.k, sh.pad)
            } else {
                conv2d_weight_grad(xt, &gy, sh.k, sh.stride, sh.pad)
            }
        };
        let rows: [(&str, f64, (f64, f64)); 5] = [
            (
                "forward",
                gf,
                ab(
                    reps,
                    || candle_ref::fwd(sh, xt, wt).map(drop),
                    || ours_fwd(sh, xt, wt).map(drop),
                )?,
            ),
            (
                "input grad",
                gf,
                ab(
                    reps,
                    || candle_ref::input_grad(sh, &gy, wt).map(drop),
                    || ours_dx().map(drop),
                )?,
            ),
            (
                "weight grad",
                gf,
                ab(
                    reps,
                    || candle_ref::weight_grad(sh, xt, &gy).map(drop),
                    || ours_dw().map(drop),
                )?,
            ),
            (
                "3 kernels",
                3.0 * gf,
                ab(
                    reps,
                    || {
                        candle_ref::fwd(sh, xt, wt)?;
                        candle_ref::input_grad(sh, &gy, wt)?;
                        candle_ref::weight_grad(sh, xt, &gy).map(drop)
                    },
                    || {
                        ours_fwd(sh, xt, wt)?;
                        ours_dx()?;
                        ours_dw().map(drop)
                    },
                )?,
            ),
            (
                "fwd+bwd",
                3.0 * gf,
                ab(
                    reps,
                    || {
                        (candle_ref::fwd(sh, xt, wt)? * &gy)?
                            .sum_all()?
                            .backward()
                            .map(drop)
                    },
                    || {
                        (ours_fwd(sh, xt, wt)? * &gy)?
                            .sum_all()?
                            .backward()
                            .map(drop)
                    },
                )?,
            ),
        ];
        for (pass, g, (tc, to)) in rows {
            println!(
                "| {} | {:.2} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2}× |",
                sh.desc(),
                g,
                pass,
                tc * 1e3,
                g / tc,
                to * 1e3,
                g / to,
                tc / to
            );
        }
    }
    Ok(())
}
