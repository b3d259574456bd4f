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
//!
//! Every library error's mapping to a status and code lives at the end of this file, so a
//! code is defined once and handlers only write `?`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use db::StoreError;
use domain::Cart;
use objects::ObjectError;
use payments::{LocalError, PaymentError, WebhookError};
use serde::Serialize;

use crate::services::checkout::CheckoutError;
use crate::services::media::RequestJobError;
use crate::services::payment_events::PaymentEventError;
use crate::services::sign_in::SignInError;

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

// --- Every library error's mapping to a response, in one place -----------------------------

impl From<domain::CartError> for ApiError {
    fn from(e: domain::CartError) -> Self {
        Self::unprocessable(e.code, e.field, e.message)
    }
}

impl From<domain::ProductError> for ApiError {
    fn from(e: domain::ProductError) -> Self {
        Self::unprocessable(domain::ProductError::CODE, e.field, e.message)
    }
}

impl From<ObjectError> for ApiError {
    /// Storage faults: transient ones are the client's to retry, the rest are ours. A missing
    /// or oversized object can only be an upload the client did not (or not rightly) send.
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::NotFound(_) => {
                Self::new(StatusCode::CONFLICT, "upload_not_received", "the file is not in storage")
            }
            ObjectError::TooLarge { .. } => {
                Self::unprocessable("upload_size_mismatch", "byte_size", "the stored file is larger than declared")
            }
            e if e.is_transient() => {
                tracing::warn!(error = %e, "object store unavailable");
                Self::unavailable("storage_unavailable", "storage is unavailable; retry shortly", 1)
            }
            e => {
                tracing::error!(error = %e, "object store error");
                Self::internal()
            }
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        let code = e.code();
        let status = match code {
            "card_error" => StatusCode::PAYMENT_REQUIRED,
            "payment_provider_unavailable" => {
                return Self::unavailable(code, "the payment provider is unavailable; retry shortly", 2);
            }
            "payment_request_invalid" => StatusCode::UNPROCESSABLE_ENTITY,
            "payment_intent_not_found" => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_GATEWAY,
        };
        tracing::warn!(error = %e, code, "payment provider error");
        Self::new(status, code, e.to_string())
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        if matches!(e, WebhookError::NoSecretConfigured) {
            tracing::error!("webhook received but no signing secret is configured");
            return Self::internal();
        }
        tracing::warn!(code = e.code(), error = %e, "webhook refused");
        Self::new(StatusCode::BAD_REQUEST, e.code(), e.to_string())
    }
}

impl From<LocalError> for ApiError {
    /// The dev payment route's failures (the local provider only).
    fn from(e: LocalError) -> Self {
        match e {
            LocalError::UnknownIntent(_) => Self::not_found("payment intent"),
            LocalError::InvalidState { .. } => Self::new(StatusCode::CONFLICT, "invalid_intent_state", e.to_string()),
            other => Self::unprocessable("payment_request_invalid", "intent_id", other.to_string()),
        }
    }
}

impl From<CheckoutError> for ApiError {
    fn from(e: CheckoutError) -> Self {
        match e {
            CheckoutError::EmailRequired => {
                Self::unprocessable("email_required", "email", "an e-mail address is needed for the receipt")
            }
            CheckoutError::UnknownDesign { line } => Self::unprocessable(
                "unknown_design",
                format!("items[{line}].design_id"),
                "no saved design of yours has this id",
            ),
            CheckoutError::Unpriceable { line, error } => {
                Self::unprocessable(error.code(), Cart::quote_error_field(line, &error.field()), error.to_string())
            }
            CheckoutError::TotalOutOfRange => {
                Self::unprocessable("quote_overflow", "items", "the order total is out of range")
            }
            CheckoutError::NothingToPay => Self::unprocessable("invalid_cart", "items", "an order must cost something"),
            CheckoutError::KeyReused => Self::unprocessable(
                "idempotency_key_reused",
                "Idempotency-Key",
                "this Idempotency-Key was used for a different cart; use a new key for a new order",
            ),
            CheckoutError::RateLimited { retry_after_secs } => Self {
                retry_after_secs: Some(retry_after_secs),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "payment_rate_limited",
                    "too many payment requests from this address or for this order; retry later",
                )
            },
            CheckoutError::IntentMismatch(detail) => {
                tracing::error!(detail, "the order's recorded payment intent does not match the order");
                Self::internal()
            }
            CheckoutError::Payment(e) => e.into(),
            CheckoutError::Store(e) => e.into(),
        }
    }
}

impl From<PaymentEventError> for ApiError {
    fn from(e: PaymentEventError) -> Self {
        match e {
            PaymentEventError::Refused(e) => e.into(),
            PaymentEventError::Store(e) => e.into(),
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Store(e) => e.into(),
            SignInError::Hashing(e) => {
                tracing::error!(error = %e, "password hashing failed");
                Self::internal()
            }
        }
    }
}

impl From<RequestJobError> for ApiError {
    /// The job exists but its message could not be sent: asking again sends it.
    fn from(e: RequestJobError) -> Self {
        match e {
            RequestJobError::Store(e) => e.into(),
            RequestJobError::Queue(e) => {
                tracing::warn!(error = %e, "could not queue a job");
                Self::unavailable("queue_unavailable", "the job queue is unavailable; retry shortly", 2)
            }
        }
    }
}
