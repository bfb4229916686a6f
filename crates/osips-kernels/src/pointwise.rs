//! The memory-bound kernels around the convolutions, on plain f32 slices in NC… layout
//! (`[N, C, S]` with `S` the product of the spatial dims, 1 for `[N, C]`): per-channel
//! reductions (batch statistics, bias and scale gradients), per-channel affine maps,
//! (leaky) ReLU and 2×2 max-pooling, forward and backward.
//!
//! Every kernel is a single pass (or two for the variance) over memory, parallel over
//! channels (reductions) or over `(n, c)` planes (maps), instead of the 5–10 candle ops,
//! temporaries and strided `sum_keepdim`s of the composed versions.

use rayon::prelude::*;

use crate::scratch::{chunk_range, par_build};

/// Elements a rayon task should at least cover, so that small planes are batched.
const MIN_TASK: usize = 16 * 1024;

/// `(n, c, s)` of an `[N, C, …]` tensor with `len` elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    pub n: usize,
    pub c: usize,
    pub s: usize,
}

impl Planes {
    pub fn len(&self) -> usize {
        self.n * self.c * self.s
    }

    /// Values per channel (`N · S`).
    pub fn per_channel(&self) -> usize {
        self.n * self.s
    }

    fn min_planes(&self) -> usize {
        MIN_TASK.div_ceil(self.s.max(1)).max(1)
    }

    /// The `S` values of plane `i` (image `i / C`, channel `i % C`).
    fn plane<'a>(&self, v: &'a [f32], i: usize) -> &'a [f32] {
        &v[i * self.s..(i + 1) * self.s]
    }

    /// The `S` values of channel `ch` in image `i`.
    fn block<'a>(&self, v: &'a [f32], i: usize, ch: usize) -> &'a [f32] {
        let at = (i * self.c + ch) * self.s;
        &v[at..at + self.s]
    }
}

/// Σ v, eight lanes at a time (vectorises; f32 partial sums over at most one plane).
fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

/// Σ (v − m)².
fn sum_sq_dev(v: &[f32], m: f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            let d = x - m;
            *a += d * d;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|x| (x - m) * (x - m)).sum();
    acc.iter().sum::<f32>() + tail
}

/// (Σ g, Σ g·(v − m)).
fn sum_and_dot_dev(g: &[f32], v: &[f32], m: f32) -> (f32, f32) {
    let mut acc_g = [0f32; 8];
    let mut acc_d = [0f32; 8];
    let mut gc = g.chunks_exact(8);
    let mut vc = v.chunks_exact(8);
    for (g8, v8) in (&mut gc).zip(&mut vc) {
        for l in 0..8 {
            acc_g[l] += g8[l];
            acc_d[l] += g8[l] * (v8[l] - m);
        }
    }
    let mut sg: f32 = acc_g.iter().sum();
    let mut sd: f32 = acc_d.iter().sum();
    for (a, b) in gc.remainder().iter().zip(vc.remainder()) {
        sg += a;
        sd += a * (b - m);
    }
    (sg, sd)
}

/// Per-channel mean and biased variance (two passes, f64 across planes).
pub fn channel_stats(p: Planes, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), p.len());
    let m = p.per_channel().max(1) as f64;
    (0..p.c)
        .into_par_iter()
        .map(|ch| {
            let mean = (0..p.n)
                .map(|i| f64::from(sum(p.block(x, i, ch))))
                .sum::<f64>()
                / m;
            let mf = mean as f32;
            let var = (0..p.n)
                .map(|i| f64::from(sum_sq_dev(p.block(x, i, ch), mf)))
                .sum::<f64>()
                / m;
            (mf, var as f32)
        })
        .unzip()
}

/// Per-channel `(Σ g, Σ g·(x − center[c]))`, returned as `[sums…, dots…]` (length 2C).
pub fn channel_sum_dot(p: Planes, g: &[f32], x: &[f32], center: &[f32]) -> Vec<f32> {
    assert_eq!(g.len(), p.len());
    assert_eq!(x.len(), p.len());
    assert_eq!(center.len(), p.c);
    let (sums, dots): (Vec<f32>, Vec<f32>) = (0..p.c)
        .into_par_iter()
        .map(|ch| {
            let (mut sg, mut sd) = (0f64, 0f64);
            for i in 0..p.n {
                let (a, b) = sum_and_dot_dev(p.block(g, i, ch), p.block(x, i, ch), center[ch]);
                sg += f64::from(a);
                sd += f64::from(b);
            }
            (sg as f32, sd as f32)
        })
        .unzip();
    let mut out = sums;
    out.extend(dots);
    out
}

/// Per-channel `Σ g`.
pub fn channel_sum(p: Planes, g: &[f32]) -> Vec<f32> {
    assert_eq!(g.len(), p.len());
    (0..p.c)
        .into_par_iter()
        .map(|ch| {
            (0..p.n)
                .map(|i| f64::from(sum(p.block(g, i, ch))))
                .sum::<f64>() as f32
        })
        .collect()
}

/// `out = a[c]·u + b[c]·(v − center[c]) + k[c]`, per channel; `v`/`b`/`center` optional
/// (absent means the term is dropped).
pub struct Affine<'a> {
    pub a: &'a [f32],
    pub b: Option<(&'a [f32], &'a [f32], &'a [f32])>,
    pub k: &'a [f32],
}

pub fn channel_affine(p: Planes, u: &[f32], f: &Affine<'_>) -> Vec<f32> {
    assert_eq!(u.len(), p.len());
    assert_eq!(f.a.len(), p.c);
    assert_eq!(f.k.len(), p.c);
    match f.b {
        None => par_build(p.len(), p.s, p.min_planes(), |i| {
            let ch = i % p.c;
            let (a, k) = (f.a[ch], f.k[ch]);
            p.plane(u, i).iter().map(move |u| a * u + k)
        }),
        Some((v, b, center)) => {
            assert_eq!(v.len(), p.len());
            par_build(p.len(), p.s, p.min_planes(), |i| {
                let ch = i % p.c;
                let (a, b, m, k) = (f.a[ch], b[ch], center[ch], f.k[ch]);
                p.plane(u, i)
                    .iter()
                    .zip(p.plane(v, i))
                    .map(move |(u, v)| a * u + b * (v - m) + k)
            })
        }
    }
}

/// `y = (x − mean[c])·scale[c] + shift[c]`.
pub fn normalize(p: Planes, x: &[f32], mean: &[f32], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), p.len());
    par_build(p.len(), p.s, p.min_planes(), |i| {
        let ch = i % p.c;
        let (m, a, k) = (mean[ch], scale[ch], shift[ch]);
        p.plane(x, i).iter().map(move |x| (x - m) * a + k)
    })
}

/// The activations [`activation_fwd`] / [`activation_bwd`] implement, with candle's
/// gradient conventions at 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`; candle's gradient is 1 where `x ≥ 0`.
    Relu,
    /// `max(x, slope·x)`, `0 ≤ slope < 1`; candle's `maximum` gradient splits evenly at a
    /// tie, so the slope at exactly 0 is `(1 + slope) / 2`.
    Leaky(f32),
}

impl Activation {
    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Leaky(s) => x.max(s * x),
        }
    }

    #[inline(always)]
    fn slope(self, x: f32) -> f32 {
        match self {
            Activation::Relu => {
                if x >= 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Leaky(s) => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    s
                } else {
                    0.5 * (1.0 + s)
                }
            }
        }
    }
}

fn par_len(len: usize) -> usize {
    MIN_TASK.min(len.max(1))
}

pub fn activation_fwd(act: Activation, x: &[f32]) -> Vec<f32> {
    let chunk = par_len(x.len());
    par_build(x.len(), chunk, 1, |i| {
        x[chunk_range(i, chunk, x.len())]
            .iter()
            .map(move |x| act.apply(*x))
    })
}

pub fn activation_bwd(act: Activation, x: &[f32], g: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.len());
    let chunk = par_len(x.len());
    par_build(x.len(), chunk, 1, |i| {
        let r = chunk_range(i, chunk, x.len());
        x[r.clone()]
            .iter()
            .zip(&g[r])
            .map(move |(x, g)| g * act.slope(*x))
    })
}

/// `act(v)` in place.
pub fn activation_in_place(act: Activation, v: &mut [f32]) {
    let chunk = par_len(v.len());
    v.par_chunks_mut(chunk).for_each(|v| {
        for x in v {
            *x = act.apply(*x);
        }
    });
}

/// The gradient through an activation computed from its *output* `y` (the sign of `y` is
/// the sign of the input for both activations): `g·1` where `y > 0`, `g·slope` where
/// `y < 0`; at `y = 0`, ReLU passes nothing and LeakyReLU the tie value `(1 + slope)/2`.
pub fn activation_bwd_from_output(act: Activation, y: &[f32], g: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), g.len());
    let chunk = par_len(y.len());
    let slope = move |y: f32| -> f32 {
        match act {
            Activation::Relu => {
                if y > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Leaky(_) => act.slope(y),
        }
    };
    par_build(y.len(), chunk, 1, |i| {
        let r = chunk_range(i, chunk, y.len());
        y[r.clone()]
            .iter()
            .zip(&g[r])
            .map(move |(y, g)| g * slope(*y))
    })
}

/// `[N·C planes of h × w]` → `[… of h/2 × w/2]`, the max of each 2×2 window (a trailing odd
/// row or column is dropped, as in candle and PyTorch).
pub fn max_pool2_fwd(planes: usize, h: usize, w: usize, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), planes * h * w);
    let (oh, ow) = (h / 2, w / 2);
    let mut out = crate::scratch::zeroed(planes * oh * ow);
    if out.is_empty() {
        return out;
    }
    let min = MIN_TASK.div_ceil(h * w).max(1);
    out.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .with_min_len(min)
        .for_each(|(o, x)| {
            for i in 0..oh {
                let r0 = &x[2 * i * w..2 * i * w + w];
                let r1 = &x[(2 * i + 1) * w..(2 * i + 1) * w + w];
                for (j, o) in o[i * ow..(i + 1) * ow].iter_mut().enumerate() {
                    *o = r0[2 * j]
                        .max(r0[2 * j + 1])
                        .max(r1[2 * j].max(r1[2 * j + 1]));
                }
            }
        });
    out
}

/// The gradient of [`max_pool2_fwd`]: each output gradient goes to the first maximum of its
/// window in row-major order (PyTorch's convention), elsewhere 0.
pub fn max_pool2_bwd(planes: usize, h: usize, w: usize, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(x.len(), planes * h * w);
    assert_eq!(gy.len(), planes * oh * ow);
    let mut out = crate::scratch::zeroed(x.len());
    if out.is_empty() || gy.is_empty() {
        return out;
    }
    let min = MIN_TASK.div_ceil(h * w).max(1);
    out.par_chunks_mut(h * w)
        .zip(x.par_chunks(h * w).zip(gy.par_chunks(oh * ow)))
        .with_min_len(min)
        .for_each(|(dx, (x, gy))| {
            for i in 0..oh {
                for j in 0..ow {
                    let idx = [
                        2 * i * w + 2 * j,
                        2 * i * w + 2 * j + 1,
                        (2 * i + 1) * w + 2 * j,
                        (2 * i + 1) * w + 2 * j + 1,
                    ];
                    let mut best = idx[0];
                    for &k in &idx[1..] {
                        // `>` keeps the first of equal maxima; a NaN never wins a comparison,
                        // so a NaN window routes its gradient to the first element.
                        if x[k] > x[best] {
                            best = k;
                        }
                    }
                    dx[best] = gy[i * ow + j];
                }
            }
        });
    out
}
