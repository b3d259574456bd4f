//! Database configuration, read from the environment once at start-up.
//!
//! The seed plan's connection rule (pool per instance × max instances ≤ the database's
//! limit) is computed here rather than remembered: [`DbConfig::from_settings`] refuses a budget
//! that cannot give every instance a connection, and [`PoolPlan`] is logged at start-up.

use std::num::NonZeroU64;
use std::time::Duration;

pub use config::{ConfigError, Env, redact_url};
use serde::Deserialize;

/// How connections reach Postgres (`DB_POOL_MODE=session|transaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// Direct connections (or a session-mode pooler): statements are prepared once per
    /// connection and cached.
    Session,
    /// Behind a transaction-mode pooler (PgBouncer `pool_mode=transaction`, Supavisor on
    /// port 6543, RDS Proxy with pinning avoided): consecutive statements may run on
    /// different server connections, so no named prepared statement may outlive its
    /// transaction. Every query goes through the unnamed statement, and no start-up
    /// options are sent (set `statement_timeout` on the role instead).
    Transaction,
}

/// Everything the store needs to open its pools.
#[derive(Clone)]
pub struct DbConfig {
    pub primary_url: String,
    /// Catalog reads go here; `None` means the primary serves them too.
    pub read_url: Option<String>,
    pub pool_mode: PoolMode,
    pub plan: PoolPlan,
    pub read_pool_size: usize,
    pub connect_timeout: Duration,
    pub pool_wait_timeout: Duration,
    pub statement_timeout: Duration,
    pub application_name: String,
    /// PEM certificates that sign the database's TLS certificate (`DB_SSL_ROOT_CERT`, a
    /// file path: the RDS or Supabase CA bundle). `None`: the system's roots.
    pub ssl_root_cert: Option<Vec<u8>>,
}

/// The connection arithmetic for one function: `budget` connections on the database are
/// shared by at most `instances` concurrently running copies of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPlan {
    pub budget: usize,
    pub instances: usize,
    /// Connections one instance may hold: `min(budget / instances, per_instance_cap)`.
    pub per_instance: usize,
    pub per_instance_cap: Option<usize>,
}

impl PoolPlan {
    pub fn new(budget: usize, instances: usize, per_instance_cap: Option<usize>) -> Result<Self, ConfigError> {
        if instances == 0 {
            return Err(ConfigError::invalid("MAX_CONCURRENCY", "0", "must be at least 1"));
        }
        if budget < instances {
            return Err(ConfigError::invalid(
                "DB_MAX_CONNECTIONS",
                &budget.to_string(),
                format!(
                    "a budget of {budget} connections cannot give each of {instances} instances (MAX_CONCURRENCY) \
                     one connection; raise the budget or lower the function's reserved concurrency"
                ),
            ));
        }
        let fair_share = budget / instances;
        let per_instance = per_instance_cap.map_or(fair_share, |cap| fair_share.min(cap.max(1)));
        Ok(Self { budget, instances, per_instance, per_instance_cap })
    }

    /// Connections all instances together may open: never more than the budget.
    pub fn worst_case_total(&self) -> usize {
        self.per_instance * self.instances
    }
}

impl std::fmt::Display for PoolPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} per instance = min({} budget / {} instances{}); worst case {} of {} connections",
            self.per_instance,
            self.budget,
            self.instances,
            self.per_instance_cap.map(|c| format!(", cap {c}")).unwrap_or_default(),
            self.worst_case_total(),
            self.budget
        )
    }
}

impl std::fmt::Debug for DbConfig {
    /// Never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("primary_url", &redact_url(&self.primary_url))
            .field("read_url", &self.read_url.as_deref().map(redact_url))
            .field("pool_mode", &self.pool_mode)
            .field("plan", &self.plan.to_string())
            .field("read_pool_size", &self.read_pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_wait_timeout", &self.pool_wait_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "ssl_root_cert",
                &self.ssl_root_cert.as_ref().map(|_| "from DB_SSL_ROOT_CERT").unwrap_or("system roots"),
            )
            .finish()
    }
}

/// The variables [`DbConfig`] is built from, as they are set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct DbSettings {
    pub database_url: String,
    pub database_read_url: Option<String>,
    #[serde(default = "defaults::budget")]
    pub db_max_connections: u64,
    /// Unset: 1 in development; required in production.
    pub max_concurrency: Option<u64>,
    pub db_pool_per_instance_max: Option<u64>,
    pub db_read_max_connections: Option<u64>,
    pub db_pool_mode: Option<PoolMode>,
    #[serde(default = "defaults::connect_ms")]
    pub db_connect_timeout_ms: NonZeroU64,
    #[serde(default = "defaults::wait_ms")]
    pub db_pool_wait_timeout_ms: NonZeroU64,
    #[serde(default = "defaults::statement_ms")]
    pub db_statement_timeout_ms: NonZeroU64,
    #[serde(default = "defaults::application_name")]
    pub db_application_name: String,
    pub db_ssl_root_cert: Option<String>,
}

mod defaults {
    use std::num::NonZeroU64;

    pub fn budget() -> u64 {
        10
    }
    pub fn connect_ms() -> NonZeroU64 {
        NonZeroU64::new(1_000).unwrap_or(NonZeroU64::MIN)
    }
    pub fn wait_ms() -> NonZeroU64 {
        NonZeroU64::new(500).unwrap_or(NonZeroU64::MIN)
    }
    pub fn statement_ms() -> NonZeroU64 {
        NonZeroU64::new(5_000).unwrap_or(NonZeroU64::MIN)
    }
    pub fn application_name() -> String {
        "stolentee".into()
    }
}

impl DbConfig {
    /// Reads the `DATABASE_*`, `DB_*` and `MAX_CONCURRENCY` variables. Inside Lambda each
    /// instance is capped at two connections by default: an instance serves one request at
    /// a time, so more would only idle.
    ///
    /// In production (`APP_ENV`) the connection arithmetic and the channel must be explicit:
    /// `MAX_CONCURRENCY` is required (a default of one instance would let a fleet overrun the
    /// database's connection limit) and every URL must say `sslmode=require` (verified TLS).
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let settings: DbSettings = env.parse()?;
        if env.mode()?.is_production() {
            if settings.max_concurrency.is_none() {
                return Err(ConfigError::Missing("MAX_CONCURRENCY"));
            }
            require_tls("DATABASE_URL", &settings.database_url)?;
            if let Some(url) = &settings.database_read_url {
                require_tls("DATABASE_READ_URL", url)?;
            }
        }
        Self::from_settings(settings, env.in_lambda())
    }

    /// Every default, for one database at `url`: tools and tests that need a connection
    /// rather than a served fleet.
    pub fn for_url(url: &str) -> Result<Self, ConfigError> {
        Self::from_env(&Env::from_pairs([("DATABASE_URL", url)]))
    }

    /// Checks the settings and computes the connection plan.
    pub fn from_settings(s: DbSettings, in_lambda: bool) -> Result<Self, ConfigError> {
        let primary_url = s.database_url;
        check_url("DATABASE_URL", &primary_url)?;
        let read_url = s.database_read_url.filter(|url| *url != primary_url);
        if let Some(url) = &read_url {
            check_url("DATABASE_READ_URL", url)?;
        }
        let budget = s.db_max_connections as usize;
        let instances = s.max_concurrency.unwrap_or(1) as usize;
        let cap = match s.db_pool_per_instance_max {
            Some(cap) => Some(cap as usize),
            None if in_lambda => Some(2),
            None => None,
        };
        let plan = PoolPlan::new(budget, instances, cap)?;
        let read_budget = s.db_read_max_connections.map_or(budget, |n| n as usize);
        let read_pool_size = PoolPlan::new(read_budget, instances, cap)
            .map_err(|_| {
                ConfigError::invalid(
                    "DB_READ_MAX_CONNECTIONS",
                    &read_budget.to_string(),
                    format!("must be at least MAX_CONCURRENCY ({instances})"),
                )
            })?
            .per_instance;
        let millis = |ms: NonZeroU64| Duration::from_millis(ms.get());
        let ssl_root_cert = match s.db_ssl_root_cert {
            None => None,
            Some(path) => {
                let pem = std::fs::read(&path)
                    .map_err(|e| ConfigError::invalid("DB_SSL_ROOT_CERT", &path, format!("cannot read it: {e}")))?;
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError::invalid("DB_SSL_ROOT_CERT", &path, "holds no PEM certificate"));
                }
                Some(pem)
            }
        };
        Ok(Self {
            primary_url,
            read_url,
            pool_mode: s.db_pool_mode.unwrap_or(PoolMode::Session),
            plan,
            read_pool_size,
            connect_timeout: millis(s.db_connect_timeout_ms),
            pool_wait_timeout: millis(s.db_pool_wait_timeout_ms),
            statement_timeout: millis(s.db_statement_timeout_ms),
            application_name: s.db_application_name,
            ssl_root_cert,
        })
    }
}

/// Production never talks to its database in the clear, nor to an unverified server (the
/// connector verifies the certificate whenever TLS is on).
fn require_tls(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let parsed: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| ConfigError::invalid(key, url, e.to_string()))?;
    if parsed.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        return Err(ConfigError::invalid(key, url, "production (APP_ENV) requires sslmode=require (verified TLS)"));
    }
    Ok(())
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    url.parse::<tokio_postgres::Config>().map(|_| ()).map_err(|e| ConfigError::invalid(key, url, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)], in_lambda: bool) -> Result<DbConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut env = Env::from_pairs(map);
        if in_lambda {
            env = env.with("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        }
        DbConfig::from_env(&env)
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://api:hunter2@db.internal:5432/shop?sslmode=require");

    #[test]
    fn production_needs_tls_and_an_explicit_fleet_size_whatever_the_host() {
        let plain = ("DATABASE_URL", "postgres://api:hunter2@db.internal:5432/shop");
        for lambda in [true, false] {
            let production = ("APP_ENV", "production");
            let err = config(&[production, URL], lambda).unwrap_err();
            assert_eq!(err, ConfigError::Missing("MAX_CONCURRENCY"));
            let err = config(&[production, plain, ("MAX_CONCURRENCY", "10")], lambda).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "DATABASE_URL", .. }), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
            let replica = ("DATABASE_READ_URL", "postgres://api:x@replica/shop?sslmode=prefer");
            let err = config(&[production, URL, replica, ("MAX_CONCURRENCY", "10")], lambda).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: "DATABASE_READ_URL", .. }), "{err}");
            assert!(config(&[production, URL, ("MAX_CONCURRENCY", "10")], lambda).is_ok());
        }
        // Development keeps its defaults: one instance, plain connections to a local server.
        assert_eq!(config(&[plain], false).unwrap().plan.instances, 1);
    }

    #[test]
    fn a_local_server_gets_the_whole_budget() {
        let c = config(&[URL, ("DB_MAX_CONNECTIONS", "16")], false).unwrap();
        assert_eq!(c.plan.per_instance, 16);
        assert_eq!(c.pool_mode, PoolMode::Session);
        assert_eq!(c.read_url, None);
    }

    #[test]
    fn lambda_instances_share_the_budget_and_hold_at_most_two() {
        // The seed's arithmetic: 80 connections over 40 instances is 2 each.
        let c = config(&[URL, ("DB_MAX_CONNECTIONS", "80"), ("MAX_CONCURRENCY", "40")], true).unwrap();
        assert_eq!(c.plan.per_instance, 2);
        assert_eq!(c.plan.worst_case_total(), 80);
        // A generous budget still idles nothing: the cap holds.
        let c = config(&[URL, ("DB_MAX_CONNECTIONS", "100"), ("MAX_CONCURRENCY", "5")], true).unwrap();
        assert_eq!(c.plan.per_instance, 2);
        // A tight one rounds down, never up.
        let c = config(&[URL, ("DB_MAX_CONNECTIONS", "15"), ("MAX_CONCURRENCY", "10")], true).unwrap();
        assert_eq!(c.plan.per_instance, 1);
        assert!(c.plan.worst_case_total() <= 15);
    }

    #[test]
    fn a_budget_smaller_than_the_fleet_is_refused() {
        let err = config(&[URL, ("DB_MAX_CONNECTIONS", "10"), ("MAX_CONCURRENCY", "40")], true).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "DB_MAX_CONNECTIONS", .. }), "{err}");
        let err = config(&[URL, ("MAX_CONCURRENCY", "0")], true).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "MAX_CONCURRENCY", .. }));
    }

    #[test]
    fn malformed_settings_name_their_key() {
        assert_eq!(config(&[], false).unwrap_err(), ConfigError::Missing("DATABASE_URL"));
        let err = config(&[URL, ("DB_MAX_CONNECTIONS", "ten")], false).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "DB_MAX_CONNECTIONS", .. }));
        let err = config(&[URL, ("DB_POOL_MODE", "statement")], false).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "DB_POOL_MODE", .. }));
        let err = config(&[URL, ("DB_CONNECT_TIMEOUT_MS", "0")], false).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "DB_CONNECT_TIMEOUT_MS", .. }));
        let err = config(&[("DATABASE_URL", "postgres://h/db?sslmode=sometimes")], false).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "DATABASE_URL", .. }));
    }

    #[test]
    fn a_replica_gets_its_own_pool_and_the_primary_url_is_not_a_replica() {
        let c = config(
            &[URL, ("DATABASE_READ_URL", "postgres://api:x@replica/shop"), ("DB_READ_MAX_CONNECTIONS", "30")],
            false,
        )
        .unwrap();
        assert_eq!(c.read_url.as_deref(), Some("postgres://api:x@replica/shop"));
        assert_eq!(c.read_pool_size, 30);
        let c = config(&[URL, ("DATABASE_READ_URL", URL.1)], false).unwrap();
        assert_eq!(c.read_url, None);
    }

    #[test]
    fn a_root_certificate_file_must_exist_and_hold_a_certificate() {
        let err = config(&[URL, ("DB_SSL_ROOT_CERT", "/nonexistent/rds-ca.pem")], false).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "DB_SSL_ROOT_CERT", .. }));
        let not_pem = std::env::temp_dir().join(format!("not-a-cert-{}.pem", std::process::id()));
        std::fs::write(&not_pem, "hello").unwrap();
        let err = config(&[URL, ("DB_SSL_ROOT_CERT", not_pem.to_str().unwrap())], false).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { key: "DB_SSL_ROOT_CERT", .. }));
        std::fs::remove_file(not_pem).unwrap();
    }

    #[test]
    fn transaction_pooler_mode_is_explicit() {
        let c = config(&[URL, ("DB_POOL_MODE", "transaction")], false).unwrap();
        assert_eq!(c.pool_mode, PoolMode::Transaction);
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        let c = config(&[URL, ("DATABASE_READ_URL", "postgres://ro:s3cret@replica/shop")], false).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("api:***@db.internal"));
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("host=/tmp user=x"), "<not a URL>");
    }
}
