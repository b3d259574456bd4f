//! `POST /api/dev/payments/{intent_id}/{confirm|fail|refund}` — `make dev` only.
//!
//! Mounted only outside Lambda and only when the local payments provider is active (no
//! `STRIPE_SECRET_KEY`). It has the local provider sign the webhook Stripe would send and
//! feeds it to [`webhooks::process`], the production handler: the order is paid by the same
//! verification, de-duplication and state machine as with Stripe.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use payments::LocalError;

use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::webhooks;

pub async fn act(
    State(state): State<AppState>,
    Path((intent_id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let Some(local) = state.payments.local() else {
        return Err(ApiError::not_found("route"));
    };
    let signed = match action.as_str() {
        "confirm" => local.confirm(&intent_id),
        "fail" => local.fail(&intent_id),
        "refund" => local.refund(&intent_id),
        _ => return Err(ApiError::not_found("route")),
    }
    .map_err(|e| match e {
        LocalError::UnknownIntent(_) => ApiError::not_found("payment intent"),
        LocalError::InvalidState { .. } => ApiError::new(StatusCode::CONFLICT, "invalid_intent_state", e.to_string()),
        other => ApiError::unprocessable("payment_request_invalid", "intent_id", other.to_string()),
    })?;
    tracing::info!(intent = %intent_id, action, event = %signed.event_id, "delivering a local webhook");
    webhooks::process(&state, &signed.payload, &signed.signature_header).await
}
