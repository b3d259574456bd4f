//! `POST /api/dev/payments/{intent_id}/{confirm|fail|refund|dispute}` — `make dev` only.
//!
//! Mounted only outside Lambda and only when the local payments provider is active (no
//! `STRIPE_SECRET_KEY`). It has the local provider sign the webhook Stripe would send and
//! hands it to [`payment_events::process`], the service the Stripe webhook route uses: the
//! order is paid by the same verification, de-duplication and state machine as with Stripe.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;

use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::no_store;
use crate::services::payment_events;

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
        "dispute" => local.dispute(&intent_id),
        _ => return Err(ApiError::not_found("route")),
    }?;
    tracing::info!(intent = %intent_id, action, event = %signed.event_id, "delivering a local webhook");
    let processed = payment_events::process(&state, &signed.payload, &signed.signature_header).await?;
    Ok(no_store(Json(processed)))
}
