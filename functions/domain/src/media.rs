//! What an uploaded image must be before any work is spent on it: one of the allowed
//! formats, bytes that really are that format, and dimensions within bounds — all read from
//! the file's header, without decoding pixels.
//!
//! These rules have one owner, this module, and two enforcers: the upload API's `complete`
//! step ([`inspect_image`]) and the cut-out worker, whose decoder is configured from
//! [`ImageRules::UPLOADS`]. Whatever `complete` accepts, the worker must be able to decode,
//! so no limit is declared twice: a second copy drifts, and then a photo passes one check
//! only to fail the other after the customer was told it was fine.

use serde::Serialize;
use thiserror::Error;

/// Uploads are at most 25 MiB: the presigned PUT is signed for the exact declared size,
/// which is checked against this bound first. Part of [`ImageRules::UPLOADS`].
pub const MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;
/// Longest side accepted, in pixels. Part of [`ImageRules::UPLOADS`].
pub const MAX_SIDE: u32 = 10_000;
/// Most pixels accepted (50 megapixels, e.g. 10 000 × 5 000), so a decoder's allocation
/// stays bounded. Part of [`ImageRules::UPLOADS`].
pub const MAX_PIXELS: u64 = 50_000_000;

/// Every rule an uploaded image is held to, as one value, for code that must apply the same
/// rules elsewhere (the cut-out worker turns it into its decoder's limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRules {
    max_bytes: u64,
    max_side: u32,
    max_pixels: u64,
}

impl ImageRules {
    /// The rules for customer uploads: [`MAX_UPLOAD_BYTES`], [`MAX_SIDE`], [`MAX_PIXELS`] and
    /// every [`ImageFormat`].
    pub const UPLOADS: ImageRules =
        ImageRules { max_bytes: MAX_UPLOAD_BYTES, max_side: MAX_SIDE, max_pixels: MAX_PIXELS };

    /// Most bytes a file may have.
    pub const fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Longest side accepted, in pixels.
    pub const fn max_side(&self) -> u32 {
        self.max_side
    }

    /// Most pixels (`width × height`) accepted.
    pub const fn max_pixels(&self) -> u64 {
        self.max_pixels
    }

    /// The formats accepted: all of [`ImageFormat`], which lists nothing else, so a format
    /// cannot be accepted by one check and unknown to another.
    pub const fn formats(&self) -> &'static [ImageFormat] {
        &ImageFormat::ALL
    }

    /// Whether a `width × height` image is within bounds (and has pixels at all).
    pub fn fits(&self, width: u32, height: u32) -> bool {
        width > 0
            && height > 0
            && width <= self.max_side
            && height <= self.max_side
            && u64::from(width) * u64::from(height) <= self.max_pixels
    }
}

/// The image formats the storefront accepts (no SVG: scriptable; no GIF/TIFF/BMP: unneeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
    /// Every variant: the accepted formats ([`ImageRules::formats`]).
    pub const ALL: [ImageFormat; 3] = [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp];

    /// From a declared MIME type (parameters such as `; charset` are not allowed).
    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime.trim().to_ascii_lowercase().as_str() {
            "image/png" => Some(Self::Png),
            "image/jpeg" | "image/jpg" => Some(Self::Jpeg),
            "image/webp" => Some(Self::Webp),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    /// The format the bytes' signature says they are.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaError {
    #[error("the file is not a {} image", .0.extension())]
    WrongFormat(ImageFormat),
    #[error("the image header cannot be read")]
    Unreadable,
    #[error("the image has no pixels")]
    Empty,
    #[error("the image is {width}×{height}; at most {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels in all")]
    TooLarge { width: u32, height: u32 },
}

/// The facts recorded for an accepted upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFacts {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Checks that `bytes` are a `declared` image within [`ImageRules::UPLOADS`], from the
/// header: the check an upload passes when it completes.
pub fn inspect_image(bytes: &[u8], declared: ImageFormat) -> Result<ImageFacts, MediaError> {
    if ImageFormat::sniff(bytes) != Some(declared) {
        return Err(MediaError::WrongFormat(declared));
    }
    let size = imagesize::blob_size(bytes).map_err(|_| MediaError::Unreadable)?;
    let (width, height) = (u32::try_from(size.width), u32::try_from(size.height));
    let (Ok(width), Ok(height)) = (width, height) else {
        return Err(MediaError::TooLarge { width: u32::MAX, height: u32::MAX });
    };
    if width == 0 || height == 0 {
        return Err(MediaError::Empty);
    }
    if !ImageRules::UPLOADS.fits(width, height) {
        return Err(MediaError::TooLarge { width, height });
    }
    Ok(ImageFacts { format: declared, width, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG signature and IHDR chunk claiming `w`×`h` (CRC not checked by header readers).
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn only_png_jpeg_and_webp_mime_types_are_accepted() {
        assert_eq!(ImageFormat::from_mime("image/png"), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::from_mime("IMAGE/JPEG"), Some(ImageFormat::Jpeg));
        for bad in ["image/svg+xml", "text/html", "image/gif", "image/png; x=1", ""] {
            assert_eq!(ImageFormat::from_mime(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_header_within_bounds_is_accepted_with_its_dimensions() {
        let facts = inspect_image(&png_header(1200, 800), ImageFormat::Png).unwrap();
        assert_eq!((facts.width, facts.height), (1200, 800));
    }

    #[test]
    fn bytes_that_are_not_the_declared_format_are_refused() {
        assert_eq!(
            inspect_image(&png_header(10, 10), ImageFormat::Jpeg),
            Err(MediaError::WrongFormat(ImageFormat::Jpeg))
        );
        assert!(inspect_image(b"<html><script>alert(1)</script>", ImageFormat::Png).is_err());
        assert!(inspect_image(b"", ImageFormat::Webp).is_err());
    }

    #[test]
    fn huge_or_empty_claims_are_refused_from_the_header_alone() {
        assert!(matches!(
            inspect_image(&png_header(100_000, 100_000), ImageFormat::Png),
            Err(MediaError::TooLarge { .. })
        ));
        assert!(matches!(inspect_image(&png_header(9_000, 9_000), ImageFormat::Png), Err(MediaError::TooLarge { .. })));
        assert_eq!(inspect_image(&png_header(0, 10), ImageFormat::Png), Err(MediaError::Empty));
    }

    #[test]
    fn the_largest_accepted_image_is_10000_by_5000_and_one_more_row_or_column_is_refused() {
        let rules = ImageRules::UPLOADS;
        assert_eq!((rules.max_side(), rules.max_pixels(), rules.max_bytes()), (10_000, 50_000_000, 25 << 20));
        for (w, h) in [(10_000, 5_000), (5_000, 10_000), (10_000, 1), (7_071, 7_071)] {
            assert!(rules.fits(w, h), "{w}x{h}");
            assert!(inspect_image(&png_header(w, h), ImageFormat::Png).is_ok(), "{w}x{h}");
        }
        for (w, h) in [(10_001, 4_999), (4_999, 10_001), (10_000, 5_001), (7_072, 7_071), (0, 1)] {
            assert!(!rules.fits(w, h), "{w}x{h}");
            assert!(inspect_image(&png_header(w, h), ImageFormat::Png).is_err(), "{w}x{h}");
        }
    }

    #[test]
    fn the_rules_accept_every_image_format_and_the_formats_are_png_jpeg_and_webp() {
        assert_eq!(ImageRules::UPLOADS.formats(), &[ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp]);
        for format in ImageRules::UPLOADS.formats() {
            assert_eq!(ImageFormat::from_mime(format.mime()), Some(*format));
        }
    }

    #[test]
    fn a_truncated_header_is_unreadable_not_a_panic() {
        let header = png_header(10, 10);
        for cut in 0..header.len() {
            let _ = inspect_image(&header[..cut], ImageFormat::Png);
        }
        assert_eq!(inspect_image(&header[..12], ImageFormat::Png), Err(MediaError::Unreadable));
    }
}
