//! What the worker accepts: the storefront's upload rules, as the engine's decode limits.
//!
//! The rules have one owner, [`domain::ImageRules`]; the upload API checks them when an
//! upload completes. The cut-out engine has limits of its own ([`cutout::DecodeLimits`])
//! and is built here from the rules, not the other way round: the engine is a standalone
//! library with a CLI that accepts more (BMP, TIFF, GIF, 40 MP by default) and has no
//! business knowing the shop's policy, while this worker is exactly where the shop's policy
//! meets the engine. Converting here keeps the engine's dependencies free of `domain` and
//! still leaves one source of truth: nothing below is a number.

use cutout::{DecodeLimits, InputFormat, InputFormats};
use domain::{ImageFormat, ImageRules};

/// The rules every original the worker fetches was accepted under.
pub const RULES: ImageRules = ImageRules::UPLOADS;

/// The decode limits that accept exactly what `rules` accept: the same longest side, pixel
/// cap and formats (so BMP, TIFF and GIF are refused), with an allocation budget derived
/// from the pixel cap so the largest accepted image always decodes.
pub fn decode_limits(rules: &ImageRules) -> DecodeLimits {
    let formats: InputFormats = rules.formats().iter().map(|f| input_format(*f)).collect();
    DecodeLimits::admitting(rules.max_side(), rules.max_pixels(), formats)
}

/// The engine's name for an accepted format. Exhaustive on purpose: a format added to the
/// domain does not compile here until the worker has a decoder for it.
fn input_format(format: ImageFormat) -> InputFormat {
    match format {
        ImageFormat::Png => InputFormat::Png,
        ImageFormat::Jpeg => InputFormat::Jpeg,
        ImageFormat::Webp => InputFormat::WebP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_decodes_what_the_upload_rules_accept_and_nothing_more() {
        let web: InputFormats = [InputFormat::Png, InputFormat::Jpeg, InputFormat::WebP].into_iter().collect();
        // Exactly the limits `functions/cutout/tests/upload_rules.rs` proves at the rules'
        // limits (the largest accepted image in every format decodes; one past is refused).
        assert_eq!(decode_limits(&RULES), DecodeLimits::admitting(RULES.max_side(), RULES.max_pixels(), web));
        let limits = decode_limits(&RULES);
        assert_eq!((limits.max_side, limits.max_pixels), (RULES.max_side(), RULES.max_pixels()));
        for refused in [InputFormat::Bmp, InputFormat::Tiff, InputFormat::Gif] {
            assert!(!limits.formats.contains(refused), "{refused:?}");
        }
    }

    #[test]
    fn the_allocation_budget_holds_a_16_bit_rgba_png_at_the_pixel_cap() {
        let limits = decode_limits(&RULES);
        assert!(limits.max_alloc >= RULES.max_pixels() * 8, "{} bytes", limits.max_alloc);
    }
}
