//! The storefront's upload rules against this decoder: whatever an upload's `complete` step
//! accepts, the `remove-bg` worker decodes, and what one refuses the other refuses. Checked
//! at the limits, with real files in every accepted format.
//!
//! `complete` checks the bytes with `domain::inspect_image`. The worker decodes them with
//! [`decode_image`] under `DecodeLimits::admitting` of `domain::ImageRules::UPLOADS` —
//! `remove_bg::rules::decode_limits`, whose own test pins it to exactly [`worker_limits`]
//! below. The files are built here, where this crate's opt-level applies: encoding 50
//! megapixels unoptimised would take most of a minute.
//!
//! The largest accepted image is 10 000 × 5 000 (the longest side and the pixel cap at
//! once), built in each format's widest pixel type, so the allocation budget is tested at
//! its worst case: a 16-bit RGBA PNG, 400 MB decoded.

use std::io::Cursor;

use cutout::{decode_image, DecodeLimits, ImageError, InputFormat};
use domain::{inspect_image, ImageFormat, ImageRules, MediaError};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, GrayImage, ImageBuffer, Rgb, RgbImage, Rgba, RgbaImage};

const RULES: ImageRules = ImageRules::UPLOADS;

/// The worker's decode limits: the rules' side, pixel cap and formats, nothing else.
fn worker_limits() -> DecodeLimits {
    let formats = RULES
        .formats()
        .iter()
        .map(|f| match f {
            ImageFormat::Png => InputFormat::Png,
            ImageFormat::Jpeg => InputFormat::Jpeg,
            ImageFormat::Webp => InputFormat::WebP,
        })
        .collect();
    DecodeLimits::admitting(RULES.max_side(), RULES.max_pixels(), formats)
}

/// Which pixels a test file holds.
#[derive(Clone, Copy)]
enum Pixels {
    /// The widest the format stores (16-bit RGBA PNG, RGB JPEG, RGBA WebP): what the
    /// decoder's allocation budget must hold.
    Widest,
    /// 8-bit grey: the cheapest to build, for files that must be refused from the header.
    Grey,
}

/// A `width × height` image of one colour in `format`, encoded with fast settings (a flat
/// colour compresses far below the upload byte limit).
fn image_file(format: ImageFormat, width: u32, height: u32, pixels: Pixels) -> Vec<u8> {
    let n = width as usize * height as usize;
    let img = match (format, pixels) {
        (_, Pixels::Grey) => DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, vec![0x80; n]).unwrap()),
        (ImageFormat::Png, Pixels::Widest) => DynamicImage::ImageRgba16(
            ImageBuffer::<Rgba<u16>, _>::from_raw(width, height, vec![0x9c40; n * 4]).unwrap(),
        ),
        (ImageFormat::Jpeg, Pixels::Widest) => {
            DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, vec![0x80; n * 3]).unwrap())
        }
        (ImageFormat::Webp, Pixels::Widest) => {
            DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, vec![0x80; n * 4]).unwrap())
        }
    };
    let mut out = Cursor::new(Vec::new());
    let written = match format {
        ImageFormat::Png => {
            img.write_with_encoder(PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub))
        }
        ImageFormat::Jpeg => img.write_with_encoder(JpegEncoder::new_with_quality(&mut out, 50)),
        ImageFormat::Webp => img.write_with_encoder(WebPEncoder::new_lossless(&mut out)),
    };
    written.unwrap_or_else(|e| panic!("encoding a {width}x{height} {format:?}: {e}"));
    out.into_inner()
}

/// What `complete` says about the file.
fn complete_check(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), MediaError> {
    assert!(bytes.len() as u64 <= RULES.max_bytes(), "the test file itself must be within the byte limit");
    inspect_image(bytes, format).map(|facts| (facts.width, facts.height))
}

/// What the worker's decoder says about the file.
fn worker_decode(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    decode_image(bytes, &worker_limits()).map(|img| (img.width(), img.height()))
}

/// The largest image the rules accept: the longest side, and as many rows as the pixel cap
/// allows.
fn largest() -> (u32, u32) {
    let height = u32::try_from(RULES.max_pixels() / u64::from(RULES.max_side())).unwrap();
    (RULES.max_side(), height.min(RULES.max_side()))
}

#[test]
fn the_largest_image_complete_accepts_is_10000_by_5000() {
    assert_eq!(largest(), (10_000, 5_000));
    assert_eq!(u64::from(largest().0) * u64::from(largest().1), RULES.max_pixels(), "both limits at once");
}

#[test]
fn the_largest_image_complete_accepts_is_decoded_by_the_worker_in_every_accepted_format() {
    let (width, height) = largest();
    for &format in RULES.formats() {
        let file = image_file(format, width, height, Pixels::Widest);
        assert_eq!(complete_check(&file, format), Ok((width, height)), "{format:?}");
        assert_eq!(worker_decode(&file), Ok((width, height)), "{format:?}");
    }
}

#[test]
fn one_pixel_past_the_longest_side_is_refused_by_both() {
    let width = RULES.max_side() + 1;
    for &format in RULES.formats() {
        let file = image_file(format, width, 1, Pixels::Grey);
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
    let (width, height) = (largest().0, largest().1 + 1);
    assert!(height <= RULES.max_side(), "only the pixel cap is exceeded");
    for &format in RULES.formats() {
        let file = image_file(format, width, height, Pixels::Grey);
        assert_eq!(complete_check(&file, format), Err(MediaError::TooLarge { width, height }), "{format:?}");
        match worker_decode(&file) {
            Err(ImageError::TooLarge { limit, .. }) => assert!(limit.contains("pixels"), "{format:?}: {limit}"),
            other => panic!("{format:?}: {other:?}"),
        }
    }
}

#[test]
fn formats_complete_refuses_are_refused_by_the_worker_though_the_engine_could_decode_them() {
    let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 16, Rgb([200, 100, 50])));
    for format in [image::ImageFormat::Bmp, image::ImageFormat::Tiff, image::ImageFormat::Gif] {
        let mut file = Cursor::new(Vec::new());
        img.write_to(&mut file, format).unwrap();
        let file = file.into_inner();
        for &declared in RULES.formats() {
            assert!(inspect_image(&file, declared).is_err(), "{format:?} declared as {declared:?}");
        }
        assert!(decode_image(&file, &DecodeLimits::default()).is_ok(), "{format:?}: the CLI's default decodes it");
        match worker_decode(&file) {
            Err(ImageError::UnsupportedFormat { accepted, .. }) => assert_eq!(accepted.to_string(), "PNG, JPEG, WebP"),
            other => panic!("{format:?}: {other:?}"),
        }
    }
}
