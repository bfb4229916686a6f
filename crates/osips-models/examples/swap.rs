//! Swap two faces with a trained checkpoint, using nothing but `osips-models` and `image`:
//!
//! ```sh
//! cargo run --release -p osips-models --example swap -- \
//!     runs/00000-tiny/checkpoints/step-00001000 who.jpg how.jpg out.png
//! ```
//!
//! The identity comes from the first photo, pose, expression, light and background from
//! the second. Photos are centre-cropped to a square and resized to the model's size.

use candle_core::{Device, Tensor};
use image::{imageops::FilterType, DynamicImage, RgbImage};
use osips_models::Synthesizer;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A photo as a `[1, 3, size, size]` tensor in [-1, 1].
fn load(path: &str, size: u32) -> Result<Tensor> {
    let img = image::open(path).map_err(|e| format!("{path}: {e}"))?;
    let side = img.width().min(img.height());
    let square = img.crop_imm(
        (img.width() - side) / 2,
        (img.height() - side) / 2,
        side,
        side,
    );
    let rgb = square
        .resize_exact(size, size, FilterType::Lanczos3)
        .to_rgb8();
    let (s, plane) = (size as usize, (size * size) as usize);
    let mut chw = vec![0f32; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = f32::from(p[c]) / 127.5 - 1.0;
        }
    }
    Ok(Tensor::from_vec(chw, (1, 3, s, s), &Device::Cpu)?)
}

fn save(image: &Tensor, path: &str) -> Result<()> {
    let (_, _, h, w) = image.dims4()?;
    let values = image.squeeze(0)?.flatten_all()?.to_vec1::<f32>()?;
    let plane = h * w;
    let rgb = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let v = |c: usize| {
            ((values[c * plane + i] + 1.0) * 127.5)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        image::Rgb([v(0), v(1), v(2)])
    });
    DynamicImage::ImageRgb8(rgb)
        .save(path)
        .map_err(|e| format!("{path}: {e}").into())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [checkpoint, who, how, out] = args.as_slice() else {
        return Err("usage: swap CHECKPOINT_DIR IDENTITY_IMAGE ATTRIBUTE_IMAGE OUT.png".into());
    };
    let model = Synthesizer::load(checkpoint)?;
    let size = model.image_size() as u32;
    let swapped = model.swap(&load(who, size)?, &load(how, size)?)?;
    save(&swapped, out)?;
    println!("wrote {out} (checkpoint step {})", model.step());
    Ok(())
}
