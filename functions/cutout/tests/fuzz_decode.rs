//! Property tests (a fuzzer in miniature) over the decode-and-validate entry point.
//!
//! Whatever the bytes — random, or a valid image with bytes flipped, inserted or cut off —
//! `decode_image` and `probe` must return (never panic, never hang), and anything they accept
//! must respect the limits. Inputs that ever break these rules are kept below as named
//! regression tests; proptest also saves and replays its own failures from
//! `proptest-regressions/` (commit that file if it appears).

use std::io::Cursor;

use cutout::{decode_image, probe, DecodeLimits, ImageError};
use image::{DynamicImage, ImageFormat, RgbaImage};
use proptest::prelude::*;

fn small_limits() -> DecodeLimits {
    DecodeLimits { max_side: 512, max_pixels: 128 * 128, max_alloc: 16 * 1024 * 1024, ..DecodeLimits::default() }
}

/// Valid seed files in every accepted format, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(13, 9, |x, y| {
        image::Rgba([(x * 19) as u8, (y * 27) as u8, (x * y) as u8, 200])
    }));
    [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::WebP, ImageFormat::Bmp, ImageFormat::Tiff, ImageFormat::Gif]
        .into_iter()
        .map(|f| {
            let src = if f == ImageFormat::Jpeg { DynamicImage::ImageRgb8(img.to_rgb8()) } else { img.clone() };
            let mut buf = Cursor::new(Vec::new());
            src.write_to(&mut buf, f).expect("seed encodes");
            buf.into_inner()
        })
        .collect()
}

/// The contract, checked for one input.
fn check(bytes: &[u8]) {
    let limits = small_limits();
    match decode_image(bytes, &limits) {
        Ok(img) => {
            assert!(img.width() > 0 && img.height() > 0);
            assert!(img.width() <= limits.max_side && img.height() <= limits.max_side);
            assert!(u64::from(img.width()) * u64::from(img.height()) <= limits.max_pixels);
        }
        Err(ImageError::Corrupt { detail, .. }) => {
            assert!(!detail.starts_with("decoder panicked"), "a decoder panicked: {detail}");
        }
        Err(_) => {}
    }
    if let Ok(info) = probe(bytes, &limits) {
        assert!(info.width > 0 && info.height > 0);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, value: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Truncate { at: usize },
    Remove { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Flip { at, value }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match m {
            Mutation::Flip { at, value } => bytes[at % n] = *value,
            Mutation::Insert { at, bytes: ins } => {
                let at = at % n;
                bytes.splice(at..at, ins.iter().copied());
            }
            Mutation::Truncate { at } => bytes.truncate(at % n),
            Mutation::Remove { at, len } => {
                let at = at % n;
                let end = (at + len).min(n);
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

proptest! {
    // 512 cases per property by default; PROPTEST_CASES=100000 for a longer campaign.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_real_signature_never_panic(
        which in 0usize..6,
        tail in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        let seed = &seeds()[which];
        let mut bytes = seed[..seed.len().min(16)].to_vec();
        bytes.extend(tail);
        check(&bytes);
    }

    #[test]
    fn mutated_valid_images_never_panic(
        which in 0usize..6,
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let bytes = apply(seeds()[which].clone(), &mutations);
        check(&bytes);
    }
}

// Regression inputs. Any input that ever breaks the contract above is added here by name.
// So far (campaigns of 20 000 and 200 000 cases per property) none has; these pin down
// edge shapes that decoders historically got wrong.

#[test]
fn regression_gif_with_zero_logical_screen() {
    // GIF89a, 0×0 logical screen, no frames.
    check(b"GIF89a\x00\x00\x00\x00\x00\x00\x00\x3b");
}

#[test]
fn regression_bmp_with_negative_height_and_no_pixels() {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&[0x3a, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0, 0x28, 0, 0, 0]);
    bmp.extend_from_slice(&1i32.to_le_bytes());
    bmp.extend_from_slice(&(-1i32).to_le_bytes());
    bmp.extend_from_slice(&[1, 0, 24, 0, 0, 0, 0, 0]);
    check(&bmp);
}

#[test]
fn regression_tiff_header_only() {
    check(b"II*\x00\x08\x00\x00\x00\x00\x00");
}
