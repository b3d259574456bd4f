//! What the decoder will take: which formats, how many pixels, how much memory.
//!
//! These are the engine's own types on purpose. The engine is a standalone library with a
//! CLI; it knows its decoders, not any shop's upload policy. A caller with rules of its own
//! translates them into a [`DecodeLimits`] — the `remove-bg` worker builds one from the
//! storefront's upload rules with [`DecodeLimits::admitting`], so it decodes exactly what
//! the upload API accepts — while the CLI keeps the broader [`DecodeLimits::default`].

use std::fmt;

use image::ImageFormat;

/// An image format the engine has a decoder for (the `image` features it is built with).
///
/// Anything else the `image` crate can recognise (AVIF, QOI, EXR, …) is refused before any
/// decoding, whatever the limits say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFormat {
    /// PNG (8- or 16-bit, any colour type).
    Png,
    /// JPEG (baseline or progressive).
    Jpeg,
    /// WebP (lossy or lossless).
    WebP,
    /// Windows bitmap.
    Bmp,
    /// TIFF.
    Tiff,
    /// GIF (the first frame).
    Gif,
}

impl InputFormat {
    /// Every format the engine can decode.
    pub const ALL: [InputFormat; 6] =
        [InputFormat::Png, InputFormat::Jpeg, InputFormat::WebP, InputFormat::Bmp, InputFormat::Tiff, InputFormat::Gif];

    /// The `image` crate's name for this format.
    pub fn image_format(self) -> ImageFormat {
        match self {
            InputFormat::Png => ImageFormat::Png,
            InputFormat::Jpeg => ImageFormat::Jpeg,
            InputFormat::WebP => ImageFormat::WebP,
            InputFormat::Bmp => ImageFormat::Bmp,
            InputFormat::Tiff => ImageFormat::Tiff,
            InputFormat::Gif => ImageFormat::Gif,
        }
    }

    /// The engine's format for one the `image` crate recognised; `None` if there is no
    /// decoder for it here.
    pub fn from_image_format(format: ImageFormat) -> Option<InputFormat> {
        InputFormat::ALL.into_iter().find(|f| f.image_format() == format)
    }

    /// The most bytes one pixel of this format can take once decoded, over every pixel type
    /// its decoder produces: 16-bit RGBA for PNG, 32-bit float RGBA for TIFF, RGB for JPEG
    /// (CMYK is converted), 8-bit RGBA for the others.
    pub const fn max_decoded_bytes_per_pixel(self) -> u64 {
        match self {
            InputFormat::Png => 8,
            InputFormat::Jpeg => 3,
            InputFormat::WebP | InputFormat::Bmp | InputFormat::Gif => 4,
            InputFormat::Tiff => 16,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }

    fn name(self) -> &'static str {
        match self {
            InputFormat::Png => "PNG",
            InputFormat::Jpeg => "JPEG",
            InputFormat::WebP => "WebP",
            InputFormat::Bmp => "BMP",
            InputFormat::Tiff => "TIFF",
            InputFormat::Gif => "GIF",
        }
    }
}

/// A set of [`InputFormat`]s: the formats a decode accepts. `Copy`, so limits stay a plain
/// value; displays as a list (`PNG, JPEG, WebP`) for error messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InputFormats(u8);

impl InputFormats {
    /// Every format the engine can decode (one bit per [`InputFormat`], by declaration order).
    pub const ALL: InputFormats = InputFormats((1 << InputFormat::ALL.len()) - 1);

    /// Whether `format` is in the set.
    pub fn contains(self, format: InputFormat) -> bool {
        self.0 & format.bit() != 0
    }

    /// The formats in the set, in [`InputFormat::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = InputFormat> {
        InputFormat::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    /// Whether the set accepts nothing.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<InputFormat> for InputFormats {
    fn from_iter<I: IntoIterator<Item = InputFormat>>(formats: I) -> Self {
        InputFormats(formats.into_iter().fold(0, |bits, f| bits | f.bit()))
    }
}

impl fmt::Display for InputFormats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, format) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(format.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for InputFormats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Bounds applied to every decode.
///
/// The defaults accept every [`InputFormat`] up to 12000 px a side and 40 megapixels (e.g.
/// 8000×5000, far beyond a 300-DPI A3 print at 3508×4961), with a 512 MiB allocation budget,
/// and refuse anything larger before decoding. Services with an upload policy of their own
/// build theirs with [`DecodeLimits::admitting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Maximum width or height in pixels.
    pub max_side: u32,
    /// Maximum `width × height`.
    pub max_pixels: u64,
    /// Maximum bytes the decoder may allocate (the decoded buffer included).
    pub max_alloc: u64,
    /// The formats accepted; others are refused with
    /// [`ImageError::UnsupportedFormat`](crate::ImageError::UnsupportedFormat) before decoding.
    pub formats: InputFormats,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_side: 12_000,
            max_pixels: 40_000_000,
            max_alloc: 512 * 1024 * 1024,
            formats: InputFormats::ALL,
        }
    }
}

impl DecodeLimits {
    /// What a decoder may allocate besides the decoded image itself (row and chunk buffers,
    /// the inflate window, TIFF strips), in [`DecodeLimits::admitting`]'s budget.
    pub const DECODER_WORKSPACE: u64 = 128 * 1024 * 1024;

    /// Limits that accept every image in `formats` up to `max_side` a side and `max_pixels`
    /// pixels, and nothing else.
    ///
    /// The allocation budget is derived, not chosen: the largest decoded buffer such an
    /// image can need (`max_pixels` × the widest pixel any of the formats decodes to) plus
    /// [`DecodeLimits::DECODER_WORKSPACE`]. So raising the pixel cap can never leave the
    /// largest accepted image undecodable for want of budget.
    pub fn admitting(max_side: u32, max_pixels: u64, formats: InputFormats) -> DecodeLimits {
        let widest = formats.iter().map(InputFormat::max_decoded_bytes_per_pixel).max().unwrap_or(0);
        DecodeLimits {
            max_side,
            max_pixels,
            max_alloc: max_pixels.saturating_mul(widest).saturating_add(DecodeLimits::DECODER_WORKSPACE),
            formats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_format_maps_to_its_image_format_and_back() {
        for format in InputFormat::ALL {
            assert_eq!(InputFormat::from_image_format(format.image_format()), Some(format));
        }
        assert_eq!(InputFormat::from_image_format(ImageFormat::Avif), None);
    }

    #[test]
    fn a_format_set_holds_exactly_what_it_was_built_from() {
        let set: InputFormats = [InputFormat::Png, InputFormat::WebP].into_iter().collect();
        assert!(set.contains(InputFormat::Png) && set.contains(InputFormat::WebP));
        assert!(!set.contains(InputFormat::Jpeg) && !set.contains(InputFormat::Gif));
        assert_eq!(set.to_string(), "PNG, WebP");
        assert_eq!(InputFormats::ALL.iter().collect::<Vec<_>>(), InputFormat::ALL);
        assert_eq!(InputFormats::ALL.to_string(), "PNG, JPEG, WebP, BMP, TIFF, GIF");
        assert_eq!(InputFormats::default().to_string(), "none");
    }

    #[test]
    fn the_defaults_accept_every_format_up_to_12000_px_and_40_megapixels() {
        let d = DecodeLimits::default();
        assert_eq!((d.max_side, d.max_pixels, d.max_alloc), (12_000, 40_000_000, 512 << 20));
        assert_eq!(d.formats, InputFormats::ALL);
    }

    #[test]
    fn an_admitting_budget_fits_the_widest_pixel_at_the_pixel_cap() {
        let png_jpeg: InputFormats = [InputFormat::Png, InputFormat::Jpeg].into_iter().collect();
        let l = DecodeLimits::admitting(10_000, 50_000_000, png_jpeg);
        assert_eq!(l.max_alloc, 50_000_000 * 8 + DecodeLimits::DECODER_WORKSPACE, "16-bit RGBA PNG");
        let jpeg_only: InputFormats = [InputFormat::Jpeg].into_iter().collect();
        assert_eq!(DecodeLimits::admitting(10_000, 50_000_000, jpeg_only).max_alloc, 150_000_000 + (128 << 20));
    }
}
