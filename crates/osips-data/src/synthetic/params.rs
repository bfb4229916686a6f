//! Identity and attribute parameters of synthetic faces, drawn from seeds.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Hair styles.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HairStyle {
    /// No hair on top (a fringe of hair low at the back and sides).
    Bald,
    /// Very short hair, close to the scalp.
    Buzz,
    /// Short hair above the ears.
    Short,
    /// Medium hair covering the ears.
    Medium,
    /// Long hair down to the shoulders.
    Long,
    /// Thick, voluminous curly hair.
    Curly,
}

/// Who a synthetic person is: everything that stays the same across their photos.
/// Lengths are in head units (the head is about 1.1 units tall); colours are RGB in `[0, 1]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Identity {
    /// Half-width of the cranium.
    pub head_width: f32,
    /// Half-height of the cranium.
    pub head_height: f32,
    /// Width of the jaw relative to the cranium (0.75 narrow/pointed … 1.0 square).
    pub jaw_width: f32,
    /// Extra length of the chin.
    pub chin_length: f32,
    /// Skin colour.
    pub skin: [f32; 3],
    /// Redness of the cheeks (0 … 1).
    pub blush: f32,
    /// Half the distance between the eye centres.
    pub eye_spacing: f32,
    /// Height of the eyes relative to the head centre.
    pub eye_height: f32,
    /// Half-width of an eye.
    pub eye_width: f32,
    /// Half-height of an open eye.
    pub eye_openness: f32,
    /// Tilt of the eyes (outer corner up when positive), radians.
    pub eye_tilt: f32,
    /// Iris colour.
    pub iris: [f32; 3],
    /// Half-thickness of the eyebrows.
    pub brow_thickness: f32,
    /// Arch of the eyebrows (0 straight … 1 high arch).
    pub brow_arch: f32,
    /// Gap between eye and eyebrow.
    pub brow_gap: f32,
    /// Eyebrow colour.
    pub brow_color: [f32; 3],
    /// Length of the nose.
    pub nose_length: f32,
    /// Half-width of the nose tip.
    pub nose_width: f32,
    /// How far the nose protrudes.
    pub nose_depth: f32,
    /// Height of the mouth relative to the head centre (negative).
    pub mouth_height: f32,
    /// Half-width of the mouth.
    pub mouth_width: f32,
    /// Thickness of the upper lip.
    pub upper_lip: f32,
    /// Thickness of the lower lip.
    pub lower_lip: f32,
    /// Lip colour.
    pub lip_color: [f32; 3],
    /// Ear size (1 = average).
    pub ear_size: f32,
    /// How far the ears stick out.
    pub ear_protrusion: f32,
    /// Hair style.
    pub hair_style: HairStyle,
    /// Hair colour.
    pub hair_color: [f32; 3],
    /// Height of the front hairline (higher = larger forehead).
    pub hairline: f32,
    /// Thickness of the hair.
    pub hair_volume: f32,
    /// Bangs covering the forehead (0 … 1).
    pub fringe: f32,
    /// Side of the parting (−1 … 1).
    pub parting: f32,
    /// Beard density (0 none … 1 full).
    pub beard: f32,
    /// Moustache density (0 … 1).
    pub moustache: f32,
    /// A mole on the face: position in head units, or none.
    pub mole: Option<[f32; 2]>,
    /// Half-width of the neck.
    pub neck_width: f32,
    /// Seed of the skin and hair textures.
    pub texture_seed: u64,
}

fn palette(rng: &mut Rng, colors: &[[f32; 3]], jitter: f32) -> [f32; 3] {
    let c = rng.pick(colors);
    let j = rng.range(-jitter, jitter);
    [
        (c[0] * (1.0 + j) + rng.range(-jitter, jitter) * 0.5).clamp(0.0, 1.0),
        (c[1] * (1.0 + j) + rng.range(-jitter, jitter) * 0.5).clamp(0.0, 1.0),
        (c[2] * (1.0 + j) + rng.range(-jitter, jitter) * 0.5).clamp(0.0, 1.0),
    ]
}

fn lerp3(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

impl Identity {
    /// A person drawn from `seed`: every parameter varies independently, so nearby seeds
    /// give unrelated people. Use seeds from [`super::TRAIN_IDENTITY_SEEDS`] for training
    /// and [`super::EVAL_IDENTITY_SEEDS`] for the open-set evaluation.
    pub fn from_seed(seed: u64) -> Identity {
        let mut r = Rng::new(&[0x1d_e171, seed]);
        // Skin: a continuum from light to dark, with a warm/olive tint.
        let tone = r.unit();
        let light = [0.97, 0.82, 0.71];
        let mid = [0.80, 0.59, 0.43];
        let dark = [0.42, 0.27, 0.18];
        let mut skin = if tone < 0.55 {
            lerp3(light, mid, tone / 0.55)
        } else {
            lerp3(mid, dark, (tone - 0.55) / 0.45)
        };
        let tint = r.range(-0.04, 0.04);
        skin[0] = (skin[0] + tint).clamp(0.0, 1.0);
        skin[2] = (skin[2] - tint * 0.5).clamp(0.0, 1.0);

        let dark_skin = tone > 0.6;
        let hair_colors: &[[f32; 3]] = if dark_skin {
            &[
                [0.06, 0.05, 0.04],
                [0.12, 0.08, 0.06],
                [0.20, 0.13, 0.08],
                [0.55, 0.55, 0.55],
            ]
        } else {
            &[
                [0.07, 0.06, 0.05],
                [0.22, 0.14, 0.08],
                [0.40, 0.26, 0.14],
                [0.80, 0.64, 0.38],
                [0.92, 0.80, 0.55],
                [0.58, 0.24, 0.10],
                [0.60, 0.60, 0.60],
                [0.86, 0.86, 0.84],
            ]
        };
        let hair_color = palette(&mut r, hair_colors, 0.08);
        let iris_colors: &[[f32; 3]] = if dark_skin {
            &[[0.28, 0.16, 0.08], [0.14, 0.08, 0.05]]
        } else {
            &[
                [0.35, 0.20, 0.10],
                [0.16, 0.10, 0.06],
                [0.30, 0.50, 0.78],
                [0.30, 0.48, 0.30],
                [0.50, 0.40, 0.20],
                [0.50, 0.56, 0.62],
            ]
        };
        let iris = palette(&mut r, iris_colors, 0.1);
        let hair_style = r.pick(&[
            HairStyle::Bald,
            HairStyle::Buzz,
            HairStyle::Short,
            HairStyle::Short,
            HairStyle::Medium,
            HairStyle::Medium,
            HairStyle::Long,
            HairStyle::Long,
            HairStyle::Curly,
        ]);
        let hair_volume = match hair_style {
            HairStyle::Bald => 0.012,
            HairStyle::Buzz => 0.012,
            HairStyle::Short => r.range(0.03, 0.07),
            HairStyle::Medium => r.range(0.04, 0.08),
            HairStyle::Long => r.range(0.03, 0.07),
            HairStyle::Curly => r.range(0.10, 0.16),
        };
        let fringe = match hair_style {
            HairStyle::Short | HairStyle::Medium | HairStyle::Long if r.chance(0.35) => {
                r.range(0.4, 1.0)
            }
            _ => 0.0,
        };
        let beardable = r.chance(0.45);
        let beard = if beardable && r.chance(0.5) {
            r.range(0.3, 1.0)
        } else {
            0.0
        };
        let moustache = if beardable && (beard > 0.0 || r.chance(0.4)) {
            r.range(0.4, 1.0)
        } else {
            0.0
        };
        let brow_color = lerp3(hair_color, [0.05, 0.04, 0.03], r.range(0.2, 0.6));
        let lip_base = [skin[0] * 0.85 + 0.1, skin[1] * 0.55, skin[2] * 0.55];
        let lip_color = [
            (lip_base[0] + r.range(-0.05, 0.08)).clamp(0.0, 1.0),
            lip_base[1],
            (lip_base[2] + r.range(-0.02, 0.05)).clamp(0.0, 1.0),
        ];
        let mole = if r.chance(0.25) {
            let side = if r.chance(0.5) { -1.0 } else { 1.0 };
            Some([side * r.range(0.08, 0.22), r.range(-0.35, -0.05)])
        } else {
            None
        };
        Identity {
            head_width: r.range(0.36, 0.44),
            head_height: r.range(0.47, 0.53),
            jaw_width: r.range(0.74, 1.0),
            chin_length: r.range(-0.02, 0.07),
            skin,
            blush: r.range(0.0, 1.0),
            eye_spacing: r.range(0.145, 0.18),
            eye_height: r.range(-0.01, 0.05),
            eye_width: r.range(0.064, 0.084),
            eye_openness: r.range(0.026, 0.04),
            eye_tilt: r.range(-0.12, 0.22),
            iris,
            brow_thickness: r.range(0.008, 0.02),
            brow_arch: r.range(0.0, 1.0),
            brow_gap: r.range(0.055, 0.085),
            brow_color,
            nose_length: r.range(0.15, 0.22),
            nose_width: r.range(0.038, 0.06),
            nose_depth: r.range(0.05, 0.095),
            mouth_height: r.range(-0.33, -0.26),
            mouth_width: r.range(0.085, 0.12),
            upper_lip: r.range(0.012, 0.024),
            lower_lip: r.range(0.016, 0.032),
            lip_color,
            ear_size: r.range(0.85, 1.2),
            ear_protrusion: r.range(0.0, 0.04),
            hair_style,
            hair_color,
            hairline: r.range(0.26, 0.36),
            hair_volume,
            fringe,
            parting: r.range(-1.0, 1.0),
            beard,
            moustache,
            mole,
            neck_width: r.range(0.17, 0.24),
            texture_seed: r.next_u64(),
        }
    }
}

/// Background kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BackgroundPattern {
    /// One colour.
    Plain,
    /// A linear gradient between the two colours.
    Gradient,
    /// Soft blotches (an out-of-focus scene).
    Blotches,
    /// Soft vertical stripes (curtains, shelves).
    Stripes,
}

/// The background behind the person.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Background {
    /// Kind of background.
    pub pattern: BackgroundPattern,
    /// First colour.
    pub color_a: [f32; 3],
    /// Second colour.
    pub color_b: [f32; 3],
    /// Direction of gradients (radians) / phase of stripes.
    pub angle: f32,
    /// Spatial frequency of blotches and stripes.
    pub frequency: f32,
}

/// Shape of glasses frames.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GlassesShape {
    /// Round lenses.
    Round,
    /// Rectangular lenses with rounded corners.
    Rectangular,
}

/// A pair of glasses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Glasses {
    /// Frame shape.
    pub shape: GlassesShape,
    /// Frame colour.
    pub frame_color: [f32; 3],
    /// Frame half-thickness.
    pub frame_thickness: f32,
    /// Lens tint colour.
    pub lens_tint: [f32; 3],
    /// Lens opacity (≈ 0.1 clear glasses, ≈ 0.85 sunglasses).
    pub lens_opacity: f32,
    /// Lens size relative to the eye (1 = average).
    pub size: f32,
}

/// How one photo of a person was taken: pose, expression, lighting, background, framing,
/// accessories and camera. Angles are radians.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Attributes {
    /// Head turn, positive towards the viewer's right.
    pub yaw: f32,
    /// Head tilt up (positive) or down.
    pub pitch: f32,
    /// In-plane rotation, counter-clockwise.
    pub roll: f32,
    /// Smile (0 … 1).
    pub smile: f32,
    /// Mouth opening (0 … 1).
    pub mouth_open: f32,
    /// Eye closing (0 open … 1 closed).
    pub eyes_closed: f32,
    /// Eyebrows raised (1) or frowning (−1).
    pub brows_raised: f32,
    /// Gaze direction (x right, y up), each in −1 … 1.
    pub gaze: [f32; 2],
    /// Direction towards the key light (camera space, x right, y up, z to the viewer).
    pub light_dir: [f32; 3],
    /// Key light colour.
    pub light_color: [f32; 3],
    /// Key light strength.
    pub light_strength: f32,
    /// Ambient light strength.
    pub ambient: f32,
    /// The background.
    pub background: Background,
    /// Shirt colour.
    pub shirt_color: [f32; 3],
    /// Size of the head in the frame (1 = the usual aligned crop).
    pub scale: f32,
    /// Offset of the head in the frame, in half-image units.
    pub shift: [f32; 2],
    /// Glasses, if worn.
    pub glasses: Option<Glasses>,
    /// Camera noise standard deviation (in `[0, 1]` pixel units).
    pub noise: f32,
    /// Defocus blur, in pixels of a 64-pixel image (scales with the size).
    pub blur: f32,
    /// Seed of the camera noise.
    pub noise_seed: u64,
}

impl Attributes {
    /// A neutral frontal photo: no rotation, neutral expression, even frontal light, plain
    /// light-gray background, no glasses, no noise or blur. The target of frontalisation.
    pub fn frontal() -> Attributes {
        Attributes {
            yaw: 0.0,
            pitch: 0.0,
            roll: 0.0,
            smile: 0.0,
            mouth_open: 0.0,
            eyes_closed: 0.0,
            brows_raised: 0.0,
            gaze: [0.0, 0.0],
            light_dir: [0.0, 0.25, 0.97],
            light_color: [1.0, 1.0, 1.0],
            light_strength: 0.65,
            ambient: 0.5,
            background: Background {
                pattern: BackgroundPattern::Plain,
                color_a: [0.78, 0.78, 0.78],
                color_b: [0.78, 0.78, 0.78],
                angle: 0.0,
                frequency: 1.0,
            },
            shirt_color: [0.25, 0.3, 0.4],
            scale: 1.0,
            shift: [0.0, 0.0],
            glasses: None,
            noise: 0.0,
            blur: 0.0,
            noise_seed: 0,
        }
    }

    /// A random photo setting drawn from `seed` (any `u64`): yaw up to ±60°, pitch ±20°,
    /// roll ±12°, random expression, light, background, framing, glasses in one photo
    /// out of five, mild noise and blur.
    pub fn from_seed(seed: u64) -> Attributes {
        let mut r = Rng::new(&[0xa77_0b5, seed]);
        let deg = std::f32::consts::PI / 180.0;
        let yaw = if r.chance(0.15) {
            r.range(-60.0, 60.0)
        } else {
            r.range(-35.0, 35.0)
        } * deg;
        let pitch = r.range(-18.0, 18.0) * deg;
        let roll = r.range(-12.0, 12.0) * deg;
        let smile = if r.chance(0.5) {
            r.range(0.0, 0.2)
        } else {
            r.range(0.2, 1.0)
        };
        let mouth_open = if r.chance(0.3) {
            r.range(0.2, 1.0)
        } else {
            0.0
        };
        let eyes_closed = if r.chance(0.12) {
            r.range(0.6, 1.0)
        } else {
            r.range(0.0, 0.25)
        };
        let brows_raised = r.range(-1.0, 1.0) * if r.chance(0.5) { 1.0 } else { 0.3 };
        let gaze = [r.range(-0.8, 0.8), r.range(-0.5, 0.5)];
        let az = r.range(-1.3, 1.3);
        let el = r.range(-0.3, 0.9);
        let light_dir = [az.sin() * el.cos(), el.sin(), az.cos() * el.cos()];
        let warm = r.range(-0.15, 0.15);
        let light_color = [1.0 + warm, 1.0, 1.0 - warm];
        let light_strength = r.range(0.45, 0.95);
        let ambient = r.range(0.25, 0.55);
        let pattern = r.pick(&[
            BackgroundPattern::Plain,
            BackgroundPattern::Gradient,
            BackgroundPattern::Blotches,
            BackgroundPattern::Blotches,
            BackgroundPattern::Stripes,
        ]);
        let rand_color = |r: &mut Rng| {
            let base = r.range(0.1, 0.9);
            [
                (base + r.range(-0.25, 0.25)).clamp(0.0, 1.0),
                (base + r.range(-0.25, 0.25)).clamp(0.0, 1.0),
                (base + r.range(-0.25, 0.25)).clamp(0.0, 1.0),
            ]
        };
        let color_a = rand_color(&mut r);
        let color_b = rand_color(&mut r);
        let background = Background {
            pattern,
            color_a,
            color_b,
            angle: r.range(0.0, std::f32::consts::TAU),
            frequency: r.range(1.0, 4.0),
        };
        let shirt_color = rand_color(&mut r);
        let glasses = if r.chance(0.2) {
            let sun = r.chance(0.25);
            Some(Glasses {
                shape: r.pick(&[GlassesShape::Round, GlassesShape::Rectangular]),
                frame_color: r.pick(&[
                    [0.05, 0.05, 0.05],
                    [0.35, 0.2, 0.1],
                    [0.7, 0.6, 0.35],
                    [0.6, 0.6, 0.62],
                ]),
                frame_thickness: r.range(0.005, 0.011),
                lens_tint: if sun {
                    [0.05, 0.05, 0.06]
                } else {
                    [0.7, 0.8, 0.85]
                },
                lens_opacity: if sun {
                    r.range(0.75, 0.92)
                } else {
                    r.range(0.05, 0.15)
                },
                size: r.range(0.9, 1.15),
            })
        } else {
            None
        };
        Attributes {
            yaw,
            pitch,
            roll,
            smile,
            mouth_open,
            eyes_closed,
            brows_raised,
            gaze,
            light_dir,
            light_color,
            light_strength,
            ambient,
            background,
            shirt_color,
            scale: r.range(0.9, 1.1),
            shift: [r.range(-0.06, 0.06), r.range(-0.06, 0.06)],
            glasses,
            noise: if r.chance(0.5) {
                r.range(0.0, 0.035)
            } else {
                0.0
            },
            blur: if r.chance(0.3) {
                r.range(0.2, 0.9)
            } else {
                0.0
            },
            noise_seed: r.next_u64(),
        }
    }
}
