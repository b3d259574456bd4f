//! Configuration, the one way: each binary snapshots its environment once ([`Env`]), parses
//! serde-derived settings structs out of it ([`Env::parse`]), and turns those into the typed
//! configuration its libraries take. Every failure is one [`ConfigError`] that names the key
//! and shows the bad value (secrets and URL passwords masked).
//!
//! Why a small reader of our own rather than a layered-config crate: our settings come only
//! from the environment (Lambda, `make dev`, CI), and every value is a string. Readers that
//! guess types from the text turn a digits-only secret into a number or a value starting with
//! `[` into a list; here a field's Rust type alone decides how its text is parsed.
//!
//! **Architecture invariant:** libraries never read the process environment. They define
//! settings structs (`#[derive(Deserialize)]`, keys spelled as the variables are) and accept
//! an [`Env`] or the parsed values from the binary that owns the process.

mod de;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use thiserror::Error;

/// A setting that is missing or malformed. It names the key, so an operator knows what to fix.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    /// `value` is what was set, as it may be shown: secrets are masked, URL passwords hidden.
    #[error("{key}={value} is not valid: {reason}")]
    Invalid { key: &'static str, value: String, reason: String },
}

impl ConfigError {
    /// `key` was set to `raw`, which is wrong because of `reason`.
    pub fn invalid(key: &'static str, raw: &str, reason: impl Into<String>) -> Self {
        Self::Invalid { key, value: shown_value(key, raw), reason: reason.into() }
    }

    /// The key this error is about.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Missing(key) | Self::Invalid { key, .. } => key,
        }
    }
}

/// A snapshot of the environment, taken once at start-up. Empty values count as unset, and
/// values are trimmed: `KEY=` in a `.env` file or a deploy template means "use the default".
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
    /// Keys whose value is not UTF-8; reading one is an error rather than "unset".
    not_utf8: Vec<String>,
}

impl Env {
    /// The process environment. Only binaries call this, once, in `main`.
    pub fn from_process() -> Self {
        let mut env = Self::default();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            match value.into_string() {
                Ok(value) => {
                    env.vars.insert(key.to_owned(), value);
                }
                Err(_) => env.not_utf8.push(key.to_owned()),
            }
        }
        env
    }

    /// An environment made of `pairs`: tests, and tools that build settings themselves.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(), not_utf8: Vec::new() }
    }

    /// This environment with `key` set to `value` (or replaced).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.insert(key.to_owned(), value.into());
        self
    }

    /// The trimmed value of `key`, or `None` when it is unset or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// True inside AWS Lambda: the runtime API address is only set there.
    pub fn in_lambda(&self) -> bool {
        self.get("AWS_LAMBDA_RUNTIME_API").is_some()
    }

    /// How strict start-up is (`APP_ENV`): see [`Mode`].
    pub fn mode(&self) -> Result<Mode, ConfigError> {
        let mode = match self.get("APP_ENV") {
            None if self.in_lambda() => Mode::Production,
            None => Mode::Development,
            Some(raw) => match raw.to_ascii_lowercase().as_str() {
                "production" => Mode::Production,
                "development" => Mode::Development,
                _ => return Err(ConfigError::invalid("APP_ENV", raw, "expected production or development")),
            },
        };
        Ok(mode)
    }

    /// Parses a settings struct: each field is the variable of the same name (use
    /// `#[serde(rename_all = "SCREAMING_SNAKE_CASE")]`), parsed by the field's type; unset
    /// fields take their `#[serde(default)]` or are [`ConfigError::Missing`].
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        T::deserialize(de::EnvDeserializer { env: self }).map_err(de::Error::into_config)
    }

    pub(crate) fn is_not_utf8(&self, key: &str) -> bool {
        self.not_utf8.iter().any(|k| k == key)
    }
}

/// Whether this process serves real customers (`APP_ENV`).
///
/// The mode is explicit rather than guessed from the host: a production build on a container
/// host must be as strict as one in Lambda, and a developer's laptop must never be mistaken
/// for production. Unset, it is `production` inside AWS Lambda and `development` elsewhere
/// (the deploy template sets it explicitly; a local Lambda emulator may say `development`).
///
/// In production every secret must be set (no random per-process keys), Postgres is reached
/// over verified TLS, the edge's origin secret and `MAX_CONCURRENCY` are required, local
/// stand-ins (object store, queue, payments) are refused and no development route is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Production,
    Development,
}

impl Mode {
    pub fn is_production(self) -> bool {
        self == Mode::Production
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Production => "production",
            Mode::Development => "development",
        })
    }
}

/// Keys whose values are never shown: passwords, keys, tokens.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    (key.contains("SECRET")
        || key.contains("PASSWORD")
        || key.contains("TOKEN")
        || key.ends_with("_KEY")
        || key.ends_with("_KEYS")
        || key.contains("DSN"))
        && !key.ends_with("_KEY_ID")
}

/// How a value may appear in an error or a log line.
pub fn shown_value(key: &str, raw: &str) -> String {
    if is_secret_key(key) {
        return format!("<secret, {} bytes>", raw.len());
    }
    let raw = if raw.contains("://") { redact_url(raw) } else { raw.to_owned() };
    let mut shown: String = raw.chars().take(120).collect();
    if shown.len() < raw.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".into();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
            format!("{scheme}://{masked}@{host}")
        }
        None => url.to_owned(),
    }
}

/// `true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`, case-insensitive.
pub fn parse_bool(key: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(key, raw, "expected true or false")),
    }
}

/// `http://host[:port][/path]` or `https://…`, nothing else (no query, no fragment, no
/// credentials).
pub fn check_http_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or_default());
    match (rest, host) {
        (Some(rest), Some(host))
            if !host.is_empty()
                && !rest.contains(['?', '#', ' '])
                && !host.contains('@')
                && rest.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(())
        }
        _ => Err(ConfigError::invalid(key, url, "expected an http(s)://host[:port][/path] URL")),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::num::NonZeroU32;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Session,
        Transaction,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    struct Settings {
        database_url: String,
        #[serde(default = "default_budget")]
        db_max_connections: u64,
        db_pool_mode: Option<Mode>,
        api_bind: Option<SocketAddr>,
        feature_on: Option<bool>,
        threads: Option<NonZeroU32>,
        allowed: Option<Vec<String>>,
        order_token_secret: Option<String>,
    }

    fn default_budget() -> u64 {
        10
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn each_field_is_the_variable_of_the_same_name_parsed_by_its_type() {
        let s: Settings = env(&[
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("DB_MAX_CONNECTIONS", " 40 "),
            ("DB_POOL_MODE", "transaction"),
            ("API_BIND", "127.0.0.1:3001"),
            ("FEATURE_ON", "yes"),
            ("THREADS", "2"),
            ("ALLOWED", "a, b,c"),
            ("ORDER_TOKEN_SECRET", "0123456789"),
            ("UNRELATED", "ignored"),
        ])
        .parse()
        .unwrap();
        assert_eq!(s.database_url, "postgres://u:p@h/db");
        assert_eq!(s.db_max_connections, 40);
        assert_eq!(s.db_pool_mode, Some(Mode::Transaction));
        assert_eq!(s.api_bind, Some(SocketAddr::from(([127, 0, 0, 1], 3001))));
        assert_eq!(s.feature_on, Some(true));
        assert_eq!(s.threads.map(NonZeroU32::get), Some(2));
        assert_eq!(s.allowed, Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()]));
        // A digits-only secret stays text: the field's type decides, not the value's look.
        assert_eq!(s.order_token_secret.as_deref(), Some("0123456789"));
    }

    #[test]
    fn unset_and_empty_values_take_defaults() {
        let s: Settings =
            env(&[("DATABASE_URL", "x"), ("DB_MAX_CONNECTIONS", ""), ("DB_POOL_MODE", "  ")]).parse().unwrap();
        assert_eq!(s.db_max_connections, 10);
        assert_eq!(s.db_pool_mode, None);
        assert_eq!(s.api_bind, None);
    }

    #[test]
    fn a_missing_required_key_is_named() {
        let err = env(&[]).parse::<Settings>().unwrap_err();
        assert_eq!(err, ConfigError::Missing("DATABASE_URL"));
        assert_eq!(err.to_string(), "DATABASE_URL is required");
    }

    #[test]
    fn a_bad_value_is_named_with_its_key_and_value() {
        let err = env(&[("DATABASE_URL", "x"), ("DB_MAX_CONNECTIONS", "ten")]).parse::<Settings>().unwrap_err();
        assert_eq!(err.key(), "DB_MAX_CONNECTIONS");
        assert!(err.to_string().starts_with("DB_MAX_CONNECTIONS=\"ten\" is not valid: "), "{err}");

        for (key, raw) in [
            ("DB_POOL_MODE", "statement"),
            ("API_BIND", "localhost"),
            ("FEATURE_ON", "maybe"),
            ("THREADS", "0"),
            ("DB_MAX_CONNECTIONS", "-1"),
        ] {
            let err = env(&[("DATABASE_URL", "x"), (key, raw)]).parse::<Settings>().unwrap_err();
            assert_eq!(err.key(), key, "{err}");
            assert!(err.to_string().contains(&format!("{raw:?}")), "{err}");
        }
    }

    #[test]
    fn secrets_and_url_passwords_never_appear_in_errors() {
        let err = ConfigError::invalid("ORDER_TOKEN_SECRET", "hunter2-hunter2", "too short");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = ConfigError::invalid("DATABASE_URL", "postgres://api:hunter2@db/shop?sslmode=nope", "bad sslmode");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("api:***@db"), "{err}");
        // Key ids are not secrets.
        assert!(ConfigError::invalid("S3_ACCESS_KEY_ID", "AKIAEXAMPLE", "x").to_string().contains("AKIAEXAMPLE"));
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_not_unset() {
        let mut env = env(&[("DATABASE_URL", "x")]);
        env.not_utf8.push("API_BIND".into());
        let err = env.parse::<Settings>().unwrap_err();
        assert_eq!(err.key(), "API_BIND");
    }

    #[test]
    fn the_mode_is_explicit_and_strict_by_default_in_lambda() {
        assert_eq!(env(&[]).mode(), Ok(super::Mode::Development));
        assert_eq!(env(&[("APP_ENV", "production")]).mode(), Ok(super::Mode::Production));
        assert_eq!(env(&[("APP_ENV", " Production ")]).mode(), Ok(super::Mode::Production));
        let lambda = [("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")];
        assert_eq!(env(&lambda).mode(), Ok(super::Mode::Production));
        // Local Lambda emulators (the cold-start bench) run development builds on purpose.
        assert_eq!(env(&lambda).with("APP_ENV", "development").mode(), Ok(super::Mode::Development));
        assert_eq!(env(&[("APP_ENV", "prod")]).mode().unwrap_err().key(), "APP_ENV");
    }

    #[test]
    fn shared_checks_name_their_key() {
        assert_eq!(parse_bool("K", "ON"), Ok(true));
        assert_eq!(parse_bool("K", "0"), Ok(false));
        assert_eq!(parse_bool("K", "").unwrap_err().key(), "K");
        assert!(check_http_url("U", "https://edge.example.com/__edge/purge").is_ok());
        for bad in ["ftp://x", "https://", "https://u:p@host/", "https://h/?q=1", "http://h /x"] {
            assert_eq!(check_http_url("U", bad).unwrap_err().key(), "U", "{bad}");
        }
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("host=/tmp user=x"), "<not a URL>");
    }
}
