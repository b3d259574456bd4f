//! One error shape for every failure the API reports:
//!
//! ```json
//! {"error": {"code": "invalid_quantity", "message": "…", "field": "quantity", "request_id": "…"}}
//! ```
//!
//! `code` is stable and meant for programs; `message` is for people and may change;
//! `field` (when present) is the JSON path of the offending input; `request_id` matches the
//! `x-request-id` header and the logs. Handlers return [`ApiError`]; the request middleware
//! adds the request id when it writes the body, so every error — including unknown routes,
//! timeouts and caught panics — carries it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use store::StoreError;

/// An error response waiting for its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after_secs: Option<u32>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    request_id: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None, retry_after_secs: None }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn unprocessable(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message).with_field(field)
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on our side")
    }

    /// 503 with `Retry-After`: the client should try again shortly.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after_secs: u32) -> Self {
        Self { retry_after_secs: Some(retry_after_secs), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    /// The JSON body, once the request id is known.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let envelope = Envelope {
            error: Body { code: self.code, message: &self.message, field: self.field.as_deref(), request_id },
        };
        serde_json::to_vec(&envelope).unwrap_or_else(|_| br#"{"error":{"code":"internal"}}"#.to_vec())
    }
}

impl IntoResponse for ApiError {
    /// Status and headers now; the body is written by the request middleware, which knows
    /// the request id. The error travels in the response extensions until then.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(self);
        response
    }
}

impl From<&StoreError> for ApiError {
    /// Unavailability is the client's to retry (503); anything else is ours (500, logged).
    fn from(e: &StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "database unavailable");
            Self::unavailable("database_unavailable", "the database is unavailable; retry shortly", 1)
        } else {
            tracing::error!(error = %e, "store error");
            Self::internal()
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from(&e)
    }
}

/// Cache loaders share one error among all waiting requests.
impl From<std::sync::Arc<StoreError>> for ApiError {
    fn from(e: std::sync::Arc<StoreError>) -> Self {
        Self::from(&*e)
    }
}
