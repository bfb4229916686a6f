//! Image decoding, cropping, resizing and the tensor layout conversions.

use std::io::Cursor;
use std::path::Path;

use image::{imageops, DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::DataError;

/// Converts an RGB image to a CHW `f32` buffer with values in `[-1, 1]`.
///
/// # Shapes
/// `img`: `height × width` pixels → `3 × height × width` values, channel-major (R plane,
/// then G, then B), rows top to bottom.
pub fn image_to_chw(img: &RgbImage) -> Vec<f32> {
    let mut out = vec![0.0f32; 3 * img.width() as usize * img.height() as usize];
    // The buffer is sized for the image: this cannot fail.
    let _ = write_chw(img, false, &mut out);
    out
}

/// Writes `img` as CHW `[-1, 1]` into `out` (of length at least `3·w·h`), mirrored
/// left–right when `flip` is set. Values: `v / 127.5 − 1`.
pub fn write_chw(img: &RgbImage, flip: bool, out: &mut [f32]) -> Result<(), DataError> {
    let w = img.width() as usize;
    let h = img.height() as usize;
    let plane = w * h;
    if out.len() < 3 * plane {
        return Err(DataError::Shape(format!(
            "a {w}×{h} image needs {} values, the buffer holds {}",
            3 * plane,
            out.len()
        )));
    }
    let raw = img.as_raw();
    for y in 0..h {
        for x in 0..w {
            let sx = if flip { w - 1 - x } else { x };
            let src = 3 * (y * w + sx);
            let dst = y * w + x;
            for c in 0..3 {
                out[c * plane + dst] = f32::from(raw[src + c]) * (1.0 / 127.5) - 1.0;
            }
        }
    }
    Ok(())
}

/// The inverse of [`image_to_chw`] for a square image: values are clamped to `[-1, 1]`
/// and rounded to the nearest 8-bit level.
///
/// # Shapes
/// `chw`: `3 × size × size` values. A buffer of another length gives a black image of
/// `size × size` with as many pixels filled as the buffer holds (use
/// [`try_chw_to_image`] to get an error instead).
pub fn chw_to_image(chw: &[f32], size: u32) -> RgbImage {
    let s = size as usize;
    let plane = s * s;
    let mut img = RgbImage::new(size, size);
    for (i, px) in img.pixels_mut().enumerate() {
        for c in 0..3 {
            let v = chw.get(c * plane + i).copied().unwrap_or(-1.0);
            let v = if v.is_nan() { -1.0 } else { v.clamp(-1.0, 1.0) };
            px.0[c] = ((v + 1.0) * 127.5).round() as u8;
        }
    }
    img
}

/// Like [`chw_to_image`] but checks that `chw` holds exactly `3·size·size` values.
pub fn try_chw_to_image(chw: &[f32], size: u32) -> Result<RgbImage, DataError> {
    let want = 3 * size as usize * size as usize;
    if chw.len() != want {
        return Err(DataError::Shape(format!(
            "expected 3×{size}×{size} = {want} values, got {}",
            chw.len()
        )));
    }
    Ok(chw_to_image(chw, size))
}

/// The largest image side [`decode_image`] accepts (face crops are far smaller).
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most bytes [`decode_image`] lets a decoder allocate for one image (its pixels and
/// its own buffers).
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// Decodes any supported image (JPEG, PNG, GIF) from memory to 8-bit RGB, refusing one
/// whose header claims more than [`MAX_IMAGE_SIDE`] a side or [`MAX_DECODED_BYTES`].
///
/// The EXIF orientation is applied; grayscale, gray+alpha, RGBA (alpha dropped), CMYK
/// JPEGs and 16-bit images are converted. `location` names the input in errors.
pub fn decode_image(bytes: &[u8], location: &str) -> Result<RgbImage, DataError> {
    let err = |message: String| DataError::Decode {
        location: location.to_string(),
        message,
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(e.to_string()))?;
    if reader.format().is_none() {
        return Err(err("not a recognised image format".to_string()));
    }
    let mut decoder = reader.into_decoder().map_err(|e| err(e.to_string()))?;
    // The header's claimed size is checked before anything is allocated: `from_decoder`
    // allocates `total_bytes()` at once, so a 48-byte GIF claiming 28 000 × 28 000 pixels
    // would otherwise take gigabytes (found by `fuzz/`, kept in fuzz/regressions/).
    let (w, h) = decoder.dimensions();
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(err(format!(
            "image claims {w}×{h} pixels ({} MiB decoded); the limit is {MAX_IMAGE_SIDE} \
             pixels a side and {} MiB",
            decoder.total_bytes() >> 20,
            MAX_DECODED_BYTES >> 20
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    decoder.set_limits(limits).map_err(|e| err(e.to_string()))?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| err(e.to_string()))?;
    img.apply_orientation(orientation);
    if img.width() == 0 || img.height() == 0 {
        return Err(err("image has zero size".to_string()));
    }
    Ok(img.into_rgb8())
}

/// Crops the largest centred square out of `img` and resizes it to `size × size` with a
/// triangle (bilinear, area-correct when shrinking) filter. A no-op copy when `img` is
/// already `size × size`.
pub fn center_crop_resize(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    if w == size && h == size {
        return img.clone();
    }
    let x0 = (w - side) / 2;
    let y0 = (h - side) / 2;
    let view = imageops::crop_imm(img, x0, y0, side, side);
    if side == size {
        return view.to_image();
    }
    imageops::resize(&*view, size, size, imageops::FilterType::Triangle)
}

/// A face loaded for inference or a demo by [`load_face`] / [`load_face_bytes`].
#[derive(Clone, Debug)]
pub struct LoadedFace {
    /// The face, `size × size` RGB.
    pub image: RgbImage,
    /// Width and height of the decoded input (after EXIF orientation).
    pub original_size: (u32, u32),
    /// Set when the input was not square (it was centre-cropped) or was upscaled: real
    /// photos should be aligned square face crops, and the CLI shows this text.
    pub warning: Option<String>,
}

impl LoadedFace {
    /// True when the input was not square and had to be centre-cropped.
    pub fn was_cropped(&self) -> bool {
        self.original_size.0 != self.original_size.1
    }
}

/// Decodes an image file, applies EXIF orientation, centre-crops it to a square and
/// resizes it to `size`; see [`LoadedFace::warning`].
pub fn load_face(path: &Path, size: u32) -> Result<LoadedFace, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    load_face_bytes(&bytes, size, &path.display().to_string())
}

/// [`load_face`] for an image already in memory; `location` names it in errors.
pub fn load_face_bytes(bytes: &[u8], size: u32, location: &str) -> Result<LoadedFace, DataError> {
    if size == 0 {
        return Err(DataError::Config("face size must be positive".to_string()));
    }
    let img = decode_image(bytes, location)?;
    let (w, h) = img.dimensions();
    let mut notes = Vec::new();
    if w != h {
        notes.push(format!(
            "{location}: image is {w}×{h}, not square: centre-cropped to {s}×{s}; \
             expected an aligned square face crop",
            s = w.min(h)
        ));
    }
    if w.min(h) < size {
        notes.push(format!(
            "{location}: image side {} is smaller than {size}: upscaled",
            w.min(h)
        ));
    }
    Ok(LoadedFace {
        image: center_crop_resize(&img, size),
        original_size: (w, h),
        warning: if notes.is_empty() {
            None
        } else {
            Some(notes.join("; "))
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_round_trip_is_exact() {
        let mut img = RgbImage::new(5, 5);
        for (i, p) in img.pixels_mut().enumerate() {
            p.0 = [(i * 10) as u8, (255 - i * 7) as u8, (i * 3) as u8];
        }
        let chw = image_to_chw(&img);
        assert_eq!(chw.len(), 75);
        assert!(chw.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(chw_to_image(&chw, 5), img);
        // R plane first.
        assert_eq!(chw[1], 10.0 / 127.5 - 1.0);
    }

    #[test]
    fn chw_to_image_clamps_and_survives_bad_lengths() {
        let img = chw_to_image(&[2.0, -3.0, f32::NAN], 1);
        assert_eq!(img.get_pixel(0, 0).0, [255, 0, 0]);
        let img = chw_to_image(&[], 2);
        assert_eq!(img.dimensions(), (2, 2));
        assert!(try_chw_to_image(&[0.0; 11], 2).is_err());
    }

    #[test]
    fn flip_mirrors_columns() {
        let mut img = RgbImage::new(3, 1);
        img.put_pixel(0, 0, image::Rgb([255, 255, 255]));
        let mut out = vec![0.0; 9];
        write_chw(&img, true, &mut out).unwrap();
        assert!(write_chw(&img, true, &mut [0.0; 8]).is_err());
        assert_eq!(out[2], 1.0);
        assert_eq!(out[0], -1.0);
    }

    #[test]
    fn crop_resize_takes_the_centre() {
        let mut img = RgbImage::new(30, 10);
        for y in 0..10 {
            for x in 10..20 {
                img.put_pixel(x, y, image::Rgb([200, 0, 0]));
            }
        }
        let out = center_crop_resize(&img, 4);
        assert_eq!(out.dimensions(), (4, 4));
        assert!(out.pixels().all(|p| p.0 == [200, 0, 0]));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let e = decode_image(b"definitely not an image", "x.jpg");
        assert!(matches!(e, Err(DataError::Decode { .. })));
        let e = load_face_bytes(&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10], 8, "t.jpg");
        assert!(e.is_err());
    }
}
