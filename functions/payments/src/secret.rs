//! Secrets as types whose `Debug` and `Display` never show the value: configs, clients and
//! errors are logged, and a key in a log line is a leaked key.

use std::fmt;

/// Why a secret was rejected. Carries no part of the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Blank after trimming.
    #[error("is empty")]
    Empty,
    #[error("looks like a publishable key (pk_…); the server needs a secret key (sk_…) or a restricted key (rk_…)")]
    PublishableKey,
    #[error("does not start with sk_ or rk_")]
    NotASecretKey,
    #[error("contains whitespace or control characters")]
    BadCharacters,
}

fn check_chars(raw: &str) -> Result<(), SecretError> {
    if raw.is_empty() {
        return Err(SecretError::Empty);
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SecretError::BadCharacters);
    }
    Ok(())
}

/// A Stripe secret (`sk_…`) or restricted (`rk_…`) API key, checked at start-up so a
/// publishable key or a typo fails the deploy instead of the first checkout.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Accepts `sk_…` and `rk_…`; refuses publishable keys, blanks and whitespace. The error
    /// never contains the input.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let raw = raw.trim();
        check_chars(raw)?;
        if raw.starts_with("pk_") {
            return Err(SecretError::PublishableKey);
        }
        if !(raw.starts_with("sk_") || raw.starts_with("rk_")) || raw.len() < 4 {
            return Err(SecretError::NotASecretKey);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Live keys move real money; the config refuses them over plain HTTP.
    pub fn is_live(&self) -> bool {
        self.0.starts_with("sk_live_") || self.0.starts_with("rk_live_")
    }

    /// `sk_test_****`: enough to tell which kind of key is configured, nothing more.
    fn masked(&self) -> String {
        let prefix = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "sk_", "rk_"]
            .into_iter()
            .find(|p| self.0.starts_with(p))
            .unwrap_or("");
        format!("{prefix}****")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.masked())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A webhook signing secret (`whsec_…` from Stripe, or the local provider's). Used as the
/// HMAC key byte-for-byte, exactly as Stripe does, prefix included.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Any non-blank value without whitespace (surrounding whitespace is trimmed: a secret
    /// pasted into an env file with a trailing space would otherwise never match).
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let raw = raw.trim();
        check_chars(raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// A fresh random secret (`whsec_local_` + 64 hex digits). The local provider uses one per
    /// process unless `LOCAL_WEBHOOK_SECRET` is set, so nobody outside the process can forge a
    /// local "payment succeeded" event.
    pub fn random_local() -> Self {
        Self(format!("whsec_local_{}", crate::random::hex(32)))
    }

    /// The secret itself, e.g. for a dev tool that signs requests out of process.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(****)")
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A PaymentIntent's client secret. It lets whoever holds it confirm the payment from a
/// browser, so it goes to the paying customer in the order response and nowhere else (never
/// to logs).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret returned by Stripe (or made up by the local provider).
    pub fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The value to return to the storefront, which passes it to Stripe.js.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_must_be_secret_or_restricted() {
        assert!(ApiKey::parse("sk_test_abc").is_ok());
        assert!(ApiKey::parse("rk_live_abc").is_ok());
        assert_eq!(ApiKey::parse("pk_test_abc"), Err(SecretError::PublishableKey));
        assert_eq!(ApiKey::parse("whsec_abc"), Err(SecretError::NotASecretKey));
        assert_eq!(ApiKey::parse("  "), Err(SecretError::Empty));
        assert_eq!(ApiKey::parse("sk_test_a b"), Err(SecretError::BadCharacters));
    }

    #[test]
    fn secrets_never_print() {
        let key = ApiKey::parse("sk_test_supersecretvalue").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey(sk_test_****)");
        assert_eq!(key.to_string(), "sk_test_****");
        let secret = WebhookSecret::parse("whsec_supersecretvalue").unwrap();
        assert!(!format!("{secret:?} {secret}").contains("supersecret"));
        let client = ClientSecret::new("pi_1_secret_supersecretvalue".into());
        assert!(!format!("{client:?}").contains("supersecret"));
    }

    #[test]
    fn random_local_secrets_differ() {
        assert_ne!(WebhookSecret::random_local(), WebhookSecret::random_local());
    }
}
