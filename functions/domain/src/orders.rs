//! Orders: the cart a checkout submits, the order number, and the two status machines
//! (payment and production) with the transitions they allow.
//!
//! Every amount of an order is computed by [`crate::quote`] from the catalog; a cart carries
//! variant ids, quantities and decoration specs only. A cart that names a price is refused
//! as an unknown field (`deny_unknown_fields`), so a client learns at once that prices are
//! not taken from it.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::accounts::{Email, parse_name};
use crate::ids::DesignId;
use crate::jobs::UnknownState;
use crate::money::Cents;
use crate::pricing::Quote;
use crate::quote::{QuoteRequest, RawPlacement, RawQuoteRequest};

/// Most lines one cart may hold.
pub const MAX_CART_LINES: usize = 50;

/// Payment state, driven by Stripe's webhooks. The states are ranked and only move up the
/// ranking, so duplicated and out-of-order events cannot undo each other: a late
/// `payment_failed` after `succeeded` is ignored, as is a `succeeded` after a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Failed,
    Paid,
    Refunded,
}

/// What a payment event does to an order's payment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentTransition {
    /// Move to this status.
    To(PaymentStatus),
    /// Already there or past it: record the event, change nothing.
    Ignore,
}

impl PaymentStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "failed" => Some(Self::Failed),
            "paid" => Some(Self::Paid),
            "refunded" => Some(Self::Refunded),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Paid => "paid",
            Self::Refunded => "refunded",
        }
    }

    /// The monotonic rule: a failed attempt can still be followed by a successful one
    /// (the customer retries with another card on the same intent), a refund ends the story.
    pub fn on_event(self, target: PaymentStatus) -> PaymentTransition {
        if target > self { PaymentTransition::To(target) } else { PaymentTransition::Ignore }
    }
}

impl std::str::FromStr for PaymentStatus {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, UnknownState> {
        Self::parse(s).ok_or_else(|| UnknownState { what: "payment status", value: s.to_owned() })
    }
}

/// Fulfilment state, moved by staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductionStatus {
    Pending,
    InProduction,
    Printed,
    Shipped,
    Delivered,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProductionTransitionError {
    #[error("an order cannot move from {from} to {to}")]
    NotAllowed { from: &'static str, to: &'static str },
    #[error("an order goes into production only once it is paid")]
    NotPaid,
    #[error("shipping needs a tracking number and a carrier")]
    MissingTracking,
}

impl ProductionStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Self::Pending),
            "in_production" => Some(Self::InProduction),
            "printed" => Some(Self::Printed),
            "shipped" => Some(Self::Shipped),
            "delivered" => Some(Self::Delivered),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProduction => "in_production",
            Self::Printed => "printed",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
        }
    }

    fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::InProduction => 1,
            Self::Printed => 2,
            Self::Shipped => 3,
            Self::Delivered => 4,
            Self::Cancelled => 5,
        }
    }

    /// Checks a staff move. Forward only (skipping steps is allowed: a plain reprint may go
    /// straight to shipped); cancelling only before shipping; production needs payment;
    /// shipping needs tracking. Setting the same status again (e.g. to correct tracking)
    /// is allowed for `shipped` only.
    pub fn check_move(
        self,
        to: ProductionStatus,
        payment: PaymentStatus,
        has_tracking: bool,
    ) -> Result<(), ProductionTransitionError> {
        let not_allowed = || ProductionTransitionError::NotAllowed { from: self.as_str(), to: to.as_str() };
        let ok_direction = match (self, to) {
            (Self::Cancelled | Self::Delivered, _) => false,
            (Self::Shipped, Self::Shipped) => true,
            (from, Self::Cancelled) => from.rank() < Self::Shipped.rank(),
            (from, to) => to.rank() > from.rank(),
        };
        if !ok_direction {
            return Err(not_allowed());
        }
        if to != Self::Cancelled && payment != PaymentStatus::Paid {
            return Err(ProductionTransitionError::NotPaid);
        }
        if to == Self::Shipped && !has_tracking {
            return Err(ProductionTransitionError::MissingTracking);
        }
        Ok(())
    }
}

impl std::str::FromStr for ProductionStatus {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, UnknownState> {
        Self::parse(s).ok_or_else(|| UnknownState { what: "production status", value: s.to_owned() })
    }
}

/// Unambiguous characters for order numbers: no 0/O, 1/I/L, U (read aloud over the phone).
const ORDER_ALPHABET: &[u8; 30] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A human-readable order number, `ST-YYMMDD-XXXXX`: the date (UTC) the order was placed
/// and five characters from a 30-letter alphabet (24.3 million per day). The random part is
/// supplied by the caller (this crate has no randomness); collisions are caught by the
/// unique constraint and retried with fresh bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderNumber(String);

impl OrderNumber {
    pub fn generate(year: i32, month: u8, day: u8, random: [u8; 5]) -> Self {
        let suffix: String =
            random.iter().map(|b| ORDER_ALPHABET[usize::from(*b) % ORDER_ALPHABET.len()] as char).collect();
        Self(format!("ST-{:02}{month:02}{day:02}-{suffix}", year.rem_euclid(100)))
    }

    /// Recognises something that might be an order number (for `GET /api/orders/{id or
    /// number}`); case-insensitive for people typing it.
    pub fn parse(raw: &str) -> Option<Self> {
        let upper = raw.trim().to_ascii_uppercase();
        let rest = upper.strip_prefix("ST-")?;
        let (date, suffix) = rest.split_once('-')?;
        let date_ok = date.len() == 6 && date.bytes().all(|b| b.is_ascii_digit());
        let suffix_ok = suffix.len() == 5 && suffix.bytes().all(|b| ORDER_ALPHABET.contains(&b));
        (date_ok && suffix_ok).then_some(Self(upper))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrderNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The checkout body of `POST /api/orders` and `POST /api/orders/calculate-tax`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCart {
    pub items: Vec<RawCartItem>,
    pub shipping_address: RawAddress,
    /// Required for `POST /api/orders`; ignored by the tax calculation.
    pub email: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCartItem {
    pub variant_id: String,
    pub quantity: i64,
    pub decoration: RawDecoration,
    /// A saved design this line was made from (recorded with the line, not priced).
    pub design_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDecoration {
    pub method: String,
    pub placements: Vec<RawPlacement>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub state: Option<String>,
    pub postal_code: String,
    pub country: String,
}

/// A shipping address: every part trimmed, bounded and free of control characters; the
/// country an ISO 3166-1 alpha-2 code. Otherwise stored verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    pub postal_code: String,
    pub country: String,
}

/// One parsed cart line: what to quote, and the design it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub request: QuoteRequest,
    pub design_id: Option<DesignId>,
}

/// A cart that passed every check needing no catalog data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub lines: Vec<CartLine>,
    pub shipping_address: Address,
    pub email: Option<Email>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub notes: Option<String>,
}

/// Why a cart cannot be used: a stable code, the JSON path and a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct CartError {
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

impl CartError {
    fn new(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code, field: field.into(), message: message.into() }
    }
}

fn text(raw: &str, field: &str, max: usize) -> Result<String, CartError> {
    parse_name(raw, max).ok_or_else(|| {
        CartError::new("invalid_address", field, format!("must be 1 to {max} characters without control characters"))
    })
}

fn optional_text(raw: Option<&str>, field: &str, max: usize, code: &'static str) -> Result<Option<String>, CartError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse_name(s, max).map(Some).ok_or_else(|| {
            CartError::new(code, field, format!("must be at most {max} characters without control characters"))
        }),
    }
}

impl Address {
    pub fn parse(raw: &RawAddress, prefix: &str) -> Result<Self, CartError> {
        let f = |name: &str| format!("{prefix}.{name}");
        let Some(country) = crate::products::CountryCode::parse(&raw.country).map(|c| c.to_string()) else {
            return Err(CartError::new("invalid_address", f("country"), "must be a two-letter ISO country code"));
        };
        Ok(Self {
            name: text(&raw.name, &f("name"), 200)?,
            line1: text(&raw.line1, &f("line1"), 200)?,
            line2: optional_text(raw.line2.as_deref(), &f("line2"), 200, "invalid_address")?,
            city: text(&raw.city, &f("city"), 100)?,
            state: optional_text(raw.state.as_deref(), &f("state"), 100, "invalid_address")?,
            postal_code: text(&raw.postal_code, &f("postal_code"), 20)?,
            country,
        })
    }
}

impl Cart {
    pub fn parse(raw: RawCart) -> Result<Self, CartError> {
        if raw.items.is_empty() || raw.items.len() > MAX_CART_LINES {
            return Err(CartError::new("invalid_cart", "items", format!("a cart holds 1 to {MAX_CART_LINES} lines")));
        }
        let mut lines = Vec::with_capacity(raw.items.len());
        for (i, item) in raw.items.into_iter().enumerate() {
            let design_id = match item.design_id.as_deref() {
                None => None,
                Some(s) => Some(s.parse::<DesignId>().map_err(|_| {
                    CartError::new("invalid_design_id", format!("items[{i}].design_id"), "must be a UUID")
                })?),
            };
            let request = QuoteRequest::parse(RawQuoteRequest {
                variant_id: item.variant_id,
                method: item.decoration.method,
                placements: item.decoration.placements,
                quantity: item.quantity,
            })
            .map_err(|e| CartError {
                code: e.code,
                field: Self::quote_error_field(i, &e.field),
                message: e.message,
            })?;
            lines.push(CartLine { request, design_id });
        }
        let email = match raw.email.as_deref() {
            None => None,
            Some(s) => Some(Email::parse(s).map_err(|e| CartError::new("invalid_email", "email", e.to_string()))?),
        };
        Ok(Self {
            lines,
            shipping_address: Address::parse(&raw.shipping_address, "shipping_address")?,
            email,
            name: optional_text(raw.name.as_deref(), "name", 200, "invalid_name")?,
            phone: optional_text(raw.phone.as_deref(), "phone", 40, "invalid_phone")?,
            notes: optional_text(raw.notes.as_deref(), "notes", 2000, "invalid_notes")?,
        })
    }

    /// Where a quote field of line `i` sits in the cart body.
    pub fn quote_error_field(i: usize, field: &str) -> String {
        match field {
            "method" => format!("items[{i}].decoration.method"),
            f if f.starts_with("placements") => format!("items[{i}].decoration.{f}"),
            f => format!("items[{i}].{f}"),
        }
    }
}

/// An order's money, every part computed on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OrderTotals {
    pub subtotal_cents: Cents,
    pub discount_cents: Cents,
    pub tax_cents: Cents,
    pub shipping_cents: Cents,
    pub total_cents: Cents,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the order total is out of range")]
pub struct TotalsOverflow;

/// Shipping is not charged yet: the old system had no shipping rates either, and inventing
/// one is a business decision. The column and the arithmetic are in place for it.
pub const SHIPPING_CENTS: Cents = Cents::ZERO;

impl OrderTotals {
    /// Adds up the lines' quotes (each already discounted by its own best rule) and the tax.
    pub fn from_quotes(quotes: &[Quote], tax: Cents) -> Result<Self, TotalsOverflow> {
        let mut subtotal = Cents::ZERO;
        let mut discount = Cents::ZERO;
        for q in quotes {
            subtotal = subtotal.checked_add(q.subtotal_cents).ok_or(TotalsOverflow)?;
            let d = q.discount.as_ref().map_or(Cents::ZERO, |d| d.amount_cents);
            discount = discount.checked_add(d).ok_or(TotalsOverflow)?;
        }
        if tax < Cents::ZERO {
            return Err(TotalsOverflow);
        }
        let total = subtotal
            .checked_sub(discount)
            .and_then(|t| t.checked_add(tax))
            .and_then(|t| t.checked_add(SHIPPING_CENTS))
            .ok_or(TotalsOverflow)?;
        Ok(Self {
            subtotal_cents: subtotal,
            discount_cents: discount,
            tax_cents: tax,
            shipping_cents: SHIPPING_CENTS,
            total_cents: total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_round_trip_through_their_stored_names() {
        use PaymentStatus as Pay;
        use ProductionStatus as Prod;
        for status in [Pay::Pending, Pay::Failed, Pay::Paid, Pay::Refunded] {
            assert_eq!(status.as_str().parse::<PaymentStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for status in
            [Prod::Pending, Prod::InProduction, Prod::Printed, Prod::Shipped, Prod::Delivered, Prod::Cancelled]
        {
            assert_eq!(status.as_str().parse::<ProductionStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(
            "Paid".parse::<PaymentStatus>(),
            Err(UnknownState { what: "payment status", value: "Paid".into() }),
            "stored names are exact"
        );
    }

    #[test]
    fn payment_status_only_moves_forward() {
        use PaymentStatus::*;
        assert_eq!(Pending.on_event(Paid), PaymentTransition::To(Paid));
        assert_eq!(Pending.on_event(Failed), PaymentTransition::To(Failed));
        assert_eq!(Failed.on_event(Paid), PaymentTransition::To(Paid), "a retry with another card succeeds");
        assert_eq!(Paid.on_event(Failed), PaymentTransition::Ignore, "a late failure does not un-pay");
        assert_eq!(Paid.on_event(Paid), PaymentTransition::Ignore, "a duplicate is a no-op");
        assert_eq!(Paid.on_event(Refunded), PaymentTransition::To(Refunded));
        assert_eq!(Refunded.on_event(Paid), PaymentTransition::Ignore, "a late success does not un-refund");
        assert_eq!(Pending.on_event(Refunded), PaymentTransition::To(Refunded), "a refund implies the charge");
    }

    #[test]
    fn production_moves_forward_needs_payment_and_tracking() {
        use PaymentStatus::Paid;
        use ProductionStatus::*;
        assert_eq!(ProductionStatus::Pending.check_move(InProduction, Paid, false), Ok(()));
        assert_eq!(
            ProductionStatus::Pending.check_move(InProduction, PaymentStatus::Pending, false),
            Err(ProductionTransitionError::NotPaid)
        );
        assert_eq!(Printed.check_move(Shipped, Paid, false), Err(ProductionTransitionError::MissingTracking));
        assert_eq!(Printed.check_move(Shipped, Paid, true), Ok(()));
        assert_eq!(Shipped.check_move(Shipped, Paid, true), Ok(()), "tracking can be corrected");
        assert!(Shipped.check_move(InProduction, Paid, false).is_err());
        assert!(Shipped.check_move(Cancelled, Paid, false).is_err());
        assert_eq!(ProductionStatus::Pending.check_move(Cancelled, PaymentStatus::Pending, false), Ok(()));
        assert!(Cancelled.check_move(InProduction, Paid, false).is_err());
        assert!(Delivered.check_move(Delivered, Paid, true).is_err());
    }

    #[test]
    fn order_numbers_are_dated_and_unambiguous() {
        let n = OrderNumber::generate(2026, 11, 28, [0, 1, 29, 30, 255]);
        assert_eq!(n.as_str(), "ST-261128-23Z2H");
        assert_eq!(OrderNumber::parse("st-261128-23z2h"), Some(n));
        for bad in ["ST-261128-23Z2", "ST-261128-23Z2O", "ST-2611-23Z2B", "261128-23Z2B", "ST-26112X-23Z2B", ""] {
            assert_eq!(OrderNumber::parse(bad), None, "{bad}");
        }
        for b in 0..=255u8 {
            let n = OrderNumber::generate(2026, 1, 2, [b; 5]);
            assert!(OrderNumber::parse(n.as_str()).is_some(), "{n}");
            assert!(!n.as_str()[10..].contains(['0', 'O', '1', 'I', 'L', 'U']));
        }
    }

    fn raw_cart(items: serde_json::Value) -> RawCart {
        serde_json::from_value(json!({
            "items": items,
            "email": "Guest@Example.com",
            "shipping_address": {"name": "Ann", "line1": "1 Main St", "city": "Austin", "state": "TX",
                                  "postal_code": "78701", "country": "us"}
        }))
        .unwrap()
    }

    fn item(quantity: i64) -> serde_json::Value {
        json!({"variant_id": "7f0c1c52-3c1e-4f59-9a51-3e7f1b0c9d11", "quantity": quantity,
               "decoration": {"method": "screen_print", "placements": [{"location": "front", "colors": 1}]}})
    }

    #[test]
    fn a_cart_parses_with_a_lower_cased_email_and_an_upper_cased_country() {
        let cart = Cart::parse(raw_cart(json!([item(2)]))).unwrap();
        assert_eq!(cart.email.unwrap().as_str(), "guest@example.com");
        assert_eq!(cart.shipping_address.country, "US");
        assert_eq!(cart.lines[0].request.quantity.get(), 2);
    }

    #[test]
    fn bad_lines_name_their_path() {
        let e = Cart::parse(raw_cart(json!([item(1), item(0)]))).unwrap_err();
        assert_eq!((e.code, e.field.as_str()), ("invalid_quantity", "items[1].quantity"));
        let e = Cart::parse(raw_cart(json!([item(-3)]))).unwrap_err();
        assert_eq!(e.code, "invalid_quantity");
        let e = Cart::parse(raw_cart(json!([item(10_001)]))).unwrap_err();
        assert_eq!(e.code, "invalid_quantity");
        let e = Cart::parse(raw_cart(json!([]))).unwrap_err();
        assert_eq!(e.code, "invalid_cart");
        let many: Vec<_> = (0..=MAX_CART_LINES).map(|_| item(1)).collect();
        assert_eq!(Cart::parse(raw_cart(json!(many))).unwrap_err().code, "invalid_cart");
        let mut bad = item(1);
        bad["decoration"]["placements"][0]["location"] = json!("sleeve");
        let e = Cart::parse(raw_cart(json!([bad]))).unwrap_err();
        assert_eq!(e.field, "items[0].decoration.placements[0].location");
    }

    #[test]
    fn prices_in_a_cart_are_refused() {
        let mut priced = item(1);
        priced["unit_price_cents"] = json!(1);
        let body = json!({"items": [priced], "shipping_address": {}});
        assert!(serde_json::from_value::<RawCart>(body).unwrap_err().to_string().contains("unknown field"));
    }

    #[test]
    fn addresses_need_a_country_code_and_no_control_characters() {
        let mut raw = raw_cart(json!([item(1)]));
        raw.shipping_address.country = "USA".into();
        assert_eq!(Cart::parse(raw.clone()).unwrap_err().field, "shipping_address.country");
        raw.shipping_address.country = "US".into();
        raw.shipping_address.city = "Aus\u{7}tin".into();
        assert_eq!(Cart::parse(raw).unwrap_err().field, "shipping_address.city");
    }
}
