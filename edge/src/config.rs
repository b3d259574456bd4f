//! The edge's configuration, read once from the environment (Worker vars and secrets in
//! production, process environment natively) into typed values. A bad value stops start-up
//! with the key named.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::geo::{Continent, Country};
use crate::headers::CorsPolicy;
use crate::ratelimit::{RateLimits, Rule};
use crate::routing::{HealthPolicy, Origin, OriginPool, PoolName, Steering};

/// The workspace's one configuration error: it names the key and shows the bad value.
pub use ::config::ConfigError;

/// A shared secret (the purge endpoint's, the one the edge shows the origins): at least 32
/// bytes, compared in constant time, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(String);

pub const MIN_SECRET_BYTES: usize = 32;

impl SharedSecret {
    pub fn new(raw: String) -> Result<Self, String> {
        if raw.len() < MIN_SECRET_BYTES {
            return Err(format!("must be at least {MIN_SECRET_BYTES} bytes"));
        }
        Ok(Self(raw))
    }

    /// The secret itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison (the length is not secret).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        ours.len() == presented.len() && ours.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(***)")
    }
}

/// Which URL prefixes are served from the bucket, and under which key prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRoute {
    /// `/assets/`
    pub url_prefix: String,
    /// `assets/`
    pub key_prefix: String,
}

/// Everything the edge's logic needs; hosts add their own keys (bind address, cache size).
#[derive(Debug)]
pub struct EdgeConfig {
    pub steering: Steering,
    pub health: HealthPolicy,
    /// Bound on one origin request (connect to last byte).
    pub origin_timeout: Duration,
    /// Active `GET /health` probes of every origin this often (`None`: passive health only).
    pub probe_interval: Option<Duration>,
    /// The path active probes `GET` on every origin (`EDGE_HEALTH_PATH`, default
    /// `/health/ready`: the API's readiness, which checks its database).
    pub health_path: String,
    /// Name of the pool-affinity cookie (`None`: no affinity).
    pub affinity_cookie: Option<String>,
    pub affinity_max_age: Duration,
    /// Path prefixes whose GET/HEAD responses may be cached.
    pub cached_prefixes: Vec<String>,
    pub purge_secret: Option<SharedSecret>,
    /// `EDGE_ORIGIN_SECRET`: sent as `X-Edge-Auth` on every origin request (probes too), so
    /// the origins can refuse anyone who skips the edge and believe its `X-Client-IP`.
    pub origin_secret: Option<SharedSecret>,
    pub cors: CorsPolicy,
    pub rate_limits: RateLimits,
    pub assets: Vec<AssetRoute>,
    /// Largest total size of the request's header lines (431 beyond).
    pub max_header_bytes: usize,
}

/// Path of the purge endpoint.
pub const PURGE_PATH: &str = "/__edge/purge";
/// Path of the edge's own status (pools up/down).
pub const STATUS_PATH: &str = "/__edge/health";

impl EdgeConfig {
    /// Reads every `EDGE_*` key through `var` (the process environment, or a Worker's
    /// `env.var`/`env.secret`).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &'static str| var(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let invalid =
            |key: &'static str, reason: String| ConfigError::invalid(key, &get(key).unwrap_or_default(), reason);

        // EDGE_POOLS="us-west=http://a:3000,http://b:3000;eu-west=http://c:3001"
        let pools_raw = get("EDGE_POOLS").unwrap_or_else(|| "default=http://127.0.0.1:3000".to_owned());
        let mut pools = Vec::new();
        for entry in pools_raw.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, origins) = entry
                .split_once('=')
                .ok_or_else(|| invalid("EDGE_POOLS", format!("{entry:?} is not NAME=ORIGIN[,ORIGIN]")))?;
            let name: PoolName = name.parse().map_err(|e| invalid("EDGE_POOLS", format!("{e}")))?;
            let origins = origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(Origin::from_str)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("EDGE_POOLS", e.to_string()))?;
            pools.push(OriginPool::new(name, origins));
        }
        let countries = pairs(get("EDGE_COUNTRY_POOLS"), "EDGE_COUNTRY_POOLS", |c: &str| {
            c.parse::<Country>().map_err(|e| e.to_string())
        })?;
        let continents = pairs(get("EDGE_CONTINENT_POOLS"), "EDGE_CONTINENT_POOLS", |c: &str| {
            c.parse::<Continent>().map_err(|e| e.to_string())
        })?;
        let fallback = get("EDGE_FALLBACK_POOL")
            .map(|f| f.parse::<PoolName>().map_err(|e| invalid("EDGE_FALLBACK_POOL", e.to_string())))
            .transpose()?;
        let steering = Steering::new(pools, countries, continents, fallback)
            .map_err(|e| invalid("EDGE_POOLS / EDGE_*_POOLS", e.to_string()))?;

        let secs = |key: &'static str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(raw) => match raw.parse::<u64>() {
                    Ok(v) if v >= min => Ok(v),
                    Ok(_) => Err(invalid(key, format!("must be at least {min}"))),
                    Err(e) => Err(invalid(key, e.to_string())),
                },
            }
        };
        let failures = secs("EDGE_HEALTH_FAILURES", 3, 1)?;
        let health = HealthPolicy {
            failures: u32::try_from(failures).map_err(|e| invalid("EDGE_HEALTH_FAILURES", e.to_string()))?,
            window: Duration::from_secs(secs("EDGE_HEALTH_WINDOW_SECS", 30, 1)?),
            cooldown: Duration::from_secs(secs("EDGE_HEALTH_COOLDOWN_SECS", 30, 1)?),
        };
        let origin_timeout = Duration::from_millis(secs("EDGE_ORIGIN_TIMEOUT_MS", 10_000, 10)?);
        let probe_interval = match secs("EDGE_HEALTH_PROBE_SECS", 0, 0)? {
            0 => None,
            n => Some(Duration::from_secs(n)),
        };
        let health_path = get("EDGE_HEALTH_PATH").unwrap_or_else(|| "/health/ready".to_owned());
        if !health_path.starts_with('/') || health_path.parse::<http::uri::PathAndQuery>().is_err() {
            return Err(invalid("EDGE_HEALTH_PATH", "must be a path starting with /".into()));
        }
        let affinity_cookie = match get("EDGE_AFFINITY_COOKIE").as_deref() {
            None | Some("off" | "false" | "0") => None,
            Some("on" | "true" | "1") => Some("__edge_pool".to_owned()),
            Some(name) if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {
                Some(name.to_owned())
            }
            Some(other) => {
                return Err(invalid("EDGE_AFFINITY_COOKIE", format!("{other:?} is not a cookie name or on/off")));
            }
        };
        let affinity_max_age = Duration::from_secs(secs("EDGE_AFFINITY_MAX_AGE_SECS", 300, 1)?);

        let cached_prefixes = list(get("EDGE_CACHE_PREFIXES").unwrap_or_else(|| "/api/products".into()));
        if let Some(bad) = cached_prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(invalid("EDGE_CACHE_PREFIXES", format!("{bad:?} does not start with /")));
        }
        let purge_secret = get("EDGE_PURGE_SECRET")
            .map(|s| SharedSecret::new(s).map_err(|e| invalid("EDGE_PURGE_SECRET", e)))
            .transpose()?;

        let origin_secret = get("EDGE_ORIGIN_SECRET")
            .map(|s| SharedSecret::new(s).map_err(|e| invalid("EDGE_ORIGIN_SECRET", e)))
            .transpose()?;

        let mut allowed_origins = HashSet::new();
        for origin in list(get("EDGE_CORS_ORIGINS").unwrap_or_default()) {
            let parsed: Origin = origin
                .parse()
                .map_err(|e: crate::routing::InvalidOrigin| invalid("EDGE_CORS_ORIGINS", e.to_string()))?;
            allowed_origins.insert(parsed.to_string().to_ascii_lowercase());
        }
        let cors = CorsPolicy {
            allowed_origins,
            allow_credentials: matches!(get("EDGE_CORS_CREDENTIALS").as_deref(), Some("true" | "1" | "on")),
            max_age: Duration::from_secs(secs("EDGE_CORS_MAX_AGE_SECS", 600, 0)?),
        };

        let rule = |key: &'static str, default: Rule| -> Result<Rule, ConfigError> {
            get(key).map_or(Ok(default), |raw| {
                raw.parse().map_err(|e: crate::ratelimit::InvalidRule| invalid(key, e.to_string()))
            })
        };
        let defaults = RateLimits::default();
        let rate_limits = RateLimits {
            api: rule("EDGE_RATE_API", defaults.api)?,
            uploads: rule("EDGE_RATE_UPLOADS", defaults.uploads)?,
            login_failures: rule("EDGE_RATE_LOGIN_FAILURES", defaults.login_failures)?,
            job_polls: rule("EDGE_RATE_JOB_POLLS", defaults.job_polls)?,
            ..defaults
        };

        let mut assets = Vec::new();
        for prefix in list(get("EDGE_ASSET_PREFIXES").unwrap_or_else(|| "assets/,media/".into())) {
            let key_prefix = format!("{}/", prefix.trim_matches('/'));
            if key_prefix == "/"
                || !key_prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/-_".contains(&b))
            {
                return Err(invalid("EDGE_ASSET_PREFIXES", format!("{prefix:?} is not a key prefix like assets/")));
            }
            assets.push(AssetRoute { url_prefix: format!("/{key_prefix}"), key_prefix });
        }
        let max_header_bytes = usize::try_from(secs("EDGE_MAX_HEADER_BYTES", 32 * 1024, 1024)?)
            .map_err(|e| invalid("EDGE_MAX_HEADER_BYTES", e.to_string()))?;

        Ok(Self {
            steering,
            health,
            origin_timeout,
            probe_interval,
            health_path,
            affinity_cookie,
            affinity_max_age,
            cached_prefixes,
            purge_secret,
            origin_secret,
            cors,
            rate_limits,
            assets,
            max_header_bytes,
        })
    }
}

fn list(raw: String) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `A=pool,B=pool` into typed pairs.
fn pairs<T>(
    raw: Option<String>,
    key: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<(T, PoolName)>, ConfigError> {
    let mut out = Vec::new();
    let raw = raw.unwrap_or_default();
    let invalid = |reason: String| ConfigError::invalid(key, &raw, reason);
    for entry in list(raw.clone()) {
        let (k, pool) = entry.split_once('=').ok_or_else(|| invalid(format!("{entry:?} is not CODE=POOL")))?;
        let k = parse(k).map_err(invalid)?;
        let pool = pool.parse::<PoolName>().map_err(|e| invalid(e.to_string()))?;
        out.push((k, pool));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<EdgeConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        EdgeConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_one_local_pool_and_the_old_limits() {
        let c = config(&[]).unwrap();
        assert_eq!(c.steering.pools().len(), 1);
        assert_eq!(c.rate_limits, RateLimits::default());
        assert!(c.purge_secret.is_none());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("EDGE_POOLS", "us-west"),
            ("EDGE_POOLS", "US=http://x"),
            ("EDGE_COUNTRY_POOLS", "GB=nowhere"),
            ("EDGE_CONTINENT_POOLS", "XX=default"),
            ("EDGE_PURGE_SECRET", "short"),
            ("EDGE_RATE_API", "100"),
            ("EDGE_CORS_ORIGINS", "stolentee.com"),
            ("EDGE_ASSET_PREFIXES", "../"),
            ("EDGE_HEALTH_FAILURES", "0"),
        ];
        for (key, value) in cases {
            let err = config(&[(key, value)]).unwrap_err().to_string();
            // Pool references are checked together, once every pool is known.
            let named = err.contains(key) || (key.ends_with("_POOLS") && err.contains("EDGE_POOLS / EDGE_*_POOLS"));
            assert!(named, "{key}={value}: {err}");
        }
    }
}
