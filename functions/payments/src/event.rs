//! Typed webhook events. Only the event types the shop acts on are decoded (intent success
//! and failure, refunds, disputes); every other type is `EventKind::Other` and should be
//! acknowledged (2xx) and ignored, or Stripe retries it for days.
//!
//! Parsing is strict about the fields it uses (a wrong type or an out-of-range amount is
//! `MalformedPayload`) and ignores the rest, so new fields in Stripe's payloads never break
//! it. serde_json's recursion limit turns deeply nested input into an error, not a stack
//! overflow; nothing here indexes or unwraps, so hostile JSON cannot panic.

use domain::Cents;
use serde::Deserialize;
use uuid::Uuid;

use crate::types::Currency;
use crate::webhook::WebhookError;

/// A verified Stripe event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_…`: the key for de-duplication (`processed_events`).
    pub id: String,
    /// The raw type, e.g. `payment_intent.succeeded`, for logs and for `Other` events.
    pub event_type: String,
    /// When Stripe created the event (Unix seconds). Events can arrive out of order; compare
    /// this (and the order's state) rather than trusting arrival order.
    pub created: i64,
    pub livemode: bool,
    pub kind: EventKind,
}

/// What happened, for the event types the shop handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `payment_intent.succeeded`: mark the order paid — only if `order_id` names it and
    /// `amount_received` equals its total.
    PaymentIntentSucceeded {
        intent_id: String,
        amount: Cents,
        amount_received: Cents,
        currency: Currency,
        /// `metadata[order_id]` when present and a UUID; `None` means the intent was not
        /// created by this shop (another integration on the same Stripe account).
        order_id: Option<Uuid>,
        order_number: Option<String>,
    },
    /// `payment_intent.payment_failed`: the customer may retry with another card, so an order
    /// goes `failed` but a later success must still be able to mark it paid.
    PaymentIntentFailed {
        intent_id: String,
        amount: Cents,
        currency: Currency,
        order_id: Option<Uuid>,
        order_number: Option<String>,
        /// `last_payment_error.code` (e.g. `card_declined`).
        failure_code: Option<String>,
        /// `last_payment_error.decline_code` (e.g. `insufficient_funds`).
        decline_code: Option<String>,
        /// `last_payment_error.message`, safe to show the customer.
        failure_message: Option<String>,
    },
    /// `charge.refunded`: fully (`refunded`) or partly refunded; find the order by
    /// `payment_intent`.
    ChargeRefunded {
        charge_id: String,
        payment_intent: Option<String>,
        amount: Cents,
        amount_refunded: Cents,
        refunded: bool,
        currency: Currency,
    },
    /// `charge.dispute.*` (`created`, `updated`, `closed`, `funds_withdrawn`,
    /// `funds_reinstated`): the customer's bank is taking the money back, or has decided.
    /// Record `status` on the order by `payment_intent`; the newest event (by
    /// [`Event::created`]) wins, since they can arrive out of order.
    ChargeDisputed {
        /// `dp_…`
        dispute_id: String,
        charge_id: String,
        payment_intent: Option<String>,
        /// The disputed amount (may be less than the charge).
        amount: Cents,
        currency: Currency,
        /// `warning_needs_response`, `needs_response`, `under_review`, `won`, `lost`, … kept
        /// verbatim (lower-case letters, digits and `_`, at most 64), so statuses Stripe adds
        /// later still arrive.
        status: String,
        /// `fraudulent`, `product_not_received`, … when given.
        reason: Option<String>,
    },
    /// Any other event type (the string is the type); acknowledge and ignore.
    Other(String),
}

#[derive(Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    created: i64,
    #[serde(default)]
    livemode: bool,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: serde_json::Value,
}

#[derive(Deserialize, Default)]
struct RawMetadata {
    order_id: Option<String>,
    order_number: Option<String>,
}

#[derive(Deserialize)]
struct RawIntent {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_received: i64,
    currency: Currency,
    #[serde(default)]
    metadata: Option<RawMetadata>,
    #[serde(default)]
    last_payment_error: Option<RawPaymentError>,
}

#[derive(Deserialize)]
struct RawPaymentError {
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct RawCharge {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_refunded: i64,
    #[serde(default)]
    refunded: bool,
    currency: Currency,
    /// A string id normally; an object when the event was sent with `payment_intent` expanded.
    #[serde(default)]
    payment_intent: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawDispute {
    id: String,
    amount: i64,
    currency: Currency,
    /// A string id normally; an object when expanded.
    charge: serde_json::Value,
    #[serde(default)]
    payment_intent: Option<serde_json::Value>,
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

/// An id field that Stripe sends as a string, or as the object itself when expanded.
fn expandable_id(
    event_type: &str,
    field: &str,
    value: Option<serde_json::Value>,
) -> Result<Option<String>, WebhookError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(id)) => Ok(Some(id)),
        Some(serde_json::Value::Object(map)) => match map.get("id") {
            Some(serde_json::Value::String(id)) => Ok(Some(id.clone())),
            _ => Err(malformed(format_args!("{event_type}: {field} object has no id"))),
        },
        Some(_) => Err(malformed(format_args!("{event_type}: {field} is not an id"))),
    }
}

/// A status or reason word as Stripe writes them: lower-case ASCII letters, digits and `_`.
fn stripe_word(event_type: &str, field: &str, value: String) -> Result<String, WebhookError> {
    let word_byte = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    if value.is_empty() || value.len() > 64 || !value.bytes().all(word_byte) {
        return Err(malformed(format_args!("{event_type}: {field} is not a Stripe status word")));
    }
    Ok(value)
}

fn malformed(reason: impl std::fmt::Display) -> WebhookError {
    WebhookError::MalformedPayload(reason.to_string())
}

fn amount(field: &str, value: i64) -> Result<Cents, WebhookError> {
    if value < 0 {
        return Err(malformed(format_args!("{field} is negative")));
    }
    Ok(Cents::new(value))
}

fn order_ref(metadata: Option<RawMetadata>) -> (Option<Uuid>, Option<String>) {
    let metadata = metadata.unwrap_or_default();
    let order_id = metadata.order_id.and_then(|raw| Uuid::parse_str(raw.trim()).ok());
    (order_id, metadata.order_number)
}

fn object<T: serde::de::DeserializeOwned>(event_type: &str, value: serde_json::Value) -> Result<T, WebhookError> {
    serde_json::from_value(value).map_err(|e| malformed(format_args!("{event_type}: {e}")))
}

impl Event {
    /// Parses an event body. Call only after the signature was verified (see
    /// [`crate::verify`]); an unverified event proves nothing.
    pub fn parse(payload: &[u8]) -> Result<Self, WebhookError> {
        if payload.is_empty() {
            return Err(malformed("empty body"));
        }
        let raw: RawEvent = serde_json::from_slice(payload).map_err(malformed)?;
        if raw.id.is_empty() {
            return Err(malformed("event id is empty"));
        }
        let kind = match raw.event_type.as_str() {
            "payment_intent.succeeded" => {
                let pi: RawIntent = object(&raw.event_type, raw.data.object)?;
                let (order_id, order_number) = order_ref(pi.metadata);
                EventKind::PaymentIntentSucceeded {
                    amount: amount("amount", pi.amount)?,
                    amount_received: amount("amount_received", pi.amount_received)?,
                    intent_id: pi.id,
                    currency: pi.currency,
                    order_id,
                    order_number,
                }
            }
            "payment_intent.payment_failed" => {
                let pi: RawIntent = object(&raw.event_type, raw.data.object)?;
                let (order_id, order_number) = order_ref(pi.metadata);
                let error = pi.last_payment_error;
                let (failure_code, decline_code, failure_message) = match error {
                    Some(e) => (e.code, e.decline_code, e.message),
                    None => (None, None, None),
                };
                EventKind::PaymentIntentFailed {
                    amount: amount("amount", pi.amount)?,
                    intent_id: pi.id,
                    currency: pi.currency,
                    order_id,
                    order_number,
                    failure_code,
                    decline_code,
                    failure_message,
                }
            }
            "charge.refunded" => {
                let charge: RawCharge = object(&raw.event_type, raw.data.object)?;
                let payment_intent = expandable_id(&raw.event_type, "payment_intent", charge.payment_intent)?;
                EventKind::ChargeRefunded {
                    amount: amount("amount", charge.amount)?,
                    amount_refunded: amount("amount_refunded", charge.amount_refunded)?,
                    charge_id: charge.id,
                    payment_intent,
                    refunded: charge.refunded,
                    currency: charge.currency,
                }
            }
            kind if kind.starts_with("charge.dispute.") => {
                let dispute: RawDispute = object(&raw.event_type, raw.data.object)?;
                let charge_id = expandable_id(&raw.event_type, "charge", Some(dispute.charge))?
                    .ok_or_else(|| malformed(format_args!("{kind}: the dispute names no charge")))?;
                EventKind::ChargeDisputed {
                    amount: amount("amount", dispute.amount)?,
                    payment_intent: expandable_id(&raw.event_type, "payment_intent", dispute.payment_intent)?,
                    status: stripe_word(&raw.event_type, "status", dispute.status)?,
                    reason: dispute.reason.map(|r| stripe_word(&raw.event_type, "reason", r)).transpose()?,
                    dispute_id: dispute.id,
                    charge_id,
                    currency: dispute.currency,
                }
            }
            other => EventKind::Other(other.to_owned()),
        };
        Ok(Event { id: raw.id, event_type: raw.event_type, created: raw.created, livemode: raw.livemode, kind })
    }

    /// The order this event is about, when its metadata names one.
    pub fn order_id(&self) -> Option<Uuid> {
        match &self.kind {
            EventKind::PaymentIntentSucceeded { order_id, .. } | EventKind::PaymentIntentFailed { order_id, .. } => {
                *order_id
            }
            EventKind::ChargeRefunded { .. } | EventKind::ChargeDisputed { .. } | EventKind::Other(_) => None,
        }
    }

    /// The PaymentIntent this event is about (the refunded charge's intent for refunds).
    pub fn payment_intent_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::PaymentIntentSucceeded { intent_id, .. } | EventKind::PaymentIntentFailed { intent_id, .. } => {
                Some(intent_id)
            }
            EventKind::ChargeRefunded { payment_intent, .. } | EventKind::ChargeDisputed { payment_intent, .. } => {
                payment_intent.as_deref()
            }
            EventKind::Other(_) => None,
        }
    }
}
