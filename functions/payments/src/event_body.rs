//! Stripe-shaped event bodies, built the way Stripe builds them: the writing side of
//! `event.rs`. The local provider sends these (signed) to the API's webhook route, so they
//! are production code; `fixtures` (feature `test-support`) re-exports them for tests.
//!
//! Only the fields Stripe always sends and the shop reads are filled in; parsing ignores
//! the rest anyway.

use domain::Cents;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::stripe::STRIPE_API_VERSION;
use crate::types::{Currency, IntentStatus};

/// The event envelope: `{"id", "object": "event", "type", "created", "data": {"object"}}`,
/// serialised. Sign the returned bytes as they are.
pub fn event_payload(event_id: &str, event_type: &str, created: i64, livemode: bool, object: Value) -> Vec<u8> {
    let event = json!({
        "id": event_id,
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": created,
        "livemode": livemode,
        "pending_webhooks": 1,
        "type": event_type,
        "data": { "object": object },
    });
    serde_json::to_vec(&event).expect("a JSON value always serialises")
}

/// A PaymentIntent object as it appears in `data.object`, with the shop's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentObject {
    pub intent_id: String,
    pub amount: Cents,
    pub amount_received: Cents,
    pub currency: Currency,
    pub status: IntentStatus,
    /// `metadata[order_id]`; `None` leaves it out (an intent made by something else).
    pub order_id: Option<Uuid>,
    pub order_number: Option<String>,
    pub latest_charge: Option<String>,
}

impl IntentObject {
    /// The JSON object; `last_payment_error` is set for failures (`card_declined`).
    pub fn to_json(&self) -> Value {
        let mut metadata = serde_json::Map::new();
        if let Some(order_id) = self.order_id {
            metadata.insert("order_id".into(), Value::String(order_id.to_string()));
        }
        if let Some(number) = &self.order_number {
            metadata.insert("order_number".into(), Value::String(number.clone()));
        }
        let last_payment_error = match self.status {
            IntentStatus::RequiresPaymentMethod => json!({
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
            }),
            _ => Value::Null,
        };
        json!({
            "id": self.intent_id,
            "object": "payment_intent",
            "amount": self.amount.get(),
            "amount_received": self.amount_received.get(),
            "currency": self.currency.as_str(),
            "status": self.status.as_str(),
            "latest_charge": self.latest_charge,
            "last_payment_error": last_payment_error,
            "livemode": false,
            "metadata": metadata,
        })
    }
}

/// A Charge object for `charge.refunded`: `amount_refunded` of `amount`, `refunded` when full.
pub fn refunded_charge(
    charge_id: &str,
    intent_id: &str,
    amount: Cents,
    amount_refunded: Cents,
    currency: &Currency,
) -> Value {
    json!({
        "id": charge_id,
        "object": "charge",
        "amount": amount.get(),
        "amount_captured": amount.get(),
        "amount_refunded": amount_refunded.get(),
        "currency": currency.as_str(),
        "payment_intent": intent_id,
        "paid": true,
        "refunded": amount_refunded >= amount,
        "status": "succeeded",
    })
}

/// A Dispute object for `charge.dispute.*`: `amount` of the charge `charge_id` (of the intent
/// `intent_id`) disputed, in `status` (`needs_response`, `won`, `lost`, …).
pub fn dispute_object(
    dispute_id: &str,
    charge_id: &str,
    intent_id: &str,
    amount: Cents,
    currency: &Currency,
    status: &str,
    reason: &str,
) -> Value {
    json!({
        "id": dispute_id,
        "object": "dispute",
        "amount": amount.get(),
        "charge": charge_id,
        "currency": currency.as_str(),
        "payment_intent": intent_id,
        "reason": reason,
        "status": status,
        "is_charge_refundable": false,
        "livemode": false,
    })
}
