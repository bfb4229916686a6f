//! The convolution kernels on plain NCHW f32 slices: forward, input gradient, weight
//! gradient. Each lowers pixel tiles with im2col (sized to stay in L2) and multiplies with
//! `gemm`; rayon spreads images (or tiles) over the cores.

use rayon::prelude::*;

use crate::geom::Geom;
use crate::scratch::{with_scratch, zeroed};
use crate::sgemm::{sgemm, Mat, Parallelism};

/// Floats in one im2col tile (`kdim × t`); 48 Ki floats = 192 KiB keeps the tile plus the
/// packed gemm panels inside a 512 KiB L2.
const TILE_FLOATS: usize = 48 * 1024;

fn tile_floats() -> usize {
    static T: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        std::env::var("OSIPS_KERNELS_TILE_FLOATS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&v: &usize| v >= 1024)
            .unwrap_or(TILE_FLOATS)
    })
}

/// Pixels per tile for `g`, scaled by `mult`: about `tile_floats * mult / kdim`, at least 32
/// and at most the image, split evenly so that the last tile is not a sliver.
fn tile_pixels(g: &Geom, mult: usize) -> usize {
    let ohw = g.ohw().max(1);
    let target = (tile_floats() * mult / g.kdim().max(1)).max(32);
    if target >= ohw {
        return ohw;
    }
    let ntiles = ohw.div_ceil(target);
    ohw.div_ceil(ntiles)
}

/// Images per task when one image's output is small: enough to give gemm at least
/// `min_cols` columns (so packing the weights is amortised), but never fewer tasks than
/// threads.
fn group_size(g: &Geom, min_cols: usize, nt: usize) -> usize {
    let ohw = g.ohw();
    if ohw == 0 || ohw >= min_cols || g.n < 2 {
        return 1;
    }
    min_cols.div_ceil(ohw).min(g.n.div_ceil(nt)).max(1)
}

/// Columns below which forward and input-gradient tasks group whole images.
const GROUP_COLS: usize = 256;
/// The same for weight-gradient tasks (their gemm accumulates into the whole `dw`).
const GROUP_COLS_WGRAD: usize = 512;

fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Whether to run one image per task (single-threaded gemm) rather than one image at a
/// time with gemm's own threading.
fn image_parallel(n: usize, nt: usize) -> bool {
    nt == 1 || n >= 2 * nt || n.is_multiple_of(nt)
}

fn gemm_par(nt: usize) -> Parallelism {
    if nt > 1 {
        Parallelism::Rayon(nt)
    } else {
        Parallelism::None
    }
}

/// `y = conv(x, w)`; `x`: `n × c_in × h × w`, `w`: `c_out × c_in × k × k`, returns
/// `n × c_out × oh × ow`.
pub fn conv_fwd(g: &Geom, x: &[f32], w: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.x_len());
    assert_eq!(w.len(), g.w_len());
    if crate::direct::applies(g) {
        return crate::direct::fwd(g, x, w);
    }
    let mut y = zeroed(g.y_len());
    if y.is_empty() {
        return y;
    }
    let (xs, ys) = (g.c_in * g.hw(), g.c_out * g.ohw());
    let nt = threads();
    let gs = group_size(g, GROUP_COLS, nt);
    if gs > 1 {
        y.par_chunks_mut(gs * ys)
            .zip(x.par_chunks((gs * xs).max(1)))
            .for_each(|(yg, xg)| fwd_group(g, xg, w, yg));
    } else if image_parallel(g.n, nt) {
        y.par_chunks_mut(ys)
            .zip(x.par_chunks(xs.max(1)))
            .for_each(|(yi, xi)| fwd_image(g, xi, w, yi, Parallelism::None, 1));
    } else {
        for (yi, xi) in y.chunks_mut(ys).zip(x.chunks(xs.max(1))) {
            fwd_image(g, xi, w, yi, gemm_par(nt), nt);
        }
    }
    y
}

/// Several whole (small) images in one gemm: `col` holds their lowered pixels side by side,
/// the product goes to a scratch matrix and is then copied out image by image.
fn fwd_group(g: &Geom, xg: &[f32], w: &[f32], yg: &mut [f32]) {
    let (kd, ohw, xs, ys) = (g.kdim(), g.ohw(), g.c_in * g.hw(), g.c_out * g.ohw());
    let ni = yg.len() / ys;
    let tt = ni * ohw;
    with_scratch(kd * tt + g.c_out * tt, |buf| {
        let (col, tmp) = buf.split_at_mut(kd * tt);
        for i in 0..ni {
            g.im2col(&xg[i * xs..(i + 1) * xs], 0, ohw, &mut col[i * ohw..], tt);
        }
        sgemm(
            g.c_out,
            tt,
            kd,
            tmp,
            Mat::new(tt, 1),
            w,
            Mat::new(kd, 1),
            col,
            Mat::new(tt, 1),
            false,
            Parallelism::None,
        );
        for (i, yi) in yg.chunks_exact_mut(ys).enumerate() {
            for (co, row) in yi.chunks_exact_mut(ohw).enumerate() {
                row.copy_from_slice(&tmp[co * tt + i * ohw..co * tt + (i + 1) * ohw]);
            }
        }
    })
}

/// Gathers the `c_out × ohw` output gradients of the images in `gyg` side by side into a
/// `c_out × (images·ohw)` matrix.
fn pack_gy(g: &Geom, gyg: &[f32]) -> Vec<f32> {
    let (ohw, ys) = (g.ohw(), g.c_out * g.ohw());
    let ni = gyg.len() / ys;
    let tt = ni * ohw;
    let mut out = vec![0f32; g.c_out * tt];
    for (i, gi) in gyg.chunks_exact(ys).enumerate() {
        for (co, row) in gi.chunks_exact(ohw).enumerate() {
            out[co * tt + i * ohw..co * tt + (i + 1) * ohw].copy_from_slice(row);
        }
    }
    out
}

fn fwd_image(g: &Geom, x_img: &[f32], w: &[f32], y_img: &mut [f32], par: Parallelism, mult: usize) {
    let (kd, ohw) = (g.kdim(), g.ohw());
    if g.is_pointwise() {
        sgemm(
            g.c_out,
            ohw,
            kd,
            y_img,
            Mat::new(ohw, 1),
            w,
            Mat::new(kd, 1),
            x_img,
            Mat::new(g.hw(), 1),
            false,
            par,
        );
        return;
    }
    let tmax = tile_pixels(g, mult);
    with_scratch(kd * tmax, |col| {
        for p0 in (0..ohw).step_by(tmax) {
            let t = tmax.min(ohw - p0);
            g.im2col(x_img, p0, t, col, t);
            sgemm(
                g.c_out,
                t,
                kd,
                &mut y_img[p0..],
                Mat::new(ohw, 1),
                w,
                Mat::new(kd, 1),
                col,
                Mat::new(t, 1),
                false,
                par,
            );
        }
    })
}

/// `dx = ∂(Σ y·gy)/∂x` for `y = conv(x, w)`: `gy`: `n × c_out × oh × ow`, returns
/// `n × c_in × h × w`. Lowered as `dcol = wᵀ · gy` followed by col2im.
pub fn conv_input_grad(g: &Geom, gy: &[f32], w: &[f32]) -> Vec<f32> {
    let mut dx = zeroed(g.x_len());
    conv_input_grad_into(g, gy, w, &mut dx);
    dx
}

/// [`conv_input_grad`], added into `dx`.
pub fn conv_input_grad_into(g: &Geom, gy: &[f32], w: &[f32], dx: &mut [f32]) {
    assert_eq!(gy.len(), g.y_len());
    assert_eq!(w.len(), g.w_len());
    assert_eq!(dx.len(), g.x_len());
    if dx.is_empty() || gy.is_empty() {
        return;
    }
    if crate::direct::applies(g) {
        return crate::direct::input_grad_into(g, gy, w, dx);
    }
    let (xs, ys) = (g.c_in * g.hw(), g.c_out * g.ohw());
    let nt = threads();
    let gs = group_size(g, GROUP_COLS, nt);
    if gs > 1 {
        dx.par_chunks_mut(gs * xs)
            .zip(gy.par_chunks((gs * ys).max(1)))
            .for_each(|(dxg, gyg)| dgrad_group(g, gyg, w, dxg));
    } else if image_parallel(g.n, nt) {
        dx.par_chunks_mut(xs)
            .zip(gy.par_chunks(ys.max(1)))
            .for_each(|(dxi, gyi)| dgrad_image(g, gyi, w, dxi));
    } else {
        for (dxi, gyi) in dx.chunks_mut(xs).zip(gy.chunks(ys.max(1))) {
            dgrad_image_threaded(g, gyi, w, dxi, nt);
        }
    }
}

fn dgrad_group(g: &Geom, gyg: &[f32], w: &[f32], dxg: &mut [f32]) {
    let (kd, ohw, xs) = (g.kdim(), g.ohw(), g.c_in * g.hw());
    let gyp = pack_gy(g, gyg);
    let tt = gyp.len() / g.c_out.max(1);
    with_scratch(kd * tt, |col| {
        sgemm(
            kd,
            tt,
            g.c_out,
            col,
            Mat::new(tt, 1),
            w,
            Mat::new(1, kd),
            &gyp,
            Mat::new(tt, 1),
            false,
            Parallelism::None,
        );
        for (i, dxi) in dxg.chunks_exact_mut(xs).enumerate() {
            g.col2im(&col[i * ohw..], 0, ohw, tt, dxi);
        }
    })
}

fn dgrad_image(g: &Geom, gy_img: &[f32], w: &[f32], dx_img: &mut [f32]) {
    let (kd, ohw) = (g.kdim(), g.ohw());
    if g.is_pointwise() {
        sgemm(
            g.c_in,
            ohw,
            g.c_out,
            dx_img,
            Mat::new(ohw, 1),
            w,
            Mat::new(1, kd),
            gy_img,
            Mat::new(ohw, 1),
            true,
            Parallelism::None,
        );
        return;
    }
    let tmax = tile_pixels(g, 1);
    with_scratch(kd * tmax, |col| {
        for p0 in (0..ohw).step_by(tmax) {
            let t = tmax.min(ohw - p0);
            dcol_tile(g, w, gy_img, p0, t, col, Parallelism::None);
            g.col2im(col, p0, t, t, dx_img);
        }
    })
}

/// `col[.., ..t] = wᵀ · gy[.., p0..p0 + t]`: the lowered input gradient of `t` output
/// pixels from `p0` (`kd × t`, row stride `t`).
fn dcol_tile(
    g: &Geom,
    w: &[f32],
    gy_img: &[f32],
    p0: usize,
    t: usize,
    col: &mut [f32],
    par: Parallelism,
) {
    let kd = g.kdim();
    sgemm(
        kd,
        t,
        g.c_out,
        col,
        Mat::new(t, 1),
        w,
        Mat::new(1, kd),
        &gy_img[p0..],
        Mat::new(g.ohw(), 1),
        false,
        par,
    );
}

/// One image with all threads: gemm threads over a large block, col2im threads over
/// channels (each channel's gradient is written by one task only).
fn dgrad_image_threaded(g: &Geom, gy_img: &[f32], w: &[f32], dx_img: &mut [f32], nt: usize) {
    let (kd, ohw, hw) = (g.kdim(), g.ohw(), g.hw());
    let k2 = g.kh * g.kw;
    let tmax = tile_pixels(g, 4 * nt);
    with_scratch(kd * tmax, |col| {
        for p0 in (0..ohw).step_by(tmax) {
            let t = tmax.min(ohw - p0);
            dcol_tile(g, w, gy_img, p0, t, col, gemm_par(nt));
            let col = &col[..kd * t];
            dx_img
                .par_chunks_mut(hw)
                .zip(col.par_chunks(k2 * t))
                .for_each(|(chan, c)| g.col2im_channel(c, p0, t, t, chan));
        }
    })
}

/// `dw = ∂(Σ y·gy)/∂w` for `y = conv(x, w)`: returns `c_out × c_in × k × k`, the sum over
/// images and pixels of `gy · colᵀ`. Each thread accumulates its share of the tiles (or of
/// the groups of small images) into a private buffer; the buffers are summed at the end.
pub fn conv_weight_grad(g: &Geom, x: &[f32], gy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.x_len());
    assert_eq!(gy.len(), g.y_len());
    let wl = g.w_len();
    let (kd, ohw, hw) = (g.kdim(), g.ohw(), g.hw());
    if wl == 0 || ohw == 0 || g.n == 0 {
        return vec![0f32; wl];
    }
    if crate::direct::applies(g) {
        return crate::direct::weight_grad(g, x, gy);
    }
    let (xs, ys) = (g.c_in * hw, g.c_out * ohw);
    let nt = threads();
    let gs = group_size(g, GROUP_COLS_WGRAD, nt);
    // work items: (first image, images, first pixel, pixels per image)
    let items: Vec<(usize, usize, usize, usize)> = if gs > 1 {
        (0..g.n)
            .step_by(gs)
            .map(|n0| (n0, gs.min(g.n - n0), 0, ohw))
            .collect()
    } else {
        let tmax = tile_pixels(g, 2);
        (0..g.n)
            .flat_map(|n| {
                (0..ohw)
                    .step_by(tmax)
                    .map(move |p0| (n, 1, p0, tmax.min(ohw - p0)))
            })
            .collect()
    };
    let chunks = nt.min(items.len());
    let per = items.len().div_ceil(chunks);
    let partials: Vec<Vec<f32>> = items
        .par_chunks(per)
        .map(|group| {
            let mut dw = vec![0f32; wl];
            let mut col = Vec::new();
            for &(n0, ni, p0, t) in group {
                let x_imgs = &x[n0 * xs..(n0 + ni) * xs];
                let gy_imgs = &gy[n0 * ys..(n0 + ni) * ys];
                let tt = ni * t;
                let packed;
                let (lhs, lv): (&[f32], Mat) = if ni > 1 {
                    packed = pack_gy(g, gy_imgs);
                    (&packed, Mat::new(tt, 1))
                } else {
                    (&gy_imgs[p0..], Mat::new(ohw, 1))
                };
                let (rhs, rv): (&[f32], Mat) = if g.is_pointwise() && ni == 1 {
                    (&x_imgs[p0..], Mat::new(1, hw))
                } else {
                    col.resize(kd * tt, 0.0);
                    for i in 0..ni {
                        g.im2col(&x_imgs[i * xs..(i + 1) * xs], p0, t, &mut col[i * t..], tt);
                    }
                    (&col, Mat::new(1, tt))
                };
                sgemm(
                    g.c_out,
                    kd,
                    tt,
                    &mut dw,
                    Mat::new(kd, 1),
                    lhs,
                    lv,
                    rhs,
                    rv,
                    true,
                    Parallelism::None,
                );
            }
            dw
        })
        .collect();
    let mut it = partials.into_iter();
    let mut acc = it.next().unwrap_or_else(|| vec![0f32; wl]);
    for p in it {
        for (a, b) in acc.iter_mut().zip(&p) {
            *a += b;
        }
    }
    acc
}
