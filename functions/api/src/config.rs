//! The API's configuration: read from the environment once, validated, then immutable.

use std::net::SocketAddr;
use std::time::Duration;

use store::objects::ObjectsConfig;
use store::queue::QueueConfig;
use store::{ConfigError, DbConfig};

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
        Ok(Self {
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
