//! Parsing a price-quote request: the storefront's JSON becomes a [`QuoteRequest`] whose
//! every field is known to be usable, or an error that names the offending field.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::catalog::MethodName;
use crate::ids::VariantId;

/// The most pieces one quote or order line may ask for. Larger runs are a sales
/// conversation, and the bound keeps every amount far from integer overflow.
pub const MAX_QUANTITY: u32 = 10_000;

/// A number of garments, `1..=MAX_QUANTITY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Quantity(u32);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("quantity must be between 1 and {MAX_QUANTITY}, got {0}")]
pub struct QuantityError(pub i64);

impl Quantity {
    pub fn parse(raw: i64) -> Result<Self, QuantityError> {
        match u32::try_from(raw) {
            Ok(q) if (1..=MAX_QUANTITY).contains(&q) => Ok(Self(q)),
            _ => Err(QuantityError(raw)),
        }
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Where on the garment artwork goes: the design tool's three views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    Front,
    Back,
    Neck,
}

impl Location {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "front" => Some(Self::Front),
            "back" => Some(Self::Back),
            "neck" => Some(Self::Neck),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Front => "front",
            Self::Back => "back",
            Self::Neck => "neck",
        }
    }
}

/// The request body of `POST /api/price/quote`, as JSON gives it. Numbers are wide so that
/// zero, negative and absurd values reach [`QuoteRequest::parse`] and get a precise error
/// instead of a generic type error. Unknown fields (a client-sent `price`, say) are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuoteRequest {
    pub variant_id: String,
    pub method: String,
    pub placements: Vec<RawPlacement>,
    pub quantity: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlacement {
    pub location: String,
    pub colors: Option<i64>,
    pub stitches: Option<i64>,
    pub width_in: Option<f64>,
    pub height_in: Option<f64>,
}

/// One artwork placement. Which measure is required depends on the method, so that check
/// happens when pricing; here each measure present is already in range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub location: Location,
    pub colors: Option<u32>,
    pub stitches: Option<u32>,
    /// Width × height in hundredths of an inch (dimensions, not money: floats are parsed
    /// once at the boundary and never used again).
    pub size_hundredths_in: Option<(u32, u32)>,
}

/// A quote request that has passed every check that needs no catalog data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRequest {
    pub variant_id: VariantId,
    pub method: MethodName,
    pub placements: Vec<Placement>,
    pub quantity: Quantity,
}

/// Why a request cannot be quoted: a stable machine code, the JSON path of the field and a
/// human message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct QuoteRequestError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl QuoteRequestError {
    fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, field: field.into(), message: message.into() }
    }
}

/// Largest artwork edge accepted, in inches; far beyond any print area.
const MAX_EDGE_IN: f64 = 100.0;
/// Largest colour or stitch count accepted before the method's own limits apply.
const MAX_MEASURE: i64 = 1_000_000;

impl QuoteRequest {
    pub fn parse(raw: RawQuoteRequest) -> Result<Self, QuoteRequestError> {
        let variant_id = raw
            .variant_id
            .parse::<VariantId>()
            .map_err(|_| QuoteRequestError::new("invalid_variant_id", "variant_id", "must be a UUID"))?;
        let method = MethodName::parse(&raw.method).ok_or_else(|| {
            QuoteRequestError::new(
                "unknown_method",
                "method",
                format!("no decoration method is called {:?}", truncate(&raw.method)),
            )
        })?;
        let quantity = Quantity::parse(raw.quantity)
            .map_err(|e| QuoteRequestError::new("invalid_quantity", "quantity", e.to_string()))?;

        if raw.placements.is_empty() {
            return Err(QuoteRequestError::new(
                "invalid_placement",
                "placements",
                "at least one placement is required",
            ));
        }
        let mut placements: Vec<Placement> = Vec::with_capacity(raw.placements.len());
        for (i, p) in raw.placements.into_iter().enumerate() {
            let field = |name: &str| format!("placements[{i}].{name}");
            let location = Location::parse(&p.location).ok_or_else(|| {
                QuoteRequestError::new("invalid_placement", field("location"), "must be one of front, back, neck")
            })?;
            if placements.iter().any(|q| q.location == location) {
                return Err(QuoteRequestError::new(
                    "invalid_placement",
                    field("location"),
                    format!("{} is placed twice", location.as_str()),
                ));
            }
            let count = |v: Option<i64>, name: &str| -> Result<Option<u32>, QuoteRequestError> {
                match v {
                    None => Ok(None),
                    Some(n) if (1..=MAX_MEASURE).contains(&n) => Ok(u32::try_from(n).ok()),
                    Some(n) => Err(QuoteRequestError::new(
                        "invalid_placement",
                        field(name),
                        format!("must be between 1 and {MAX_MEASURE}, got {n}"),
                    )),
                }
            };
            let edge = |v: f64, name: &str| -> Result<u32, QuoteRequestError> {
                let hundredths = (v * 100.0).round();
                if v.is_finite() && v > 0.0 && v <= MAX_EDGE_IN && hundredths >= 1.0 {
                    // In range 1..=10_000, so the cast is exact.
                    Ok(hundredths as u32)
                } else {
                    Err(QuoteRequestError::new(
                        "invalid_placement",
                        field(name),
                        format!("must be between 0.01 and {MAX_EDGE_IN} inches"),
                    ))
                }
            };
            let size_hundredths_in = match (p.width_in, p.height_in) {
                (None, None) => None,
                (Some(w), Some(h)) => Some((edge(w, "width_in")?, edge(h, "height_in")?)),
                (None, Some(_)) => {
                    return Err(QuoteRequestError::new(
                        "invalid_placement",
                        field("width_in"),
                        "width_in and height_in go together",
                    ));
                }
                (Some(_), None) => {
                    return Err(QuoteRequestError::new(
                        "invalid_placement",
                        field("height_in"),
                        "width_in and height_in go together",
                    ));
                }
            };
            placements.push(Placement {
                location,
                colors: count(p.colors, "colors")?,
                stitches: count(p.stitches, "stitches")?,
                size_hundredths_in,
            });
        }

        Ok(Self { variant_id, method, placements, quantity })
    }
}

/// Echoing a hostile 1 MB string back in an error helps no one.
fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARIANT: &str = "7f0c1c52-3c1e-4f59-9a51-3e7f1b0c9d11";

    fn raw(quantity: i64, placements: Vec<RawPlacement>) -> RawQuoteRequest {
        RawQuoteRequest { variant_id: VARIANT.into(), method: "screen_print".into(), placements, quantity }
    }

    fn front(colors: Option<i64>) -> RawPlacement {
        RawPlacement { location: "front".into(), colors, stitches: None, width_in: None, height_in: None }
    }

    fn error_of(r: RawQuoteRequest) -> (&'static str, String) {
        let e = QuoteRequest::parse(r).unwrap_err();
        (e.code, e.field)
    }

    #[test]
    fn a_well_formed_request_parses() {
        let q = QuoteRequest::parse(raw(24, vec![front(Some(2))])).unwrap();
        assert_eq!(q.quantity.get(), 24);
        assert_eq!(q.placements[0].colors, Some(2));
        assert_eq!(q.method.as_str(), "screen_print");
    }

    #[test]
    fn quantity_must_be_between_one_and_the_maximum() {
        for bad in [0, -1, i64::from(MAX_QUANTITY) + 1, 1_000_000_000, i64::MIN, i64::MAX] {
            assert_eq!(error_of(raw(bad, vec![front(Some(1))])), ("invalid_quantity", "quantity".into()), "{bad}");
        }
        assert!(QuoteRequest::parse(raw(i64::from(MAX_QUANTITY), vec![front(Some(1))])).is_ok());
    }

    #[test]
    fn ids_and_method_names_are_checked_before_any_lookup() {
        let mut r = raw(1, vec![front(Some(1))]);
        r.variant_id = "1 OR 1=1".into();
        assert_eq!(error_of(r), ("invalid_variant_id", "variant_id".into()));

        let mut r = raw(1, vec![front(Some(1))]);
        r.method = "screen_print'; DROP TABLE orders;--".into();
        assert_eq!(error_of(r), ("unknown_method", "method".into()));
    }

    #[test]
    fn placements_are_required_distinct_and_in_range() {
        assert_eq!(error_of(raw(1, vec![])), ("invalid_placement", "placements".into()));
        assert_eq!(
            error_of(raw(1, vec![front(Some(1)), front(Some(2))])),
            ("invalid_placement", "placements[1].location".into())
        );
        let mut sleeve = front(Some(1));
        sleeve.location = "sleeve".into();
        assert_eq!(error_of(raw(1, vec![sleeve])), ("invalid_placement", "placements[0].location".into()));
        assert_eq!(error_of(raw(1, vec![front(Some(0))])), ("invalid_placement", "placements[0].colors".into()));
        assert_eq!(error_of(raw(1, vec![front(Some(-3))])), ("invalid_placement", "placements[0].colors".into()));
    }

    #[test]
    fn artwork_size_needs_both_edges_finite_and_positive() {
        let sized = |w: Option<f64>, h: Option<f64>| RawPlacement { width_in: w, height_in: h, ..front(None) };
        let ok = QuoteRequest::parse(raw(1, vec![sized(Some(10.5), Some(12.0))])).unwrap();
        assert_eq!(ok.placements[0].size_hundredths_in, Some((1050, 1200)));
        assert_eq!(error_of(raw(1, vec![sized(Some(10.0), None)])).1, "placements[0].height_in");
        assert_eq!(error_of(raw(1, vec![sized(Some(0.0), Some(1.0))])).1, "placements[0].width_in");
        assert_eq!(error_of(raw(1, vec![sized(Some(f64::NAN), Some(1.0))])).1, "placements[0].width_in");
        assert_eq!(error_of(raw(1, vec![sized(Some(1.0), Some(1e300))])).1, "placements[0].height_in");
        assert_eq!(error_of(raw(1, vec![sized(Some(0.001), Some(1.0))])).1, "placements[0].width_in");
    }
}
