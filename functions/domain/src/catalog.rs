//! What the shop sells: products, their variants and the decoration methods that can be
//! applied to them, as the storefront sees them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{DecorationMethodId, ProductId, VariantId};
use crate::jobs::UnknownState;
use crate::money::{BasisPoints, Cents};

/// A URL-safe product handle (`classic-tee`): lower-case ASCII letters and digits in
/// hyphen-separated words, at most 100 bytes. The same rule is a CHECK in the schema, so a
/// string that fails to parse can never name a stored product.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Slug(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SlugError {
    #[error("a slug is 1 to 100 characters")]
    Length,
    #[error("a slug is lower-case letters and digits in words joined by single hyphens")]
    Shape,
}

impl Slug {
    pub const MAX_LEN: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, SlugError> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(SlugError::Length);
        }
        let words_ok =
            raw.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        if words_ok { Ok(Self(raw.to_owned())) } else { Err(SlugError::Shape) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Only `Active` products are sold; `Archived` replaces deletion so that old orders keep
/// their references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Active,
    Draft,
    Archived,
}

impl ProductStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "draft" => Some(Self::Draft),
            "archived" => Some(Self::Archived),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draft => "draft",
            Self::Archived => "archived",
        }
    }
}

impl std::str::FromStr for ProductStatus {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, UnknownState> {
        Self::parse(s).ok_or_else(|| UnknownState { what: "product status", value: s.to_owned() })
    }
}

/// A garment style with its sellable variants, as the storefront shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: ProductId,
    pub slug: Slug,
    pub title: String,
    pub description: String,
    pub images: Vec<String>,
    pub materials: Option<String>,
    pub weight_grams: Option<i32>,
    pub country_of_origin: Option<String>,
    pub status: ProductStatus,
    pub variants: Vec<Variant>,
}

/// One colour and size of a product. The blank's cost is deliberately absent: it never
/// leaves the back office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Variant {
    pub id: VariantId,
    pub product_id: ProductId,
    pub color: String,
    pub size: String,
    pub sku: String,
    pub price_cents: Cents,
    pub stock_level: i32,
    pub image_url: Option<String>,
}

/// The machine name of a decoration method (`screen_print`), as stored and as clients send it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MethodName(String);

impl MethodName {
    /// Lower-case letter first, then letters, digits or underscores; at most 50 bytes
    /// (the schema's CHECK). `None` means no stored method can have this name.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut bytes = raw.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        (first_ok && rest_ok && raw.len() <= 50).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodStatus {
    Active,
    Inactive,
}

impl MethodStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

impl std::str::FromStr for MethodStatus {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, UnknownState> {
        Self::parse(s).ok_or_else(|| UnknownState { what: "decoration method status", value: s.to_owned() })
    }
}

/// A way of putting artwork on a garment, with the rules that price it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecorationMethod {
    pub id: DecorationMethodId,
    pub name: MethodName,
    pub display_name: String,
    pub status: MethodStatus,
    pub pricing: PricingRules,
    pub file_requirements: serde_json::Value,
}

/// A quantity tier: every unit in an order of `min..=max` pieces has its decoration price
/// multiplied by `multiplier_bp`. `max: None` is open-ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantityBreak {
    pub min: u32,
    pub max: Option<u32>,
    pub multiplier_bp: BasisPoints,
}

impl QuantityBreak {
    pub fn contains(&self, quantity: u32) -> bool {
        quantity >= self.min && self.max.is_none_or(|max| quantity <= max)
    }
}

/// What one placement costs beyond the method's base price. A method prices placements by
/// exactly one measure, and the limit on that measure travels with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "per", rename_all = "snake_case")]
pub enum PlacementCharge {
    /// Screen printing: one screen per ink colour.
    Color { cents: Cents, max_colors: u32 },
    /// Embroidery: by stitch count, charged per started thousand.
    ThousandStitches { cents: Cents, max_stitches: u32 },
    /// DTG: by printed area, charged per started square inch.
    SquareInch { cents: Cents, max_square_inches: u32 },
}

/// A decoration method's pricing, parsed from the `pricing_rules` JSON column.
///
/// Parsing checks what SQL cannot: exactly one placement charge, sane limits, and quantity
/// breaks that are ordered and non-overlapping. A method whose rules fail to parse cannot be
/// quoted, and the failure names the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PricingRules {
    pub base_price_cents: Cents,
    pub per_location_cents: Cents,
    pub charge: PlacementCharge,
    pub quantity_breaks: Vec<QuantityBreak>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PricingRulesError {
    #[error("pricing rules are not valid: {0}")]
    Shape(String),
    #[error("pricing rules need exactly one of per_color_cents, per_1000_stitches_cents, per_square_inch_cents")]
    ChargeCount,
    #[error("{0} must come with a positive {1}")]
    MissingLimit(&'static str, &'static str),
    #[error("amounts in pricing rules must not be negative")]
    Negative,
    #[error("quantity breaks must be ordered, non-overlapping and have min <= max")]
    Breaks,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPricingRules {
    base_price_cents: i64,
    #[serde(default)]
    per_location_cents: i64,
    per_color_cents: Option<i64>,
    max_colors: Option<u32>,
    per_1000_stitches_cents: Option<i64>,
    max_stitches: Option<u32>,
    per_square_inch_cents: Option<i64>,
    max_square_inches: Option<u32>,
    #[serde(default)]
    quantity_breaks: Vec<QuantityBreak>,
}

impl PricingRules {
    pub fn parse(json: &serde_json::Value) -> Result<Self, PricingRulesError> {
        let raw = RawPricingRules::deserialize(json).map_err(|e| PricingRulesError::Shape(e.to_string()))?;
        let non_negative = |v: i64| if v < 0 { Err(PricingRulesError::Negative) } else { Ok(Cents::new(v)) };
        let limit = |limit: Option<u32>, name: &'static str, limit_name: &'static str| match limit {
            Some(l) if l > 0 => Ok(l),
            _ => Err(PricingRulesError::MissingLimit(name, limit_name)),
        };

        let mut charges = Vec::new();
        if let Some(c) = raw.per_color_cents {
            charges.push(PlacementCharge::Color {
                cents: non_negative(c)?,
                max_colors: limit(raw.max_colors, "per_color_cents", "max_colors")?,
            });
        }
        if let Some(c) = raw.per_1000_stitches_cents {
            charges.push(PlacementCharge::ThousandStitches {
                cents: non_negative(c)?,
                max_stitches: limit(raw.max_stitches, "per_1000_stitches_cents", "max_stitches")?,
            });
        }
        if let Some(c) = raw.per_square_inch_cents {
            charges.push(PlacementCharge::SquareInch {
                cents: non_negative(c)?,
                max_square_inches: limit(raw.max_square_inches, "per_square_inch_cents", "max_square_inches")?,
            });
        }
        let [charge] = charges[..] else {
            return Err(PricingRulesError::ChargeCount);
        };

        let breaks = raw.quantity_breaks;
        let each_ok = breaks.iter().all(|b| b.min >= 1 && b.max.is_none_or(|max| max >= b.min));
        let ordered = breaks.windows(2).all(|w| w[0].max.is_some_and(|max| max < w[1].min));
        if !each_ok || !ordered {
            return Err(PricingRulesError::Breaks);
        }

        Ok(Self {
            base_price_cents: non_negative(raw.base_price_cents)?,
            per_location_cents: non_negative(raw.per_location_cents)?,
            charge,
            quantity_breaks: breaks,
        })
    }

    /// The multiplier for `quantity` pieces: the matching break, or ×1.0 where none matches.
    pub fn quantity_break(&self, quantity: u32) -> Option<QuantityBreak> {
        self.quantity_breaks.iter().copied().find(|b| b.contains(quantity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slugs_are_lower_case_hyphenated_words() {
        for ok in ["classic-tee", "tee", "a1-b2-c3", "2024-drop"] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Classic-Tee", "-tee", "tee-", "tee--shirt", "tee shirt", "tee/../x", "t%C3%A9", "tée"] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Slug::parse(&"a".repeat(101)), Err(SlugError::Length));
        assert!(Slug::parse(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn method_names_follow_the_schema_rule() {
        assert!(MethodName::parse("screen_print").is_some());
        assert!(MethodName::parse("dtg2").is_some());
        for bad in ["", "Screen", "_x", "1dtg", "dtg;drop table", "dtg'", &"a".repeat(51)] {
            assert!(MethodName::parse(bad).is_none(), "{bad:?}");
        }
    }

    fn screen_print_rules() -> serde_json::Value {
        json!({"base_price_cents": 250, "per_color_cents": 75, "max_colors": 8, "per_location_cents": 100,
               "quantity_breaks": [{"min": 1, "max": 11, "multiplier_bp": 10000},
                                   {"min": 12, "max": null, "multiplier_bp": 8500}]})
    }

    #[test]
    fn pricing_rules_parse_into_one_charge_with_its_limit() {
        let rules = PricingRules::parse(&screen_print_rules()).unwrap();
        assert_eq!(rules.charge, PlacementCharge::Color { cents: Cents::new(75), max_colors: 8 });
        assert_eq!(rules.quantity_break(11).unwrap().multiplier_bp, BasisPoints::new(10_000));
        assert_eq!(rules.quantity_break(10_000).unwrap().multiplier_bp, BasisPoints::new(8_500));
    }

    #[test]
    fn pricing_rules_reject_ambiguous_or_unbounded_charges() {
        let mut two = screen_print_rules();
        two["per_square_inch_cents"] = json!(3);
        two["max_square_inches"] = json!(100);
        assert_eq!(PricingRules::parse(&two), Err(PricingRulesError::ChargeCount));

        let mut none = screen_print_rules();
        none.as_object_mut().unwrap().remove("per_color_cents");
        assert_eq!(PricingRules::parse(&none), Err(PricingRulesError::ChargeCount));

        let mut unbounded = screen_print_rules();
        unbounded.as_object_mut().unwrap().remove("max_colors");
        assert!(matches!(PricingRules::parse(&unbounded), Err(PricingRulesError::MissingLimit(..))));
    }

    #[test]
    fn pricing_rules_reject_negative_amounts_overlapping_breaks_and_unknown_keys() {
        let mut negative = screen_print_rules();
        negative["base_price_cents"] = json!(-1);
        assert_eq!(PricingRules::parse(&negative), Err(PricingRulesError::Negative));

        let mut overlap = screen_print_rules();
        overlap["quantity_breaks"] = json!([{"min": 1, "max": 12, "multiplier_bp": 10000},
                                            {"min": 12, "max": null, "multiplier_bp": 9000}]);
        assert_eq!(PricingRules::parse(&overlap), Err(PricingRulesError::Breaks));

        let mut open_then_more = screen_print_rules();
        open_then_more["quantity_breaks"] = json!([{"min": 1, "max": null, "multiplier_bp": 10000},
                                                   {"min": 50, "max": null, "multiplier_bp": 9000}]);
        assert_eq!(PricingRules::parse(&open_then_more), Err(PricingRulesError::Breaks));

        let mut unknown = screen_print_rules();
        unknown["per_colour_cents"] = json!(75);
        assert!(matches!(PricingRules::parse(&unknown), Err(PricingRulesError::Shape(_))));

        // Floats are not money.
        let mut float = screen_print_rules();
        float["base_price_cents"] = json!(2.5);
        assert!(matches!(PricingRules::parse(&float), Err(PricingRulesError::Shape(_))));
    }
}
