//! Bounded decoding: the only way bytes from the outside world become pixels.
//!
//! The order of checks is the point of this module. Nothing is allocated in proportion to
//! the image until the header has been read and the declared size accepted:
//!
//! 1. empty input → [`ImageError::Empty`];
//! 2. the format is sniffed from the first bytes (never from a file name) and must be one of
//!    the limits' [`formats`](DecodeLimits::formats) → [`ImageError::NotAnImage`] /
//!    [`ImageError::UnsupportedFormat`];
//! 3. the decoder reads only the header; the declared width and height are checked against
//!    [`DecodeLimits`] (zero, max side, max pixels) → [`ImageError::ZeroSize`] /
//!    [`ImageError::TooLarge`] — a 60-byte PNG claiming 100000×100000 stops here;
//! 4. the decoded buffer's size is reserved against `max_alloc`, and the `image` crate's own
//!    [`image::Limits`] stay active inside the decoder → [`ImageError::AllocationLimit`];
//! 5. only then are the pixels decoded; truncated or malformed data → [`ImageError::Corrupt`];
//! 6. the EXIF orientation is applied (as rembg's `ImageOps.exif_transpose` does).
//!
//! ## Why JPEG pixels come from libjpeg
//!
//! rembg decodes with Pillow, which uses libjpeg-turbo: the accurate integer IDCT
//! (`JDCT_ISLOW`) and "fancy" (triangular) chroma upsampling. Pure-Rust JPEG decoders use
//! other IDCTs and upsamplers and differ from it by ±1–2 levels on many pixels; on photos
//! whose subject is tiny that moved up to 3 % of the mask across the 127 threshold. So the
//! pixels of YCbCr and greyscale JPEGs are decoded by libjpeg's own code (MozJPEG's decoder,
//! which is libjpeg-turbo's, built from source by the `mozjpeg` crate — no system library),
//! with the same settings Pillow uses. The `image` crate still does steps 1–4 and reads the
//! EXIF orientation; CMYK/YCCK JPEGs (rare, print-shop exports) stay on the `image` path.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::ImageError;
use crate::limits::{DecodeLimits, InputFormat};

/// What the header says, returned by [`probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The sniffed format.
    pub format: ImageFormat,
    /// Width as stored (before EXIF orientation).
    pub width: u32,
    /// Height as stored (before EXIF orientation).
    pub height: u32,
}

fn format_name(format: ImageFormat) -> String {
    format!("{format:?}")
}

fn sniff(bytes: &[u8], limits: &DecodeLimits) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ImageError::NotAnImage)?;
    match InputFormat::from_image_format(format) {
        Some(input) if limits.formats.contains(input) => Ok(format),
        _ => Err(ImageError::UnsupportedFormat { format: format_name(format), accepted: limits.formats }),
    }
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize { width, height });
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(ImageError::TooLarge { width, height, limit: format!("max side {} px", limits.max_side) });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImageError::TooLarge { width, height, limit: format!("max {} pixels", limits.max_pixels) });
    }
    Ok(())
}

/// The dimensions a PNG's IHDR declares, read straight from the fixed offsets (the
/// `png` crate refuses a zero dimension as a generic format error; this lets us say why).
fn png_ihdr_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((w, h))
}

/// Whether a JPEG's scan data is followed by an EOI marker (`FF D9`).
///
/// Walks the marker segments up to the first start-of-scan (so EXIF thumbnails, which carry
/// their own EOI, are skipped), then looks for `FF D9` in the rest: inside entropy-coded
/// data `FF` is always stuffed (`FF 00`) or a restart marker, so `FF D9` only appears as the
/// real end. Structures this walk does not understand are left to the decoder (`true`).
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    let scan_start = loop {
        let (Some(&ff), Some(&marker)) = (bytes.get(i), bytes.get(i + 1)) else {
            return false; // ended inside the headers
        };
        if ff != 0xFF {
            return true;
        }
        match marker {
            0xFF => i += 1,
            0x01 | 0xD0..=0xD8 => i += 2,
            0xD9 => return true,
            _ => {
                let Some(len) = bytes.get(i + 2..i + 4) else {
                    return false;
                };
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                if marker == 0xDA {
                    break i + 2 + len;
                }
                i += 2 + len;
            }
        }
    };
    bytes.get(scan_start..).is_some_and(|scan| scan.windows(2).any(|w| w == [0xFF, 0xD9]))
}

/// Maps a header-stage error, recognising a zero-sized PNG for a clearer message.
fn header_error(bytes: &[u8], format: ImageFormat, limits: &DecodeLimits, err: image::ImageError) -> ImageError {
    if format == ImageFormat::Png {
        if let Some((width, height)) = png_ihdr_dimensions(bytes).filter(|&(w, h)| w == 0 || h == 0) {
            return ImageError::ZeroSize { width, height };
        }
    }
    map_image_error(format, limits, err)
}

fn map_image_error(format: ImageFormat, limits: &DecodeLimits, err: image::ImageError) -> ImageError {
    match err {
        image::ImageError::Limits(_) => ImageError::AllocationLimit { max_alloc: limits.max_alloc },
        image::ImageError::Unsupported(e) => {
            ImageError::UnsupportedFormat { format: format!("{} ({e})", format_name(format)), accepted: limits.formats }
        }
        other => ImageError::Corrupt { format: format_name(format), detail: other.to_string() },
    }
}

fn image_limits(limits: &DecodeLimits, with_dimensions: bool) -> Limits {
    let mut l = Limits::no_limits();
    l.max_alloc = Some(limits.max_alloc);
    if with_dimensions {
        l.max_image_width = Some(limits.max_side);
        l.max_image_height = Some(limits.max_side);
    }
    l
}

/// Header-only check: sniffs the format, reads the declared dimensions and validates them
/// against `limits`, without decoding pixel data.
///
/// Use it to refuse an upload cheaply (e.g. when an upload completes) before queueing work.
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<ImageInfo, ImageError> {
    let format = sniff(bytes, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(image_limits(limits, false));
    let decoder = reader.into_decoder().map_err(|e| header_error(bytes, format, limits, e))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    Ok(ImageInfo { format, width, height })
}

/// Decodes `bytes` within `limits` and applies the EXIF orientation.
///
/// This is the single entry point for untrusted input; see the module docs for the order
/// of checks. It never panics, whatever the bytes.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, ImageError> {
    let format = sniff(bytes, limits)?;
    // Belt and braces: the decoders are meant never to panic, but a panic in third-party
    // parsing code must not take a worker down with it. The fuzz tests flag any such
    // panic (by its "decoder panicked" detail) so it gets fixed rather than hidden.
    std::panic::catch_unwind(|| decode_sniffed(bytes, format, limits)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(ImageError::Corrupt { format: format_name(format), detail: format!("decoder panicked: {msg}") })
    })
}

fn decode_sniffed(bytes: &[u8], format: ImageFormat, limits: &DecodeLimits) -> Result<DynamicImage, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(image_limits(limits, false));
    let mut decoder = reader.into_decoder().map_err(|e| header_error(bytes, format, limits, e))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    if format == ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        // The JPEG decoder pads a cut-off scan with grey and reports success; a half-grey
        // photo must not be cut out and printed, so refuse it here.
        return Err(ImageError::Corrupt {
            format: format_name(format),
            detail: "truncated: the scan data has no end-of-image marker".into(),
        });
    }
    if decoder.total_bytes() > limits.max_alloc {
        return Err(ImageError::AllocationLimit { max_alloc: limits.max_alloc });
    }
    // Re-arm the decoder's own limits, now including the dimension bounds, and with the
    // output buffer's size deducted from the allocation budget as `image` itself does.
    let mut inner = image_limits(limits, true);
    inner.max_alloc = Some(limits.max_alloc - decoder.total_bytes());
    decoder.set_limits(inner).map_err(|e| map_image_error(format, limits, e))?;
    // A broken EXIF block must not sink an otherwise good photo: fall back to no rotation.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let libjpeg = if format == ImageFormat::Jpeg { decode_jpeg_like_pillow(bytes, width, height)? } else { None };
    let mut img = match libjpeg {
        Some(img) => img,
        None => DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(format, limits, e))?,
    };
    img.apply_orientation(orientation);
    Ok(img)
}

/// Decodes a YCbCr or greyscale JPEG with libjpeg, configured as Pillow configures it
/// (accurate integer IDCT, fancy upsampling, no block smoothing, full size); `None` for other
/// colour spaces, which the caller decodes with the `image` crate.
///
/// Called only after the header has been checked against the limits; `width`/`height` are
/// what the `image` crate read, and libjpeg must agree with them.
fn decode_jpeg_like_pillow(bytes: &[u8], width: u32, height: u32) -> Result<Option<DynamicImage>, ImageError> {
    let corrupt = |detail: String| ImageError::Corrupt { format: format_name(ImageFormat::Jpeg), detail };
    // libjpeg reports a fatal error by unwinding out of the C code with its message as the
    // payload (`resume_unwind`: no panic hook, nothing printed). The `mozjpeg` crate turns some
    // of those into `Err`, not all (a missing quantisation table surfaces in `rgb()`), so the
    // whole decode runs under `catch_unwind` and either way becomes `Corrupt`.
    std::panic::catch_unwind(|| libjpeg_decode(bytes, width, height, corrupt)).unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "libjpeg fatal error".into());
        Err(corrupt(detail))
    })
}

fn libjpeg_decode(
    bytes: &[u8],
    width: u32,
    height: u32,
    corrupt: impl Fn(String) -> ImageError,
) -> Result<Option<DynamicImage>, ImageError> {
    use mozjpeg::{ColorSpace, DctMethod, Decompress};

    let mut d = Decompress::new_mem(bytes).map_err(|e| corrupt(e.to_string()))?;
    let gray = match d.color_space() {
        ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB => false,
        ColorSpace::JCS_GRAYSCALE => true,
        _ => return Ok(None),
    };
    if (d.width(), d.height()) != (width as usize, height as usize) {
        return Err(corrupt(format!("libjpeg reads {}x{}, the header probe {width}x{height}", d.width(), d.height())));
    }
    d.dct_method(DctMethod::IntegerSlow);
    d.do_fancy_upsampling(true);
    d.do_block_smoothing(false);
    let mut started = if gray { d.grayscale() } else { d.rgb() }.map_err(|e| corrupt(e.to_string()))?;
    let pixels = started.read_scanlines::<u8>().map_err(|e| corrupt(e.to_string()))?;
    started.finish().map_err(|e| corrupt(e.to_string()))?;
    let image = if gray {
        image::GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
    } else {
        image::RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    };
    image.map(Some).ok_or_else(|| corrupt("libjpeg returned fewer scanlines than the image has".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_end_marker_is_looked_for_after_the_headers_only() {
        // SOI, APP1 segment containing a fake EOI, SOS, scan bytes, no EOI.
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9];
        j.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x12, 0x34, 0xFF, 0x00]);
        assert!(!jpeg_has_end_marker(&j));
        j.extend_from_slice(&[0xFF, 0xD9]);
        assert!(jpeg_has_end_marker(&j));
        assert!(!jpeg_has_end_marker(&[0xFF, 0xD8, 0xFF]));
    }

    #[test]
    fn dimension_checks_name_the_limit_that_was_hit() {
        let l = DecodeLimits { max_side: 100, max_pixels: 5000, max_alloc: 1 << 20, ..DecodeLimits::default() };
        assert_eq!(check_dimensions(100, 50, &l), Ok(()));
        assert!(matches!(check_dimensions(0, 5, &l), Err(ImageError::ZeroSize { .. })));
        assert!(
            matches!(check_dimensions(101, 1, &l), Err(ImageError::TooLarge { limit, .. }) if limit.contains("side"))
        );
        assert!(
            matches!(check_dimensions(100, 51, &l), Err(ImageError::TooLarge { limit, .. }) if limit.contains("pixels"))
        );
    }
}
