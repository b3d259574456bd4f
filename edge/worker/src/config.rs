//! The Worker's own keys (the edge's are in [`edge::EdgeConfig`]), read once per isolate from
//! the Worker's vars and secrets. A bad value is a configuration error naming the key.

use std::time::Duration;

use edge::ConfigError;

/// Cloudflare's API, where the zone purge goes unless `CF_API_BASE` says otherwise.
pub const CF_API_BASE: &str = "https://api.cloudflare.com/client/v4";

/// A zone id: 32 lowercase hex digits (so the `"<zone id>"` placeholder is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneId(String);

impl ZoneId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Self(raw.to_owned()))
        } else {
            Err("must be the zone's id: 32 lowercase hex digits".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API token allowed to purge the zone's cache. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where and as whom purges reach every Cloudflare location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonePurge {
    pub zone: ZoneId,
    pub token: ApiToken,
    /// `CF_API_BASE` without a trailing `/`: Cloudflare's API, or a local stand-in in tests.
    pub api_base: String,
}

impl ZonePurge {
    pub fn url(&self) -> String {
        format!("{}/zones/{}/purge_cache", self.api_base, self.zone.as_str())
    }
}

/// How far a purge reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeScope {
    /// The Cache API of this location, then the zone purge API for every location
    /// (and for prefixes, which the Cache API cannot enumerate).
    Zone(ZonePurge),
    /// This location's Cache API only; prefix purges answer 501. Only on explicit request
    /// (`EDGE_PURGE_SCOPE=colo`): local development, where there is one location.
    Colo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// `EDGE_PUBLIC_HOST`: cache keys are `https://{host}{key}`, so the zone purge API can
    /// address them.
    pub public_host: String,
    /// `None` when purging is off (no `EDGE_PURGE_SECRET`).
    pub purge: Option<PurgeScope>,
    /// `EDGE_MAX_BODY_BYTES`, default 1 MiB: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `EDGE_MAX_ORIGIN_BODY_BYTES`, default 32 MiB: larger origin answers are a failure.
    pub max_origin_body_bytes: usize,
    /// `EDGE_HEALTH_BOARD_SECS`, default 10: how often an isolate reads the pool health the
    /// Cron Trigger published (after a response, never before one).
    pub health_board_every: Duration,
}

impl WorkerConfig {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| var(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let invalid =
            |key: &'static str, reason: String| ConfigError::invalid(key, &get(key).unwrap_or_default(), reason);
        let size = |key: &'static str, default: usize| -> Result<usize, ConfigError> {
            get(key).map_or(Ok(default), |raw| {
                raw.parse().map_err(|e: std::num::ParseIntError| invalid(key, e.to_string()))
            })
        };

        let public_host = get("EDGE_PUBLIC_HOST").ok_or(ConfigError::Missing("EDGE_PUBLIC_HOST"))?;
        if !public_host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b)) {
            return Err(invalid("EDGE_PUBLIC_HOST", "must be a host name like stolentee.com".into()));
        }

        let purge = match (get("EDGE_PURGE_SECRET").is_some(), get("EDGE_PURGE_SCOPE").as_deref()) {
            (false, _) => None,
            (true, Some("colo")) => Some(PurgeScope::Colo),
            (true, None | Some("zone")) => {
                let zone = get("CF_ZONE_ID").ok_or_else(|| {
                    ConfigError::invalid(
                        "CF_ZONE_ID",
                        "",
                        "required when purging is on (EDGE_PURGE_SECRET): purges must reach every location",
                    )
                })?;
                let zone = ZoneId::parse(&zone).map_err(|e| invalid("CF_ZONE_ID", e))?;
                let token = get("CF_API_TOKEN").ok_or_else(|| {
                    ConfigError::invalid(
                        "CF_API_TOKEN",
                        "",
                        "required when purging is on (EDGE_PURGE_SECRET): a token with Zone > Cache Purge",
                    )
                })?;
                let api_base = get("CF_API_BASE").unwrap_or_else(|| CF_API_BASE.to_owned());
                if !(api_base.starts_with("https://") || api_base.starts_with("http://127.0.0.1:")) {
                    return Err(invalid("CF_API_BASE", "must be https:// (or http://127.0.0.1:PORT locally)".into()));
                }
                Some(PurgeScope::Zone(ZonePurge {
                    zone,
                    token: ApiToken(token),
                    api_base: api_base.trim_end_matches('/').to_owned(),
                }))
            }
            (true, Some(_)) => return Err(invalid("EDGE_PURGE_SCOPE", "must be zone (the default) or colo".into())),
        };

        let board_secs = get("EDGE_HEALTH_BOARD_SECS")
            .map_or(Ok(10), |raw| raw.parse::<u64>().map_err(|e| invalid("EDGE_HEALTH_BOARD_SECS", e.to_string())))?;
        Ok(Self {
            public_host,
            purge,
            max_body_bytes: size("EDGE_MAX_BODY_BYTES", 1 << 20)?,
            max_origin_body_bytes: size("EDGE_MAX_ORIGIN_BODY_BYTES", 32 << 20)?,
            health_board_every: Duration::from_secs(board_secs.max(1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ZONE: &str = "0123456789abcdef0123456789abcdef";

    fn config(vars: &[(&str, &str)]) -> Result<WorkerConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        WorkerConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn purging_on_needs_the_zone_and_a_token_unless_colo_scope_is_asked_for() {
        let host = ("EDGE_PUBLIC_HOST", "stolentee.com");
        let secret = ("EDGE_PURGE_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret");
        assert_eq!(config(&[host]).unwrap().purge, None, "no secret: purging is off");
        let err = config(&[host, secret]).unwrap_err().to_string();
        assert!(err.contains("CF_ZONE_ID"), "{err}");
        let err = config(&[host, secret, ("CF_ZONE_ID", ZONE)]).unwrap_err().to_string();
        assert!(err.contains("CF_API_TOKEN"), "{err}");
        let err = config(&[host, secret, ("CF_ZONE_ID", "<zone id>"), ("CF_API_TOKEN", "t")]).unwrap_err();
        assert!(err.to_string().contains("CF_ZONE_ID"), "the placeholder is refused: {err}");
        let zone = config(&[host, secret, ("CF_ZONE_ID", ZONE), ("CF_API_TOKEN", "t")]).unwrap();
        let Some(PurgeScope::Zone(z)) = zone.purge else { panic!("zone scope expected") };
        assert_eq!(z.url(), format!("{CF_API_BASE}/zones/{ZONE}/purge_cache"));
        assert_eq!(config(&[host, secret, ("EDGE_PURGE_SCOPE", "colo")]).unwrap().purge, Some(PurgeScope::Colo));
        assert!(config(&[host, secret, ("EDGE_PURGE_SCOPE", "world")]).is_err());
    }

    #[test]
    fn the_purge_api_base_is_https_or_a_loopback_stand_in() {
        let vars = |base| {
            config(&[
                ("EDGE_PUBLIC_HOST", "stolentee.com"),
                ("EDGE_PURGE_SECRET", "s3cret-s3cret-s3cret-s3cret-s3cret"),
                ("CF_ZONE_ID", ZONE),
                ("CF_API_TOKEN", "t"),
                ("CF_API_BASE", base),
            ])
        };
        assert!(vars("http://127.0.0.1:9999/client/v4/").is_ok());
        assert!(vars("http://evil.example/client/v4").is_err());
    }

    #[test]
    fn the_public_host_is_required_and_a_host_name() {
        assert!(config(&[]).unwrap_err().to_string().contains("EDGE_PUBLIC_HOST"));
        assert!(config(&[("EDGE_PUBLIC_HOST", "https://x/")]).is_err());
        assert!(format!("{:?}", ApiToken("secret".into())).contains("***"));
    }
}
