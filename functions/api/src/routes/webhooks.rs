//! `POST /api/webhooks/stripe`: payment events, verified on the raw body and applied once by
//! [`crate::services::payment_events`]. A refused delivery is 400 with the payments crate's
//! stable code and changes nothing; everything else answers 200 with what it did (see
//! [`EventResult`](crate::services::payment_events::EventResult)), or Stripe would retry it
//! for days.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;

use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::no_store;
use crate::services::payment_events;

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
    let processed = payment_events::process(&state, &body, signature).await?;
    Ok(no_store(Json(processed)))
}
