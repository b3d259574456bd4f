//! Checkout's guards, read once at start-up: how long a guest's order token lives, how many
//! calls to the payment provider a caller may cause, and how long a tax answer is reused.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `ORDER_TOKEN_TTL_SECS` | 2 592 000 (30 days; 300–31 536 000) | lifetime of a guest's order token |
//! | `PAYMENT_CALLS_PER_IP` | 30 (1–100 000) | Stripe calls one client IP may cause per window |
//! | `PAYMENT_CALLS_PER_ORDER` | 10 (1–100 000) | Stripe calls replays of one order may cause per window |
//! | `PAYMENT_CALL_WINDOW_SECS` | 600 (10–86 400) | the limits' fixed window |
//! | `TAX_QUOTE_TTL_SECS` | 900 (0–86 400; 0: no reuse) | how long one cart + address keeps its tax answer |
//!
//! The call limits and the tax cache apply when the provider is Stripe; the local provider
//! (`make dev`, tests, benchmarks) makes no network call worth guarding.

use std::time::Duration;

use config::{ConfigError, Env};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutConfig {
    pub order_token_ttl: Duration,
    pub calls_per_ip: u32,
    pub calls_per_order: u32,
    pub call_window: Duration,
    /// Zero: every tax request goes to Stripe.
    pub tax_quote_ttl: Duration,
}

/// The variables in the table above, as they are set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct CheckoutSettings {
    #[serde(default = "defaults::order_token_ttl_secs")]
    pub order_token_ttl_secs: u64,
    #[serde(default = "defaults::calls_per_ip")]
    pub payment_calls_per_ip: u64,
    #[serde(default = "defaults::calls_per_order")]
    pub payment_calls_per_order: u64,
    #[serde(default = "defaults::call_window_secs")]
    pub payment_call_window_secs: u64,
    #[serde(default = "defaults::tax_quote_ttl_secs")]
    pub tax_quote_ttl_secs: u64,
}

mod defaults {
    pub fn order_token_ttl_secs() -> u64 {
        30 * 86_400
    }
    pub fn calls_per_ip() -> u64 {
        30
    }
    pub fn calls_per_order() -> u64 {
        10
    }
    pub fn call_window_secs() -> u64 {
        600
    }
    pub fn tax_quote_ttl_secs() -> u64 {
        900
    }
}

fn within(key: &'static str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(key, &value.to_string(), format!("must be between {min} and {max}")))
    }
}

impl CheckoutConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_settings(env.parse()?)
    }

    pub fn from_settings(s: CheckoutSettings) -> Result<Self, ConfigError> {
        let count = |key, value| within(key, value, 1, 100_000).map(|v| v as u32);
        Ok(Self {
            order_token_ttl: Duration::from_secs(within(
                "ORDER_TOKEN_TTL_SECS",
                s.order_token_ttl_secs,
                300,
                365 * 86_400,
            )?),
            calls_per_ip: count("PAYMENT_CALLS_PER_IP", s.payment_calls_per_ip)?,
            calls_per_order: count("PAYMENT_CALLS_PER_ORDER", s.payment_calls_per_order)?,
            call_window: Duration::from_secs(within(
                "PAYMENT_CALL_WINDOW_SECS",
                s.payment_call_window_secs,
                10,
                86_400,
            )?),
            tax_quote_ttl: Duration::from_secs(within("TAX_QUOTE_TTL_SECS", s.tax_quote_ttl_secs, 0, 86_400)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<CheckoutConfig, ConfigError> {
        CheckoutConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_suit_a_shopper_and_bound_a_script() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.order_token_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!((c.calls_per_ip, c.calls_per_order), (30, 10));
        assert_eq!((c.call_window, c.tax_quote_ttl), (Duration::from_secs(600), Duration::from_secs(900)));
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        for (key, value) in [
            ("ORDER_TOKEN_TTL_SECS", "60"),
            ("ORDER_TOKEN_TTL_SECS", "999999999"),
            ("PAYMENT_CALLS_PER_IP", "0"),
            ("PAYMENT_CALLS_PER_ORDER", "1000000"),
            ("PAYMENT_CALL_WINDOW_SECS", "1"),
            ("TAX_QUOTE_TTL_SECS", "86401"),
            ("TAX_QUOTE_TTL_SECS", "-1"),
        ] {
            assert_eq!(parse(&[(key, value)]).unwrap_err().key(), key, "{key}={value}");
        }
        assert_eq!(parse(&[("TAX_QUOTE_TTL_SECS", "0")]).unwrap().tax_quote_ttl, Duration::ZERO);
    }
}
