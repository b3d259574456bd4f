//! The values that cross the payments boundary, in the shop's terms rather than Stripe's
//! wire format (which lives in `stripe.rs`).

use std::fmt;

use domain::Cents;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::secret::ClientSecret;

/// Stripe Tax code for clothing (DOMAIN.md, "Payments"); the default for cart lines.
pub const APPAREL_TAX_CODE: &str = "txcd_20030000";
/// Stripe Tax code for shipping charges.
pub const SHIPPING_TAX_CODE: &str = "txcd_92010001";

/// A three-letter ISO 4217 currency code, lower-case as Stripe writes it (`usd`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

/// The input was not a three-letter code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a currency is three ASCII letters (ISO 4217), e.g. usd")]
pub struct CurrencyError;

impl Currency {
    /// The shop sells in US dollars.
    pub fn usd() -> Self {
        Self("usd".to_owned())
    }

    /// Three ASCII letters, any case; stored lower-case so comparisons with Stripe's
    /// payloads are exact.
    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(CurrencyError)
        }
    }

    /// The code as Stripe writes it (`usd`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = CurrencyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `Idempotency-Key` header sent to Stripe with a PaymentIntent creation (the local
/// provider honours it the same way). Derived from the order, so a retried checkout (or a
/// retried HTTP attempt) reuses the intent Stripe already made instead of charging twice.
///
/// Not to be confused with the key a client sends to the API to make `POST /api/orders`
/// safe to retry (the store's `orders::IdempotencyKey`): that one de-duplicates requests to
/// us, this one requests from us to Stripe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StripeIdempotencyKey(String);

/// The key was empty, too long or not printable ASCII (it travels in an HTTP header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an idempotency key is 1-255 printable ASCII characters")]
pub struct StripeIdempotencyKeyError;

impl StripeIdempotencyKey {
    /// `order-<uuid>-intent`: one PaymentIntent per order, however often it is requested.
    pub fn for_order(order_id: Uuid) -> Self {
        Self(format!("order-{order_id}-intent"))
    }

    /// Any caller-chosen key (Stripe allows up to 255 characters).
    pub fn new(key: impl Into<String>) -> Result<Self, StripeIdempotencyKeyError> {
        let key = key.into();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(StripeIdempotencyKeyError);
        }
        Ok(Self(key))
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the API asks for when an order is placed. Every amount was computed on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateIntent {
    /// Stored in the intent's metadata as `order_id`; the webhook handler only marks an order
    /// paid when the event's order id and amount match the order (the old system did not check).
    pub order_id: Uuid,
    /// The human-readable `ST-…` number, in metadata for staff reading the Stripe dashboard.
    pub order_number: String,
    /// The order total, tax and shipping included. Must be positive.
    pub amount: Cents,
    pub currency: Currency,
    /// Stripe e-mails a receipt here when set.
    pub receipt_email: Option<String>,
    /// The Stripe Tax calculation the total came from, kept in metadata (`tax_calculation`)
    /// so a tax transaction can be recorded from it after payment.
    pub tax_calculation_id: Option<String>,
    pub idempotency_key: StripeIdempotencyKey,
}

impl CreateIntent {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.amount.get() <= 0 {
            return Err(format!("amount must be positive, got {} cents", self.amount.get()));
        }
        if self.order_number.is_empty() || self.order_number.len() > 500 {
            return Err("order_number must be 1-500 characters".into());
        }
        if self.receipt_email.as_ref().is_some_and(|email| email.len() > 512 || !email.contains('@')) {
            return Err("receipt_email is not an e-mail address".into());
        }
        Ok(())
    }
}

/// Where a PaymentIntent is in its life. Statuses Stripe adds later arrive as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    Other(String),
}

impl IntentStatus {
    /// Never fails: an unknown status is kept verbatim rather than rejecting Stripe's answer.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "requires_payment_method" => Self::RequiresPaymentMethod,
            "requires_confirmation" => Self::RequiresConfirmation,
            "requires_action" => Self::RequiresAction,
            "processing" => Self::Processing,
            "requires_capture" => Self::RequiresCapture,
            "canceled" => Self::Canceled,
            "succeeded" => Self::Succeeded,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Stripe's spelling, for storing and logging.
    pub fn as_str(&self) -> &str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::Processing => "processing",
            Self::RequiresCapture => "requires_capture",
            Self::Canceled => "canceled",
            Self::Succeeded => "succeeded",
            Self::Other(s) => s,
        }
    }
}

/// A PaymentIntent as the shop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIntent {
    /// `pi_…` (`pi_local_…` from the local provider); stored on the order.
    pub id: String,
    /// Returned to the storefront so Stripe.js can confirm the payment.
    pub client_secret: ClientSecret,
    pub amount: Cents,
    /// What has actually been collected (0 until the intent succeeds).
    pub amount_received: Cents,
    pub currency: Currency,
    pub status: IntentStatus,
    /// `metadata[order_id]`, if present and a UUID.
    pub order_id: Option<Uuid>,
}

/// A shipping address for tax purposes. `country` is ISO 3166-1 alpha-2 (`US`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxAddress {
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    /// State or province code (`CA`); required by Stripe for US and Canadian addresses.
    pub state: Option<String>,
    pub postal_code: String,
    pub country: String,
}

/// One cart line for a tax calculation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxLineItem {
    /// The line's total (unit price × quantity, after discounts), as Stripe Tax expects.
    pub amount: Cents,
    pub quantity: u32,
    /// Unique within the request (e.g. the variant SKU or the order item id).
    pub reference: String,
    /// Defaults to [`APPAREL_TAX_CODE`].
    pub tax_code: Option<String>,
}

/// A request for the tax on a cart shipped to an address. Prices are tax-exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRequest {
    pub currency: Currency,
    pub line_items: Vec<TaxLineItem>,
    /// The shipping charge, taxed with [`SHIPPING_TAX_CODE`]; `None` for free shipping.
    pub shipping: Option<Cents>,
    pub address: TaxAddress,
}

/// Stripe Tax's cap on line items per calculation.
pub(crate) const MAX_TAX_LINE_ITEMS: usize = 100;

impl TaxRequest {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.line_items.is_empty() {
            return Err("a tax calculation needs at least one line item".into());
        }
        if self.line_items.len() > MAX_TAX_LINE_ITEMS {
            return Err(format!("at most {MAX_TAX_LINE_ITEMS} line items"));
        }
        for (i, item) in self.line_items.iter().enumerate() {
            if item.amount.get() < 0 {
                return Err(format!("line item {i}: amount must not be negative"));
            }
            if item.quantity == 0 {
                return Err(format!("line item {i}: quantity must be at least 1"));
            }
            if item.reference.is_empty() || item.reference.len() > 500 {
                return Err(format!("line item {i}: reference must be 1-500 characters"));
            }
        }
        for (i, a) in self.line_items.iter().enumerate() {
            if self.line_items[..i].iter().any(|b| b.reference == a.reference) {
                return Err(format!("line item {i}: reference {:?} is repeated", a.reference));
            }
        }
        if self.shipping.is_some_and(|shipping| shipping.get() < 0) {
            return Err("shipping must not be negative".into());
        }
        let country = &self.address.country;
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err("address.country must be a two-letter ISO 3166-1 code".into());
        }
        if self.address.postal_code.trim().is_empty() {
            return Err("address.postal_code is required".into());
        }
        Ok(())
    }

    /// A SHA-256 (lower-case hex) of everything Stripe Tax reads from this request: currency,
    /// every line (amount, quantity, reference, tax code), shipping and the address, each
    /// field length-prefixed so no two different requests share a fingerprint by
    /// concatenation. Two requests with one fingerprint get the same answer, so the API
    /// caches answers by it.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        let mut field = |value: &str| {
            hash.update((value.len() as u64).to_be_bytes());
            hash.update(value.as_bytes());
        };
        field("stolentee-tax-request-v1");
        field(self.currency.as_str());
        field(&self.line_items.len().to_string());
        for item in &self.line_items {
            field(&item.amount.get().to_string());
            field(&item.quantity.to_string());
            field(&item.reference);
            field(item.tax_code.as_deref().unwrap_or(APPAREL_TAX_CODE));
        }
        field(&self.shipping.map_or_else(|| "-".to_owned(), |s| s.get().to_string()));
        let a = &self.address;
        for part in [Some(&a.line1), a.line2.as_ref(), Some(&a.city), a.state.as_ref(), Some(&a.postal_code)] {
            match part {
                Some(value) => field(&format!("+{value}")),
                None => field("-"),
            }
        }
        field(&a.country.to_ascii_uppercase());
        hex::encode(hash.finalize())
    }

    /// Line items plus shipping, before tax.
    pub(crate) fn taxable_total(&self) -> Option<Cents> {
        let mut total = self.shipping.unwrap_or(Cents::ZERO);
        for item in &self.line_items {
            total = total.checked_add(item.amount)?;
        }
        Some(total)
    }
}

/// The tax on a cart. `amount_total` = items + shipping + exclusive tax: what the order
/// charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxCalculation {
    /// `taxcalc_…` (`taxcalc_local_…` locally); pass it on in [`CreateIntent::tax_calculation_id`].
    pub id: String,
    pub amount_total: Cents,
    /// Tax added on top of the (tax-exclusive) prices: the order's `tax` column.
    pub tax_amount_exclusive: Cents,
    /// Tax already inside prices (0 for the shop's exclusive prices; reported for completeness).
    pub tax_amount_inclusive: Cents,
    /// Unix seconds after which Stripe discards the calculation.
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_letters_lower_cased() {
        assert_eq!(Currency::parse("USD").unwrap().as_str(), "usd");
        assert!(Currency::parse("us").is_err());
        assert!(Currency::parse("us1").is_err());
        assert!(Currency::parse("usdd").is_err());
    }

    #[test]
    fn idempotency_keys_are_bounded_printable_ascii() {
        let id = Uuid::nil();
        assert_eq!(StripeIdempotencyKey::for_order(id).as_str(), "order-00000000-0000-0000-0000-000000000000-intent");
        assert!(StripeIdempotencyKey::new("").is_err());
        assert!(StripeIdempotencyKey::new("a b").is_err());
        assert!(StripeIdempotencyKey::new("x".repeat(256)).is_err());
        assert!(StripeIdempotencyKey::new("x".repeat(255)).is_ok());
    }

    fn tax_request() -> TaxRequest {
        TaxRequest {
            currency: Currency::usd(),
            line_items: vec![TaxLineItem {
                amount: Cents::new(33436),
                quantity: 24,
                reference: "1-ST-TEE-BLK-M".into(),
                tax_code: None,
            }],
            shipping: None,
            address: TaxAddress {
                line1: "1 Congress Ave".into(),
                line2: None,
                city: "Austin".into(),
                state: Some("TX".into()),
                postal_code: "78701".into(),
                country: "US".into(),
            },
        }
    }

    #[test]
    fn a_tax_fingerprint_changes_with_anything_stripe_reads_and_nothing_else() {
        let base = tax_request();
        assert_eq!(base.fingerprint(), tax_request().fingerprint());
        assert_eq!(base.fingerprint().len(), 64);
        let mut lower_country = tax_request();
        lower_country.address.country = "us".into();
        assert_eq!(base.fingerprint(), lower_country.fingerprint(), "the client upper-cases the country");
        let explicit_code = TaxRequest {
            line_items: vec![TaxLineItem { tax_code: Some(APPAREL_TAX_CODE.into()), ..base.line_items[0].clone() }],
            ..tax_request()
        };
        assert_eq!(base.fingerprint(), explicit_code.fingerprint(), "the default code is the code sent");

        let variants: Vec<fn(&mut TaxRequest)> = vec![
            |r| r.line_items[0].amount = Cents::new(33437),
            |r| r.line_items[0].quantity = 25,
            |r| r.line_items[0].reference = "1-ST-TEE-BLK-L".into(),
            |r| r.shipping = Some(Cents::ZERO),
            |r| r.address.line2 = Some(String::new()),
            |r| r.address.state = None,
            |r| r.address.postal_code = "78702".into(),
            |r| r.address.city = "Austin ".into(),
            // Moving text between fields is a different address, not the same bytes.
            |r| {
                r.address.line1 = "1 Congress".into();
                r.address.line2 = Some("Ave".into());
            },
            |r| r.currency = Currency::parse("eur").unwrap(),
        ];
        for (i, change) in variants.iter().enumerate() {
            let mut other = tax_request();
            change(&mut other);
            assert_ne!(base.fingerprint(), other.fingerprint(), "change {i}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["requires_payment_method", "processing", "succeeded", "canceled", "something_new"] {
            assert_eq!(IntentStatus::parse(s).as_str(), s);
        }
    }
}
