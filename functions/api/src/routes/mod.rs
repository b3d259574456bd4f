//! Route handlers, one module per area. Each handler parses its input into domain types,
//! calls the store or the cache, and maps outcomes to responses; rules live in `domain`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod designs;
pub mod dev_payments;
pub mod health;
pub mod jobs;
pub mod local_objects;
pub mod orders;
pub mod quote;
pub mod table;
pub mod uploads;
pub mod webhooks;

/// Marks a response as never to be stored by any cache (per-request or private data).
pub fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
