//! Payment events: verify a webhook delivery and apply it to its order, once.
//!
//! 1. The signature header is checked against the raw bytes (every `v1` signature, every
//!    configured secret, constant time, 300 s tolerance) by the payments crate. A bad
//!    signature, a stale or future timestamp, or a body that is not an event changes nothing.
//! 2. The event id is recorded in `processed_events` in the same transaction as the state
//!    change, so a replay (within the tolerance) or a concurrent duplicate is a no-op.
//! 3. The order is found by its intent, else by the order id in the intent's metadata: an
//!    intent the order never recorded, or a second intent made for it, still reaches it.
//! 4. The order moves only up `pending → failed → paid → refunded` (`domain::PaymentStatus`),
//!    so events arriving out of order cannot undo each other; a success counts only if the
//!    intent names this order and its amount and currency equal the order's total. Partial
//!    refunds add to the order's refunded amount; disputes record their newest state.
//!
//! Whatever cannot be tied to an order — an event whose intent no order has and whose
//! metadata names none, or a payment through an intent other than the order's own — is
//! answered 200 (Stripe would otherwise retry for days, then disable the endpoint and with it
//! every payment) but never quietly: it is logged at `error` and counted in the
//! `PaymentEventsUnmatched` metric, whose alarm pages someone. A new dispute is counted in
//! `PaymentDisputes` (its evidence is due within days).
//!
//! Stripe's webhook route and the dev-only local confirmation both call [`process`]: a local
//! payment is confirmed by the same verification, de-duplication and state machine.

use db::StoreError;
use db::orders::{IntentMatch, PaymentChange, PaymentEvent, PaymentOutcome};
use domain::{OrderId, PaymentStatus};
use payments::{Event, EventKind, WebhookError};
use runtime::metrics::PaymentAlert;
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
    /// A type we record but do not act on.
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
    /// No order has this intent, nor the order its metadata names: recorded and alarmed.
    UnknownOrder,
}

/// A verified event and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessedEvent {
    pub received: bool,
    pub event_id: String,
    pub result: EventResult,
}

/// What the store needs from an event, or `None` for a type that changes nothing.
fn payment_event<'a>(event: &'a Event, metadata_order_id: Option<&'a str>) -> Option<PaymentEvent<'a>> {
    let base = |intent_id: &'a str, currency: &'a payments::Currency, change| PaymentEvent {
        event_id: &event.id,
        event_type: &event.event_type,
        created: event.created,
        intent_id,
        metadata_order_id,
        amount_cents: None,
        currency: Some(currency.as_str()),
        change,
    };
    match &event.kind {
        EventKind::PaymentIntentSucceeded { intent_id, amount_received, currency, .. } => Some(PaymentEvent {
            amount_cents: Some(*amount_received),
            ..base(intent_id.as_str(), currency, PaymentChange::Status(PaymentStatus::Paid))
        }),
        EventKind::PaymentIntentFailed { intent_id, currency, .. } => {
            Some(base(intent_id.as_str(), currency, PaymentChange::Status(PaymentStatus::Failed)))
        }
        EventKind::ChargeRefunded { payment_intent: Some(intent_id), amount_refunded, refunded, currency, .. } => {
            let change = PaymentChange::Refund { amount_refunded: *amount_refunded, full: *refunded };
            Some(base(intent_id.as_str(), currency, change))
        }
        EventKind::ChargeDisputed {
            payment_intent: Some(intent_id),
            dispute_id,
            status,
            amount,
            reason,
            currency,
            ..
        } => {
            let change = PaymentChange::Dispute {
                dispute_id: dispute_id.as_str(),
                status: status.as_str(),
                amount: *amount,
                reason: reason.as_deref(),
            };
            Some(base(intent_id.as_str(), currency, change))
        }
        // Refunds and disputes of a charge without an intent (the shop never makes one), and
        // every other type.
        EventKind::ChargeRefunded { payment_intent: None, .. }
        | EventKind::ChargeDisputed { payment_intent: None, .. }
        | EventKind::Other(_) => None,
    }
}

/// Logs at `error` and counts the metric the unmatched-payments alarm watches.
fn alarm_unmatched(state: &AppState, event: &Event, reason: &'static str, detail: &str) {
    tracing::error!(
        alert = "payment_event_unmatched",
        reason,
        event = %event.id,
        kind = %event.event_type,
        intent = event.payment_intent_id().unwrap_or("-"),
        detail,
        "payment event unmatched: money may have moved for an order the shop does not show it on"
    );
    state.metrics.payment_alert(&PaymentAlert::Unmatched {
        reason,
        event_id: event.id.clone(),
        event_type: event.event_type.clone(),
    });
}

/// Verifies and applies one webhook delivery.
pub async fn process(state: &AppState, payload: &[u8], signature: &str) -> Result<ProcessedEvent, PaymentEventError> {
    let event = state.payments.verify_webhook(payload, signature)?;
    let span = tracing::info_span!("payment_event", id = %event.id, kind = %event.event_type);
    let _guard = span.enter();

    let order_id_text: Option<String> = event.order_id().map(|o| o.to_string());
    let result = match payment_event(&event, order_id_text.as_deref()) {
        None if matches!(event.kind, EventKind::ChargeDisputed { .. }) => {
            let detail = "a dispute of a charge without a payment intent";
            let fresh = state.orders.record_unmatched_event(&event.id, &event.event_type, detail).await?;
            if fresh {
                alarm_unmatched(state, &event, "unknown_order", detail);
                EventResult::UnknownOrder
            } else {
                EventResult::Duplicate
            }
        }
        None => {
            let fresh = state.orders.record_unhandled_event(&event.id, &event.event_type).await?;
            tracing::info!(fresh, "payment event acknowledged without a state change");
            if fresh { EventResult::Unhandled } else { EventResult::Duplicate }
        }
        Some(payment_event) => {
            let outcome = state.orders.apply_payment_event(&payment_event).await?;
            report(state, &event, &outcome);
            match outcome {
                PaymentOutcome::Duplicate => EventResult::Duplicate,
                PaymentOutcome::Applied { order_id, to, .. } => EventResult::Applied { order_id, payment_status: to },
                PaymentOutcome::Ignored { order_id, status, .. } => {
                    EventResult::Ignored { order_id, payment_status: status }
                }
                PaymentOutcome::Rejected { .. } => EventResult::Rejected,
                PaymentOutcome::UnknownOrder => EventResult::UnknownOrder,
            }
        }
    };
    Ok(ProcessedEvent { received: true, event_id: event.id, result })
}

/// Logs what an applied event did, and raises the alarms it calls for.
fn report(state: &AppState, event: &Event, outcome: &PaymentOutcome) {
    match outcome {
        PaymentOutcome::Duplicate => tracing::info!("duplicate payment event ignored"),
        PaymentOutcome::Applied { order_id, from, to, via } => {
            tracing::info!(order = %order_id, from = from.as_str(), to = to.as_str(), via = ?via, "payment event applied");
            if event.event_type == "charge.dispute.created" {
                tracing::warn!(order = %order_id, alert = "payment_dispute", "a dispute was opened; evidence is due within days");
                state.metrics.payment_alert(&PaymentAlert::Dispute {
                    event_id: event.id.clone(),
                    order_id: order_id.to_string(),
                });
            }
        }
        PaymentOutcome::Ignored { order_id, status, via } => {
            tracing::info!(order = %order_id, status = status.as_str(), via = ?via, "event ignored: order already at or past it");
        }
        PaymentOutcome::Rejected { reason } => {
            tracing::warn!(reason = %reason, "payment event does not match its order; not applied");
        }
        PaymentOutcome::UnknownOrder => {
            alarm_unmatched(state, event, "unknown_order", "no order has the intent, nor the order its metadata names");
        }
    }
    if let PaymentOutcome::Applied { via: IntentMatch::Stray { stored }, .. }
    | PaymentOutcome::Ignored { via: IntentMatch::Stray { stored }, .. } = outcome
    {
        let detail = format!("the order's own intent is {stored}: make sure only one of the two is ever paid");
        alarm_unmatched(state, event, "stray_intent", &detail);
    }
}
