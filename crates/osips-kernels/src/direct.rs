//! Direct convolution for layers with at most [`MAX_C_OUT`] output channels (the
//! generator's RGB output conv, 32→3 in `tiny`): stride 1, no upsampling.
//!
//! im2col + GEMM suits these badly: the forward GEMM has 3 rows, the input-gradient GEMM a
//! 3-deep reduction followed by a col2im of `c_in·k²` rows, the weight-gradient GEMM 3 rows
//! again. Here every pass is a sum of shifted rows of a zero-padded copy of one operand,
//! scaled by one weight (or, for the weight gradient, lane-wise dot products), which the
//! compiler vectorises over output pixels. With AVX2 + FMA (checked at run time) the inner
//! loops use fused multiply-adds. Images are spread over rayon's threads.

use rayon::prelude::*;

use crate::geom::Geom;

/// Layers with at most this many output channels take the direct path.
pub const MAX_C_OUT: usize = 4;

/// Lanes of the lane-wise partial sums in the weight gradient (one AVX register).
const LANES: usize = 8;

/// Whether `g` takes the direct path: few output channels, stride 1, no upsampling,
/// symmetric padding of at most `k - 1`, and output rows wide enough to vectorise.
///
/// Symmetric means the output size is `h + 2p − k + 1` as well as the leading offset
/// being `−p`: the phase convolutions of an upsampling conv have a leading offset but
/// less padding at the far end, and the kernels below would read past their padded copy.
pub fn applies(g: &Geom) -> bool {
    let pad = -g.off_y;
    let symmetric = |size: usize, out: usize| pad >= 0 && size + 2 * pad as usize + 1 == out + g.kh;
    enabled()
        && g.c_out <= MAX_C_OUT
        && g.c_out > 0
        && g.up == 1
        && g.stride == 1
        && g.kh == g.kw
        && g.off_x == g.off_y
        && pad >= 0
        && (pad as usize) < g.kh
        && symmetric(g.h, g.oh)
        && symmetric(g.w, g.ow)
        && g.ow >= LANES
        && g.n > 0
        && g.c_in > 0
}

/// `OSIPS_KERNELS_DIRECT=0` turns the direct path off (im2col + GEMM for every layer),
/// for side-by-side benchmarks.
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("OSIPS_KERNELS_DIRECT").map_or(true, |v| v != "0"))
}

fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FMA.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Calls `$fast(args)` (compiled with AVX2 + FMA) when `$fma`, else `$plain(args)`.
/// One place for the dispatch and its safety argument.
macro_rules! with_fma {
    ($fma:expr, $fast:ident, $plain:expr, ($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        if $fma {
            #[allow(unsafe_code)]
            // SAFETY: `$fma` comes from `has_fma`, which checked at run time that this CPU
            // has AVX2 and FMA, the only requirement for calling a function compiled with
            // them enabled.
            return unsafe { $fast($($arg),*) };
        }
        let _ = $fma;
        $plain($($arg),*)
    }};
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `dst += a * src`, element by element.
#[inline(always)]
fn axpy<const FMA: bool>(a: f32, src: &[f32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = madd::<FMA>(a, s, *d);
    }
}

/// Copies `c × h × w` planes into `c × (h + 2p) × (w + 2p)` with a zero border.
fn pad_planes(src: &[f32], c: usize, h: usize, w: usize, p: usize, out: &mut Vec<f32>) {
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    out.clear();
    out.resize(c * hp * wp, 0.0);
    for ci in 0..c {
        for y in 0..h {
            let from = &src[(ci * h + y) * w..][..w];
            out[(ci * hp + y + p) * wp + p..][..w].copy_from_slice(from);
        }
    }
}

fn pad_of(g: &Geom) -> usize {
    (-g.off_y) as usize
}

// ---------------------------------------------------------------------------------------
// Forward: y[co, oy, ·] = Σ_{ci, ky, kx} w[co, ci, ky, kx] · xp[ci, oy + ky, kx + ·]

#[inline(always)]
fn fwd_image<const FMA: bool>(
    g: &Geom,
    x_img: &[f32],
    w: &[f32],
    y_img: &mut [f32],
    xp: &mut Vec<f32>,
) {
    let (k, p, ci_n, co_n) = (g.kh, pad_of(g), g.c_in, g.c_out);
    pad_planes(x_img, ci_n, g.h, g.w, p, xp);
    let (hp, wp, oh, ow) = (g.h + 2 * p, g.w + 2 * p, g.oh, g.ow);
    for oy in 0..oh {
        for ci in 0..ci_n {
            for ky in 0..k {
                let row = &xp[(ci * hp + oy + ky) * wp..][..wp];
                for kx in 0..k {
                    let src = &row[kx..kx + ow];
                    for co in 0..co_n {
                        let a = w[((co * ci_n + ci) * k + ky) * k + kx];
                        axpy::<FMA>(a, src, &mut y_img[(co * oh + oy) * ow..][..ow]);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fwd_image_fma(g: &Geom, x_img: &[f32], w: &[f32], y_img: &mut [f32], xp: &mut Vec<f32>) {
    fwd_image::<true>(g, x_img, w, y_img, xp);
}

/// `y = conv(x, w)` for a geometry that [`applies`].
pub fn fwd(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    let mut y = crate::scratch::zeroed(g.y_len());
    let (xs, ys) = (g.c_in * g.hw(), g.c_out * g.ohw());
    let fma = has_fma();
    y.par_chunks_mut(ys)
        .zip(x.par_chunks(xs))
        .for_each_init(Vec::new, |xp, (yi, xi)| {
            with_fma!(fma, fwd_image_fma, fwd_image::<false>, (g, xi, w, yi, xp))
        });
    y
}

// ---------------------------------------------------------------------------------------
// Input gradient: with gy padded by q = k - 1 - p on each side,
// dx[ci, iy, ·] += Σ_{co, ky, kx} w[co, ci, ky, kx] · gyp[co, iy + k-1-ky, k-1-kx + ·]

#[inline(always)]
fn dgrad_image<const FMA: bool>(
    g: &Geom,
    gy_img: &[f32],
    w: &[f32],
    dx_img: &mut [f32],
    gp: &mut Vec<f32>,
) {
    let (k, p, ci_n, co_n) = (g.kh, pad_of(g), g.c_in, g.c_out);
    let q = k - 1 - p;
    pad_planes(gy_img, co_n, g.oh, g.ow, q, gp);
    let (hq, wq, h, wd) = (g.oh + 2 * q, g.ow + 2 * q, g.h, g.w);
    for ci in 0..ci_n {
        for iy in 0..h {
            let dst = &mut dx_img[(ci * h + iy) * wd..][..wd];
            for co in 0..co_n {
                for ky in 0..k {
                    let row = &gp[(co * hq + iy + k - 1 - ky) * wq..][..wq];
                    for kx in 0..k {
                        let a = w[((co * ci_n + ci) * k + ky) * k + kx];
                        axpy::<FMA>(a, &row[k - 1 - kx..k - 1 - kx + wd], dst);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dgrad_image_fma(g: &Geom, gy_img: &[f32], w: &[f32], dx_img: &mut [f32], gp: &mut Vec<f32>) {
    dgrad_image::<true>(g, gy_img, w, dx_img, gp);
}

/// `dx += conv_input_grad(gy, w)` for a geometry that [`applies`].
pub fn input_grad_into(g: &Geom, gy: &[f32], w: &[f32], dx: &mut [f32]) {
    let (xs, ys) = (g.c_in * g.hw(), g.c_out * g.ohw());
    let fma = has_fma();
    dx.par_chunks_mut(xs)
        .zip(gy.par_chunks(ys))
        .for_each_init(Vec::new, |gp, (dxi, gyi)| {
            with_fma!(
                fma,
                dgrad_image_fma,
                dgrad_image::<false>,
                (g, gyi, w, dxi, gp)
            )
        });
}

// ---------------------------------------------------------------------------------------
// Weight gradient: dw[co, ci, ky, kx] += Σ_{oy, ox} gy[co, oy, ox] · xp[ci, oy + ky, ox + kx],
// the sums over ox kept in LANES lane-wise partial sums and added up at the end.

#[inline(always)]
fn wgrad_image<const FMA: bool>(
    g: &Geom,
    x_img: &[f32],
    gy_img: &[f32],
    dw: &mut [f32],
    xp: &mut Vec<f32>,
) {
    let (k, p, ci_n, co_n) = (g.kh, pad_of(g), g.c_in, g.c_out);
    pad_planes(x_img, ci_n, g.h, g.w, p, xp);
    let (hp, wp, oh, ow) = (g.h + 2 * p, g.w + 2 * p, g.oh, g.ow);
    let body = ow / LANES * LANES;
    // One tap at a time over the whole image, its LANES partial sums in registers.
    for ci in 0..ci_n {
        for co in 0..co_n {
            for ky in 0..k {
                for kx in 0..k {
                    let mut acc = [0f32; LANES];
                    let mut tail = 0f32;
                    for oy in 0..oh {
                        let src = &xp[(ci * hp + oy + ky) * wp + kx..][..ow];
                        let gyr = &gy_img[(co * oh + oy) * ow..][..ow];
                        for (s8, g8) in src[..body]
                            .chunks_exact(LANES)
                            .zip(gyr[..body].chunks_exact(LANES))
                        {
                            for l in 0..LANES {
                                acc[l] = madd::<FMA>(s8[l], g8[l], acc[l]);
                            }
                        }
                        for (s, gv) in src[body..].iter().zip(&gyr[body..]) {
                            tail = madd::<FMA>(*s, *gv, tail);
                        }
                    }
                    dw[((co * ci_n + ci) * k + ky) * k + kx] += acc.iter().sum::<f32>() + tail;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn wgrad_image_fma(g: &Geom, x_img: &[f32], gy_img: &[f32], dw: &mut [f32], xp: &mut Vec<f32>) {
    wgrad_image::<true>(g, x_img, gy_img, dw, xp);
}

/// `conv_weight_grad(x, gy)` for a geometry that [`applies`].
pub fn weight_grad(g: &Geom, x: &[f32], gy: &[f32]) -> Vec<f32> {
    let (xs, ys, wl) = (g.c_in * g.hw(), g.c_out * g.ohw(), g.w_len());
    let fma = has_fma();
    x.par_chunks(xs)
        .zip(gy.par_chunks(ys))
        .fold(
            || (vec![0f32; wl], Vec::new()),
            |(mut dw, mut xp), (xi, gyi)| {
                let step = |dw: &mut [f32], xp: &mut Vec<f32>| {
                    with_fma!(
                        fma,
                        wgrad_image_fma,
                        wgrad_image::<false>,
                        (g, xi, gyi, dw, xp)
                    )
                };
                step(&mut dw, &mut xp);
                (dw, xp)
            },
        )
        .map(|(dw, _)| dw)
        .reduce(
            || vec![0f32; wl],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                a
            },
        )
}
