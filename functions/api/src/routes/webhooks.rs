//! `POST /api/webhooks/stripe`: payment events, verified on the raw body.
//!
//! 1. The `Stripe-Signature` header is checked against the raw bytes (every `v1` signature,
//!    every configured secret, constant time, 300 s tolerance) by the payments crate. A bad
//!    signature, a stale or future timestamp, or a body that is not an event is 400 with the
//!    crate's stable code and changes nothing.
//! 2. The event id is recorded in `processed_events` in the same transaction as the state
//!    change, so a replay (within the tolerance) or a concurrent duplicate is a no-op.
//! 3. The order moves only up `pending → failed → paid → refunded` (`domain::PaymentStatus`),
//!    so events arriving out of order cannot undo each other; a success counts only if the
//!    intent names this order and its amount and currency equal the order's total.
//!
//! Events that are recorded but not applied (mismatch, unknown intent, other types) still
//! answer 200, or Stripe would retry them for days; the outcome is in the body and the log.
//! The dev-only confirmation endpoint calls [`process`] with the local provider's signed
//! event: the same code path.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use domain::PaymentStatus;
use payments::{EventKind, WebhookError};
use serde_json::json;
use store::orders::{PaymentEvent, PaymentOutcome};

use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::no_store;

/// Stripe's events are a few KiB; 256 KiB leaves room for expanded objects.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the request body could not be read")
        }
    })?;
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    process(&state, &body, signature).await
}

fn webhook_error(e: &WebhookError) -> ApiError {
    if matches!(e, WebhookError::NoSecretConfigured) {
        tracing::error!("webhook received but no signing secret is configured");
        return ApiError::internal();
    }
    tracing::warn!(code = e.code(), error = %e, "webhook refused");
    ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
}

/// Verifies and applies one webhook delivery.
pub async fn process(state: &AppState, payload: &[u8], signature: &str) -> Result<Response, ApiError> {
    let event = state.payments.verify_webhook(payload, signature).map_err(|e| webhook_error(&e))?;
    let span = tracing::info_span!("stripe_event", id = %event.id, kind = %event.event_type);
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
            amount_cents: Some(amount_received.get()),
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

    let outcome = match applied {
        None => {
            let fresh = state.orders.record_unhandled_event(&event.id, &event.event_type).await?;
            tracing::info!(fresh, "webhook event acknowledged without a state change");
            json!({ "outcome": if fresh { "unhandled" } else { "duplicate" } })
        }
        Some(payment_event) => match state.orders.apply_payment_event(&payment_event).await? {
            PaymentOutcome::Duplicate => {
                tracing::info!("duplicate webhook event ignored");
                json!({ "outcome": "duplicate" })
            }
            PaymentOutcome::Applied { order_id, from, to } => {
                tracing::info!(order = %order_id, from = from.as_str(), to = to.as_str(), "payment status changed");
                json!({ "outcome": "applied", "order_id": order_id, "payment_status": to })
            }
            PaymentOutcome::Ignored { order_id, status } => {
                tracing::info!(order = %order_id, status = status.as_str(), "event ignored: order already at or past it");
                json!({ "outcome": "ignored", "order_id": order_id, "payment_status": status })
            }
            PaymentOutcome::Rejected { reason } => {
                tracing::warn!(reason = %reason, "payment event does not match its order; not applied");
                json!({ "outcome": "rejected" })
            }
            PaymentOutcome::UnknownOrder => {
                tracing::warn!("payment event for an intent no order has");
                json!({ "outcome": "unknown_order" })
            }
        },
    };
    Ok(no_store(Json(json!({ "received": true, "event_id": event.id, "result": outcome }))))
}
