//! The request middleware: request id, tracing span, access log, time limit and the final
//! rendering of error bodies. It is the outermost layer, so everything inside — routing,
//! extractors, handlers, caught panics — is covered.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::{Instrument, field};

use crate::error::ApiError;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, also sent back as `x-request-id`.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Picks the request id: API Gateway's own id inside Lambda (so our logs join AWS's), a
/// well-formed `x-request-id` from the caller (the edge sets one), or a fresh UUID.
fn request_id(req: &Request) -> String {
    if let Some(id) = lambda_request_id(req) {
        return id;
    }
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned)
}

/// Caller-supplied ids end up in logs: only short, plain ones are trusted (API Gateway's
/// look like `JKJaXmPLvHcESHA=`).
fn is_safe_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:=+/".contains(&b))
}

fn lambda_request_id(req: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match req.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.request_id.clone(),
        RequestContext::Alb(_) => None,
        #[allow(unreachable_patterns)]
        _ => None,
    }
    .filter(|id| is_safe_id(id))
}

/// Wraps every request. `timeout` bounds the whole request so that nothing hangs.
pub async fn around_request(State(timeout): State<Duration>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let route = req.extensions().get::<MatchedPath>().map_or("<unmatched>", |p| p.as_str()).to_owned();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        request_id = %id,
        status = field::Empty,
        latency_ms = field::Empty,
    );
    req.extensions_mut().insert(RequestId(id.clone()));

    let mut response = match tokio::time::timeout(timeout, next.run(req).instrument(span.clone())).await {
        Ok(response) => response,
        Err(_) => {
            ApiError::unavailable("timeout", format!("the request took longer than {timeout:?}"), 1).into_response()
        }
    };

    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        let body = error.body(&id);
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().remove(header::CONTENT_LENGTH);
        *response.body_mut() = Body::from(body);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }

    let status = response.status();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.record("status", status.as_u16());
    span.record("latency_ms", field::display(format_args!("{latency_ms:.3}")));
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!("request failed");
        } else {
            tracing::info!("request served");
        }
    });
    response
}

/// Unknown routes: the JSON 404.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("route")
}

/// Known route, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this route does not accept that method")
}

/// A panic in a handler becomes a 500 for that request only; the process keeps serving.
pub fn panic_to_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::internal().into_response()
}

#[cfg(test)]
mod tests {
    use super::is_safe_id;

    #[test]
    fn only_plain_short_request_ids_are_trusted() {
        assert!(is_safe_id("abc-123_x.y:z"));
        assert!(is_safe_id("JKJaXmPLvHcESHA="));
        assert!(is_safe_id("e1f4c2b0d0a94c1f9c6b1f0b8f3a2d7e"));
        assert!(!is_safe_id(""));
        assert!(!is_safe_id("id\nforged log line"));
        assert!(!is_safe_id("<script>"));
        assert!(!is_safe_id(&"a".repeat(129)));
    }
}
