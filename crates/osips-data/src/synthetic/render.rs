//! The renderer: a 2.5-D head made of ray-cast ellipsoids (cranium, jaw, nose, ears, a
//! hair shell) with features painted on its surface as signed-distance shapes, composited
//! over 2-D layers (background, shoulders, neck, long hair) with analytic anti-aliasing.

use image::RgbImage;

use super::math::{
    clamp01, coverage, fbm2, mix, mul, scale, smoothstep, v3, value_noise, Rgb, M3, V3,
};
use super::params::{Attributes, BackgroundPattern, GlassesShape, HairStyle, Identity};
use crate::rng::{hash_words, mix64};

/// An axis-aligned ellipsoid in head space, prepared for one ray direction.
struct Ell {
    c: V3,
    inv_r: V3,
    inv_r2: V3,
    /// Ray direction in the ellipsoid's unit-sphere space.
    ds: V3,
    /// `ds · ds`.
    a: f32,
    /// Projected radius, for converting unit-sphere distances to head units.
    r_eff: f32,
}

#[derive(Clone, Copy)]
struct EHit {
    t: f32,
    t_exit: f32,
    cov: f32,
    /// True intersection (not just a grazing miss inside the anti-aliasing band).
    inside: bool,
}

impl Ell {
    fn new(c: V3, r: V3, d: V3) -> Ell {
        let inv_r = v3(1.0 / r.x, 1.0 / r.y, 1.0 / r.z);
        let ds = d.mul_elem(inv_r);
        // Projected radius perpendicular to the view: average of the two largest
        // cross-section radii is good enough for an edge one pixel wide.
        let r_eff = (r.x + r.y + r.z - r.x.min(r.y).min(r.z)) * 0.5;
        Ell {
            c,
            inv_r,
            inv_r2: inv_r.mul_elem(inv_r),
            ds,
            a: ds.dot(ds),
            r_eff,
        }
    }

    #[inline]
    fn hit(&self, o: V3, aa: f32) -> Option<EHit> {
        let os = (o - self.c).mul_elem(self.inv_r);
        let b = os.dot(self.ds);
        let oo = os.dot(os);
        let rho2 = (oo - b * b / self.a).max(0.0);
        let rho = rho2.sqrt();
        let cov = coverage((rho - 1.0) * self.r_eff, aa);
        if cov <= 0.0 {
            return None;
        }
        let disc = (b * b - self.a * (oo - 1.0)).max(0.0);
        let sq = disc.sqrt();
        Some(EHit {
            t: (-b - sq) / self.a,
            t_exit: (-b + sq) / self.a,
            cov,
            inside: rho <= 1.0,
        })
    }

    #[inline]
    fn normal(&self, p: V3) -> V3 {
        (p - self.c).mul_elem(self.inv_r2).normalized()
    }
}

/// Whether hit `a` is the visible one of a union with `b`: a true intersection beats a
/// grazing miss, then the nearer (or the better covered) wins.
#[inline]
fn nearer(a: &EHit, b: &EHit) -> bool {
    if a.inside != b.inside {
        a.inside
    } else if a.inside {
        a.t <= b.t
    } else {
        a.cov >= b.cov
    }
}

/// Per-image constants.
struct Scene<'a> {
    id: &'a Identity,
    at: &'a Attributes,
    n: usize,
    zoom: f32,
    /// Head units per pixel.
    aa: f32,
    o0: V3,
    ex: V3,
    ey: V3,
    d: V3,
    light_head: V3,
    light_cam: V3,
    half_head: V3,
    cranium: Ell,
    jaw: Ell,
    nose_bridge: Ell,
    nose_tip: Ell,
    ears: [Ell; 2],
    hair: Option<Ell>,
    bound2: f32,
    // Feature geometry.
    eye_y: f32,
    tip_y: f32,
    mouth_y: f32,
    glasses_z: f32,
    /// Hairline heights relative to the cranium centre: front, side, back, top limit.
    hairline: [f32; 4],
    bg_seed: u64,
    tex_seed: u64,
}

const CRANIUM_C: V3 = v3(0.0, 0.08, -0.08);
const CRANIUM_DEPTH: f32 = 0.52;
const HEAD_Y_OFFSET: f32 = -0.16;
const BASE_ZOOM: f32 = 1.3;

#[derive(Clone, Copy)]
struct Item {
    t: f32,
    color: Rgb,
    alpha: f32,
}

struct Items {
    items: [Item; 12],
    n: usize,
}

impl Items {
    fn new() -> Items {
        Items {
            items: [Item {
                t: 0.0,
                color: [0.0; 3],
                alpha: 0.0,
            }; 12],
            n: 0,
        }
    }
    #[inline]
    fn push(&mut self, t: f32, color: Rgb, alpha: f32) {
        if alpha > 0.0 && self.n < self.items.len() {
            self.items[self.n] = Item {
                t,
                color,
                alpha: alpha.min(1.0),
            };
            self.n += 1;
        }
    }
    /// Sorts far to near (decreasing `t`).
    fn sort(&mut self) {
        let items = &mut self.items[..self.n];
        for i in 1..items.len() {
            let mut j = i;
            while j > 0 && items[j - 1].t < items[j].t {
                items.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    /// How much of what lies behind all items shows through.
    fn transmittance(&self) -> f32 {
        self.items[..self.n]
            .iter()
            .map(|it| 1.0 - it.alpha)
            .product()
    }
    /// Composites the (sorted) items far to near over `base`.
    fn composite(&self, mut base: Rgb) -> Rgb {
        for it in &self.items[..self.n] {
            base = mix(base, it.color, it.alpha);
        }
        base
    }
}

fn front_z(y: f32, id: &Identity, jaw_c: V3, jaw_r: V3) -> f32 {
    let zc = {
        let u = (y - CRANIUM_C.y) / id.head_height;
        if u.abs() < 1.0 {
            CRANIUM_C.z + CRANIUM_DEPTH * (1.0 - u * u).sqrt()
        } else {
            -1.0
        }
    };
    let zj = {
        let u = (y - jaw_c.y) / jaw_r.y;
        if u.abs() < 1.0 {
            jaw_c.z + jaw_r.z * (1.0 - u * u).sqrt()
        } else {
            -1.0
        }
    };
    zc.max(zj)
}

impl<'a> Scene<'a> {
    fn new(id: &'a Identity, at: &'a Attributes, size: u32) -> Scene<'a> {
        let n = size as usize;
        let zoom = BASE_ZOOM * at.scale.clamp(0.3, 3.0);
        let rot = M3::rotation(at.yaw, at.pitch, at.roll);
        let rt = rot.transpose();
        let d = rt.apply(v3(0.0, 0.0, -1.0));
        let l = v3(at.light_dir[0], at.light_dir[1], at.light_dir[2]).normalized();
        let hw = id.head_width;
        let cranium = Ell::new(CRANIUM_C, v3(hw, id.head_height, CRANIUM_DEPTH), d);
        let open = at.mouth_open.clamp(0.0, 1.0);
        let jaw_ry = 0.46 + id.chin_length * 0.5 + open * 0.02;
        let jaw_c = v3(0.0, -0.58 - id.chin_length - open * 0.035 + jaw_ry, 0.08);
        let jaw_r = v3(hw * id.jaw_width * 0.92, jaw_ry, 0.3);
        let jaw = Ell::new(jaw_c, jaw_r, d);
        let eye_y = id.eye_height;
        let tip_y = eye_y - id.nose_length + 0.04;
        let z_tip = front_z(tip_y, id, jaw_c, jaw_r);
        let nose_tip = Ell::new(
            v3(0.0, tip_y, z_tip + id.nose_depth - 0.045),
            v3(id.nose_width, 0.042, 0.05),
            d,
        );
        let mid_y = (eye_y + tip_y) * 0.5 - 0.01;
        let z_mid = front_z(mid_y, id, jaw_c, jaw_r);
        let nose_bridge = Ell::new(
            v3(0.0, mid_y, z_mid + id.nose_depth * 0.55 - 0.05),
            v3(
                0.026 + id.nose_width * 0.15,
                (eye_y - tip_y) * 0.5 + 0.015,
                0.05,
            ),
            d,
        );
        let ear_y = eye_y - 0.06;
        let ear_r = v3(
            0.03 + id.ear_protrusion,
            0.085 * id.ear_size,
            0.05 * id.ear_size,
        );
        let ears = [
            Ell::new(
                v3(-(hw * 0.96 + id.ear_protrusion * 0.6), ear_y, -0.1),
                ear_r,
                d,
            ),
            Ell::new(
                v3(hw * 0.96 + id.ear_protrusion * 0.6, ear_y, -0.1),
                ear_r,
                d,
            ),
        ];
        let vol = id.hair_volume;
        let hair = Some(Ell::new(
            CRANIUM_C + v3(0.0, vol * 0.45, -0.01),
            v3(hw + vol, id.head_height + vol * 1.1, CRANIUM_DEPTH + vol),
            d,
        ));
        let hl = id.hairline - CRANIUM_C.y;
        let hairline = match id.hair_style {
            HairStyle::Bald => [0.6, -0.12, -0.25, 0.06],
            HairStyle::Buzz => [hl, 0.0, -0.3, 9.0],
            HairStyle::Short => [hl, 0.0, -0.32, 9.0],
            HairStyle::Medium => [hl, -0.2, -0.45, 9.0],
            HairStyle::Long => [hl, -0.45, -0.6, 9.0],
            HairStyle::Curly => [hl, -0.12, -0.42, 9.0],
        };
        let glasses_z = front_z(eye_y, id, jaw_c, jaw_r) + 0.07;
        let bound = 0.85 + vol;
        Scene {
            id,
            at,
            n,
            zoom,
            aa: 2.0 / (n as f32 * zoom),
            o0: rt.apply(v3(0.0, 0.0, 10.0)),
            ex: rt.apply(v3(1.0, 0.0, 0.0)),
            ey: rt.apply(v3(0.0, 1.0, 0.0)),
            d,
            light_head: rt.apply(l),
            light_cam: l,
            half_head: (rt.apply(l) - d).normalized(),
            cranium,
            jaw,
            nose_bridge,
            nose_tip,
            ears,
            hair,
            bound2: bound * bound,
            eye_y,
            tip_y,
            mouth_y: id.mouth_height - open * 0.02,
            glasses_z,
            hairline,
            bg_seed: mix64(at.noise_seed ^ 0xb6),
            tex_seed: id.texture_seed,
        }
    }

    /// Diffuse (wrapped) + ambient + specular lighting of `albedo` with head-space normal `nrm`.
    #[inline]
    fn shade(&self, albedo: Rgb, nrm: V3, spec: f32, shininess: i32) -> Rgb {
        let at = self.at;
        let ndl = nrm.dot(self.light_head);
        let diff = ((ndl + 0.3) / 1.3).max(0.0);
        let k = at.light_strength * diff;
        let lc = at.light_color;
        let mut c = [
            albedo[0] * (at.ambient + k * lc[0]),
            albedo[1] * (at.ambient + k * lc[1]),
            albedo[2] * (at.ambient + k * lc[2]),
        ];
        if spec > 0.0 && ndl > 0.0 {
            let nh = nrm.dot(self.half_head).max(0.0);
            let s = spec * at.light_strength * nh.powi(shininess);
            c = [c[0] + s * lc[0], c[1] + s * lc[1], c[2] + s * lc[2]];
        }
        c
    }

    #[inline]
    fn shade_cam(&self, albedo: Rgb, nrm: V3) -> Rgb {
        let at = self.at;
        let diff = ((nrm.dot(self.light_cam) + 0.3) / 1.3).max(0.0);
        let k = at.light_strength * diff;
        let lc = at.light_color;
        [
            albedo[0] * (at.ambient + k * lc[0]),
            albedo[1] * (at.ambient + k * lc[1]),
            albedo[2] * (at.ambient + k * lc[2]),
        ]
    }

    fn background(&self, cx: f32, cy: f32) -> Rgb {
        let bg = &self.at.background;
        let t = match bg.pattern {
            BackgroundPattern::Plain => 0.0,
            BackgroundPattern::Gradient => 0.5 + 0.5 * (cx * bg.angle.cos() + cy * bg.angle.sin()),
            BackgroundPattern::Blotches => smoothstep(
                0.25,
                0.75,
                fbm2(
                    self.bg_seed,
                    cx * bg.frequency + 7.0,
                    cy * bg.frequency + 3.0,
                ),
            ),
            BackgroundPattern::Stripes => {
                let s = (cx * bg.frequency * 3.0 + bg.angle).sin();
                smoothstep(-0.4, 0.4, s)
            }
        };
        let c = mix(bg.color_a, bg.color_b, clamp01(t));
        // Soft vignette.
        let v = 1.0 - 0.12 * (cx * cx + cy * cy) * 0.5;
        scale(c, v)
    }

    fn hair_texture(&self, theta: f32, y: f32) -> f32 {
        match self.id.hair_style {
            HairStyle::Curly => 0.75 + 0.4 * value_noise(self.tex_seed, theta * 14.0, y * 28.0),
            _ => 0.78 + 0.32 * value_noise(self.tex_seed, theta * 40.0, y * 4.0),
        }
    }

    /// Hair coverage of a point on or around the scalp, relative to the cranium centre.
    fn hair_mask(&self, q: V3, aa: f32) -> f32 {
        let [front, side, back, top] = self.hairline;
        let r = (q.x * q.x + q.z * q.z).sqrt().max(1e-6);
        let c = q.z / r;
        let mut front_eff = front;
        if self.id.fringe > 0.0 {
            let fringe_y = self.eye_y + 0.1 - CRANIUM_C.y;
            let w = smoothstep(0.32, 0.12, q.x.abs()) * self.id.fringe;
            front_eff = front + (fringe_y + 0.04 * (q.x * 12.0).sin().abs() - front) * w;
        }
        let yh = if c >= 0.0 {
            side + (front_eff - side) * c * c.sqrt()
        } else {
            side + (back - side) * (-c)
        };
        let m = coverage(yh - q.y, aa);
        if top < 9.0 {
            m * smoothstep(top + 0.05, top - 0.03, q.y)
        } else {
            m
        }
    }

    fn hair_color(&self, q: V3, nrm: V3, inner: bool) -> Rgb {
        let theta = q.x.atan2(q.z);
        let mut tex = self.hair_texture(theta, q.y);
        // Parting line.
        let part_x = self.id.parting * 0.1;
        if q.z > 0.0
            && q.y > 0.3
            && matches!(
                self.id.hair_style,
                HairStyle::Short | HairStyle::Medium | HairStyle::Long
            )
        {
            tex *= 1.0 - 0.35 * coverage((q.x - part_x).abs() - 0.006, self.aa);
        }
        let albedo = scale(self.id.hair_color, tex * if inner { 0.55 } else { 1.0 });
        self.shade(albedo, nrm, 0.15, 12)
    }

    /// Skin albedo with the painted features at head-space point `p`.
    fn face_albedo(&self, p: V3, aa: f32) -> (Rgb, f32) {
        let id = self.id;
        let at = self.at;
        let mut spec = 0.07;
        let tex = 0.98 + 0.035 * value_noise(self.tex_seed ^ 1, p.x * 45.0, p.y * 45.0);
        let mut col = scale(id.skin, tex);
        if p.z < -0.1 {
            return (col, spec);
        }
        let ax = p.x.abs();
        // Cheek blush.
        let bx = ax - id.eye_spacing - 0.02;
        let by = p.y - (self.eye_y - 0.15);
        let g = (-(bx * bx + by * by) / 0.004).exp();
        col = mix(col, mul(id.skin, [1.1, 0.62, 0.6]), id.blush * 0.35 * g);

        // Nasolabial folds deepen with a smile.
        if at.smile > 0.05 && p.y < self.tip_y && p.y > self.mouth_y - 0.03 {
            let fold_x = id.nose_width * 1.5 + (self.tip_y - p.y) * 0.45;
            let d = (ax - fold_x).abs() - 0.004;
            col = scale(col, 1.0 - 0.18 * at.smile * coverage(d, aa * 2.0));
        }

        // Beard and moustache.
        if id.beard > 0.0 || id.moustache > 0.0 {
            let arc = p.x.atan2(p.z + 0.2) * 0.4;
            let stubble = value_noise(self.tex_seed ^ 7, arc * 150.0, p.y * 150.0);
            if id.beard > 0.0 {
                let ybound = self.mouth_y + 0.0 + 0.13 * smoothstep(0.1, 0.3, ax);
                let zone = smoothstep(0.0, 0.04, ybound - p.y);
                col = mix(col, id.hair_color, id.beard * zone * (0.7 + 0.25 * stubble));
            }
            if id.moustache > 0.0 {
                let mw = id.mouth_width * 1.15;
                let u = (p.x / mw).clamp(-1.0, 1.0);
                let y0 = self.mouth_y + id.upper_lip + 0.014 - 0.025 * u * u;
                let th = 0.013 * (1.0 - u * u).max(0.0).sqrt() + 0.002;
                let d = ((p.y - y0).abs() - th).max(ax - mw);
                col = mix(
                    col,
                    id.hair_color,
                    id.moustache * coverage(d, aa) * (0.75 + 0.25 * stubble),
                );
            }
        }

        // Eyes and brows.
        let ex = ax - id.eye_spacing;
        let ey = p.y - self.eye_y;
        if ex.abs() < id.eye_width * 1.8 && ey > -0.08 && ey < 0.16 {
            col = self.paint_eye(col, p.x.signum(), ex, ey, aa, &mut spec);
        }
        // Mouth.
        let my = p.y - self.mouth_y;
        if ax < id.mouth_width * 1.5 && my > -0.1 && my < 0.06 {
            col = self.paint_mouth(col, p.x, my, aa, &mut spec);
        }
        if let Some([mx, my]) = id.mole {
            let d = ((p.x - mx).powi(2) + (p.y - my).powi(2)).sqrt() - 0.009;
            col = mix(col, [0.25, 0.15, 0.1], 0.85 * coverage(d, aa));
        }
        (col, spec)
    }

    fn paint_eye(&self, mut col: Rgb, side: f32, ex: f32, ey: f32, aa: f32, spec: &mut f32) -> Rgb {
        let id = self.id;
        let at = self.at;
        let w = id.eye_width;
        let h = id.eye_openness;
        // Eye socket shading.
        let s = (ex / (w * 1.4)).powi(2) + ((ey - 0.012) / 0.04).powi(2);
        col = scale(col, 1.0 - 0.13 * (-s).exp());
        let ey_t = ey - id.eye_tilt * ex;
        let open =
            h * (1.0 - at.eyes_closed.clamp(0.0, 1.0)) * (1.0 - 0.25 * at.smile.clamp(0.0, 1.0));
        let u = ex / w;
        // Eyebrow.
        {
            let lift = h + id.brow_gap + at.brows_raised.max(0.0) * 0.03;
            let ub = (ex + w * 1.15) / (w * 2.45);
            if (-0.05..1.05).contains(&ub) {
                let arch = (id.brow_arch * 0.022 + at.brows_raised.max(0.0) * 0.01)
                    * (1.0 - ((ub - 0.6) / 0.6).powi(2)).max(0.0);
                let frown = at.brows_raised.min(0.0) * 0.022 * (1.0 - ub);
                let center = lift + arch + frown;
                let thick = id.brow_thickness * (1.25 - 0.7 * ub);
                let d = ((ey - center).abs() - thick).max((ub - 0.5).abs() * w * 2.45 - w * 1.22);
                let hairy = 0.8 + 0.3 * value_noise(self.tex_seed ^ 3, ex * 160.0, ey * 40.0);
                col = mix(col, scale(id.brow_color, hairy), 0.92 * coverage(d, aa));
            }
        }
        if u.abs() > 1.2 {
            return col;
        }
        let f = (1.0 - u * u).max(0.0);
        let top = open * 1.15 * f.powf(0.8) + 0.0015;
        let bot = -open * 0.75 * f.powf(0.9);
        // Upper-lid crease.
        let crease = top + h * 0.75 + 0.008;
        col = scale(
            col,
            1.0 - 0.25 * coverage((ey_t - crease).abs() - 0.0025, aa) * f.sqrt(),
        );
        let d = (ey_t - top).max(bot - ey_t).max((u.abs() - 1.0) * w);
        let cov = coverage(d, aa);
        if cov > 0.0 {
            let mut eye: Rgb = scale([0.93, 0.9, 0.88], 1.0 - 0.35 * u.powi(4));
            let ix = at.gaze[0] * w * 0.35 * side;
            let iy = at.gaze[1] * h * 0.3;
            let ri = (h * 1.05).min(w * 0.55);
            let dx = ex - ix;
            let dy = ey_t - iy;
            let dist = (dx * dx + dy * dy).sqrt();
            let c_iris = coverage(dist - ri, aa);
            if c_iris > 0.0 {
                let radial = 0.7 + 0.45 * (dist / ri).min(1.0);
                let limbal = 1.0 - 0.5 * smoothstep(0.75, 1.0, dist / ri);
                let streak = 0.85 + 0.3 * value_noise(self.tex_seed ^ 5, dx.atan2(dy) * 6.0, 0.0);
                let iris = scale(id.iris, radial * limbal * streak);
                eye = mix(eye, iris, c_iris);
                eye = mix(eye, [0.02, 0.02, 0.02], coverage(dist - ri * 0.42, aa));
                let hx = dx + ri * 0.3;
                let hy = dy - ri * 0.35;
                let dh = (hx * hx + hy * hy).sqrt() - ri * 0.2;
                eye = mix(eye, [1.0, 1.0, 1.0], 0.85 * coverage(dh, aa));
            }
            // Shadow of the upper lid.
            eye = scale(
                eye,
                1.0 - 0.4 * smoothstep(top - open * 0.7 - 0.004, top, ey_t),
            );
            col = mix(col, eye, cov);
            *spec = 0.25 * cov + *spec * (1.0 - cov);
        }
        // Lash line along the upper lid, and a faint lower one.
        let lash = 0.005 + 0.003 * f;
        let dl = ((ey_t - top).abs() - lash).max((u.abs() - 1.05) * w);
        col = mix(col, [0.06, 0.04, 0.04], 0.85 * coverage(dl, aa));
        let dl2 = ((ey_t - bot).abs() - 0.002).max((u.abs() - 0.9) * w);
        col = mix(
            col,
            scale(col, 0.7),
            coverage(dl2, aa) * (open / h).min(1.0),
        );
        col
    }

    fn paint_mouth(&self, mut col: Rgb, x: f32, my: f32, aa: f32, spec: &mut f32) -> Rgb {
        let id = self.id;
        let at = self.at;
        let smile = at.smile.clamp(0.0, 1.0);
        let open = at.mouth_open.clamp(0.0, 1.0);
        let mw = id.mouth_width * (1.0 + 0.25 * smile - 0.1 * open);
        let u = x / mw;
        let f = (1.0 - u * u).max(0.0);
        let line = smile * 0.03 * u * u - (1.0 - smile) * 0.004 * u * u;
        let gap = (open * 0.055 + smile * smile * 0.014) * f.powf(0.6);
        let top_open = line + gap * 0.25;
        let bot_open = line - gap * 0.75;
        let bow = 1.0 - 0.35 * (-(u / 0.2).powi(2)).exp();
        let ul = id.upper_lip * f.sqrt() * bow * (1.0 - 0.3 * smile);
        let ll = id.lower_lip * f.sqrt() * (1.0 - 0.2 * smile);
        let side = (u.abs() - 1.0) * mw;
        // Lips.
        let d_lip = (my - (top_open + ul)).max((bot_open - ll) - my).max(side);
        let c_lip = coverage(d_lip, aa);
        if c_lip > 0.0 {
            let shade_ul = if my > line { 0.82 } else { 1.0 };
            let lip = scale(id.lip_color, shade_ul);
            col = mix(col, lip, c_lip);
            *spec = 0.15;
        }
        // Interior and teeth.
        let d_in = (my - top_open)
            .max(bot_open - my)
            .max((u.abs() - 0.97) * mw);
        let c_in = coverage(d_in, aa);
        if c_in > 0.0 {
            let mut inner: Rgb = [0.22, 0.05, 0.05];
            let teeth_d = (top_open - 0.017 - my).max(-(top_open - my));
            let gaps =
                1.0 - 0.25 * coverage(((u * 4.0).fract() - 0.5).abs() * mw / 4.0 - 0.002, aa);
            inner = mix(inner, scale([0.92, 0.9, 0.84], gaps), coverage(teeth_d, aa));
            col = mix(col, inner, c_in);
        }
        // The line between the lips.
        let d_line = ((my - line).abs() - 0.0025).max(side);
        col = mix(col, scale(id.lip_color, 0.45), 0.8 * coverage(d_line, aa));
        col
    }

    fn ear_color(&self, p: V3, e: &Ell, nrm: V3) -> Rgb {
        let q = p - e.c;
        let outward = q.x * e.c.x.signum() > 0.0;
        let r = (q.y * e.inv_r.y / 0.6).powi(2) + (q.z * e.inv_r.z / 0.55).powi(2);
        let inner = if outward {
            1.0 - 0.3 * smoothstep(1.1, 0.7, r)
        } else {
            1.0
        };
        let albedo = scale(mul(self.id.skin, [1.02, 0.93, 0.92]), inner);
        self.shade(albedo, nrm, 0.05, 8)
    }

    /// Colour of pixel centre `(px, py)` before noise and blur.
    fn pixel(&self, px: usize, py: usize) -> Rgb {
        let n = self.n as f32;
        let cx = (px as f32 + 0.5) * 2.0 / n - 1.0;
        let cy = 1.0 - (py as f32 + 0.5) * 2.0 / n;
        let x = (cx - self.at.shift[0]) / self.zoom;
        let y = (cy - self.at.shift[1]) / self.zoom + HEAD_Y_OFFSET;
        if x * x + y * y > self.bound2 {
            return self.layers_2d(cx, cy, x, y);
        }
        let mut items = Items::new();
        self.items_3d(x, y, &mut items);
        items.sort();
        // Skip the layers behind when the head hides them.
        let base = if items.transmittance() < 1e-3 {
            [0.0; 3]
        } else {
            self.layers_2d(cx, cy, x, y)
        };
        items.composite(base)
    }

    /// Background, shoulders, long hair and neck at camera point `(cx, cy)`, head-frame
    /// point `(x, y)`.
    fn layers_2d(&self, cx: f32, cy: f32, x: f32, y: f32) -> Rgb {
        let aa = self.aa;
        let id = self.id;
        let at = self.at;
        let mut col = self.background(cx, cy);
        // Shoulders and shirt.
        {
            let (sx, sy) = (x / 0.95, (y + 1.28) / 0.55);
            let d = ((sx * sx + sy * sy).sqrt() - 1.0) * 0.55;
            let cov = coverage(d, aa);
            if cov > 0.0 {
                let nrm = v3(sx * 0.6, sy.max(0.0) * 0.8, 0.6).normalized();
                col = mix(col, self.shade_cam(at.shirt_color, nrm), cov);
            }
        }
        // Long hair behind the neck.
        if id.hair_style == HairStyle::Long {
            let hx = x + at.yaw.sin() * 0.12;
            let half = id.head_width + id.hair_volume + 0.05 + 0.06 * smoothstep(0.0, -0.8, y);
            let bottom = -0.95;
            let d = (hx.abs() - half).max(bottom - y).max(y - 0.3);
            let cov = coverage(d, aa) * smoothstep(bottom - 0.02, bottom + 0.12, y).clamp(0.0, 1.0);
            if cov > 0.0 {
                let tex = self.hair_texture(hx * 3.0, y);
                let shade = 0.6 + 0.25 * (1.0 - (hx / half).powi(2)).max(0.0);
                col = mix(
                    col,
                    scale(
                        id.hair_color,
                        tex * shade * (at.ambient + at.light_strength * 0.6),
                    ),
                    cov,
                );
            }
        }
        // Neck.
        {
            let nw = id.neck_width;
            let dx = x - at.yaw.sin() * 0.03;
            let d = (dx.abs() - nw).max(y + 0.2 - 0.0).max(-1.1 - y);
            let cov = coverage(d, aa);
            if cov > 0.0 {
                let u = (dx / nw).clamp(-1.0, 1.0);
                let nrm = v3(u, 0.0, (1.0 - u * u).sqrt());
                let shadow = 1.0 - 0.35 * smoothstep(-0.75, -0.5, y);
                let mut c = self.shade_cam(scale(id.skin, 0.92 * shadow), nrm);
                // Neckline of the shirt.
                let neckline = -0.78 - 0.1 * (1.0 - u * u);
                let c_shirt = coverage(y - neckline, aa);
                c = mix(
                    c,
                    self.shade_cam(at.shirt_color, v3(u * 0.5, 0.3, 0.8).normalized()),
                    c_shirt,
                );
                col = mix(col, c, cov);
            }
        }
        col
    }

    /// The 3-D part: a ray in head space through head-frame point `(x, y)`.
    fn items_3d(&self, x: f32, y: f32, items: &mut Items) {
        let aa = self.aa;
        let id = self.id;
        let at = self.at;
        let o = self.o0 + self.ex * x + self.ey * y;
        let d = self.d;
        let mut head_cov = 0.0f32;

        // Head = cranium ∪ jaw.
        let hc = self.cranium.hit(o, aa);
        let hj = self.jaw.hit(o, aa);
        let mut head_t = f32::INFINITY;
        let mut head_n = v3(0.0, 0.0, 1.0);
        let head = match (hc, hj) {
            (Some(a), Some(b)) => {
                let (near, far, near_e, far_e) = if nearer(&a, &b) {
                    (a, b, &self.cranium, &self.jaw)
                } else {
                    (b, a, &self.jaw, &self.cranium)
                };
                let p = o + d * near.t;
                let mut nrm = near_e.normal(p);
                if far.inside {
                    let dt = (far.t - near.t).abs();
                    if dt < 0.08 {
                        let w = 0.5 * (1.0 - dt / 0.08).powi(2);
                        nrm = (nrm * (1.0 - w) + far_e.normal(o + d * far.t) * w).normalized();
                    }
                }
                Some((near.t, a.cov.max(b.cov), p, nrm))
            }
            (Some(a), None) => {
                let p = o + d * a.t;
                Some((a.t, a.cov, p, self.cranium.normal(p)))
            }
            (None, Some(b)) => {
                let p = o + d * b.t;
                Some((b.t, b.cov, p, self.jaw.normal(p)))
            }
            (None, None) => None,
        };
        if let Some((t, cov, p, nrm)) = head {
            head_t = t;
            head_cov = cov;
            head_n = nrm;
            let view = nrm.dot(d * -1.0).max(0.2);
            let aa_s = aa / view;
            let (mut albedo, spec) = self.face_albedo(p, aa_s);
            // Hair painted on the scalp.
            let q = p - CRANIUM_C;
            let hm = self.hair_mask(q, aa_s);
            if hm > 0.0 {
                let theta = q.x.atan2(q.z);
                let tex = self.hair_texture(theta, q.y);
                albedo = mix(albedo, scale(id.hair_color, tex * 0.85), hm);
            }
            items.push(t, self.shade(albedo, nrm, spec, 20), cov);
        }

        // Nose = bridge ∪ tip, blended into the face.
        let nb = self.nose_bridge.hit(o, aa);
        let nt = self.nose_tip.hit(o, aa);
        let nose = match (nb, nt) {
            (Some(a), Some(b)) => {
                if nearer(&b, &a) {
                    Some((b, &self.nose_tip, a.cov.max(b.cov)))
                } else {
                    Some((a, &self.nose_bridge, a.cov.max(b.cov)))
                }
            }
            (Some(a), None) => Some((a, &self.nose_bridge, a.cov)),
            (None, Some(b)) => Some((b, &self.nose_tip, b.cov)),
            (None, None) => None,
        };
        if let Some((h, e, cov)) = nose {
            let p = o + d * h.t;
            let ahead = head_t - h.t;
            let w = smoothstep(0.0, 0.03, ahead);
            if w > 0.0 {
                let nrm = (e.normal(p) * w + head_n * (1.0 - w)).normalized();
                let mut albedo = mul(id.skin, [1.02, 0.97, 0.96]);
                // Nostrils.
                let dy = p.y - (self.tip_y - 0.028);
                let dx = p.x.abs() - id.nose_width * 0.5;
                let dn = ((dx / (id.nose_width * 0.3)).powi(2) + (dy / 0.013).powi(2)).sqrt() - 1.0;
                if dn < 0.5 && nrm.y < 0.2 {
                    albedo = mix(albedo, [0.2, 0.08, 0.06], coverage(dn * 0.012, aa) * 0.85);
                }
                items.push(
                    h.t,
                    self.shade(albedo, nrm, 0.12, 24),
                    cov * smoothstep(0.0, 0.006, ahead),
                );
            }
        }

        // Ears.
        for e in &self.ears {
            if let Some(h) = e.hit(o, aa) {
                let p = o + d * h.t;
                let nrm = e.normal(p);
                items.push(h.t, self.ear_color(p, e, nrm), h.cov);
            }
        }

        // Hair shell: hair where the entry point is in the hair region, else the far
        // side (back hair seen around the head).
        if let Some(e) = &self.hair {
            if let Some(h) = e.hit(o, aa) {
                let pe = o + d * h.t;
                let qe = pe - CRANIUM_C;
                let me = self.hair_mask(qe, aa * 2.0);
                if me > 0.0 {
                    let nrm = e.normal(pe);
                    items.push(h.t, self.hair_color(qe, nrm, false), h.cov * me);
                }
                if head_cov < 0.999 {
                    let px_ = o + d * h.t_exit;
                    let qx = px_ - CRANIUM_C;
                    let mx = self.hair_mask(qx, aa * 2.0);
                    if mx > 0.0 {
                        let nrm = e.normal(px_) * -1.0;
                        items.push(h.t_exit, self.hair_color(qx, nrm, true), h.cov * mx);
                    }
                }
            }
        }

        // Glasses: rims and lenses on a plane in front of the eyes, arms along the sides.
        if let Some(g) = &at.glasses {
            if d.z.abs() > 0.15 {
                let t = (self.glasses_z - o.z) / d.z;
                let p = o + d * t;
                let ax = p.x.abs();
                let rw = id.eye_width * 1.55 * g.size;
                let rh = 0.06 * g.size;
                let cxr = id.eye_spacing + 0.008;
                let qx = ax - cxr;
                let qy = p.y - (self.eye_y - 0.008);
                let sdf = match g.shape {
                    GlassesShape::Round => {
                        let r = rw.min(rh * 1.25);
                        (qx * qx + qy * qy).sqrt() - r
                    }
                    GlassesShape::Rectangular => {
                        let rr = 0.02;
                        let kx = (qx.abs() - (rw - rr)).max(0.0);
                        let ky = (qy.abs() - (rh - rr)).max(0.0);
                        (kx * kx + ky * ky).sqrt()
                            + (qx.abs() - (rw - rr)).max(qy.abs() - (rh - rr)).min(0.0)
                            - rr
                    }
                };
                let view = (-d.z).abs().max(0.2);
                let aa_g = aa / view;
                let lens = coverage(sdf, aa_g);
                if lens > 0.0 {
                    let glint = 0.15 * smoothstep(0.3, 1.0, value_noise(7, (p.x + p.y) * 8.0, 0.5));
                    items.push(
                        t + 1e-4,
                        mix(g.lens_tint, [1.0, 1.0, 1.0], glint),
                        lens * (g.lens_opacity + glint),
                    );
                }
                let rim = coverage(sdf.abs() - g.frame_thickness, aa_g);
                let inner_x = cxr
                    - if g.shape == GlassesShape::Round {
                        rw.min(rh * 1.25)
                    } else {
                        rw
                    };
                let bridge = coverage(
                    (qy - 0.015).abs().max(ax - inner_x - 0.004) - g.frame_thickness * 0.8,
                    aa_g,
                );
                let outer_x = cxr
                    + if g.shape == GlassesShape::Round {
                        rw.min(rh * 1.25)
                    } else {
                        rw
                    };
                let end = coverage(
                    (qy - rh * 0.5).abs().max(
                        (ax - (outer_x + id.head_width + 0.01) * 0.5).abs()
                            - (id.head_width + 0.01 - outer_x) * 0.5,
                    ) - g.frame_thickness,
                    aa_g,
                );
                let frame = rim.max(bridge).max(end);
                if frame > 0.0 {
                    items.push(
                        t,
                        self.shade(g.frame_color, v3(0.0, 0.0, 1.0), 0.4, 30),
                        frame,
                    );
                }
            }
            // Arms in the planes x = ±(head width + 0.01).
            if d.x.abs() > 0.1 {
                for sgn in [-1.0f32, 1.0] {
                    let xa = sgn * (id.head_width * 0.92 + 0.01);
                    let t = (xa - o.x) / d.x;
                    let p = o + d * t;
                    let z0 = self.glasses_z;
                    let z1 = -0.1;
                    if p.z < z0 && p.z > z1 {
                        let yline = self.eye_y - 0.008 + 0.06 * g.size * 0.5 - (z0 - p.z) * 0.05;
                        let view = d.x.abs().max(0.2);
                        let c = coverage((p.y - yline).abs() - g.frame_thickness, aa / view);
                        if c > 0.0 {
                            items.push(t, self.shade(g.frame_color, v3(sgn, 0.0, 0.0), 0.3, 30), c);
                        }
                    }
                }
            }
        }
    }
}

/// Separable Gaussian blur of an `n × n` image in place.
fn blur(buf: &mut [Rgb], n: usize, sigma: f32) {
    let radius = (sigma * 3.0).ceil() as isize;
    if radius < 1 {
        return;
    }
    let weights: Vec<f32> = (-radius..=radius)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let mut tmp = vec![[0f32; 3]; n * n];
    let ni = n as isize;
    for y in 0..n {
        for x in 0..n {
            let mut acc = [0f32; 3];
            for (k, w) in weights.iter().enumerate() {
                let xx = (x as isize + k as isize - radius).clamp(0, ni - 1) as usize;
                let c = buf[y * n + xx];
                acc = [acc[0] + c[0] * w, acc[1] + c[1] * w, acc[2] + c[2] * w];
            }
            tmp[y * n + x] = acc;
        }
    }
    for y in 0..n {
        for x in 0..n {
            let mut acc = [0f32; 3];
            for (k, w) in weights.iter().enumerate() {
                let yy = (y as isize + k as isize - radius).clamp(0, ni - 1) as usize;
                let c = tmp[yy * n + x];
                acc = [acc[0] + c[0] * w, acc[1] + c[1] * w, acc[2] + c[2] * w];
            }
            buf[y * n + x] = acc;
        }
    }
}

/// Renders `identity` photographed with `attributes` as a `size × size` RGB image.
///
/// Deterministic: the same inputs give the same pixels on every machine and thread
/// count (the only randomness is hash noise keyed by the parameters' seeds). Any size
/// from 8 pixels up; features are anti-aliased analytically, so a 64-pixel face costs
/// about a millisecond.
pub fn render(identity: &Identity, attributes: &Attributes, size: u32) -> RgbImage {
    let size = size.max(1);
    let scene = Scene::new(identity, attributes, size);
    let n = size as usize;
    let mut buf = vec![[0f32; 3]; n * n];
    for py in 0..n {
        for px in 0..n {
            buf[py * n + px] = scene.pixel(px, py);
        }
    }
    let sigma = attributes.blur.max(0.0) * n as f32 / 64.0;
    if sigma > 0.15 {
        blur(&mut buf, n, sigma.min(n as f32 / 4.0));
    }
    let noise = attributes.noise.clamp(0.0, 1.0);
    let mut img = RgbImage::new(size, size);
    for (i, px) in img.pixels_mut().enumerate() {
        let mut c = buf[i];
        if noise > 0.0 {
            let h = hash_words(&[attributes.noise_seed, i as u64]);
            for (k, v) in c.iter_mut().enumerate() {
                // Sum of 4 uniforms: close enough to a Gaussian, unit variance.
                let bits = h.rotate_left(16 * k as u32);
                let s: f32 = (0..4)
                    .map(|j| ((bits >> (j * 4)) & 0xf) as f32 / 15.0 - 0.5)
                    .sum();
                *v += noise * s * 1.73;
            }
        }
        px.0 = [
            (clamp01(c[0]) * 255.0 + 0.5) as u8,
            (clamp01(c[1]) * 255.0 + 0.5) as u8,
            (clamp01(c[2]) * 255.0 + 0.5) as u8,
        ];
    }
    img
}
