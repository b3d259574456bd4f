//! Database configuration, read from the environment once at start-up.
//!
//! The seed plan's connection rule (pool per instance × max instances ≤ the database's
//! limit) is computed here rather than remembered: [`DbConfig::from_env`] refuses a budget
//! that cannot give every instance a connection, and [`PoolPlan`] is logged at start-up.

use std::time::Duration;

use thiserror::Error;

/// How connections reach Postgres.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{key} is not valid: {reason}")]
    Invalid { key: &'static str, reason: String },
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
            return Err(ConfigError::Invalid { key: "MAX_CONCURRENCY", reason: "must be at least 1".into() });
        }
        if budget < instances {
            return Err(ConfigError::Invalid {
                key: "DB_MAX_CONNECTIONS",
                reason: format!(
                    "a budget of {budget} connections cannot give each of {instances} instances (MAX_CONCURRENCY) \
                     one connection; raise the budget or lower the function's reserved concurrency"
                ),
            });
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

impl DbConfig {
    /// Reads the `DATABASE_*`, `DB_*` and `MAX_CONCURRENCY` variables through `var`
    /// (the process environment in production, a map in tests). `in_lambda` caps each
    /// instance at two connections by default: a Lambda instance serves one request at a
    /// time, so more would only idle.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>, in_lambda: bool) -> Result<Self, ConfigError> {
        let primary_url = var("DATABASE_URL").filter(|s| !s.is_empty()).ok_or(ConfigError::Missing("DATABASE_URL"))?;
        check_url("DATABASE_URL", &primary_url)?;
        let read_url = var("DATABASE_READ_URL").filter(|s| !s.is_empty() && *s != primary_url);
        if let Some(url) = &read_url {
            check_url("DATABASE_READ_URL", url)?;
        }
        let number = |key: &'static str, default: u64| -> Result<u64, ConfigError> {
            match var(key) {
                None => Ok(default),
                Some(raw) => raw.trim().parse::<u64>().map_err(|e| ConfigError::Invalid { key, reason: e.to_string() }),
            }
        };
        let budget = number("DB_MAX_CONNECTIONS", 10)? as usize;
        let instances = number("MAX_CONCURRENCY", 1)? as usize;
        let cap = match var("DB_POOL_PER_INSTANCE_MAX") {
            Some(_) => Some(number("DB_POOL_PER_INSTANCE_MAX", 0)? as usize),
            None if in_lambda => Some(2),
            None => None,
        };
        let plan = PoolPlan::new(budget, instances, cap)?;
        let read_budget = number("DB_READ_MAX_CONNECTIONS", budget as u64)? as usize;
        let read_pool_size = PoolPlan::new(read_budget, instances, cap)
            .map_err(|_| ConfigError::Invalid {
                key: "DB_READ_MAX_CONNECTIONS",
                reason: format!("must be at least MAX_CONCURRENCY ({instances})"),
            })?
            .per_instance;
        let pool_mode = match var("DB_POOL_MODE").as_deref().map(str::trim) {
            None | Some("") | Some("session") => PoolMode::Session,
            Some("transaction") => PoolMode::Transaction,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "DB_POOL_MODE",
                    reason: format!("{other:?}: expected session or transaction"),
                });
            }
        };
        let millis = |key: &'static str, default: u64| -> Result<Duration, ConfigError> {
            let ms = number(key, default)?;
            if ms == 0 {
                return Err(ConfigError::Invalid { key, reason: "must be positive".into() });
            }
            Ok(Duration::from_millis(ms))
        };
        Ok(Self {
            primary_url,
            read_url,
            pool_mode,
            plan,
            read_pool_size,
            connect_timeout: millis("DB_CONNECT_TIMEOUT_MS", 1_000)?,
            pool_wait_timeout: millis("DB_POOL_WAIT_TIMEOUT_MS", 500)?,
            statement_timeout: millis("DB_STATEMENT_TIMEOUT_MS", 5_000)?,
            application_name: var("DB_APPLICATION_NAME").unwrap_or_else(|| "stolentee".into()),
            ssl_root_cert: match var("DB_SSL_ROOT_CERT").filter(|p| !p.trim().is_empty()) {
                None => None,
                Some(path) => {
                    let pem = std::fs::read(path.trim()).map_err(|e| ConfigError::Invalid {
                        key: "DB_SSL_ROOT_CERT",
                        reason: format!("cannot read {path}: {e}"),
                    })?;
                    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                        return Err(ConfigError::Invalid {
                            key: "DB_SSL_ROOT_CERT",
                            reason: format!("{path} holds no PEM certificate"),
                        });
                    }
                    Some(pem)
                }
            },
        })
    }

    pub fn from_env(in_lambda: bool) -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok(), in_lambda)
    }
}

fn check_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    url.parse::<tokio_postgres::Config>().map(|_| ()).map_err(|e| ConfigError::Invalid { key, reason: e.to_string() })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)], in_lambda: bool) -> Result<DbConfig, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        DbConfig::from_lookup(|k| map.get(k).cloned(), in_lambda)
    }

    const URL: (&str, &str) = ("DATABASE_URL", "postgres://api:hunter2@db.internal:5432/shop");

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
