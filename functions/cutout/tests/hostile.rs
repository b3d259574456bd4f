//! Hostile and broken uploads: what the decoder must refuse, how fast, and with which error.
//!
//! Each test states one rule of `cutout::decode_image` / `cutout::probe`. None of them needs
//! the model: decoding is refused before any inference would start.

use std::io::Cursor;
use std::time::{Duration, Instant};

use cutout::{decode_image, probe, DecodeLimits, ImageError, InputFormat, InputFormats};
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

// ---------------------------------------------------------------------------------------
// Building blocks: hand-made files.
// ---------------------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A syntactically valid PNG whose header claims `width × height` RGB pixels, followed by a
/// tiny IDAT — the classic decompression-bomb shape.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, no filter, no interlace
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A baseline greyscale JPEG claiming `width × height` (SOF0), with minimal Huffman tables,
/// a start of scan and a few bytes of scan data.
fn jpeg_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8]; // SOI
                                    // DQT: one table of ones.
    out.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    out.extend_from_slice(&[1u8; 64]);
    // SOF0: 8-bit, height, width, 1 component.
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
    // DHT: DC table 0 and AC table 0, each with one 1-bit code for symbol 0.
    for class in [0x00u8, 0x10] {
        out.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class]);
        let mut counts = [0u8; 16];
        counts[0] = 1;
        out.extend_from_slice(&counts);
        out.push(0x00);
    }
    // SOS: one component using tables 0/0, full spectral range.
    out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
    out.extend_from_slice(&[0x00; 16]);
    out.extend_from_slice(&[0xFF, 0xD9]); // EOI
    out
}

fn encoded(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).expect("encoding a test image");
    buf.into_inner()
}

fn noise(w: u32, h: u32) -> DynamicImage {
    let mut seed = 0x2545_F491u32;
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |_, _| {
        let mut px = [0u8; 3];
        for c in &mut px {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *c = seed as u8;
        }
        image::Rgb(px)
    }))
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn assert_fast(started: Instant) {
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "took {took:?}");
}

// ---------------------------------------------------------------------------------------
// The rules.
// ---------------------------------------------------------------------------------------

#[test]
fn a_tiny_png_claiming_100000_by_100000_is_refused_in_milliseconds() {
    let bomb = png_claiming(100_000, 100_000);
    assert!(bomb.len() < 100, "the file itself is tiny");
    let started = Instant::now();
    let err = decode_image(&bomb, &limits()).unwrap_err();
    assert_fast(started);
    assert!(matches!(err, ImageError::TooLarge { width: 100_000, height: 100_000, .. }), "{err:?}");
    assert!(err.to_string().contains("100000×100000"), "{err}");
}

#[test]
fn probe_refuses_the_same_bomb_from_the_header_alone() {
    let started = Instant::now();
    let err = probe(&png_claiming(100_000, 100_000), &limits()).unwrap_err();
    assert_fast(started);
    assert!(matches!(err, ImageError::TooLarge { .. }));
}

#[test]
fn too_many_pixels_is_refused_even_when_each_side_is_allowed() {
    // 9000 × 9000 = 81 MP: both sides under the 12000 limit, pixels over 40 MP.
    let err = decode_image(&png_claiming(9_000, 9_000), &limits()).unwrap_err();
    match err {
        ImageError::TooLarge { limit, .. } => assert!(limit.contains("pixels"), "{limit}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_jpeg_header_claiming_65000_by_65000_is_refused_in_milliseconds() {
    let started = Instant::now();
    let err = decode_image(&jpeg_claiming(65_000, 65_000), &limits()).unwrap_err();
    assert_fast(started);
    assert!(matches!(err, ImageError::TooLarge { .. }), "{err:?}");
}

/// A BMP header (BITMAPINFOHEADER, 24-bit) claiming `width × height`, with no pixel data.
fn bmp_claiming(width: i32, height: i32) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&54u32.to_le_bytes()); // file size (a lie, as bombs do)
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&54u32.to_le_bytes()); // pixel data offset
    out.extend_from_slice(&40u32.to_le_bytes()); // header size
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // planes
    out.extend_from_slice(&24u16.to_le_bytes()); // bits per pixel
    out.extend_from_slice(&[0; 24]); // no compression, sizes, resolution, palette
    out
}

/// A GIF whose logical screen and single frame claim `width × height`.
fn gif_claiming(width: u16, height: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[0x00, 0x00, 0x00]); // no global palette
    out.push(0x2C); // image descriptor
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&width.to_le_bytes());
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&[0x00, 0x02, 0x02, 0x4C, 0x01, 0x00, 0x3B]);
    out
}

#[test]
fn bombs_in_other_formats_are_refused_from_their_headers_too() {
    let started = Instant::now();
    for (name, bomb) in [("bmp", bmp_claiming(30_000, 30_000)), ("gif", gif_claiming(65_000, 65_000))] {
        let result = decode_image(&bomb, &limits());
        assert!(
            matches!(result, Err(ImageError::TooLarge { .. }) | Err(ImageError::AllocationLimit { .. })),
            "{name}: {:?}",
            result.map(|i| (i.width(), i.height()))
        );
    }
    assert_fast(started);
}

#[test]
fn the_allocation_budget_is_enforced() {
    let img = encoded(&noise(64, 64), ImageFormat::Png);
    let tight = DecodeLimits {
        max_alloc: 1000, // 64·64·3 = 12288 bytes needed
        ..limits()
    };
    let err = decode_image(&img, &tight).unwrap_err();
    assert!(matches!(err, ImageError::AllocationLimit { max_alloc: 1000 }), "{err:?}");
}

#[test]
fn zero_width_or_height_is_refused_as_zero_size() {
    for (w, h) in [(0, 10), (10, 0), (0, 0)] {
        let err = decode_image(&png_claiming(w, h), &limits()).unwrap_err();
        assert!(matches!(err, ImageError::ZeroSize { .. }), "{w}x{h}: {err:?}");
    }
}

#[test]
fn truncated_files_are_refused_as_corrupt() {
    let img = noise(64, 48);
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp, ImageFormat::Gif] {
        let full = encoded(&img, format);
        for cut in [full.len() / 2, full.len() * 9 / 10] {
            let result = decode_image(&full[..cut], &limits());
            assert!(
                matches!(result, Err(ImageError::Corrupt { .. })),
                "{format:?} cut at {cut}/{}: {:?}",
                full.len(),
                result.map(|img| (img.width(), img.height()))
            );
        }
    }
}

#[test]
fn a_jpeg_missing_only_its_end_marker_is_refused() {
    // JPEG decoders pad missing scan data with grey and succeed; we insist on the EOI.
    // (A PNG missing only its IEND trailer still carries every pixel and is accepted.)
    let full = encoded(&noise(64, 48), ImageFormat::Jpeg);
    assert!(decode_image(&full, &limits()).is_ok());
    let err = decode_image(&full[..full.len() - 2], &limits()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_file_cut_inside_its_header_is_refused() {
    let full = encoded(&noise(8, 8), ImageFormat::Png);
    for cut in [9, 16, 20, 30] {
        assert!(decode_image(&full[..cut], &limits()).is_err(), "cut at {cut}");
    }
}

#[test]
fn text_with_an_image_extension_is_not_an_image() {
    let err = decode_image(b"<html><body>definitely a PNG</body></html>", &limits()).unwrap_err();
    assert_eq!(err, ImageError::NotAnImage);
}

#[test]
fn empty_input_is_refused() {
    assert_eq!(decode_image(&[], &limits()).unwrap_err(), ImageError::Empty);
}

#[test]
fn recognised_but_unsupported_formats_are_refused_by_name() {
    // QOI and (ISO-BMFF) AVIF headers: formats the `image` crate knows but we do not accept.
    let qoi = b"qoif\x00\x00\x00\x10\x00\x00\x00\x10\x03\x00".to_vec();
    let avif = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf".to_vec();
    for (bytes, name) in [(qoi, "Qoi"), (avif, "Avif")] {
        match decode_image(&bytes, &limits()).unwrap_err() {
            ImageError::UnsupportedFormat { format, .. } => assert!(format.contains(name), "{format}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn formats_left_out_of_the_limits_are_refused_by_name_before_decoding() {
    let web_only = DecodeLimits {
        formats: [InputFormat::Png, InputFormat::Jpeg, InputFormat::WebP].into_iter().collect::<InputFormats>(),
        ..limits()
    };
    let img = noise(8, 8);
    for (format, name) in [(ImageFormat::Bmp, "Bmp"), (ImageFormat::Tiff, "Tiff"), (ImageFormat::Gif, "Gif")] {
        let bytes = encoded(&img, format);
        assert!(decode_image(&bytes, &limits()).is_ok(), "{name} decodes under the default limits");
        for err in [decode_image(&bytes, &web_only).unwrap_err(), probe(&bytes, &web_only).unwrap_err()] {
            match &err {
                ImageError::UnsupportedFormat { format, accepted } => {
                    assert!(format.contains(name), "{format}");
                    assert_eq!(*accepted, web_only.formats);
                }
                other => panic!("{name}: {other:?}"),
            }
            assert!(err.to_string().ends_with("accepted: PNG, JPEG, WebP"), "{err}");
        }
    }
    assert!(decode_image(&encoded(&img, ImageFormat::Png), &web_only).is_ok());
}

#[test]
fn the_format_is_sniffed_from_content_not_trusted_from_a_name() {
    // A JPEG is decoded as a JPEG whatever it was called; there is no name to trust.
    let jpeg = encoded(&noise(16, 16), ImageFormat::Jpeg);
    assert_eq!(probe(&jpeg, &limits()).unwrap().format, ImageFormat::Jpeg);
}

#[test]
fn good_images_in_every_accepted_format_decode() {
    let rgba = DynamicImage::ImageRgba8(RgbaImage::from_pixel(7, 5, image::Rgba([1, 2, 3, 4])));
    for format in
        [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::Gif]
    {
        let src = if format == ImageFormat::Jpeg { DynamicImage::ImageRgb8(rgba.to_rgb8()) } else { rgba.clone() };
        let bytes = encoded(&src, format);
        let img = decode_image(&bytes, &limits()).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!((img.width(), img.height()), (7, 5), "{format:?}");
    }
}

#[test]
fn exif_orientation_is_applied() {
    // A 4×2 JPEG tagged "rotate 90° CW" (orientation 6) must come out 2×4.
    let jpeg = encoded(&noise(4, 2), ImageFormat::Jpeg);
    let tagged = with_exif_orientation(&jpeg, 6);
    assert_eq!(probe(&tagged, &limits()).unwrap().width, 4, "stored size");
    let img = decode_image(&tagged, &limits()).unwrap();
    assert_eq!((img.width(), img.height()), (2, 4));
}

/// Inserts an APP1/Exif segment with one Orientation tag after the SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec(); // big-endian TIFF header, IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn errors_read_as_sentences_for_the_customer_log() {
    let cases = [
        (decode_image(&[], &limits()).unwrap_err(), "empty"),
        (decode_image(b"hello", &limits()).unwrap_err(), "not an image"),
        (decode_image(&png_claiming(0, 3), &limits()).unwrap_err(), "no pixels"),
        (decode_image(&png_claiming(20_000, 20), &limits()).unwrap_err(), "too large"),
    ];
    for (err, needle) in cases {
        assert!(err.to_string().contains(needle), "{err} should mention {needle:?}");
    }
}

/// Found by the decode fuzzer (tests/fuzz_decode.rs) when JPEG pixels moved to libjpeg: one
/// byte removed from a valid JPEG left a scan referring to a quantisation table that was never
/// defined. libjpeg aborts such a file by unwinding; it must come back as `Corrupt` with
/// libjpeg's reason, not as a caught panic.
#[test]
fn a_jpeg_whose_quantisation_table_is_missing_is_corrupt_with_libjpegs_reason() {
    let jpeg = encoded(&noise(32, 24), ImageFormat::Jpeg);
    // Drop every DQT segment (FF DB, length) so the frame refers to undefined tables.
    let mut stripped = jpeg[..2].to_vec();
    let mut i = 2;
    while i + 4 <= jpeg.len() && jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if jpeg[i + 1] != 0xDB {
            stripped.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    stripped.extend_from_slice(&jpeg[i..]);
    assert!(stripped.len() < jpeg.len(), "the test image had no DQT segment to remove");

    match decode_image(&stripped, &limits()) {
        Err(ImageError::Corrupt { detail, .. }) => {
            assert!(!detail.contains("panicked"), "reported as a panic: {detail}");
            assert!(detail.contains("Quantization table"), "libjpeg's reason is lost: {detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
