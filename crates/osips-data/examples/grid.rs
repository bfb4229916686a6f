//! Writes `docs/synthetic-grid.png`: synthetic (evaluation) identities as rows, attribute
//! settings as columns: six identities × 12 settings at 64 px on top, two identities × 7
//! settings at 128 px below (colours posterised to 32 levels with a 2×2 ordered dither to keep the file small).
//!
//! ```text
//! cargo run -p osips-data --release --example grid [-- OUTPUT.png]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{GenericImage, RgbImage};
use osips_data::synthetic::{
    eval_identity_seed, render, Attributes, Background, BackgroundPattern, Glasses, GlassesShape,
    Identity,
};

/// The attribute columns: name and settings.
fn columns() -> Vec<(&'static str, Attributes)> {
    let deg = std::f32::consts::PI / 180.0;
    let f = Attributes::frontal;
    let with = |g: &dyn Fn(&mut Attributes)| {
        let mut a = f();
        g(&mut a);
        a
    };
    vec![
        ("frontal", f()),
        ("yaw -60", with(&|a| a.yaw = -60.0 * deg)),
        ("yaw +35", with(&|a| a.yaw = 35.0 * deg)),
        (
            "pitch/roll",
            with(&|a| {
                a.pitch = 18.0 * deg;
                a.roll = 12.0 * deg;
            }),
        ),
        ("smile", with(&|a| a.smile = 1.0)),
        (
            "mouth open",
            with(&|a| {
                a.mouth_open = 1.0;
                a.brows_raised = 1.0;
            }),
        ),
        (
            "eyes closed",
            with(&|a| {
                a.eyes_closed = 1.0;
                a.brows_raised = -1.0;
            }),
        ),
        (
            "side light",
            with(&|a| {
                a.light_dir = [-0.9, 0.3, 0.3];
                a.light_color = [1.15, 0.95, 0.8];
                a.light_strength = 0.95;
                a.ambient = 0.25;
            }),
        ),
        (
            "background",
            with(&|a| {
                a.background = Background {
                    pattern: BackgroundPattern::Blotches,
                    color_a: [0.2, 0.35, 0.25],
                    color_b: [0.85, 0.8, 0.6],
                    angle: 0.0,
                    frequency: 2.5,
                };
                a.scale = 0.9;
                a.shift = [0.08, -0.04];
            }),
        ),
        (
            "glasses",
            with(&|a| {
                a.glasses = Some(Glasses {
                    shape: GlassesShape::Rectangular,
                    frame_color: [0.05, 0.05, 0.05],
                    frame_thickness: 0.008,
                    lens_tint: [0.7, 0.8, 0.85],
                    lens_opacity: 0.1,
                    size: 1.0,
                });
                a.yaw = 20.0 * deg;
            }),
        ),
        (
            "sunglasses",
            with(&|a| {
                a.glasses = Some(Glasses {
                    shape: GlassesShape::Round,
                    frame_color: [0.7, 0.6, 0.35],
                    frame_thickness: 0.006,
                    lens_tint: [0.05, 0.05, 0.06],
                    lens_opacity: 0.85,
                    size: 1.1,
                });
            }),
        ),
        ("random", {
            let mut a = Attributes::from_seed(11);
            a.noise = 0.0;
            a
        }),
    ]
}

fn grid(
    identities: &[Identity],
    cols: &[(&str, Attributes)],
    size: u32,
) -> Result<RgbImage, image::ImageError> {
    let mut out = RgbImage::new(size * cols.len() as u32, size * identities.len() as u32);
    for (r, id) in identities.iter().enumerate() {
        for (c, (_, at)) in cols.iter().enumerate() {
            let img = render(id, at, size);
            out.copy_from(&img, c as u32 * size, r as u32 * size)?;
        }
    }
    Ok(out)
}

fn main() -> ExitCode {
    let out_path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/synthetic-grid.png")
        });
    // Evaluation identities: the grid shows people no model was trained on.
    let ids64: Vec<Identity> = (0..6)
        .map(|k| Identity::from_seed(eval_identity_seed(k)))
        .collect();
    let ids128: Vec<Identity> = ids64[..2].to_vec();
    let cols = columns();
    let result = (|| -> Result<(), Box<dyn std::error::Error>> {
        let small = grid(&ids64, &cols, 64)?;
        // At 128 px a subset of the columns keeps the PNG within its size budget.
        let keep = [
            "frontal",
            "yaw -60",
            "smile",
            "mouth open",
            "side light",
            "glasses",
            "random",
        ];
        let cols128: Vec<(&str, Attributes)> = cols
            .iter()
            .filter(|c| keep.contains(&c.0))
            .cloned()
            .collect();
        let large = grid(&ids128, &cols128, 128)?;
        let mut out = RgbImage::new(
            large.width().max(small.width()),
            small.height() + large.height(),
        );
        out.copy_from(&small, 0, 0)?;
        out.copy_from(&large, 0, small.height())?;
        // Keep the PNG small (the docs budget is 300 KB): 32 levels per channel.
        const BAYER: [[u8; 2]; 2] = [[0, 4], [6, 2]];
        for (x, y, p) in out.enumerate_pixels_mut() {
            let t = BAYER[(y % 2) as usize][(x % 2) as usize];
            for v in p.0.iter_mut() {
                let d = v.saturating_add(t);
                *v = (d & 0xf8) | (d >> 5);
            }
        }
        if let Some(dir) = out_path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::io::BufWriter::new(std::fs::File::create(&out_path)?);
        let encoder =
            PngEncoder::new_with_quality(file, CompressionType::Best, PngFilter::Adaptive);
        out.write_with_encoder(encoder)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
            println!(
                "wrote {} (columns: {})",
                out_path.display(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
