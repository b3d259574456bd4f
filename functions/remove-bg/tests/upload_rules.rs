//! The upload API and the cut-out worker hold images to one set of rules: whatever an
//! upload's `complete` step accepts, the worker decodes, and what one refuses the other
//! refuses. Checked at the limits, with real files in every accepted format.
//!
//! `complete` checks the bytes with `domain::inspect_image`; the worker decodes them with
//! `cutout::decode_image` under `remove_bg::rules::decode_limits(&RULES)`, as `Worker` does.
//! No database, no model: both checks happen before any inference.
//!
//! The largest accepted image is 10 000 × 5 000 (the longest side and the pixel cap at once),
//! built in each format's widest pixel type, so the decoder's allocation budget is tested
//! at its worst case (a 16-bit RGBA PNG: 400 MB decoded).

use std::io::Cursor;

use cutout::{ImageError, decode_image};
use domain::{ImageFormat, MediaError, inspect_image};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageBuffer, Rgb, Rgba};
use remove_bg::rules::{RULES, decode_limits};

/// A `width × height` image of one colour in `format`'s widest pixel type, encoded with
/// fast settings (a flat colour compresses far below the upload byte limit).
fn image_file(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let pixels = width as usize * height as usize;
    let mut out = Cursor::new(Vec::new());
    let written = match format {
        ImageFormat::Png => {
            let rgba16 = ImageBuffer::<Rgba<u16>, _>::from_raw(width, height, vec![0x9c40u16; pixels * 4]).unwrap();
            DynamicImage::ImageRgba16(rgba16)
                .write_with_encoder(PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub))
        }
        ImageFormat::Jpeg => {
            let rgb = ImageBuffer::<Rgb<u8>, _>::from_raw(width, height, vec![0x80u8; pixels * 3]).unwrap();
            DynamicImage::ImageRgb8(rgb).write_with_encoder(JpegEncoder::new_with_quality(&mut out, 50))
        }
        ImageFormat::Webp => {
            let rgba = ImageBuffer::<Rgba<u8>, _>::from_raw(width, height, vec![0x80u8; pixels * 4]).unwrap();
            DynamicImage::ImageRgba8(rgba).write_with_encoder(WebPEncoder::new_lossless(&mut out))
        }
    };
    written.unwrap_or_else(|e| panic!("encoding a {width}x{height} {format:?}: {e}"));
    out.into_inner()
}

/// What `complete` says about the file.
fn complete_check(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), MediaError> {
    assert!(bytes.len() as u64 <= RULES.max_bytes(), "the test file itself must be a valid upload");
    inspect_image(bytes, format).map(|facts| (facts.width, facts.height))
}

/// What the worker's decoder says about the file.
fn worker_decode(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    decode_image(bytes, &decode_limits(&RULES)).map(|img| (img.width(), img.height()))
}

#[test]
fn the_largest_image_complete_accepts_is_decoded_by_the_worker_in_every_accepted_format() {
    let (width, height) = (RULES.max_side(), (RULES.max_pixels() / u64::from(RULES.max_side())) as u32);
    assert_eq!(u64::from(width) * u64::from(height), RULES.max_pixels(), "both limits at once");
    for &format in RULES.formats() {
        let file = image_file(format, width, height);
        assert_eq!(complete_check(&file, format), Ok((width, height)), "{format:?}");
        assert_eq!(worker_decode(&file), Ok((width, height)), "{format:?}");
    }
}

#[test]
fn one_pixel_past_the_longest_side_is_refused_by_both() {
    let width = RULES.max_side() + 1;
    for &format in RULES.formats() {
        let file = image_file(format, width, 1);
        assert_eq!(complete_check(&file, format), Err(MediaError::TooLarge { width, height: 1 }), "{format:?}");
        match worker_decode(&file) {
            Err(ImageError::TooLarge { width: w, height: 1, limit }) if w == width => {
                assert!(limit.contains("side"), "{format:?}: {limit}")
            }
            other => panic!("{format:?}: {other:?}"),
        }
    }
}

#[test]
fn one_row_past_the_pixel_cap_is_refused_by_both() {
    let (width, height) = (RULES.max_side(), (RULES.max_pixels() / u64::from(RULES.max_side())) as u32 + 1);
    assert!(height <= RULES.max_side(), "only the pixel cap is exceeded");
    for &format in RULES.formats() {
        let file = image_file(format, width, height);
        assert_eq!(complete_check(&file, format), Err(MediaError::TooLarge { width, height }), "{format:?}");
        match worker_decode(&file) {
            Err(ImageError::TooLarge { limit, .. }) => assert!(limit.contains("pixels"), "{format:?}: {limit}"),
            other => panic!("{format:?}: {other:?}"),
        }
    }
}

#[test]
fn formats_complete_refuses_are_refused_by_the_worker_too() {
    let img = DynamicImage::ImageRgb8(ImageBuffer::from_pixel(16, 16, Rgb([200, 100, 50])));
    for format in [image::ImageFormat::Bmp, image::ImageFormat::Tiff, image::ImageFormat::Gif] {
        let mut file = Cursor::new(Vec::new());
        img.write_to(&mut file, format).unwrap();
        let file = file.into_inner();
        for declared in RULES.formats() {
            assert!(inspect_image(&file, *declared).is_err(), "{format:?} declared as {declared:?}");
        }
        assert!(
            matches!(worker_decode(&file), Err(ImageError::UnsupportedFormat { .. })),
            "{format:?}: {:?}",
            worker_decode(&file)
        );
    }
}
