//! What staff may write about a product: the request bodies as sent ([`RawProduct`],
//! [`RawProductPatch`]) and the checked values they parse into ([`NewProduct`],
//! [`ProductPatch`]). The bodies are a whitelist (`deny_unknown_fields`): a key that is not
//! here — `id`, `slug` on update, `created_at`, anything — is refused by name, never used as
//! a column. Shared text rules ([`CountryCode`], [`WebUrl`]) live here too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::accounts::parse_name;
use crate::catalog::{ProductStatus, Slug};
use crate::money::Cents;

/// A field that broke its rule; the API answers 422 `invalid_product` naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ProductError {
    pub field: String,
    pub message: String,
}

impl ProductError {
    pub const CODE: &'static str = "invalid_product";

    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A two-letter ISO 3166 country code, upper-cased (`gb` → `GB`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(raw: &str) -> Option<Self> {
        let code = raw.trim().to_ascii_uppercase();
        (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())).then_some(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A link shown to customers (product images, design thumbnails): an `http(s)://` URL — or,
/// where allowed, an absolute path on our own site — of at most 2048 characters, with no
/// whitespace or control characters. Anything else (`javascript:`, `data:`) never reaches a page.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct WebUrl(String);

impl WebUrl {
    pub const MAX_LEN: usize = 2048;

    /// An absolute `http(s)://` URL.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::check(raw, false)
    }

    /// An absolute URL or an absolute path (`/images/tee.png`).
    pub fn parse_or_path(raw: &str) -> Option<Self> {
        Self::check(raw, true)
    }

    fn check(raw: &str, allow_path: bool) -> Option<Self> {
        let ok = raw.len() <= Self::MAX_LEN
            && (raw.starts_with("https://") || raw.starts_with("http://") || (allow_path && raw.starts_with('/')))
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control());
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `POST /api/admin/products`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProduct {
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub images: Option<Vec<String>>,
    pub materials: Option<String>,
    pub weight_grams: Option<i64>,
    pub country_of_origin: Option<String>,
    pub status: Option<String>,
    pub sort_order: Option<i64>,
    #[serde(default)]
    pub variants: Vec<RawVariant>,
}

/// One variant of a new product, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub color: String,
    pub size: String,
    pub sku: String,
    pub base_cost_cents: i64,
    pub base_price_cents: i64,
    pub stock_level: Option<i64>,
    pub image_url: Option<String>,
}

/// `PATCH /api/admin/products/{id}`, as sent: the only fields an update may name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProductPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub images: Option<Vec<String>>,
    pub materials: Option<String>,
    pub weight_grams: Option<i64>,
    pub country_of_origin: Option<String>,
    pub status: Option<String>,
    pub sort_order: Option<i64>,
}

/// `PATCH /api/admin/variants/{id}`, as sent: a price change (and the other numbers staff
/// keep per variant). Colour, size and SKU are fixed once orders reference them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariantPatch {
    pub base_price_cents: Option<i64>,
    pub base_cost_cents: Option<i64>,
    pub stock_level: Option<i64>,
}

/// A product to create, every field checked.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub slug: Slug,
    pub title: String,
    pub description: String,
    pub images: Vec<WebUrl>,
    pub materials: Option<String>,
    pub weight_grams: Option<i32>,
    pub country_of_origin: Option<CountryCode>,
    pub status: ProductStatus,
    pub sort_order: i32,
    pub variants: Vec<NewVariant>,
}

#[derive(Debug, Clone)]
pub struct NewVariant {
    pub color: String,
    pub size: String,
    pub sku: String,
    pub base_cost: Cents,
    pub base_price: Cents,
    pub stock_level: i32,
    pub image_url: Option<WebUrl>,
}

/// The product fields staff may change; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub images: Option<Vec<WebUrl>>,
    pub materials: Option<String>,
    pub weight_grams: Option<i32>,
    pub country_of_origin: Option<CountryCode>,
    pub status: Option<ProductStatus>,
    pub sort_order: Option<i32>,
}

/// The variant fields staff may change; `None` keeps the stored value. Never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantPatch {
    pub base_price: Option<Cents>,
    pub base_cost: Option<Cents>,
    pub stock_level: Option<i32>,
}

/// Limits on what a product may hold.
pub const MAX_VARIANTS: usize = 100;
pub const MAX_IMAGES: usize = 20;
/// $100,000: far above any garment, low enough that no sum of them overflows.
pub const MAX_VARIANT_PRICE: Cents = Cents::new(10_000_000);

fn text(raw: &str, field: &str, max: usize) -> Result<String, ProductError> {
    parse_name(raw, max)
        .ok_or_else(|| ProductError::new(field, format!("1 to {max} characters without control characters")))
}

fn long_text(raw: &str, field: &str, max: usize) -> Result<String, ProductError> {
    // Descriptions may hold newlines and tabs; other control characters are refused.
    if raw.chars().count() > max || raw.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(ProductError::new(field, format!("at most {max} characters")));
    }
    Ok(raw.to_owned())
}

fn url(raw: &str, field: &str) -> Result<WebUrl, ProductError> {
    WebUrl::parse_or_path(raw)
        .ok_or_else(|| ProductError::new(field, "an http(s) URL or absolute path of at most 2048 characters"))
}

fn images(raw: Option<&[String]>) -> Result<Option<Vec<WebUrl>>, ProductError> {
    let Some(list) = raw else { return Ok(None) };
    if list.len() > MAX_IMAGES {
        return Err(ProductError::new("images", format!("at most {MAX_IMAGES} images")));
    }
    list.iter().enumerate().map(|(i, u)| url(u, &format!("images[{i}]"))).collect::<Result<Vec<_>, _>>().map(Some)
}

fn status(raw: Option<&str>) -> Result<Option<ProductStatus>, ProductError> {
    raw.map(|s| ProductStatus::parse(s).ok_or_else(|| ProductError::new("status", "one of active, draft, archived")))
        .transpose()
}

fn small_int(raw: Option<i64>, field: &str, min: i64, max: i64) -> Result<Option<i32>, ProductError> {
    match raw {
        None => Ok(None),
        Some(n) if (min..=max).contains(&n) => Ok(i32::try_from(n).ok()),
        Some(_) => Err(ProductError::new(field, format!("between {min} and {max}"))),
    }
}

fn country(raw: Option<&str>) -> Result<Option<CountryCode>, ProductError> {
    raw.map(|c| CountryCode::parse(c).ok_or_else(|| ProductError::new("country_of_origin", "a two-letter ISO code")))
        .transpose()
}

fn money(raw: i64, field: &str) -> Result<Cents, ProductError> {
    if (0..=MAX_VARIANT_PRICE.get()).contains(&raw) {
        Ok(Cents::new(raw))
    } else {
        Err(ProductError::new(field, format!("cents between 0 and {}", MAX_VARIANT_PRICE.get())))
    }
}

impl NewProduct {
    pub fn parse(raw: &RawProduct) -> Result<Self, ProductError> {
        let slug = Slug::parse(&raw.slug).map_err(|e| ProductError::new("slug", e.to_string()))?;
        if raw.variants.len() > MAX_VARIANTS {
            return Err(ProductError::new("variants", format!("at most {MAX_VARIANTS} variants")));
        }
        let variants =
            raw.variants.iter().enumerate().map(|(i, v)| NewVariant::parse(v, i)).collect::<Result<_, _>>()?;
        Ok(Self {
            slug,
            title: text(&raw.title, "title", 200)?,
            description: raw
                .description
                .as_deref()
                .map(|d| long_text(d, "description", 10_000))
                .transpose()?
                .unwrap_or_default(),
            images: images(raw.images.as_deref())?.unwrap_or_default(),
            materials: raw.materials.as_deref().map(|m| text(m, "materials", 500)).transpose()?,
            weight_grams: small_int(raw.weight_grams, "weight_grams", 1, 100_000)?,
            country_of_origin: country(raw.country_of_origin.as_deref())?,
            status: status(raw.status.as_deref())?.unwrap_or(ProductStatus::Draft),
            sort_order: small_int(raw.sort_order, "sort_order", -1_000_000, 1_000_000)?.unwrap_or(0),
            variants,
        })
    }
}

impl NewVariant {
    /// `index` names the variant in errors (`variants[2].sku`).
    pub fn parse(raw: &RawVariant, index: usize) -> Result<Self, ProductError> {
        let f = |n: &str| format!("variants[{index}].{n}");
        Ok(Self {
            color: text(&raw.color, &f("color"), 50)?,
            size: text(&raw.size, &f("size"), 10)?,
            sku: text(&raw.sku, &f("sku"), 64)?,
            base_cost: money(raw.base_cost_cents, &f("base_cost_cents"))?,
            base_price: money(raw.base_price_cents, &f("base_price_cents"))?,
            stock_level: small_int(raw.stock_level, &f("stock_level"), 0, 1_000_000)?.unwrap_or(0),
            image_url: raw.image_url.as_deref().map(|u| url(u, &f("image_url"))).transpose()?,
        })
    }
}

impl ProductPatch {
    pub fn parse(raw: &RawProductPatch) -> Result<Self, ProductError> {
        Ok(Self {
            title: raw.title.as_deref().map(|t| text(t, "title", 200)).transpose()?,
            description: raw.description.as_deref().map(|d| long_text(d, "description", 10_000)).transpose()?,
            images: images(raw.images.as_deref())?,
            materials: raw.materials.as_deref().map(|m| text(m, "materials", 500)).transpose()?,
            weight_grams: small_int(raw.weight_grams, "weight_grams", 1, 100_000)?,
            country_of_origin: country(raw.country_of_origin.as_deref())?,
            status: status(raw.status.as_deref())?,
            sort_order: small_int(raw.sort_order, "sort_order", -1_000_000, 1_000_000)?,
        })
    }

    /// Archiving is a patch of the status alone.
    pub fn archive() -> Self {
        Self { status: Some(ProductStatus::Archived), ..Self::default() }
    }
}

impl VariantPatch {
    pub fn parse(raw: &RawVariantPatch) -> Result<Self, ProductError> {
        let patch = Self {
            base_price: raw.base_price_cents.map(|c| money(c, "base_price_cents")).transpose()?,
            base_cost: raw.base_cost_cents.map(|c| money(c, "base_cost_cents")).transpose()?,
            stock_level: small_int(raw.stock_level, "stock_level", 0, 1_000_000)?,
        };
        if patch.base_price.is_none() && patch.base_cost.is_none() && patch.stock_level.is_none() {
            return Err(ProductError::new(
                "base_price_cents",
                "name at least one of base_price_cents, base_cost_cents, stock_level",
            ));
        }
        Ok(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(json: serde_json::Value) -> Result<NewProduct, ProductError> {
        NewProduct::parse(&serde_json::from_value(json).expect("a well-formed body"))
    }

    #[test]
    fn a_minimal_product_is_a_draft_with_defaults() {
        let p = product(serde_json::json!({"slug": "tote-bag", "title": " Tote "})).unwrap();
        assert_eq!(p.slug.as_str(), "tote-bag");
        assert_eq!(p.title, "Tote");
        assert_eq!(p.status, ProductStatus::Draft);
        assert!(p.images.is_empty() && p.variants.is_empty() && p.description.is_empty());
    }

    #[test]
    fn each_broken_rule_names_its_field() {
        let cases = [
            (serde_json::json!({"slug": "Bad Slug", "title": "x"}), "slug"),
            (serde_json::json!({"slug": "ok", "title": ""}), "title"),
            (serde_json::json!({"slug": "ok", "title": "x", "images": ["javascript:alert(1)"]}), "images[0]"),
            (serde_json::json!({"slug": "ok", "title": "x", "country_of_origin": "GBR"}), "country_of_origin"),
            (serde_json::json!({"slug": "ok", "title": "x", "weight_grams": 0}), "weight_grams"),
            (serde_json::json!({"slug": "ok", "title": "x", "status": "gone"}), "status"),
            (
                serde_json::json!({"slug": "ok", "title": "x", "variants": [
                    {"color": "Black", "size": "M", "sku": "T-B-M", "base_cost_cents": 500, "base_price_cents": -1}
                ]}),
                "variants[0].base_price_cents",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(product(body).unwrap_err().field, field);
        }
    }

    #[test]
    fn a_variant_patch_changes_numbers_only_and_never_nothing() {
        let patch = |json: serde_json::Value| VariantPatch::parse(&serde_json::from_value(json).unwrap());
        let price = patch(serde_json::json!({"base_price_cents": 1599})).unwrap();
        assert_eq!(price, VariantPatch { base_price: Some(Cents::new(1599)), base_cost: None, stock_level: None });
        assert_eq!(patch(serde_json::json!({})).unwrap_err().field, "base_price_cents");
        assert_eq!(patch(serde_json::json!({"base_price_cents": -1})).unwrap_err().field, "base_price_cents");
        assert_eq!(patch(serde_json::json!({"base_price_cents": 10_000_001})).unwrap_err().field, "base_price_cents");
        assert_eq!(patch(serde_json::json!({"stock_level": -5})).unwrap_err().field, "stock_level");
        assert!(serde_json::from_value::<RawVariantPatch>(serde_json::json!({"sku": "X"})).is_err());
        assert!(serde_json::from_value::<RawVariantPatch>(serde_json::json!({"price_cents": 1})).is_err());
    }

    #[test]
    fn the_whitelist_refuses_unknown_keys() {
        assert!(serde_json::from_value::<RawProductPatch>(serde_json::json!({"slug": "new"})).is_err());
        assert!(serde_json::from_value::<RawProduct>(serde_json::json!({"slug": "a", "title": "b", "id": 1})).is_err());
    }

    #[test]
    fn country_codes_and_links_have_one_rule_each() {
        assert_eq!(CountryCode::parse(" gb ").map(|c| c.to_string()), Some("GB".into()));
        assert_eq!(CountryCode::parse("G1"), None);
        assert!(WebUrl::parse("https://cdn.example.com/a.png").is_some());
        assert!(WebUrl::parse("/images/a.png").is_none());
        assert!(WebUrl::parse_or_path("/images/a.png").is_some());
        assert!(WebUrl::parse("https://a b").is_none());
        assert!(WebUrl::parse(&format!("https://{}", "a".repeat(2048))).is_none());
    }
}
