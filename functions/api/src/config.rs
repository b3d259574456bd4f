//! The API's configuration: read from the environment once, validated, then immutable.

use std::net::SocketAddr;
use std::time::Duration;

use store::objects::ObjectsConfig;
use store::queue::QueueConfig;
use store::{ConfigError, DbConfig};

use crate::auth::AuthConfig;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the local server listens (`API_BIND`, default 127.0.0.1:3000). Unused in Lambda.
    pub bind: SocketAddr,
    pub db: DbConfig,
    /// `OBJECT_STORE=s3|local` and its keys (see `store::objects::config`).
    pub objects: ObjectsConfig,
    /// `QUEUE=sqs|memory` and its keys (see `store::queue::config`).
    pub queue: QueueConfig,
    /// How long an instance serves catalog data from memory (`CATALOG_CACHE_TTL_SECS`,
    /// default 60). A catalog change made in SQL is visible everywhere after this.
    pub catalog_ttl: Duration,
    /// Upper bound on any request (`REQUEST_TIMEOUT_MS`, default 10 000).
    pub request_timeout: Duration,
    /// Largest request body accepted (`MAX_BODY_BYTES`, default 64 KiB). Uploads never pass
    /// through the function (they go to presigned URLs), so JSON bodies stay small.
    pub max_body_bytes: usize,
    pub in_lambda: bool,
    /// JWTs, Supabase sign-in, guest order tokens, client IPs (see `auth::config`).
    pub auth: AuthConfig,
    /// Stripe, or the local stand-in when no key is set outside Lambda (`STRIPE_*`,
    /// `LOCAL_*`; see the payments crate).
    pub payments: payments::PaymentsConfig,
    /// `EDGE_PURGE_URL` + `EDGE_PURGE_SECRET`: where admin catalog writes purge the edge cache.
    pub edge_purge: Option<EdgePurgeConfig>,
}

/// The edge's authenticated purge endpoint: `EDGE_PURGE_URL` is its full URL
/// (`https://<edge>/__edge/purge`), `EDGE_PURGE_SECRET` the shared bearer secret.
#[derive(Clone)]
pub struct EdgePurgeConfig {
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for EdgePurgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgePurgeConfig").field("url", &self.url).field("secret", &"***").finish()
    }
}

impl ApiConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok(), store::telemetry::in_lambda())
    }

    pub fn from_lookup(var: impl Fn(&str) -> Option<String>, in_lambda: bool) -> Result<Self, ConfigError> {
        let db = DbConfig::from_lookup(&var, in_lambda)?;
        let objects = ObjectsConfig::from_lookup(&var, in_lambda)?;
        let queue = QueueConfig::from_lookup(&var, in_lambda)?;
        let bind = match var("API_BIND") {
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
            Some(raw) => raw.parse().map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                key: "API_BIND",
                reason: e.to_string(),
            })?,
        };
        let number = |key: &'static str, default: u64, min: u64| -> Result<u64, ConfigError> {
            let value = match var(key) {
                None => default,
                Some(raw) => raw
                    .trim()
                    .parse()
                    .map_err(|e: std::num::ParseIntError| ConfigError::Invalid { key, reason: e.to_string() })?,
            };
            if value < min {
                return Err(ConfigError::Invalid { key, reason: format!("must be at least {min}") });
            }
            Ok(value)
        };
        let auth = AuthConfig::from_lookup(&var, in_lambda)?;
        let payments = payments::PaymentsConfig::from_lookup(&var, in_lambda).map_err(|e| match e {
            payments::ConfigError::Missing(key) => ConfigError::Missing(key),
            payments::ConfigError::Invalid { key, reason } => ConfigError::Invalid { key, reason },
        })?;
        let present = |key: &str| var(key).filter(|v| !v.trim().is_empty());
        let edge_purge = match (present("EDGE_PURGE_URL"), present("EDGE_PURGE_SECRET")) {
            (None, None) => None,
            (Some(url), Some(secret)) => {
                let url = url.trim().to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        key: "EDGE_PURGE_URL",
                        reason: "expected an http(s):// URL".into(),
                    });
                }
                if secret.trim().len() < 32 {
                    return Err(ConfigError::Invalid {
                        key: "EDGE_PURGE_SECRET",
                        reason: "must be at least 32 bytes (the edge refuses shorter ones)".into(),
                    });
                }
                Some(EdgePurgeConfig { url, secret: secret.trim().to_owned() })
            }
            (Some(_), None) => return Err(ConfigError::Missing("EDGE_PURGE_SECRET")),
            (None, Some(_)) => return Err(ConfigError::Missing("EDGE_PURGE_URL")),
        };
        Ok(Self {
            auth,
            payments,
            edge_purge,
            bind,
            db,
            objects,
            queue,
            catalog_ttl: Duration::from_secs(number("CATALOG_CACHE_TTL_SECS", 60, 0)?),
            request_timeout: Duration::from_millis(number("REQUEST_TIMEOUT_MS", 10_000, 100)?),
            max_body_bytes: number("MAX_BODY_BYTES", 64 * 1024, 1024)? as usize,
            in_lambda,
        })
    }
}
