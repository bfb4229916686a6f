//! Tiny vector maths, colours and hash noise for the renderer.

use std::ops::{Add, Mul, Sub};

use crate::rng::mix64;

/// A 3-vector.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct V3 {
    pub x: f32,
    pub y: f32,
    pub z: f32,
}

pub(crate) const fn v3(x: f32, y: f32, z: f32) -> V3 {
    V3 { x, y, z }
}

impl V3 {
    #[inline]
    pub fn dot(self, o: V3) -> f32 {
        self.x * o.x + self.y * o.y + self.z * o.z
    }
    #[inline]
    pub fn mul_elem(self, o: V3) -> V3 {
        v3(self.x * o.x, self.y * o.y, self.z * o.z)
    }
    #[inline]
    pub fn normalized(self) -> V3 {
        let l = self.dot(self).sqrt();
        if l > 0.0 {
            self * (1.0 / l)
        } else {
            v3(0.0, 0.0, 1.0)
        }
    }
}

impl Add for V3 {
    type Output = V3;
    #[inline]
    fn add(self, o: V3) -> V3 {
        v3(self.x + o.x, self.y + o.y, self.z + o.z)
    }
}

impl Sub for V3 {
    type Output = V3;
    #[inline]
    fn sub(self, o: V3) -> V3 {
        v3(self.x - o.x, self.y - o.y, self.z - o.z)
    }
}

impl Mul<f32> for V3 {
    type Output = V3;
    #[inline]
    fn mul(self, s: f32) -> V3 {
        v3(self.x * s, self.y * s, self.z * s)
    }
}

/// A 3×3 rotation matrix, rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct M3 {
    pub r: [V3; 3],
}

impl M3 {
    /// `Rz(roll) · Rx(pitch) · Ry(yaw)`: yaw turns the face towards +x, pitch up (+y),
    /// roll counter-clockwise on screen.
    pub fn rotation(yaw: f32, pitch: f32, roll: f32) -> M3 {
        let (sy, cy) = yaw.sin_cos();
        let (sp, cp) = pitch.sin_cos();
        let (sr, cr) = roll.sin_cos();
        let ry = M3 {
            r: [v3(cy, 0.0, sy), v3(0.0, 1.0, 0.0), v3(-sy, 0.0, cy)],
        };
        let rx = M3 {
            r: [v3(1.0, 0.0, 0.0), v3(0.0, cp, -sp), v3(0.0, sp, cp)],
        };
        let rz = M3 {
            r: [v3(cr, -sr, 0.0), v3(sr, cr, 0.0), v3(0.0, 0.0, 1.0)],
        };
        rz.mul(&rx.mul(&ry))
    }
    pub fn mul(&self, o: &M3) -> M3 {
        let col = |j: usize| match j {
            0 => v3(o.r[0].x, o.r[1].x, o.r[2].x),
            1 => v3(o.r[0].y, o.r[1].y, o.r[2].y),
            _ => v3(o.r[0].z, o.r[1].z, o.r[2].z),
        };
        let row = |i: usize| {
            v3(
                self.r[i].dot(col(0)),
                self.r[i].dot(col(1)),
                self.r[i].dot(col(2)),
            )
        };
        M3 {
            r: [row(0), row(1), row(2)],
        }
    }
    #[inline]
    pub fn apply(&self, v: V3) -> V3 {
        v3(self.r[0].dot(v), self.r[1].dot(v), self.r[2].dot(v))
    }
    pub fn transpose(&self) -> M3 {
        M3 {
            r: [
                v3(self.r[0].x, self.r[1].x, self.r[2].x),
                v3(self.r[0].y, self.r[1].y, self.r[2].y),
                v3(self.r[0].z, self.r[1].z, self.r[2].z),
            ],
        }
    }
}

/// An RGB colour, components in `[0, 1]` (more while lighting).
pub(crate) type Rgb = [f32; 3];

#[inline]
pub(crate) fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

#[inline]
pub(crate) fn scale(a: Rgb, s: f32) -> Rgb {
    [a[0] * s, a[1] * s, a[2] * s]
}

#[inline]
pub(crate) fn mul(a: Rgb, b: Rgb) -> Rgb {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2]]
}

#[inline]
pub(crate) fn clamp01(x: f32) -> f32 {
    x.clamp(0.0, 1.0)
}

#[inline]
pub(crate) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = clamp01((x - e0) / (e1 - e0));
    t * t * (3.0 - 2.0 * t)
}

/// Coverage of a shape at signed distance `d` (negative inside) for a pixel of size `aa`.
#[inline]
pub(crate) fn coverage(d: f32, aa: f32) -> f32 {
    clamp01(0.5 - d / aa)
}

#[inline]
fn lattice(seed: u64, x: i32, y: i32) -> f32 {
    let h = mix64(
        seed ^ ((x as u32 as u64) << 32 | y as u32 as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
}

/// Smooth value noise in `[0, 1]`, period-free, a pure function of `(seed, x, y)`.
#[inline]
pub(crate) fn value_noise(seed: u64, x: f32, y: f32) -> f32 {
    let (fx, fy) = (x.floor(), y.floor());
    let (ix, iy) = (fx as i32, fy as i32);
    let (tx, ty) = (x - fx, y - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let a = lattice(seed, ix, iy);
    let b = lattice(seed, ix + 1, iy);
    let c = lattice(seed, ix, iy + 1);
    let d = lattice(seed, ix + 1, iy + 1);
    let top = a + (b - a) * sx;
    let bot = c + (d - c) * sx;
    top + (bot - top) * sy
}

/// Two octaves of value noise.
#[inline]
pub(crate) fn fbm2(seed: u64, x: f32, y: f32) -> f32 {
    (value_noise(seed, x, y) * 2.0 + value_noise(seed ^ 0x5555, x * 2.03, y * 2.03)) / 3.0
}
