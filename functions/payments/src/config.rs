//! Payments configuration, read from the environment once at start-up and validated, so a
//! wrong key or a half-configured deploy fails before the first customer checks out.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `STRIPE_SECRET_KEY` | – | `sk_…`/`rk_…`. Absent → the local provider (unless Stripe is required) |
//! | `STRIPE_WEBHOOK_SECRET` | – | required with a key; comma-separated for rotation |
//! | `STRIPE_API_BASE` | `https://api.stripe.com` | a stub's URL in tests; live keys only over https |
//! | `STRIPE_TIMEOUT_MS` | 3000 | one attempt, start to finish |
//! | `STRIPE_CONNECT_TIMEOUT_MS` | 1500 | TCP + TLS |
//! | `STRIPE_MAX_RETRIES` | 2 | extra attempts on network errors, 429, 5xx (0–5) |
//! | `PAYMENTS_REQUIRE_STRIPE` | 1 in Lambda, else 0 | refuse to start without a Stripe key |
//! | `LOCAL_WEBHOOK_SECRET` | random per process | the local provider's signing secret |
//! | `LOCAL_TAX_RATE_BP` | 0 | the local provider's pretend tax rate, basis points (0–5000) |

use std::time::Duration;

use domain::BasisPoints;

use crate::local::LocalPayments;
use crate::provider::Payments;
use crate::secret::{ApiKey, WebhookSecret};
use crate::stripe::{DEFAULT_API_BASE, RetryPolicy, StripeClient, StripeError, StripeSettings};

/// Same shape as the store's `ConfigError`: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{key} is not valid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Stripe credentials and connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeConfig {
    /// `STRIPE_SECRET_KEY`.
    pub api_key: ApiKey,
    /// `STRIPE_WEBHOOK_SECRET`, split on commas; never empty.
    pub webhook_secrets: Vec<WebhookSecret>,
    /// Base URL, timeouts and retries.
    pub settings: StripeSettings,
}

/// The local provider's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// `LOCAL_WEBHOOK_SECRET`, or random per process.
    pub webhook_secret: WebhookSecret,
    /// `LOCAL_TAX_RATE_BP`: pretend tax, 0 by default.
    pub tax_rate: BasisPoints,
}

/// Which provider to run, with its settings. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentsConfig {
    /// A Stripe key is configured.
    Stripe(StripeConfig),
    /// No key, and Stripe is not required.
    Local(LocalConfig),
}

fn truthy(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

impl PaymentsConfig {
    /// Reads the process environment; "in Lambda" is detected the way the store does it
    /// (`AWS_LAMBDA_RUNTIME_API`).
    pub fn from_env() -> Result<Self, ConfigError> {
        let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
        Self::from_lookup(|k| std::env::var(k).ok(), in_lambda)
    }

    /// Reads settings through `var` (the environment in production, a map in tests). In
    /// Lambda a Stripe key is required unless `PAYMENTS_REQUIRE_STRIPE=0` says otherwise:
    /// a deploy that silently fell back to pretend payments would give orders away.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>, in_lambda: bool) -> Result<Self, ConfigError> {
        let present = |key: &str| var(key).filter(|v| !v.trim().is_empty());
        let require_stripe = match present("PAYMENTS_REQUIRE_STRIPE") {
            None => in_lambda,
            Some(raw) => truthy(&raw).ok_or_else(|| ConfigError::Invalid {
                key: "PAYMENTS_REQUIRE_STRIPE",
                reason: "expected 1/0/true/false".into(),
            })?,
        };
        let number = |key: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            let value = match present(key) {
                None => default,
                Some(raw) => raw
                    .trim()
                    .parse()
                    .map_err(|e: std::num::ParseIntError| ConfigError::Invalid { key, reason: e.to_string() })?,
            };
            if !(min..=max).contains(&value) {
                return Err(ConfigError::Invalid { key, reason: format!("must be between {min} and {max}") });
            }
            Ok(value)
        };

        let Some(raw_key) = present("STRIPE_SECRET_KEY") else {
            if require_stripe {
                return Err(ConfigError::Missing("STRIPE_SECRET_KEY"));
            }
            if present("STRIPE_WEBHOOK_SECRET").is_some() {
                // Half a Stripe configuration is a mistake, not a request for local payments.
                return Err(ConfigError::Invalid {
                    key: "STRIPE_WEBHOOK_SECRET",
                    reason: "set without STRIPE_SECRET_KEY".into(),
                });
            }
            let webhook_secret = match present("LOCAL_WEBHOOK_SECRET") {
                Some(raw) => WebhookSecret::parse(&raw)
                    .map_err(|e| ConfigError::Invalid { key: "LOCAL_WEBHOOK_SECRET", reason: e.to_string() })?,
                None => WebhookSecret::random_local(),
            };
            let tax_rate = number("LOCAL_TAX_RATE_BP", 0, 0, 5000)?;
            return Ok(Self::Local(LocalConfig { webhook_secret, tax_rate: BasisPoints::new(tax_rate as u32) }));
        };

        let api_key = ApiKey::parse(&raw_key)
            .map_err(|e| ConfigError::Invalid { key: "STRIPE_SECRET_KEY", reason: e.to_string() })?;
        let raw_secrets = present("STRIPE_WEBHOOK_SECRET").ok_or(ConfigError::Missing("STRIPE_WEBHOOK_SECRET"))?;
        let webhook_secrets = raw_secrets
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                WebhookSecret::parse(s)
                    .map_err(|e| ConfigError::Invalid { key: "STRIPE_WEBHOOK_SECRET", reason: e.to_string() })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if webhook_secrets.is_empty() {
            return Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRET"));
        }

        let api_base = present("STRIPE_API_BASE").unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        let api_base = api_base.trim().trim_end_matches('/').to_owned();
        let https = api_base.starts_with("https://");
        if !(https || api_base.starts_with("http://")) || api_base.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid { key: "STRIPE_API_BASE", reason: "expected an http(s):// URL".into() });
        }
        if api_key.is_live() && !https {
            return Err(ConfigError::Invalid {
                key: "STRIPE_API_BASE",
                reason: "a live key is only sent over https".into(),
            });
        }

        let settings = StripeSettings {
            api_base,
            timeout: Duration::from_millis(number("STRIPE_TIMEOUT_MS", 3000, 100, 120_000)?),
            connect_timeout: Duration::from_millis(number("STRIPE_CONNECT_TIMEOUT_MS", 1500, 50, 60_000)?),
            retry: RetryPolicy { max_retries: number("STRIPE_MAX_RETRIES", 2, 0, 5)? as u32, ..RetryPolicy::default() },
        };
        Ok(Self::Stripe(StripeConfig { api_key, webhook_secrets, settings }))
    }

    /// Builds the provider (for Stripe: the HTTP client and its connection pool). Once per
    /// process, at start-up.
    pub fn build(&self) -> Result<Payments, StripeError> {
        Ok(match self {
            Self::Stripe(config) => Payments::Stripe {
                client: StripeClient::new(config.api_key.clone(), config.settings.clone())?,
                webhook_secrets: config.webhook_secrets.clone(),
            },
            Self::Local(config) => Payments::Local(LocalPayments::new(config.webhook_secret.clone(), config.tax_rate)),
        })
    }
}
