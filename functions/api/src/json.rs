//! `ApiJson<T>`: a JSON body extractor whose every rejection is an [`ApiError`] that names
//! the offending field, instead of axum's plain-text rejections.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        // Bounded by the router's DefaultBodyLimit: an oversized body is refused while it
        // streams, before it is held in memory.
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "the request body could not be read")
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Deserialises `bytes`, reporting the JSON path of the first problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("the body is not valid JSON: {inner}")
            }
            _ => inner.to_string(),
        };
        let error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message);
        if path == "." { error } else { error.with_field(path) }
    })?;
    de.end().map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("trailing data after the JSON value: {e}"))
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::RawQuoteRequest;

    fn error_of(body: &str) -> ApiError {
        parse::<RawQuoteRequest>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let e = error_of(r#"{"variant_id": "x", "method": "dtg", "placements": [{"location": 3}], "quantity": 1}"#);
        assert_eq!(e.code, "invalid_json");
        assert_eq!(e.field.as_deref(), Some("placements[0].location"));
        let e = error_of(r#"{"variant_id": "x", "method": "dtg", "placements": [], "quantity": "12"}"#);
        assert_eq!(e.field.as_deref(), Some("quantity"));
    }

    #[test]
    fn numbers_beyond_i64_are_a_type_error_not_a_wraparound() {
        let e = error_of(r#"{"variant_id": "x", "method": "dtg", "placements": [], "quantity": 99999999999999999999}"#);
        assert_eq!(e.field.as_deref(), Some("quantity"));
    }

    #[test]
    fn client_sent_prices_are_refused_as_unknown_fields() {
        let e = error_of(r#"{"variant_id": "x", "method": "dtg", "placements": [], "quantity": 1, "total_cents": 1}"#);
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_trailing_garbage_and_missing_fields_are_bad_requests() {
        for body in ["", "{", "[]", "null", r#"{"quantity": 1} {}"#, r#"{"method": "dtg"}"#, "\u{0}"] {
            let e = error_of(body);
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "invalid_json"), "{body:?}");
        }
    }

    #[test]
    fn deeply_nested_json_is_rejected_without_overflowing_the_stack() {
        let body = "[".repeat(100_000);
        assert_eq!(error_of(&body).code, "invalid_json");
    }
}
