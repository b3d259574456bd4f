//! What an uploaded image must be before any work is spent on it: one of the allowed
//! formats, bytes that really are that format, and dimensions within bounds — all read from
//! the file's header, without decoding pixels.

use serde::Serialize;
use thiserror::Error;

/// Uploads are at most 25 MiB: the presigned PUT is signed for the exact declared size,
/// which is checked against this bound first.
pub const MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;
/// Longest side accepted, in pixels.
pub const MAX_SIDE: u32 = 10_000;
/// Most pixels accepted (50 megapixels), so a decoder's allocation stays bounded.
pub const MAX_PIXELS: u64 = 50_000_000;

/// The image formats the storefront accepts (no SVG: scriptable; no GIF/TIFF: unneeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
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

/// Checks that `bytes` are a `declared` image of acceptable dimensions, from the header.
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
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
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
    fn a_truncated_header_is_unreadable_not_a_panic() {
        let header = png_header(10, 10);
        for cut in 0..header.len() {
            let _ = inspect_image(&header[..cut], ImageFormat::Png);
        }
        assert_eq!(inspect_image(&header[..12], ImageFormat::Png), Err(MediaError::Unreadable));
    }
}
