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
//! | `PAYMENTS_REQUIRE_STRIPE` | 1 in production (cannot be 0 there), else 0 | refuse to start without a Stripe key |
//! | `LOCAL_WEBHOOK_SECRET` | random per process | the local provider's signing secret |
//! | `LOCAL_TAX_RATE_BP` | 0 | the local provider's pretend tax rate, basis points (0–5000) |

use std::time::Duration;

use config::{ConfigError, Env};
use domain::BasisPoints;
use serde::Deserialize;

use crate::local::LocalPayments;
use crate::provider::Payments;
use crate::secret::{ApiKey, WebhookSecret};
use crate::stripe::{DEFAULT_API_BASE, RetryPolicy, StripeClient, StripeError, StripeSettings};

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

/// The variables in the table above, as they are set.
#[derive(Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct PaymentsSettings {
    pub stripe_secret_key: Option<String>,
    /// Comma-separated for rotation.
    pub stripe_webhook_secret: Option<Vec<String>>,
    pub stripe_api_base: Option<String>,
    #[serde(default = "defaults::timeout_ms")]
    pub stripe_timeout_ms: u64,
    #[serde(default = "defaults::connect_timeout_ms")]
    pub stripe_connect_timeout_ms: u64,
    #[serde(default = "defaults::max_retries")]
    pub stripe_max_retries: u64,
    pub payments_require_stripe: Option<bool>,
    pub local_webhook_secret: Option<String>,
    #[serde(default)]
    pub local_tax_rate_bp: u64,
}

mod defaults {
    pub fn timeout_ms() -> u64 {
        3000
    }
    pub fn connect_timeout_ms() -> u64 {
        1500
    }
    pub fn max_retries() -> u64 {
        2
    }
}

fn within(key: &'static str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(key, &value.to_string(), format!("must be between {min} and {max}")))
    }
}

impl PaymentsConfig {
    /// Reads the variables in the table above. In production (`APP_ENV`) a Stripe key is
    /// always required: a deploy that silently fell back to pretend payments would give
    /// orders away. In development `PAYMENTS_REQUIRE_STRIPE=1` asks for the same.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_settings(env.parse()?, env.mode()?.is_production())
    }

    pub fn from_settings(s: PaymentsSettings, production: bool) -> Result<Self, ConfigError> {
        if production && s.payments_require_stripe == Some(false) {
            return Err(ConfigError::invalid(
                "PAYMENTS_REQUIRE_STRIPE",
                "false",
                "production (APP_ENV) never runs the local payments stand-in",
            ));
        }
        let require_stripe = production || s.payments_require_stripe.unwrap_or(false);
        let Some(raw_key) = s.stripe_secret_key else {
            if require_stripe {
                return Err(ConfigError::Missing("STRIPE_SECRET_KEY"));
            }
            if let Some(secrets) = &s.stripe_webhook_secret {
                // Half a Stripe configuration is a mistake, not a request for local payments.
                return Err(ConfigError::invalid(
                    "STRIPE_WEBHOOK_SECRET",
                    &secrets.join(","),
                    "set without STRIPE_SECRET_KEY",
                ));
            }
            let webhook_secret = match s.local_webhook_secret {
                Some(raw) => WebhookSecret::parse(&raw)
                    .map_err(|e| ConfigError::invalid("LOCAL_WEBHOOK_SECRET", &raw, e.to_string()))?,
                None => WebhookSecret::random_local(),
            };
            let tax_rate = within("LOCAL_TAX_RATE_BP", s.local_tax_rate_bp, 0, 5000)?;
            return Ok(Self::Local(LocalConfig { webhook_secret, tax_rate: BasisPoints::new(tax_rate as u32) }));
        };

        let api_key =
            ApiKey::parse(&raw_key).map_err(|e| ConfigError::invalid("STRIPE_SECRET_KEY", &raw_key, e.to_string()))?;
        let webhook_secrets = s
            .stripe_webhook_secret
            .unwrap_or_default()
            .iter()
            .map(|raw| {
                WebhookSecret::parse(raw).map_err(|e| ConfigError::invalid("STRIPE_WEBHOOK_SECRET", raw, e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if webhook_secrets.is_empty() {
            return Err(ConfigError::Missing("STRIPE_WEBHOOK_SECRET"));
        }

        let api_base = s.stripe_api_base.unwrap_or_else(|| DEFAULT_API_BASE.to_owned());
        let api_base = api_base.trim_end_matches('/').to_owned();
        let https = api_base.starts_with("https://");
        if !(https || api_base.starts_with("http://")) || api_base.contains(char::is_whitespace) {
            return Err(ConfigError::invalid("STRIPE_API_BASE", &api_base, "expected an http(s):// URL"));
        }
        if api_key.is_live() && !https {
            return Err(ConfigError::invalid("STRIPE_API_BASE", &api_base, "a live key is only sent over https"));
        }

        let settings = StripeSettings {
            api_base,
            timeout: Duration::from_millis(within("STRIPE_TIMEOUT_MS", s.stripe_timeout_ms, 100, 120_000)?),
            connect_timeout: Duration::from_millis(within(
                "STRIPE_CONNECT_TIMEOUT_MS",
                s.stripe_connect_timeout_ms,
                50,
                60_000,
            )?),
            retry: RetryPolicy {
                max_retries: within("STRIPE_MAX_RETRIES", s.stripe_max_retries, 0, 5)? as u32,
                ..RetryPolicy::default()
            },
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
