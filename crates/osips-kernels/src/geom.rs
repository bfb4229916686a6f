//! Convolution geometry and the im2col / col2im lowering (NCHW, one image at a time).
//!
//! The "virtual" input is the real input upsampled (nearest) by `up` (1 or 2): element
//! `(c, y, x)` of the virtual input is `x[c, y / up, x / up]`. With `up == 1` this is a plain
//! convolution; with `up == 2` it fuses `upsample_nearest2d(2H, 2W)` into the lowering so the
//! upsampled tensor is never materialised.

/// Shape and hyper-parameters of one (possibly upsampled) 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub c_in: usize,
    /// Real (stored) input height and width.
    pub h: usize,
    pub w: usize,
    /// Nearest-neighbour upsampling factor applied before the convolution (1 or 2).
    pub up: usize,
    pub c_out: usize,
    /// Kernel height and width.
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    /// Virtual input row of output row `oy` and kernel row `ky` is
    /// `oy * stride + ky + off_y` (`off_y = -padding` for a plain convolution); outside
    /// `[0, h*up)` it reads zero. Likewise for columns.
    pub off_y: isize,
    pub off_x: isize,
    pub oh: usize,
    pub ow: usize,
}

impl Geom {
    /// Builds the geometry, or explains why the shapes do not form a valid convolution.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        x: (usize, usize, usize, usize),
        wt: (usize, usize, usize, usize),
        up: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self, String> {
        let (n, c_in, h, w) = x;
        let (c_out, c_in_k, kh, kw) = wt;
        if c_in != c_in_k {
            return Err(format!(
                "in_channel mismatch between input ({c_in}) and kernel ({c_in_k})"
            ));
        }
        if kh != kw {
            return Err(format!("only square kernels are supported, got {kh}x{kw}"));
        }
        if stride == 0 || up == 0 {
            return Err("stride and upsampling factor must be positive".into());
        }
        let (hv, wv) = (h * up, w * up);
        if hv + 2 * pad < kh || wv + 2 * pad < kw {
            return Err(format!(
                "kernel {kh}x{kw} larger than padded input {}x{}",
                hv + 2 * pad,
                wv + 2 * pad
            ));
        }
        Ok(Self {
            n,
            c_in,
            h,
            w,
            up,
            c_out,
            kh,
            kw,
            stride,
            off_y: -(pad as isize),
            off_x: -(pad as isize),
            oh: (hv + 2 * pad - kh) / stride + 1,
            ow: (wv + 2 * pad - kw) / stride + 1,
        })
    }

    /// Rows of the lowered matrix: `c_in * k * k`.
    pub fn kdim(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    pub fn ohw(&self) -> usize {
        self.oh * self.ow
    }
    pub fn hw(&self) -> usize {
        self.h * self.w
    }
    pub fn x_len(&self) -> usize {
        self.n * self.c_in * self.hw()
    }
    pub fn y_len(&self) -> usize {
        self.n * self.c_out * self.ohw()
    }
    pub fn w_len(&self) -> usize {
        self.c_out * self.kdim()
    }
    /// Multiply-adds × 2 of the forward pass (each gradient costs the same).
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.c_out * self.ohw()) as f64 * self.kdim() as f64
    }
    /// A 1×1, stride 1, unpadded, non-upsampled convolution needs no lowering: the input
    /// image itself is the `c_in × (h*w)` matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == 1
            && self.off_y == 0
            && self.off_x == 0
            && self.up == 1
            && (self.oh, self.ow) == (self.h, self.w)
    }

    /// For kernel column `kx`, the output columns `ox` whose virtual input column
    /// `ox*stride + kx + off_x` lies inside `[0, w*up)`, as a half-open range.
    #[inline]
    fn valid_range(&self, kx: usize) -> (usize, usize) {
        let s = self.stride as isize;
        let extent = (self.w * self.up) as isize;
        let first = kx as isize + self.off_x; // virtual column of ox = 0
        let lo = if first >= 0 { 0 } else { (-first + s - 1) / s };
        // ox*s + first <= extent-1  <=>  ox <= (extent-1-first)/s
        let hi = if extent - 1 - first >= 0 {
            (extent - 1 - first) / s + 1
        } else {
            0
        };
        (lo as usize, hi.max(lo) as usize)
    }

    /// Virtual input column of output column `ox` (inside [`Geom::valid_range`]).
    #[inline]
    fn in_col(&self, ox: usize, kx: usize) -> usize {
        (ox as isize * self.stride as isize + kx as isize + self.off_x) as usize
    }

    /// Virtual input row of output row `oy` and kernel row `ky`, or `None` in the padding.
    #[inline]
    fn in_row(&self, oy: usize, ky: usize) -> Option<usize> {
        let iy = oy as isize * self.stride as isize + ky as isize + self.off_y;
        (iy >= 0 && (iy as usize) < self.h * self.up).then_some(iy as usize)
    }

    /// The stored input row under output row `oy` and kernel row `ky`, or `None` in the
    /// padding. (The division by `up` is taken only when upsampling: a runtime division
    /// per row was a quarter of im2col's time.)
    #[inline]
    fn src_row(&self, oy: usize, ky: usize) -> Option<usize> {
        self.in_row(oy, ky)
            .map(|iy| if self.up == 1 { iy } else { iy / self.up })
    }

    /// Lowers output pixels `[p0, p0 + t)` of one image: `col[kk * ld + j]` for
    /// `kk = (ci*k + ky)*k + kx` is the virtual input element under kernel tap `(ky, kx)` of
    /// output pixel `p0 + j` (0 in the padding). `x_img` is one `c_in × h × w` image; `ld`
    /// (≥ t) is the distance between rows of `col`.
    ///
    /// The loops run over channels, kernel rows and output rows, and within an output row
    /// over the kernel columns, so that the row arithmetic is done once per output row and
    /// kernel row, not once per tap.
    pub fn im2col(&self, x_img: &[f32], p0: usize, t: usize, col: &mut [f32], ld: usize) {
        if t == 0 {
            return;
        }
        let (kh, kw, w, ow, hw) = (self.kh, self.kw, self.w, self.ow, self.hw());
        let ranges: Vec<(usize, usize)> = (0..kw).map(|kx| self.valid_range(kx)).collect();
        let mut halves = Halves::new(self, w);
        for (ci, chan) in x_img.chunks_exact(hw).enumerate().take(self.c_in) {
            for ky in 0..kh {
                let base = (ci * kh + ky) * kw;
                let (mut j, mut oy, mut ox0) = (0, p0 / ow, p0 % ow);
                while j < t {
                    let run = (ow - ox0).min(t - j);
                    let src = self.src_row(oy, ky).map(|r| &chan[r * w..(r + 1) * w]);
                    if let (Some(h), Some(src)) = (halves.as_mut(), src) {
                        h.split(src);
                    }
                    for (kx, &range) in ranges.iter().enumerate() {
                        let out = &mut col[(base + kx) * ld + j..(base + kx) * ld + j + run];
                        match (src, &halves) {
                            (None, _) => out.fill(0.0),
                            (Some(_), Some(h)) => self.gather_run_s2(out, h, ox0, kx, range),
                            (Some(src), None) => self.gather_run(out, src, ox0, kx, range),
                        }
                    }
                    j += run;
                    oy += 1;
                    ox0 = 0;
                }
            }
        }
    }

    /// The valid part `[a, b)` of the output columns `ox0 .. ox0 + run` under kernel column
    /// `kx` (`range` is its [`Geom::valid_range`]), clamped to the run.
    #[inline]
    fn clamp_run(ox0: usize, run: usize, range: (usize, usize)) -> (usize, usize) {
        let a = range.0.clamp(ox0, ox0 + run);
        (a, range.1.clamp(a, ox0 + run))
    }

    /// [`Geom::gather_run`] for stride 2 without upsampling, from the row split by parity:
    /// every kernel column reads a contiguous run of one half.
    #[inline]
    fn gather_run_s2(
        &self,
        out: &mut [f32],
        h: &Halves,
        ox0: usize,
        kx: usize,
        range: (usize, usize),
    ) {
        let (a, b) = Self::clamp_run(ox0, out.len(), range);
        zero_small(&mut out[..a - ox0]);
        zero_small(&mut out[b - ox0..]);
        if a < b {
            let (half, q) = h.at(self.in_col(a, kx));
            out[a - ox0..b - ox0].copy_from_slice(&half[q..q + (b - a)]);
        }
    }

    /// One output-row segment of [`Geom::im2col`]: `out[i]` for output columns
    /// `ox0 + i` under kernel column `kx`, reading the stored input row `src`; `range` is
    /// [`Geom::valid_range`] of `kx`.
    #[inline]
    fn gather_run(
        &self,
        out: &mut [f32],
        src: &[f32],
        ox0: usize,
        kx: usize,
        range: (usize, usize),
    ) {
        let (s, up) = (self.stride, self.up);
        let (a, b) = Self::clamp_run(ox0, out.len(), range);
        zero_small(&mut out[..a - ox0]);
        zero_small(&mut out[b - ox0..]);
        if a >= b {
            return;
        }
        let seg = &mut out[a - ox0..b - ox0];
        // first virtual input column of the valid segment
        let ix0 = self.in_col(a, kx);
        if s == 1 && up == 1 {
            seg.copy_from_slice(&src[ix0..ix0 + (b - a)]);
        } else if s == 1 && up == 2 {
            let mut i = 0;
            if ix0 % 2 == 1 {
                seg[0] = src[ix0 / 2];
                i = 1;
            }
            let mut pairs = seg[i..].chunks_exact_mut(2);
            let base = (ix0 + i) / 2;
            for (pair, &v) in (&mut pairs).zip(&src[base..]) {
                pair[0] = v;
                pair[1] = v;
            }
            if let [last] = pairs.into_remainder() {
                *last = src[(ix0 + b - a - 1) / 2];
            }
        } else if up == 1 {
            // Every s-th element from ix0; `chunks` compiles to a tight loop, `step_by`
            // did not (the strided convs' im2col spent most of its time in it).
            let span = (seg.len() - 1) * s + 1;
            for (v, c) in seg.iter_mut().zip(src[ix0..ix0 + span].chunks(s)) {
                *v = c[0];
            }
        } else {
            for (i, v) in seg.iter_mut().enumerate() {
                *v = src[(ix0 + i * s) / up];
            }
        }
    }

    /// Adjoint of [`Geom::im2col`]: adds each `col` element into the real input element it
    /// was read from. `dx_img` is one `c_in × h × w` image gradient.
    pub fn col2im(&self, col: &[f32], p0: usize, t: usize, ld: usize, dx_img: &mut [f32]) {
        let kk2 = self.kh * self.kw;
        for (ci, chan) in dx_img.chunks_exact_mut(self.hw()).enumerate() {
            self.col2im_channel(&col[ci * kk2 * ld..], p0, t, ld, chan);
        }
    }

    /// [`Geom::col2im`] restricted to one input channel: `col` starts with that channel's
    /// `k*k` rows (`ld` apart), `chan` is its `h × w` gradient. Loops as in
    /// [`Geom::im2col`].
    pub fn col2im_channel(&self, col: &[f32], p0: usize, t: usize, ld: usize, chan: &mut [f32]) {
        if t == 0 {
            return;
        }
        let (kh, kw, w, ow) = (self.kh, self.kw, self.w, self.ow);
        let ranges: Vec<(usize, usize)> = (0..kw).map(|kx| self.valid_range(kx)).collect();
        let mut halves = Halves::new(self, w);
        for ky in 0..kh {
            let (mut j, mut oy, mut ox0) = (0, p0 / ow, p0 % ow);
            while j < t {
                let run = (ow - ox0).min(t - j);
                if let Some(r) = self.src_row(oy, ky) {
                    let dst = &mut chan[r * w..(r + 1) * w];
                    let rows = ranges.iter().enumerate().map(|(kx, &range)| {
                        let at = (ky * kw + kx) * ld + j;
                        (kx, range, &col[at..at + run])
                    });
                    match halves.as_mut() {
                        Some(h) => {
                            h.data.fill(0.0);
                            for (kx, range, row) in rows {
                                self.scatter_run_s2(row, h, ox0, kx, range);
                            }
                            h.merge_add(dst);
                        }
                        None => {
                            for (kx, range, row) in rows {
                                self.scatter_run(row, dst, ox0, kx, range);
                            }
                        }
                    }
                }
                j += run;
                oy += 1;
                ox0 = 0;
            }
        }
    }

    /// Adjoint of [`Geom::gather_run_s2`]: adds the valid part of `seg` into its half.
    #[inline]
    fn scatter_run_s2(
        &self,
        seg: &[f32],
        h: &mut Halves,
        ox0: usize,
        kx: usize,
        range: (usize, usize),
    ) {
        let (a, b) = Self::clamp_run(ox0, seg.len(), range);
        if a < b {
            let (half, q) = h.at_mut(self.in_col(a, kx));
            for (d, v) in half[q..q + (b - a)].iter_mut().zip(&seg[a - ox0..b - ox0]) {
                *d += v;
            }
        }
    }

    /// Adjoint of [`Geom::gather_run`]: adds `seg[i]` (output columns `ox0 + i`, kernel
    /// column `kx`) into the stored input row `dst`.
    #[inline]
    fn scatter_run(
        &self,
        seg: &[f32],
        dst: &mut [f32],
        ox0: usize,
        kx: usize,
        range: (usize, usize),
    ) {
        let (s, up) = (self.stride, self.up);
        let (a, b) = Self::clamp_run(ox0, seg.len(), range);
        if a >= b {
            return;
        }
        let ix0 = self.in_col(a, kx);
        let seg = &seg[a - ox0..b - ox0];
        if s == 1 && up == 1 {
            for (d, v) in dst[ix0..ix0 + (b - a)].iter_mut().zip(seg) {
                *d += v;
            }
        } else if up == 1 {
            let span = (seg.len() - 1) * s + 1;
            for (c, v) in dst[ix0..ix0 + span].chunks_mut(s).zip(seg) {
                c[0] += v;
            }
        } else if s == 1 && up == 2 {
            for (i, v) in seg.iter().enumerate() {
                dst[(ix0 + i) >> 1] += v;
            }
        } else {
            for (i, v) in seg.iter().enumerate() {
                dst[(ix0 + i * s) / up] += v;
            }
        }
    }
}

/// One input row split by parity, for the stride-2 convolutions without upsampling:
/// `data[..even]` holds its even columns, `data[even..]` its odd ones. Output column `ox`
/// under kernel column `kx` reads input column `2·ox + kx + off_x`, so along a run every
/// kernel column reads consecutive elements of one half: a copy (im2col) or a vector add
/// (col2im) instead of a strided gather or scatter per kernel column.
struct Halves {
    data: Vec<f32>,
    even: usize,
}

impl Halves {
    /// A buffer for rows of `w` columns, when `g` is a stride-2 convolution without
    /// upsampling.
    fn new(g: &Geom, w: usize) -> Option<Self> {
        (g.stride == 2 && g.up == 1).then(|| Halves {
            data: vec![0.0; w],
            even: w.div_ceil(2),
        })
    }

    /// Splits `src` (one row) into the halves.
    fn split(&mut self, src: &[f32]) {
        let (ev, od) = self.data.split_at_mut(self.even);
        for ((e, o), pair) in ev.iter_mut().zip(od.iter_mut()).zip(src.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
        if !src.len().is_multiple_of(2) {
            ev[self.even - 1] = src[src.len() - 1];
        }
    }

    /// Adds the halves back into `dst` (one row), column by column.
    fn merge_add(&self, dst: &mut [f32]) {
        let (ev, od) = self.data.split_at(self.even);
        let mut pairs = dst.chunks_exact_mut(2);
        for ((pair, e), o) in (&mut pairs).zip(ev).zip(od) {
            pair[0] += e;
            pair[1] += o;
        }
        if let [last] = pairs.into_remainder() {
            *last += ev[self.even - 1];
        }
    }

    /// The half holding input column `ix`, and `ix`'s index in it.
    fn at(&self, ix: usize) -> (&[f32], usize) {
        let (ev, od) = self.data.split_at(self.even);
        (if ix.is_multiple_of(2) { ev } else { od }, ix / 2)
    }

    fn at_mut(&mut self, ix: usize) -> (&mut [f32], usize) {
        let (ev, od) = self.data.split_at_mut(self.even);
        (if ix.is_multiple_of(2) { ev } else { od }, ix / 2)
    }
}

/// Zeroes `v`, which is usually the 0–2 padding columns of a row: stores for those
/// instead of the memset call that `fill` becomes (a few percent of an iteration).
#[inline]
fn zero_small(v: &mut [f32]) {
    match v {
        [] => {}
        [a] => *a = 0.0,
        [a, b] => {
            *a = 0.0;
            *b = 0.0;
        }
        _ => v.fill(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::Geom;

    /// The virtual input element under tap `(ci, ky, kx)` of output pixel `p`, by the
    /// definition (0 in the padding).
    fn tap(g: &Geom, x: &[f32], ci: usize, ky: usize, kx: usize, p: usize) -> f32 {
        let (oy, ox) = (p / g.ow, p % g.ow);
        let iy = (oy * g.stride + ky) as isize + g.off_y;
        let ix = (ox * g.stride + kx) as isize + g.off_x;
        let (hv, wv) = ((g.h * g.up) as isize, (g.w * g.up) as isize);
        if iy < 0 || ix < 0 || iy >= hv || ix >= wv {
            return 0.0;
        }
        let (y, xx) = (iy as usize / g.up, ix as usize / g.up);
        x[(ci * g.h + y) * g.w + xx]
    }

    fn value(i: usize) -> f32 {
        ((i * 7919 % 1009) as f32) / 1009.0 - 0.5
    }

    /// im2col against the definition, and col2im as its adjoint (⟨im2col x, c⟩ =
    /// ⟨x, col2im c⟩), over tiles that start and end mid-row.
    #[test]
    fn im2col_and_col2im_match_the_definition_on_partial_rows() {
        // (c_in, h, w, up, k, stride, pad)
        let shapes = [
            (2, 7, 9, 1, 3, 1, 1),
            (3, 8, 8, 1, 4, 2, 1),
            (2, 5, 6, 2, 3, 1, 1),
            (1, 9, 7, 1, 5, 2, 2),
            (2, 6, 5, 2, 4, 2, 0),
            (1, 4, 4, 1, 1, 1, 0),
        ];
        for (c_in, h, w, up, k, stride, pad) in shapes {
            let g = Geom::new((1, c_in, h, w), (1, c_in, k, k), up, stride, pad).expect("geom");
            let x: Vec<f32> = (0..g.c_in * g.hw()).map(value).collect();
            let ohw = g.ohw();
            for (p0, t) in [
                (0, ohw),
                (1, ohw - 1),
                (g.ow / 2 + 1, g.ow + 3),
                (ohw - 2, 2),
            ] {
                let t = t.min(ohw - p0);
                let ld = t + 3;
                let mut col = vec![f32::NAN; g.kdim() * ld];
                g.im2col(&x, p0, t, &mut col, ld);
                for ci in 0..c_in {
                    for ky in 0..k {
                        for kx in 0..k {
                            let kk = (ci * k + ky) * k + kx;
                            for j in 0..t {
                                let want = tap(&g, &x, ci, ky, kx, p0 + j);
                                assert_eq!(col[kk * ld + j], want, "{g:?} p0 {p0} t {t}");
                            }
                        }
                    }
                }
                let c: Vec<f32> = (0..g.kdim() * ld).map(|i| value(i + 17)).collect();
                let mut dx = vec![0f32; x.len()];
                g.col2im(&c, p0, t, ld, &mut dx);
                let lhs: f64 = (0..g.kdim())
                    .flat_map(|kk| (0..t).map(move |j| kk * ld + j))
                    .map(|i| f64::from(col[i]) * f64::from(c[i]))
                    .sum();
                let rhs: f64 = x
                    .iter()
                    .zip(&dx)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                assert!(
                    (lhs - rhs).abs() < 1e-4,
                    "{g:?} p0 {p0} t {t}: {lhs} vs {rhs}"
                );
            }
        }
    }
}
