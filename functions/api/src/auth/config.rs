//! Authentication settings, read once at start-up.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `JWT_KEYS` | – | `kid:secret[,kid:secret…]`; the first signs, all verify (rotation) |
//! | `JWT_SECRET` | – | one key (kid `main`) when `JWT_KEYS` is unset |
//! | `JWT_ISSUER` / `JWT_AUDIENCE` | `stolentee-api` / `stolentee` | checked on every token |
//! | `JWT_TTL_SECS` | 900 | token lifetime (60–86 400) |
//! | `SUPABASE_JWT_SECRET` | unset: Supabase sign-in off | HS256 secret of the Supabase project |
//! | `SUPABASE_JWT_ISSUER` | unset: not checked | e.g. `https://<ref>.supabase.co/auth/v1` |
//! | `SUPABASE_URL` | unset: only the `google` provider vouches for an address | `https://<ref>.supabase.co`: ask Supabase whether the address is confirmed |
//! | `SUPABASE_ANON_KEY` | unset: no `apikey` header | the project's public anon key, which Supabase's gateway asks for |
//! | `ORDER_TOKEN_SECRET` | – | HMAC key for guests' order tokens |
//!
//! Secrets are at least 32 bytes. In production (`APP_ENV=production`, the default inside
//! Lambda) `JWT_KEYS`/`JWT_SECRET` and `ORDER_TOKEN_SECRET` are required; in development
//! (tests, `make dev`) a missing one is a random per-process key, like
//! `LOCAL_OBJECTS_SECRET`: tokens then die with the process. (The client's IP and the edge's
//! secret are the `origin` module's.)

use std::time::Duration;

use config::{ConfigError, Env};
use serde::Deserialize;

pub const MIN_SECRET_BYTES: usize = 32;

/// A signing key with its id (the JWT `kid` header).
#[derive(Clone)]
pub struct JwtKey {
    pub kid: String,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey").field("kid", &self.kid).field("secret", &"***").finish()
    }
}

#[derive(Clone)]
pub struct SupabaseConfig {
    pub secret: Vec<u8>,
    pub issuer: Option<String>,
    /// The project's base URL (no trailing slash): when set, whether an address is confirmed
    /// is asked of Supabase (`GET /auth/v1/user`) instead of inferred from the token.
    pub url: Option<String>,
    /// Sent as `apikey` with that request (Supabase's gateway requires the anon key).
    pub anon_key: Option<String>,
}

impl std::fmt::Debug for SupabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseConfig")
            .field("issuer", &self.issuer)
            .field("url", &self.url)
            .field("secret", &"***")
            .field("anon_key", &self.anon_key.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Clone)]
pub struct AuthConfig {
    /// Never empty; `keys[0]` signs.
    pub keys: Vec<JwtKey>,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
    pub supabase: Option<SupabaseConfig>,
    pub order_token_secret: Vec<u8>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("kids", &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("supabase", &self.supabase)
            .finish_non_exhaustive()
    }
}

fn random_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    // getrandom only fails on platforms without an entropy source; then start-up must stop,
    // but a config reader cannot return that error type, so fall back to a UUID's randomness.
    if getrandom::fill(&mut bytes).is_err() {
        bytes = [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat();
    }
    bytes
}

fn secret(key: &'static str, raw: &str) -> Result<Vec<u8>, ConfigError> {
    if raw.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::invalid(key, raw, format!("must be at least {MIN_SECRET_BYTES} bytes")));
    }
    Ok(raw.as_bytes().to_vec())
}

/// The variables in the table above, as they are set.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct AuthSettings {
    pub jwt_keys: Option<String>,
    pub jwt_secret: Option<String>,
    #[serde(default = "defaults::issuer")]
    pub jwt_issuer: String,
    #[serde(default = "defaults::audience")]
    pub jwt_audience: String,
    #[serde(default = "defaults::ttl_secs")]
    pub jwt_ttl_secs: u64,
    pub supabase_jwt_secret: Option<String>,
    pub supabase_jwt_issuer: Option<String>,
    pub supabase_url: Option<String>,
    pub supabase_anon_key: Option<String>,
    pub order_token_secret: Option<String>,
}

mod defaults {
    pub fn issuer() -> String {
        "stolentee-api".into()
    }
    pub fn audience() -> String {
        "stolentee".into()
    }
    pub fn ttl_secs() -> u64 {
        900
    }
}

impl AuthConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_settings(env.parse()?, env.mode()?.is_production())
    }

    pub fn from_settings(s: AuthSettings, production: bool) -> Result<Self, ConfigError> {
        let keys = match (s.jwt_keys, s.jwt_secret) {
            (Some(list), _) => parse_key_list(&list)?,
            (None, Some(raw)) => vec![JwtKey { kid: "main".into(), secret: secret("JWT_SECRET", &raw)? }],
            (None, None) if production => return Err(ConfigError::Missing("JWT_KEYS")),
            (None, None) => vec![JwtKey { kid: "dev".into(), secret: random_secret() }],
        };
        if !(60..=86_400).contains(&s.jwt_ttl_secs) {
            return Err(ConfigError::invalid(
                "JWT_TTL_SECS",
                &s.jwt_ttl_secs.to_string(),
                "must be between 60 and 86400",
            ));
        }
        let supabase = match s.supabase_jwt_secret {
            None => None,
            // Without Supabase's own answer only one provider's claims vouch for an address;
            // production asks Supabase whether the address is confirmed.
            Some(_) if production && s.supabase_url.is_none() => return Err(ConfigError::Missing("SUPABASE_URL")),
            Some(raw) => Some(SupabaseConfig {
                secret: secret("SUPABASE_JWT_SECRET", &raw)?,
                issuer: s.supabase_jwt_issuer,
                url: s.supabase_url.as_deref().map(supabase_url).transpose()?,
                anon_key: s.supabase_anon_key.filter(|k| !k.trim().is_empty()),
            }),
        };
        let order_token_secret = match s.order_token_secret {
            Some(raw) => secret("ORDER_TOKEN_SECRET", &raw)?,
            None if production => return Err(ConfigError::Missing("ORDER_TOKEN_SECRET")),
            None => random_secret(),
        };
        Ok(Self {
            keys,
            issuer: s.jwt_issuer,
            audience: s.jwt_audience,
            ttl: Duration::from_secs(s.jwt_ttl_secs),
            supabase,
            order_token_secret,
        })
    }
}

/// `SUPABASE_URL`: an http(s) base URL without query or fragment, kept without its
/// trailing slash.
fn supabase_url(raw: &str) -> Result<String, ConfigError> {
    let bad = |reason: &str| ConfigError::invalid("SUPABASE_URL", raw, reason);
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(bad("must be an https:// URL (http:// only for a local stand-in)"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(bad("must be the project's base URL, e.g. https://<ref>.supabase.co"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `kid:secret[,kid:secret…]`: the first signs, all verify.
fn parse_key_list(list: &str) -> Result<Vec<JwtKey>, ConfigError> {
    let bad = |reason: String| ConfigError::invalid("JWT_KEYS", list, reason);
    let mut keys: Vec<JwtKey> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (kid, raw) = entry.split_once(':').ok_or_else(|| bad("expected kid:secret[,kid:secret…]".into()))?;
        let kid = kid.trim();
        if kid.is_empty() || kid.len() > 64 || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(bad(format!("bad key id {kid:?}")));
        }
        if keys.iter().any(|k| k.kid == kid) {
            return Err(bad(format!("key id {kid:?} repeated")));
        }
        keys.push(JwtKey { kid: kid.to_owned(), secret: secret("JWT_KEYS", raw.trim())? });
    }
    if keys.is_empty() {
        return Err(bad("no keys".into()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)], in_lambda: bool) -> Result<AuthConfig, ConfigError> {
        let mut env = Env::from_pairs(pairs.iter().copied());
        if in_lambda {
            env = env.with("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        }
        AuthConfig::from_env(&env)
    }

    #[test]
    fn production_needs_real_secrets_development_gets_random_ones() {
        assert!(matches!(parse(&[], true), Err(ConfigError::Missing("JWT_KEYS"))));
        assert!(matches!(parse(&[("APP_ENV", "production")], false), Err(ConfigError::Missing("JWT_KEYS"))));
        let supabase_without_url = [
            ("JWT_SECRET", &*"s".repeat(32)),
            ("ORDER_TOKEN_SECRET", &*"s".repeat(32)),
            ("SUPABASE_JWT_SECRET", &*"s".repeat(32)),
        ];
        assert!(matches!(parse(&supabase_without_url, true), Err(ConfigError::Missing("SUPABASE_URL"))));
        assert!(parse(&supabase_without_url, false).is_ok(), "development may go without it");
        let long = "s".repeat(32);
        assert!(matches!(parse(&[("JWT_SECRET", &long)], true), Err(ConfigError::Missing("ORDER_TOKEN_SECRET"))));
        assert!(parse(&[("JWT_SECRET", &long), ("ORDER_TOKEN_SECRET", &long)], true).is_ok());
        let local = parse(&[], false).unwrap();
        assert_eq!(local.keys[0].kid, "dev");
        assert_eq!(local.ttl, Duration::from_secs(900));
    }

    #[test]
    fn short_secrets_and_bad_key_lists_are_refused() {
        assert!(matches!(
            parse(&[("JWT_SECRET", "short")], false),
            Err(ConfigError::Invalid { key: "JWT_SECRET", .. })
        ));
        let long = "s".repeat(32);
        assert!(parse(&[("JWT_KEYS", &long)], false).is_err(), "no kid");
        assert!(parse(&[("JWT_KEYS", &format!("a:{long},a:{long}"))], false).is_err(), "repeated kid");
        let two = parse(&[("JWT_KEYS", &format!("new:{long}, old:{long}"))], false).unwrap();
        assert_eq!(two.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["new", "old"]);
        assert!(parse(&[("JWT_TTL_SECS", "5")], false).is_err());
        assert!(parse(&[("SUPABASE_JWT_SECRET", "short")], false).is_err());
    }

    #[test]
    fn the_supabase_url_is_a_base_url() {
        let long = "s".repeat(32);
        let with = |url: &str| parse(&[("SUPABASE_JWT_SECRET", &long), ("SUPABASE_URL", url)], false);
        let c = with("https://abc.supabase.co/").unwrap();
        assert_eq!(c.supabase.unwrap().url.as_deref(), Some("https://abc.supabase.co"));
        for bad in
            ["abc.supabase.co", "ftp://abc.supabase.co", "https://abc.supabase.co/?x=1", "https://u:p@abc.supabase.co"]
        {
            assert!(matches!(with(bad), Err(ConfigError::Invalid { key: "SUPABASE_URL", .. })), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let long = "topsecret-".repeat(4);
        let c = parse(&[("JWT_SECRET", &long), ("SUPABASE_JWT_SECRET", &long), ("SUPABASE_ANON_KEY", &long)], false)
            .unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }
}
