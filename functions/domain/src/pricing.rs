//! Server-side pricing. The old system trusted prices from the client; here every amount is
//! computed from the catalog, the decoration method's rules and the discount rules.
//!
//! The rules, in order:
//! 1. **Garment**: the variant's price × quantity.
//! 2. **Decoration**, per placement: the first placement costs the method's base price, each
//!    further one its per-location price; plus the placement's measure (colours, started
//!    thousands of stitches, or started square inches) × the method's rate. The per-unit
//!    amount is multiplied by the quantity break the order falls in, rounded half away from
//!    zero to the cent, then × quantity.
//! 3. **Subtotal**: garment + decoration lines.
//! 4. **Discount**: of the active price rules whose scope (this product, this method, or
//!    global) and quantity range match, the one with the highest priority wins (ties: the
//!    larger discount, then the lower id). Discounts never stack. A percentage is of the
//!    subtotal, rounded to the cent; a fixed amount is capped at the subtotal.
//! 5. **Total** = subtotal − discount.

use serde::Serialize;
use thiserror::Error;

use crate::catalog::{DecorationMethod, MethodStatus, PlacementCharge, ProductStatus, QuantityBreak, Variant};
use crate::ids::{DecorationMethodId, PriceRuleId, ProductId, VariantId};
use crate::money::{BasisPoints, Cents};
use crate::quote::{Location, Placement, QuoteRequest};

/// Which quotes a price rule can apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleScope {
    Product(ProductId),
    Method(DecorationMethodId),
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiscountKind {
    Percentage { bp: BasisPoints },
    FixedAmount { cents: Cents },
}

/// An active discount rule, as stored in `price_rules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceRule {
    pub id: PriceRuleId,
    pub name: String,
    pub scope: RuleScope,
    pub min_qty: u32,
    pub max_qty: Option<u32>,
    pub kind: DiscountKind,
    pub priority: i32,
}

/// Everything the catalog knows that a quote needs, looked up by the store. Absent entries
/// mean "not found": the pricing rules, not the store, decide what that means for the client.
#[derive(Debug, Clone)]
pub struct PricingContext {
    pub variant: Option<(Variant, ProductStatus, String)>,
    /// The method, and whether it may be used on the variant's product.
    pub method: Option<(DecorationMethod, bool)>,
    /// Active rules; those that do not match are filtered here.
    pub price_rules: Vec<PriceRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuoteLineKind {
    Garment,
    Decoration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuoteLine {
    pub kind: QuoteLineKind,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub unit_cents: Cents,
    pub quantity: u32,
    pub total_cents: Cents,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discount {
    pub rule_id: PriceRuleId,
    pub name: String,
    #[serde(flatten)]
    pub kind: DiscountKind,
    pub amount_cents: Cents,
}

/// A priced request, line by line. All amounts are integer cents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote {
    pub currency: &'static str,
    pub variant_id: VariantId,
    pub product_id: ProductId,
    pub method: String,
    pub quantity: u32,
    pub lines: Vec<QuoteLine>,
    pub quantity_break: Option<QuantityBreak>,
    pub subtotal_cents: Cents,
    pub discount: Option<Discount>,
    pub total_cents: Cents,
    /// `total / quantity`, rounded half up: for display only; the total is authoritative.
    pub unit_price_cents: Cents,
}

/// Why a well-formed request cannot be priced. Each names the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuoteError {
    #[error("no variant has this id")]
    UnknownVariant,
    #[error("this variant's product is not for sale")]
    VariantUnavailable,
    #[error("no decoration method has this name")]
    UnknownMethod,
    #[error("this decoration method is not available for this product")]
    MethodUnavailable,
    #[error("{field}: {message}")]
    Placement { field: String, message: String },
    #[error("the amount is too large to quote")]
    Overflow,
}

impl QuoteError {
    /// The stable machine code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownVariant => "unknown_variant",
            Self::VariantUnavailable => "variant_unavailable",
            Self::UnknownMethod => "unknown_method",
            Self::MethodUnavailable => "method_unavailable",
            Self::Placement { .. } => "invalid_placement",
            Self::Overflow => "quote_overflow",
        }
    }

    /// The request field at fault.
    pub fn field(&self) -> String {
        match self {
            Self::UnknownVariant | Self::VariantUnavailable => "variant_id".into(),
            Self::UnknownMethod | Self::MethodUnavailable => "method".into(),
            Self::Placement { field, .. } => field.clone(),
            Self::Overflow => "quantity".into(),
        }
    }
}

/// Prices `request` against the catalog facts in `ctx`.
pub fn quote(request: &QuoteRequest, ctx: &PricingContext) -> Result<Quote, QuoteError> {
    let (variant, product_status, product_title) = ctx.variant.as_ref().ok_or(QuoteError::UnknownVariant)?;
    if *product_status != ProductStatus::Active {
        return Err(QuoteError::VariantUnavailable);
    }
    let (method, allowed) = ctx.method.as_ref().ok_or(QuoteError::UnknownMethod)?;
    if method.status != MethodStatus::Active || !allowed {
        return Err(QuoteError::MethodUnavailable);
    }

    let qty = request.quantity.get();
    let qty_i64 = i64::from(qty);
    let rules = &method.pricing;
    let quantity_break = rules.quantity_break(qty);
    let multiplier = quantity_break.map_or(BasisPoints::ONE, |b| b.multiplier_bp);

    let garment_total = variant.price_cents.checked_mul(qty_i64).ok_or(QuoteError::Overflow)?;
    let mut lines = vec![QuoteLine {
        kind: QuoteLineKind::Garment,
        description: format!("{product_title} — {} / {}", variant.color, variant.size),
        location: None,
        unit_cents: variant.price_cents,
        quantity: qty,
        total_cents: garment_total,
    }];
    let mut subtotal = garment_total;

    for (i, placement) in request.placements.iter().enumerate() {
        let setup = if i == 0 { rules.base_price_cents } else { rules.per_location_cents };
        let (measure_cents, what) = measure_charge(i, placement, rules.charge)?;
        let unit = setup
            .checked_add(measure_cents)
            .and_then(|u| u.checked_apply_bp(multiplier))
            .ok_or(QuoteError::Overflow)?;
        let total = unit.checked_mul(qty_i64).ok_or(QuoteError::Overflow)?;
        subtotal = subtotal.checked_add(total).ok_or(QuoteError::Overflow)?;
        lines.push(QuoteLine {
            kind: QuoteLineKind::Decoration,
            description: format!("{}, {}, {what}", method.display_name, placement.location.as_str()),
            location: Some(placement.location),
            unit_cents: unit,
            quantity: qty,
            total_cents: total,
        });
    }

    let discount = best_discount(&ctx.price_rules, variant.product_id, method.id, qty, subtotal)?;
    let total = match &discount {
        Some(d) => subtotal.checked_sub(d.amount_cents).ok_or(QuoteError::Overflow)?,
        None => subtotal,
    };
    let unit_price = Cents::new((total.get() + qty_i64 / 2) / qty_i64);

    Ok(Quote {
        currency: "usd",
        variant_id: variant.id,
        product_id: variant.product_id,
        method: method.name.as_str().to_owned(),
        quantity: qty,
        lines,
        quantity_break,
        subtotal_cents: subtotal,
        discount,
        total_cents: total,
        unit_price_cents: unit_price,
    })
}

/// The per-unit charge for one placement's measure, and a description of it.
fn measure_charge(index: usize, p: &Placement, charge: PlacementCharge) -> Result<(Cents, String), QuoteError> {
    let invalid =
        |name: &str, message: String| QuoteError::Placement { field: format!("placements[{index}].{name}"), message };
    match charge {
        PlacementCharge::Color { cents, max_colors } => {
            let colors = p
                .colors
                .ok_or_else(|| invalid("colors", "this method is priced by ink colours: give colors".into()))?;
            if colors > max_colors {
                return Err(invalid("colors", format!("at most {max_colors} colours")));
            }
            let noun = if colors == 1 { "colour" } else { "colours" };
            Ok((cents.checked_mul(i64::from(colors)).ok_or(QuoteError::Overflow)?, format!("{colors} {noun}")))
        }
        PlacementCharge::ThousandStitches { cents, max_stitches } => {
            let stitches = p
                .stitches
                .ok_or_else(|| invalid("stitches", "this method is priced by stitch count: give stitches".into()))?;
            if stitches > max_stitches {
                return Err(invalid("stitches", format!("at most {max_stitches} stitches")));
            }
            let thousands = i64::from(stitches.div_ceil(1000));
            Ok((cents.checked_mul(thousands).ok_or(QuoteError::Overflow)?, format!("{stitches} stitches")))
        }
        PlacementCharge::SquareInch { cents, max_square_inches } => {
            let (w, h) = p.size_hundredths_in.ok_or_else(|| {
                invalid("width_in", "this method is priced by area: give width_in and height_in".into())
            })?;
            let area_hundredths_sq = u64::from(w) * u64::from(h);
            if area_hundredths_sq > u64::from(max_square_inches) * 10_000 {
                return Err(invalid(
                    "width_in",
                    format!("the artwork may cover at most {max_square_inches} square inches"),
                ));
            }
            let square_inches = i64::try_from(area_hundredths_sq.div_ceil(10_000)).map_err(|_| QuoteError::Overflow)?;
            Ok((cents.checked_mul(square_inches).ok_or(QuoteError::Overflow)?, format!("{square_inches} sq in")))
        }
    }
}

fn best_discount(
    rules: &[PriceRule],
    product: ProductId,
    method: DecorationMethodId,
    qty: u32,
    subtotal: Cents,
) -> Result<Option<Discount>, QuoteError> {
    let mut best: Option<(&PriceRule, Cents)> = None;
    for rule in rules {
        let in_scope = match rule.scope {
            RuleScope::Product(p) => p == product,
            RuleScope::Method(m) => m == method,
            RuleScope::Global => true,
        };
        let in_range = qty >= rule.min_qty && rule.max_qty.is_none_or(|max| qty <= max);
        if !in_scope || !in_range {
            continue;
        }
        let amount = match rule.kind {
            DiscountKind::Percentage { bp } => subtotal.checked_apply_bp(bp).ok_or(QuoteError::Overflow)?,
            DiscountKind::FixedAmount { cents } => cents.min(subtotal),
        }
        .min(subtotal);
        let better = match best {
            None => true,
            Some((b, b_amount)) => {
                (rule.priority, amount, std::cmp::Reverse(rule.id)) > (b.priority, b_amount, std::cmp::Reverse(b.id))
            }
        };
        if better {
            best = Some((rule, amount));
        }
    }
    Ok(best.map(|(rule, amount)| Discount {
        rule_id: rule.id,
        name: rule.name.clone(),
        kind: rule.kind,
        amount_cents: amount,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{MethodName, PricingRules};
    use crate::quote::{RawPlacement, RawQuoteRequest};
    use serde_json::json;
    use uuid::Uuid;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn tee(price: i64) -> Variant {
        Variant {
            id: VariantId::from_uuid(id(1)),
            product_id: ProductId::from_uuid(id(2)),
            color: "Black".into(),
            size: "M".into(),
            sku: "ST-TEE-BLK-M".into(),
            price_cents: Cents::new(price),
            stock_level: 10,
            image_url: None,
        }
    }

    fn method(name: &str, rules: serde_json::Value) -> DecorationMethod {
        DecorationMethod {
            id: DecorationMethodId::from_uuid(id(3)),
            name: MethodName::parse(name).unwrap(),
            display_name: "Screen print".into(),
            status: MethodStatus::Active,
            pricing: PricingRules::parse(&rules).unwrap(),
            file_requirements: json!({}),
        }
    }

    fn screen_print() -> DecorationMethod {
        method(
            "screen_print",
            json!({"base_price_cents": 250, "per_color_cents": 75, "max_colors": 8, "per_location_cents": 100,
                   "quantity_breaks": [{"min": 1, "max": 11, "multiplier_bp": 10000},
                                       {"min": 12, "max": 47, "multiplier_bp": 8500},
                                       {"min": 48, "max": null, "multiplier_bp": 7000}]}),
        )
    }

    fn global_rule(n: u128, name: &str, min: u32, max: Option<u32>, bp: u32) -> PriceRule {
        PriceRule {
            id: PriceRuleId::from_uuid(id(100 + n)),
            name: name.into(),
            scope: RuleScope::Global,
            min_qty: min,
            max_qty: max,
            kind: DiscountKind::Percentage { bp: BasisPoints::new(bp) },
            priority: 10,
        }
    }

    fn bulk_rules() -> Vec<PriceRule> {
        vec![
            global_rule(1, "Bulk 12-23", 12, Some(23), 1000),
            global_rule(2, "Bulk 24-49", 24, Some(49), 1500),
            global_rule(3, "Bulk 50+", 50, None, 2000),
        ]
    }

    fn ctx(variant: Variant, m: DecorationMethod, rules: Vec<PriceRule>) -> PricingContext {
        PricingContext {
            variant: Some((variant, ProductStatus::Active, "Classic Tee".into())),
            method: Some((m, true)),
            price_rules: rules,
        }
    }

    fn request(quantity: i64, placements: serde_json::Value) -> QuoteRequest {
        let raw: RawQuoteRequest = serde_json::from_value(json!({
            "variant_id": id(1).to_string(), "method": "screen_print",
            "placements": placements, "quantity": quantity,
        }))
        .unwrap();
        QuoteRequest::parse(raw).unwrap()
    }

    #[test]
    fn one_tee_with_a_two_colour_front_print() {
        let q = quote(
            &request(1, json!([{"location": "front", "colors": 2}])),
            &ctx(tee(1299), screen_print(), bulk_rules()),
        )
        .unwrap();
        // garment 1299 + (250 + 2×75) = 1699, no break below 12, no discount below 12
        assert_eq!(q.lines[0].total_cents, Cents::new(1299));
        assert_eq!(q.lines[1].unit_cents, Cents::new(400));
        assert_eq!(q.subtotal_cents, Cents::new(1699));
        assert_eq!(q.discount, None);
        assert_eq!(q.total_cents, Cents::new(1699));
        assert_eq!(q.unit_price_cents, Cents::new(1699));
    }

    #[test]
    fn twenty_four_tees_get_the_quantity_break_and_the_bulk_discount() {
        let placements = json!([{"location": "front", "colors": 2}, {"location": "back", "colors": 1}]);
        let q = quote(&request(24, placements), &ctx(tee(1299), screen_print(), bulk_rules())).unwrap();
        // front: (250 + 150) × 0.85 = 340; back: (100 + 75) × 0.85 = 148.75 → 149
        assert_eq!(q.lines[1].unit_cents, Cents::new(340));
        assert_eq!(q.lines[2].unit_cents, Cents::new(149));
        let subtotal = 1299 * 24 + 340 * 24 + 149 * 24;
        assert_eq!(q.subtotal_cents, Cents::new(subtotal));
        let d = q.discount.as_ref().unwrap();
        assert_eq!(d.name, "Bulk 24-49");
        // 15 % of 42 912 = 6 436.8 → 6 437
        assert_eq!(d.amount_cents, Cents::new(6437));
        assert_eq!(q.total_cents, Cents::new(subtotal - 6437));
        assert_eq!(q.quantity_break.unwrap().min, 12);
    }

    #[test]
    fn quantity_break_and_discount_boundaries_are_inclusive() {
        let front = json!([{"location": "front", "colors": 1}]);
        let at = |n| quote(&request(n, front.clone()), &ctx(tee(1000), screen_print(), bulk_rules())).unwrap();
        assert!(at(11).discount.is_none());
        assert_eq!(at(12).discount.unwrap().name, "Bulk 12-23");
        assert_eq!(at(23).discount.unwrap().name, "Bulk 12-23");
        assert_eq!(at(49).discount.unwrap().name, "Bulk 24-49");
        assert_eq!(at(50).discount.unwrap().name, "Bulk 50+");
        assert_eq!(at(10_000).discount.unwrap().name, "Bulk 50+");
        assert_eq!(at(47).lines[1].unit_cents, Cents::new(276)); // 325 × 0.85 = 276.25
        assert_eq!(at(48).lines[1].unit_cents, Cents::new(228)); // 325 × 0.70 = 227.5 → 228
    }

    #[test]
    fn the_highest_priority_rule_wins_and_discounts_never_stack() {
        let mut rules = bulk_rules();
        rules.push(PriceRule {
            id: PriceRuleId::from_uuid(id(200)),
            name: "Tee launch".into(),
            scope: RuleScope::Product(ProductId::from_uuid(id(2))),
            min_qty: 1,
            max_qty: None,
            kind: DiscountKind::FixedAmount { cents: Cents::new(500) },
            priority: 20,
        });
        rules.push(PriceRule {
            id: PriceRuleId::from_uuid(id(201)),
            name: "Other product".into(),
            scope: RuleScope::Product(ProductId::from_uuid(id(999))),
            min_qty: 1,
            max_qty: None,
            kind: DiscountKind::Percentage { bp: BasisPoints::new(9000) },
            priority: 99,
        });
        let q =
            quote(&request(30, json!([{"location": "front", "colors": 1}])), &ctx(tee(1000), screen_print(), rules))
                .unwrap();
        let d = q.discount.unwrap();
        assert_eq!(d.name, "Tee launch");
        assert_eq!(d.amount_cents, Cents::new(500));
        assert_eq!(q.total_cents, q.subtotal_cents.checked_sub(Cents::new(500)).unwrap());
    }

    #[test]
    fn a_fixed_discount_never_makes_a_total_negative() {
        let rules = vec![PriceRule {
            id: PriceRuleId::from_uuid(id(300)),
            name: "Huge".into(),
            scope: RuleScope::Global,
            min_qty: 1,
            max_qty: None,
            kind: DiscountKind::FixedAmount { cents: Cents::new(1_000_000) },
            priority: 1,
        }];
        let q = quote(&request(1, json!([{"location": "front", "colors": 1}])), &ctx(tee(1000), screen_print(), rules))
            .unwrap();
        assert_eq!(q.total_cents, Cents::ZERO);
    }

    #[test]
    fn embroidery_is_priced_per_started_thousand_stitches() {
        let m = method(
            "embroidery",
            json!({"base_price_cents": 600, "per_1000_stitches_cents": 90, "max_stitches": 30000, "per_location_cents": 200}),
        );
        let q =
            quote(&request(1, json!([{"location": "front", "stitches": 8001}])), &ctx(tee(3599), m.clone(), vec![]))
                .unwrap();
        assert_eq!(q.lines[1].unit_cents, Cents::new(600 + 9 * 90));
        let err = quote(&request(1, json!([{"location": "front", "colors": 2}])), &ctx(tee(3599), m.clone(), vec![]))
            .unwrap_err();
        assert_eq!(err.field(), "placements[0].stitches");
        let err = quote(&request(1, json!([{"location": "front", "stitches": 30001}])), &ctx(tee(3599), m, vec![]))
            .unwrap_err();
        assert_eq!(err.code(), "invalid_placement");
    }

    #[test]
    fn dtg_is_priced_per_started_square_inch_within_the_print_area() {
        let m = method(
            "dtg",
            json!({"base_price_cents": 500, "per_square_inch_cents": 3, "max_square_inches": 224, "per_location_cents": 150}),
        );
        // 10.5 × 12 = 126 sq in
        let q = quote(
            &request(1, json!([{"location": "front", "width_in": 10.5, "height_in": 12}])),
            &ctx(tee(1299), m.clone(), vec![]),
        )
        .unwrap();
        assert_eq!(q.lines[1].unit_cents, Cents::new(500 + 126 * 3));
        // 0.5 × 0.5 = 0.25 sq in → one started square inch
        let q = quote(
            &request(1, json!([{"location": "neck", "width_in": 0.5, "height_in": 0.5}])),
            &ctx(tee(1299), m.clone(), vec![]),
        )
        .unwrap();
        assert_eq!(q.lines[1].unit_cents, Cents::new(503));
        let err = quote(
            &request(1, json!([{"location": "front", "width_in": 15, "height_in": 15}])),
            &ctx(tee(1299), m, vec![]),
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_placement");
    }

    #[test]
    fn catalog_facts_decide_availability() {
        let req = request(1, json!([{"location": "front", "colors": 1}]));
        let mut c = ctx(tee(1000), screen_print(), vec![]);
        c.variant = None;
        assert_eq!(quote(&req, &c), Err(QuoteError::UnknownVariant));

        let mut c = ctx(tee(1000), screen_print(), vec![]);
        c.variant.as_mut().unwrap().1 = ProductStatus::Archived;
        assert_eq!(quote(&req, &c), Err(QuoteError::VariantUnavailable));

        let mut c = ctx(tee(1000), screen_print(), vec![]);
        c.method = None;
        assert_eq!(quote(&req, &c), Err(QuoteError::UnknownMethod));

        let mut c = ctx(tee(1000), screen_print(), vec![]);
        c.method.as_mut().unwrap().1 = false;
        assert_eq!(quote(&req, &c).unwrap_err().code(), "method_unavailable");

        let mut c = ctx(tee(1000), screen_print(), vec![]);
        c.method.as_mut().unwrap().0.status = MethodStatus::Inactive;
        assert_eq!(quote(&req, &c).unwrap_err().field(), "method");
    }

    #[test]
    fn absurd_catalog_prices_overflow_into_an_error_not_a_panic() {
        let req = request(10_000, json!([{"location": "front", "colors": 8}]));
        let err = quote(&req, &ctx(tee(i64::MAX / 2), screen_print(), vec![])).unwrap_err();
        assert_eq!(err, QuoteError::Overflow);
    }

    #[test]
    fn quotes_serialise_amounts_as_integer_cents() {
        let q = quote(
            &request(24, json!([{"location": "front", "colors": 2}])),
            &ctx(tee(1299), screen_print(), bulk_rules()),
        )
        .unwrap();
        let v = serde_json::to_value(&q).unwrap();
        assert!(v["total_cents"].is_i64());
        assert_eq!(v["discount"]["type"], "percentage");
        assert_eq!(v["discount"]["bp"], 1500);
        assert_eq!(v["lines"][1]["location"], "front");
        let _: Vec<RawPlacement> = vec![];
    }
}
