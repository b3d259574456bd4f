//! Test support (feature `test-support`): Stripe-shaped event bodies for tests that deliver
//! webhooks the way Stripe would — duplicated, out of order, for the wrong order or the
//! wrong amount. Sign them with [`sign`](crate::sign).
//!
//! The body builders are the ones the local provider sends, so a test event and a `make dev`
//! event have the same shape; only the shortcuts below exist for tests alone. Production
//! builds do not enable the feature and do not compile this module.

use domain::Cents;
use uuid::Uuid;

pub use crate::event_body::{IntentObject, dispute_object, event_payload, refunded_charge};
use crate::types::{Currency, IntentStatus};

impl IntentObject {
    /// A succeeded intent for `amount` paid in full.
    pub fn succeeded(intent_id: &str, order_id: Uuid, amount: Cents) -> Self {
        Self {
            intent_id: intent_id.to_owned(),
            amount,
            amount_received: amount,
            currency: Currency::usd(),
            status: IntentStatus::Succeeded,
            order_id: Some(order_id),
            order_number: None,
            latest_charge: None,
        }
    }

    /// A `requires_payment_method` intent after a decline.
    pub fn failed(intent_id: &str, order_id: Uuid, amount: Cents) -> Self {
        Self {
            amount_received: Cents::ZERO,
            status: IntentStatus::RequiresPaymentMethod,
            ..Self::succeeded(intent_id, order_id, amount)
        }
    }
}
