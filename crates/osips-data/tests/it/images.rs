//! Decoding: EXIF orientation, colour types, cropping, the tensor layout.

use std::io::Cursor;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, RgbImage, Rgba};
use osips_data::{chw_to_image, decode_image, image_to_chw, load_face, load_face_bytes};

use crate::testutil::photos;

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A 40×20 JPEG (left half red, right half blue) with an EXIF orientation tag.
fn jpeg_with_orientation(orientation: u16) -> Vec<u8> {
    let img = RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            Rgb([230, 20, 20])
        } else {
            Rgb([20, 20, 230])
        }
    });
    let jpeg = encode(DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
    // APP1 "Exif\0\0" + little-endian TIFF with one IFD entry: 0x0112 SHORT 1 = orientation.
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = vec![0xff, 0xd8, 0xff, 0xe1];
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    let plain = decode_image(&jpeg_with_orientation(1), "o1").unwrap();
    assert_eq!(plain.dimensions(), (40, 20));
    // 6 = rotate 90° clockwise: the red left half ends up on top.
    let rotated = decode_image(&jpeg_with_orientation(6), "o6").unwrap();
    assert_eq!(rotated.dimensions(), (20, 40));
    let top = rotated.get_pixel(10, 5).0;
    let bottom = rotated.get_pixel(10, 35).0;
    assert!(top[0] > 150 && top[2] < 100, "{top:?}");
    assert!(bottom[2] > 150 && bottom[0] < 100, "{bottom:?}");
    // 3 = rotate 180°: red on the right.
    let flipped = decode_image(&jpeg_with_orientation(3), "o3").unwrap();
    assert!(flipped.get_pixel(35, 10).0[0] > 150);
}

#[test]
fn gray_rgba_and_16_bit_images_are_converted() {
    let gray = ImageBuffer::from_pixel(8, 8, Luma([100u8]));
    let img = decode_image(
        &encode(DynamicImage::ImageLuma8(gray.clone()), ImageFormat::Png),
        "g",
    )
    .unwrap();
    assert_eq!(img.get_pixel(3, 3).0, [100, 100, 100]);
    let img = decode_image(
        &encode(DynamicImage::ImageLuma8(gray), ImageFormat::Jpeg),
        "gj",
    )
    .unwrap();
    assert!(img.get_pixel(3, 3).0.iter().all(|&v| v.abs_diff(100) < 3));
    let la = ImageBuffer::from_pixel(8, 8, LumaA([50u8, 128]));
    let img = decode_image(
        &encode(DynamicImage::ImageLumaA8(la), ImageFormat::Png),
        "la",
    )
    .unwrap();
    assert_eq!(img.get_pixel(0, 0).0, [50, 50, 50]);
    let rgba = ImageBuffer::from_pixel(8, 8, Rgba([10u8, 20, 30, 0]));
    let img = decode_image(
        &encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
        "rgba",
    )
    .unwrap();
    assert_eq!(img.get_pixel(0, 0).0, [10, 20, 30]);
    let deep = ImageBuffer::from_pixel(8, 8, Rgb([65535u16, 32896, 0]));
    let img = decode_image(
        &encode(DynamicImage::ImageRgb16(deep), ImageFormat::Png),
        "16",
    )
    .unwrap();
    assert_eq!(img.get_pixel(0, 0).0, [255, 128, 0]);
    let gif = encode(
        DynamicImage::ImageRgba8(ImageBuffer::from_pixel(4, 4, Rgba([255, 0, 0, 255]))),
        ImageFormat::Gif,
    );
    assert_eq!(
        decode_image(&gif, "gif").unwrap().get_pixel(1, 1).0,
        [255, 0, 0]
    );
}

#[test]
fn load_face_crops_resizes_and_warns_on_non_square_input() {
    let dir = tempfile::tempdir().unwrap();
    let photo = &photos()[0];
    let path = dir.path().join("face.jpg");
    std::fs::write(&path, &photo.jpeg).unwrap();
    let face = load_face(&path, 64).unwrap();
    assert_eq!(face.image.dimensions(), (64, 64));
    assert_eq!(face.original_size, (150, 150));
    assert!(face.warning.is_none());
    assert!(!face.was_cropped());

    let wide = load_face_bytes(&jpeg_with_orientation(1), 32, "wide.jpg").unwrap();
    assert!(wide.was_cropped());
    let w = wide.warning.unwrap();
    assert!(
        w.contains("40×20") && w.contains("not square") && w.contains("upscaled"),
        "{w}"
    );

    let e = load_face(&dir.path().join("missing.jpg"), 64).unwrap_err();
    assert!(e.to_string().contains("missing.jpg"), "{e}");
}

#[test]
fn real_photo_survives_the_chw_round_trip() {
    let img = decode_image(&photos()[1].jpeg, "p").unwrap();
    let chw = image_to_chw(&img);
    assert_eq!(chw.len(), 3 * 150 * 150);
    assert!(chw.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert_eq!(chw_to_image(&chw, 150), img);
}
