//! Origin authentication: the edge proves itself to the API, and only then is its word on
//! who the client is believed.
//!
//! Every request the edge forwards carries `X-Edge-Auth: <secret>` and `X-Client-IP: <the
//! visitor's address>` (the edge overwrites whatever a visitor sent under those names). The
//! API compares the secret in constant time with each of `EDGE_ORIGIN_SECRETS` (a list, so a
//! secret can be rotated without downtime: add the new one here, switch the edge, drop the
//! old). A request that matches is marked [`FromEdge`], and only such a request's client-IP
//! header is used for per-IP limits; any other caller is identified by the address it
//! connected from.
//!
//! In production (`APP_ENV=production`) the secret is required at start-up and a request
//! without it is refused (`403 origin_forbidden`): calling the regional origin directly would
//! otherwise skip every edge limit, the CORS policy and the cache. Only liveness (`/health`,
//! `/health/live`, which reveal nothing) answers anyone, for load balancers and smoke tests.
//! In development the origin stays open (tests and `make dev` call it directly), but an
//! unauthenticated client-IP header is still ignored.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use config::{ConfigError, Env};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::error::ApiError;

/// The header carrying the edge's secret.
pub static EDGE_AUTH: HeaderName = HeaderName::from_static("x-edge-auth");
/// The header in which the edge names the visitor's IP (the default of `CLIENT_IP_HEADER`).
pub static CLIENT_IP: HeaderName = HeaderName::from_static("x-client-ip");

/// Shortest secret accepted: 32 bytes, like every other secret of the API.
pub const MIN_SECRET_BYTES: usize = 32;

/// Routes that answer without the edge's secret even in production.
const OPEN_PATHS: &[&str] = &["/health", "/health/live"];

/// Marks a request that carried a valid edge secret.
#[derive(Debug, Clone, Copy)]
pub struct FromEdge;

/// `EDGE_ORIGIN_SECRETS`, `CLIENT_IP_HEADER` and whether unauthenticated callers are refused.
#[derive(Clone)]
pub struct OriginAuth {
    /// `HMAC(domain key, secret)` of each accepted secret: comparing tags of equal length in
    /// constant time says nothing about the secrets' lengths or contents.
    tags: Vec<[u8; 32]>,
    /// Refuse requests without a valid secret (production).
    pub required: bool,
    /// Where the edge puts the client's IP (`CLIENT_IP_HEADER`, default `x-client-ip`).
    pub client_ip_header: HeaderName,
}

impl std::fmt::Debug for OriginAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginAuth")
            .field("secrets", &self.tags.len())
            .field("required", &self.required)
            .field("client_ip_header", &self.client_ip_header)
            .finish()
    }
}

/// The variables, as they are set.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct OriginSettings {
    /// Comma-separated; any one of them authenticates the edge.
    pub edge_origin_secrets: Option<Vec<String>>,
    pub client_ip_header: Option<String>,
}

/// A MAC under a fixed, public key: it is only a way to compare secrets of any length in
/// constant time, not a signature.
fn keyed() -> Hmac<Sha256> {
    <Hmac<Sha256> as Mac>::new_from_slice(b"stolentee edge origin auth").unwrap_or_else(|_| unreachable!())
}

fn tag(secret: &[u8]) -> [u8; 32] {
    keyed().chain_update(secret).finalize().into_bytes().into()
}

impl OriginAuth {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_settings(env.parse()?, env.mode()?.is_production())
    }

    pub fn from_settings(s: OriginSettings, production: bool) -> Result<Self, ConfigError> {
        let secrets = s.edge_origin_secrets.unwrap_or_default();
        let mut tags = Vec::with_capacity(secrets.len());
        for secret in &secrets {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError::invalid(
                    "EDGE_ORIGIN_SECRETS",
                    secret,
                    format!("each secret must be at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            tags.push(tag(secret.as_bytes()));
        }
        if production && tags.is_empty() {
            return Err(ConfigError::Missing("EDGE_ORIGIN_SECRETS"));
        }
        let client_ip_header = match s.client_ip_header {
            None => CLIENT_IP.clone(),
            Some(raw) => HeaderName::try_from(raw.to_ascii_lowercase())
                .map_err(|e| ConfigError::invalid("CLIENT_IP_HEADER", &raw, e.to_string()))?,
        };
        Ok(Self { tags, required: production, client_ip_header })
    }

    /// Whether `headers` carry one of the accepted secrets.
    pub fn verifies(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers.get(&EDGE_AUTH) else { return false };
        let mac = keyed().chain_update(presented.as_bytes());
        // `verify_slice` compares in constant time, and every accepted tag is tried whichever
        // matches, so timing says nothing about the secrets.
        self.tags.iter().fold(false, |found, expected| mac.clone().verify_slice(expected).is_ok() | found)
    }
}

/// Marks requests from the edge; in production refuses every other caller except liveness.
pub async fn guard(State(auth): State<std::sync::Arc<OriginAuth>>, mut request: Request, next: Next) -> Response {
    if auth.verifies(request.headers()) {
        request.extensions_mut().insert(FromEdge);
    } else if auth.required && !OPEN_PATHS.contains(&request.uri().path()) {
        tracing::warn!(path = %request.uri().path(), "request refused: it did not come through the edge");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_forbidden",
            "this origin only answers the edge; use the public address",
        )
        .into_response();
    }
    // The secret never travels further (handlers, logs).
    request.headers_mut().remove(&EDGE_AUTH);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn auth(secrets: &[&str], production: bool) -> Result<OriginAuth, ConfigError> {
        let edge_origin_secrets = (!secrets.is_empty()).then(|| secrets.iter().map(|s| s.to_string()).collect());
        OriginAuth::from_settings(OriginSettings { edge_origin_secrets, client_ip_header: None }, production)
    }

    fn with_secret(secret: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(&EDGE_AUTH, HeaderValue::from_bytes(secret).unwrap());
        headers
    }

    #[test]
    fn production_requires_a_secret_and_short_ones_are_refused() {
        assert_eq!(auth(&[], true).unwrap_err(), ConfigError::Missing("EDGE_ORIGIN_SECRETS"));
        let err = auth(&["short"], false).unwrap_err();
        assert_eq!(err.key(), "EDGE_ORIGIN_SECRETS");
        assert!(!err.to_string().contains("short"), "secrets are never shown: {err}");
        assert!(!auth(&[], false).unwrap().required);
        assert!(auth(&[&"s".repeat(32)], true).unwrap().required);
    }

    #[test]
    fn any_listed_secret_verifies_for_rotation_and_nothing_else_does() {
        let (new, old) = ("n".repeat(40), "o".repeat(32));
        let auth = auth(&[&new, &old], true).unwrap();
        assert!(auth.verifies(&with_secret(new.as_bytes())));
        assert!(auth.verifies(&with_secret(old.as_bytes())));
        assert!(!auth.verifies(&with_secret(&new.as_bytes()[..39])), "a prefix");
        assert!(!auth.verifies(&with_secret(format!("{new}x").as_bytes())), "an extension");
        assert!(!auth.verifies(&with_secret(b"")));
        assert!(!auth.verifies(&with_secret(&[0xff; 40])), "not UTF-8");
        assert!(!auth.verifies(&HeaderMap::new()));
    }
}
