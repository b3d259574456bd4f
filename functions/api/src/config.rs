//! The API's configuration: read from the environment once, validated, then immutable.

use std::net::SocketAddr;
use std::time::Duration;

use config::{ConfigError, Env, Mode};
use db::DbConfig;
use objects::ObjectsConfig;
use queue::QueueConfig;
use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::origin::OriginAuth;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the local server listens (`API_BIND`, default 127.0.0.1:3000). Unused in Lambda.
    pub bind: SocketAddr,
    /// A second local address serving the same app (`API_BIND_SECOND`): `make dev` runs two
    /// origins so the edge has pools to choose between. Unused in Lambda.
    pub second_bind: Option<SocketAddr>,
    pub db: DbConfig,
    /// `OBJECT_STORE=s3|local` and its keys (see `objects::config`).
    pub objects: ObjectsConfig,
    /// `QUEUE=sqs|memory` and its keys (see `queue::config`).
    pub queue: QueueConfig,
    /// How long an instance keeps catalog data in memory (`CATALOG_CACHE_TTL_SECS`, default
    /// 60): a memory bound; freshness comes from the catalog version (below).
    pub catalog_ttl: Duration,
    /// How old an instance's knowledge of the primary's catalog version may get before a
    /// request reads it again (`CATALOG_VERSION_CHECK_MS`, default 1000, 0–10 000): a catalog
    /// change, made anywhere, is served by every instance within this (see `cache`).
    pub catalog_version_check: Duration,
    /// Upper bound on any request (`REQUEST_TIMEOUT_MS`, default 10 000).
    pub request_timeout: Duration,
    /// Largest request body accepted (`MAX_BODY_BYTES`, default 64 KiB). Uploads never pass
    /// through the function (they go to presigned URLs), so JSON bodies stay small.
    pub max_body_bytes: usize,
    pub in_lambda: bool,
    /// `APP_ENV`: production refuses to start without every secret and never mounts a
    /// development route, whatever the host (see `config::Mode`).
    pub mode: Mode,
    /// JWTs, Supabase sign-in, guest order tokens (see `auth::config`).
    pub auth: AuthConfig,
    /// `EDGE_ORIGIN_SECRETS`, `CLIENT_IP_HEADER`: who may call this origin, and whose word on
    /// the client's IP counts (see `origin`).
    pub origin: OriginAuth,
    /// Stripe, or the local stand-in when no key is set outside Lambda (`STRIPE_*`,
    /// `LOCAL_*`; see the payments crate).
    pub payments: payments::PaymentsConfig,
    /// Guest order token lifetime, limits on calls to Stripe, tax answer reuse
    /// (see `checkout_config`).
    pub checkout: crate::checkout_config::CheckoutConfig,
    /// `EDGE_PURGE_URL` + `EDGE_PURGE_SECRET`: where admin catalog writes purge the edge cache
    /// (required in production: without it a price change would wait out the edge's TTL).
    pub edge_purge: Option<EdgePurgeConfig>,
    /// `METRICS` and `STAGE`: CloudWatch EMF lines (see `runtime::metrics`).
    pub metrics: runtime::MetricsConfig,
    /// `CUTOUT_JOB_DEADLINE_SECS`: how long a cut-out job may take (see `services::media`).
    pub media: crate::services::media::MediaConfig,
}

/// The edge's authenticated purge endpoint: `EDGE_PURGE_URL` is its full URL
/// (`https://<edge>/__edge/purge`), `EDGE_PURGE_SECRET` the shared bearer secret.
#[derive(Clone)]
pub struct EdgePurgeConfig {
    pub url: String,
    pub secret: String,
    /// When the edge repeats each purge: derived from `CATALOG_VERSION_CHECK_MS` and
    /// `REQUEST_TIMEOUT_MS` (see `purge::again_after`).
    pub again_after: Duration,
}

impl std::fmt::Debug for EdgePurgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgePurgeConfig")
            .field("url", &self.url)
            .field("secret", &"***")
            .field("again_after", &self.again_after)
            .finish()
    }
}

/// The API's own variables, as they are set (the sections it shares with other binaries
/// have their own settings structs).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct ApiSettings {
    pub api_bind: Option<SocketAddr>,
    /// `make dev`'s second origin (the edge's second pool): same app, another address.
    pub api_bind_second: Option<SocketAddr>,
    #[serde(default = "defaults::catalog_ttl_secs")]
    pub catalog_cache_ttl_secs: u64,
    #[serde(default = "defaults::catalog_version_check_ms")]
    pub catalog_version_check_ms: u64,
    #[serde(default = "defaults::request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: u64,
    pub edge_purge_url: Option<String>,
    pub edge_purge_secret: Option<String>,
}

mod defaults {
    pub fn catalog_ttl_secs() -> u64 {
        60
    }
    pub fn catalog_version_check_ms() -> u64 {
        1_000
    }
    pub fn request_timeout_ms() -> u64 {
        10_000
    }
    pub fn max_body_bytes() -> u64 {
        64 * 1024
    }
}

impl ApiConfig {
    /// Reads every section the API needs from one snapshot of the environment.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let in_lambda = env.in_lambda();
        let mode = env.mode()?;
        let s: ApiSettings = env.parse()?;
        let at_least = |key: &'static str, value: u64, min: u64| -> Result<u64, ConfigError> {
            if value < min {
                return Err(ConfigError::invalid(key, &value.to_string(), format!("must be at least {min}")));
            }
            Ok(value)
        };
        if s.catalog_version_check_ms > 10_000 {
            return Err(ConfigError::invalid(
                "CATALOG_VERSION_CHECK_MS",
                &s.catalog_version_check_ms.to_string(),
                "must be at most 10000 (it bounds how long an instance serves an old price)",
            ));
        }
        let catalog_version_check = Duration::from_millis(s.catalog_version_check_ms);
        let request_timeout = Duration::from_millis(at_least("REQUEST_TIMEOUT_MS", s.request_timeout_ms, 100)?);
        let again_after = crate::purge::again_after(catalog_version_check, request_timeout);
        let edge_purge = match (s.edge_purge_url, s.edge_purge_secret) {
            (None, None) if mode.is_production() => return Err(ConfigError::Missing("EDGE_PURGE_URL")),
            (None, None) => None,
            (Some(url), Some(secret)) => {
                config::check_http_url("EDGE_PURGE_URL", &url)?;
                if secret.len() < 32 {
                    return Err(ConfigError::invalid(
                        "EDGE_PURGE_SECRET",
                        &secret,
                        "must be at least 32 bytes (the edge refuses shorter ones)",
                    ));
                }
                Some(EdgePurgeConfig { url, secret, again_after })
            }
            (Some(_), None) => return Err(ConfigError::Missing("EDGE_PURGE_SECRET")),
            (None, Some(_)) => return Err(ConfigError::Missing("EDGE_PURGE_URL")),
        };
        Ok(Self {
            bind: s.api_bind.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3000))),
            second_bind: s.api_bind_second,
            db: DbConfig::from_env(env)?,
            objects: ObjectsConfig::from_env(env)?,
            queue: QueueConfig::from_env(env)?,
            auth: AuthConfig::from_env(env)?,
            origin: OriginAuth::from_env(env)?,
            payments: payments::PaymentsConfig::from_env(env)?,
            checkout: crate::checkout_config::CheckoutConfig::from_env(env)?,
            edge_purge,
            metrics: runtime::MetricsConfig::from_env(env)?,
            media: crate::services::media::MediaConfig::from_env(env)?,
            catalog_ttl: Duration::from_secs(s.catalog_cache_ttl_secs),
            catalog_version_check,
            request_timeout,
            max_body_bytes: at_least("MAX_BODY_BYTES", s.max_body_bytes, 1024)? as usize,
            in_lambda,
            mode,
        })
    }
}
