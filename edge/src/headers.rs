//! Response headers the edge owns: security headers on every response, a CSP on API
//! responses, and CORS from an allowlist (preflights answered here, never forwarded).
//! A request from an origin not on the list gets no CORS headers at all, whatever the
//! origin server said.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, CONTENT_SECURITY_POLICY, ORIGIN, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, VARY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};

/// The API answers JSON only: nothing in it should ever load, run or be framed.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Sets the security headers every response carries, and the API's CSP. An origin's own
/// CSP is kept (it knows its pages); the others are the edge's to decide.
pub fn apply_security(headers: &mut HeaderMap, is_api: bool) {
    headers.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("strict-origin-when-cross-origin"));
    if is_api && !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP));
    }
}

/// Cross-origin access: which sites may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    /// Exact origins (`https://stolentee.com`), compared byte for byte, lower-cased.
    pub allowed_origins: HashSet<String>,
    pub allow_credentials: bool,
    pub max_age: Duration,
}

/// Methods a preflight may ask for.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// Request headers a preflight may ask for (lower case).
/// Request headers the storefront may send cross-origin: guests prove ownership of their
/// uploads and orders with `X-Guest-Token` and `X-Order-Token`.
const ALLOWED_HEADERS: &[&str] =
    &["content-type", "authorization", "idempotency-key", "x-request-id", "x-guest-token", "x-order-token"];
/// Response headers a script may read.
const EXPOSED_HEADERS: &str = "x-cache, x-request-id, retry-after, etag";

impl Default for CorsPolicy {
    fn default() -> Self {
        Self { allowed_origins: HashSet::new(), allow_credentials: false, max_age: Duration::from_secs(600) }
    }
}

impl CorsPolicy {
    fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        origin.filter(|o| o.to_str().is_ok_and(|o| self.allowed_origins.contains(&o.to_ascii_lowercase())))
    }

    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) gets
    /// its answer here: 204 with the grants for an allowed origin asking for allowed
    /// methods and headers, 403 without any CORS header otherwise. `None`: not a preflight.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response<Bytes>> {
        if method != Method::OPTIONS {
            return None;
        }
        let requested_method = headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
        let origin = headers.get(ORIGIN);
        let method_ok =
            requested_method.to_str().is_ok_and(|m| ALLOWED_METHODS.split(", ").any(|allowed| allowed == m.trim()));
        let headers_ok = headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS).iter().all(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .all(|h| ALLOWED_HEADERS.contains(&h.to_ascii_lowercase().as_str()))
            })
        });
        let mut response = Response::new(Bytes::new());
        response.headers_mut().insert(VARY, HeaderValue::from_static("Origin"));
        match self.allowed(origin) {
            Some(origin) if method_ok && headers_ok => {
                *response.status_mut() = StatusCode::NO_CONTENT;
                let h = response.headers_mut();
                h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOWED_METHODS));
                h.insert(
                    ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(
                        "content-type, authorization, idempotency-key, x-request-id, x-guest-token, x-order-token",
                    ),
                );
                h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age.as_secs()));
                if self.allow_credentials {
                    h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
                }
            }
            _ => *response.status_mut() = StatusCode::FORBIDDEN,
        }
        Some(response)
    }

    /// On an actual response: strip whatever CORS headers the origin sent, then grant an
    /// allowed `request_origin`. `Vary: Origin` always, so no cache mixes the two.
    pub fn apply(&self, request_origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let cors: Vec<HeaderName> =
            headers.keys().filter(|name| name.as_str().starts_with("access-control-")).cloned().collect();
        for name in cors {
            headers.remove(name);
        }
        let varies_on_origin = headers
            .get_all(VARY)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|f| f.trim().eq_ignore_ascii_case("origin"))));
        if !varies_on_origin {
            headers.append(VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(origin) = self.allowed(request_origin) {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
            if self.allow_credentials {
                headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            }
        }
    }
}
