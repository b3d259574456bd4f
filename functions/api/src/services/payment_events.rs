//! Payment events: verify a webhook delivery and apply it to its order, once.
//!
//! 1. The signature header is checked against the raw bytes (every `v1` signature, every
//!    configured secret, constant time, 300 s tolerance) by the payments crate. A bad
//!    signature, a stale or future timestamp, or a body that is not an event changes nothing.
//! 2. The event id is recorded in `processed_events` in the same transaction as the state
//!    change, so a replay (within the tolerance) or a concurrent duplicate is a no-op.
//! 3. The order moves only up `pending → failed → paid → refunded` (`domain::PaymentStatus`),
//!    so events arriving out of order cannot undo each other; a success counts only if the
//!    intent names this order and its amount and currency equal the order's total.
//!
//! Stripe's webhook route and the dev-only local confirmation both call [`process`]: a local
//! payment is confirmed by the same verification, de-duplication and state machine.

use db::StoreError;
use db::orders::{PaymentEvent, PaymentOutcome};
use domain::{OrderId, PaymentStatus};
use payments::{EventKind, WebhookError};
use serde::Serialize;

use crate::app::AppState;

#[derive(Debug, thiserror::Error)]
pub enum PaymentEventError {
    /// The delivery is not a genuine, fresh event: refuse it, change nothing.
    #[error(transparent)]
    Refused(#[from] WebhookError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one delivery did. Every variant but a refusal is acknowledged to the sender, or
/// Stripe would retry it for days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum EventResult {
    /// A type we record but do not act on (partial refunds, other event types).
    Unhandled,
    /// Seen before: nothing done.
    Duplicate,
    Applied {
        order_id: OrderId,
        payment_status: PaymentStatus,
    },
    /// The order is already at or past that state.
    Ignored {
        order_id: OrderId,
        payment_status: PaymentStatus,
    },
    /// The intent does not belong to the order, or the amount differs: recorded, not applied.
    Rejected,
    /// No order has this intent.
    UnknownOrder,
}

/// A verified event and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessedEvent {
    pub received: bool,
    pub event_id: String,
    pub result: EventResult,
}

/// Verifies and applies one webhook delivery.
pub async fn process(state: &AppState, payload: &[u8], signature: &str) -> Result<ProcessedEvent, PaymentEventError> {
    let event = state.payments.verify_webhook(payload, signature)?;
    let span = tracing::info_span!("payment_event", id = %event.id, kind = %event.event_type);
    let _guard = span.enter();

    let order_id_text: Option<String> = match &event.kind {
        EventKind::PaymentIntentSucceeded { order_id, .. } | EventKind::PaymentIntentFailed { order_id, .. } => {
            order_id.map(|o| o.to_string())
        }
        _ => None,
    };
    let applied = match &event.kind {
        EventKind::PaymentIntentSucceeded { intent_id, amount_received, currency, .. } => Some(PaymentEvent {
            event_id: &event.id,
            event_type: &event.event_type,
            intent_id,
            metadata_order_id: order_id_text.as_deref(),
            amount_cents: Some(*amount_received),
            currency: Some(currency.as_str()),
            target: PaymentStatus::Paid,
        }),
        EventKind::PaymentIntentFailed { intent_id, currency, .. } => Some(PaymentEvent {
            event_id: &event.id,
            event_type: &event.event_type,
            intent_id,
            metadata_order_id: order_id_text.as_deref(),
            amount_cents: None,
            currency: Some(currency.as_str()),
            target: PaymentStatus::Failed,
        }),
        EventKind::ChargeRefunded { payment_intent: Some(intent_id), refunded: true, currency, .. } => {
            Some(PaymentEvent {
                event_id: &event.id,
                event_type: &event.event_type,
                intent_id,
                metadata_order_id: None,
                amount_cents: None,
                currency: Some(currency.as_str()),
                target: PaymentStatus::Refunded,
            })
        }
        // Partial refunds, refunds without an intent and every other type: acknowledged,
        // recorded once, no state change.
        EventKind::ChargeRefunded { .. } | EventKind::Other(_) => None,
    };

    let result = match applied {
        None => {
            let fresh = state.orders.record_unhandled_event(&event.id, &event.event_type).await?;
            tracing::info!(fresh, "payment event acknowledged without a state change");
            if fresh { EventResult::Unhandled } else { EventResult::Duplicate }
        }
        Some(payment_event) => match state.orders.apply_payment_event(&payment_event).await? {
            PaymentOutcome::Duplicate => {
                tracing::info!("duplicate payment event ignored");
                EventResult::Duplicate
            }
            PaymentOutcome::Applied { order_id, from, to } => {
                tracing::info!(order = %order_id, from = from.as_str(), to = to.as_str(), "payment status changed");
                EventResult::Applied { order_id, payment_status: to }
            }
            PaymentOutcome::Ignored { order_id, status } => {
                tracing::info!(order = %order_id, status = status.as_str(), "event ignored: order already at or past it");
                EventResult::Ignored { order_id, payment_status: status }
            }
            PaymentOutcome::Rejected { reason } => {
                tracing::warn!(reason = %reason, "payment event does not match its order; not applied");
                EventResult::Rejected
            }
            PaymentOutcome::UnknownOrder => {
                tracing::warn!("payment event for an intent no order has");
                EventResult::UnknownOrder
            }
        },
    };
    Ok(ProcessedEvent { received: true, event_id: event.id, result })
}
