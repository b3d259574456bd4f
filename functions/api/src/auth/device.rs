//! Device tokens: "this client signed in to this e-mail before".
//!
//! After every successful sign-in the API hands the client a device token bound to the
//! account's e-mail; the client keeps it (one per address) and sends it with later password
//! sign-ins. A valid one moves the attempt from the shared per-IP and per-e-mail budgets to
//! the device's own (see [`super::limits`]), so an attacker guessing an account from many
//! addresses slows new clients but never the owner's own devices (OWASP's "device cookies").
//!
//! The token is stateless: `d1.<device id>.<issued, unix secs>.<HMAC-SHA256>` under the JWT
//! signing key (every configured key verifies, so rotation keeps devices), with the e-mail
//! inside the MAC. It proves nothing beyond that one e-mail, and an invalid, expired or
//! foreign token is simply ignored (the attempt counts as from a new client), so it cannot
//! be used to probe which addresses have accounts.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::config::AuthConfig;

/// How long a device token is honoured after it was issued (each sign-in renews it).
pub const DEVICE_TOKEN_TTL: Duration = Duration::from_secs(180 * 24 * 60 * 60);
const PREFIX: &str = "d1";
const MAX_TOKEN_LEN: usize = 128;

/// A device's id (22 characters of URL-safe base64 over 128 random bits), as counted in
/// `login_attempts.device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn new() -> Self {
        let mut bytes = [0u8; 16];
        if getrandom::fill(&mut bytes).is_err() {
            bytes = uuid::Uuid::new_v4().into_bytes();
        }
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(raw: &str) -> Option<Self> {
        (raw.len() == 22 && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then(|| Self(raw.to_owned()))
    }
}

impl Default for DeviceId {
    fn default() -> Self {
        Self::new()
    }
}

fn mac(secret: &[u8], email: &str, device: &DeviceId, issued: u64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    for part in ["stolentee-device-token", PREFIX, email, device.as_str(), &issued.to_string()] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac
}

/// A token for `device` (a new device when `None`) on `email`, issued at `now` (unix secs).
pub fn issue(config: &AuthConfig, email: &str, device: Option<&DeviceId>, now: u64) -> String {
    let device = device.cloned().unwrap_or_default();
    let tag = mac(&config.keys[0].secret, email, &device, now).finalize().into_bytes();
    format!("{PREFIX}.{}.{now}.{}", device.as_str(), URL_SAFE_NO_PAD.encode(tag))
}

/// The device a token names, if it is genuine, unexpired and for `email`.
pub fn verify(config: &AuthConfig, token: &str, email: &str, now: u64) -> Option<DeviceId> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.trim().split('.');
    let (Some(PREFIX), Some(id), Some(issued), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let device = DeviceId::parse(id)?;
    let issued: u64 = issued.parse().ok()?;
    if issued > now + 60 || now.saturating_sub(issued) > DEVICE_TOKEN_TTL.as_secs() {
        return None;
    }
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    config.keys.iter().any(|key| mac(&key.secret, email, &device, issued).verify_slice(&tag).is_ok()).then_some(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration (through the environment, as in production) whose key is `secret`
    /// repeated.
    fn config(secret: char) -> AuthConfig {
        let key = format!("k{secret}:{}", secret.to_string().repeat(32));
        AuthConfig::from_env(&config::Env::from_pairs([("JWT_KEYS", key.as_str())])).unwrap()
    }

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_token_names_its_device_for_its_email_only() {
        let c = config('a');
        let t = issue(&c, "ann@example.com", None, NOW);
        let device = verify(&c, &t, "ann@example.com", NOW + 10).expect("valid");
        assert_eq!(verify(&c, &t, "bob@example.com", NOW), None, "bound to the e-mail");
        let renewed = issue(&c, "ann@example.com", Some(&device), NOW + 100);
        assert_eq!(verify(&c, &renewed, "ann@example.com", NOW + 100), Some(device), "renewal keeps the device");
    }

    #[test]
    fn forged_expired_and_malformed_tokens_are_ignored() {
        let c = config('a');
        let t = issue(&c, "ann@example.com", None, NOW);
        assert_eq!(verify(&config('b'), &t, "ann@example.com", NOW), None, "another key");
        assert_eq!(verify(&c, &t, "ann@example.com", NOW + DEVICE_TOKEN_TTL.as_secs() + 1), None, "expired");
        assert_eq!(verify(&c, &t, "ann@example.com", NOW - 3600), None, "issued in the future");
        let mut parts: Vec<&str> = t.split('.').collect();
        let later = (NOW + 5).to_string();
        parts[2] = &later;
        assert_eq!(verify(&c, &parts.join("."), "ann@example.com", NOW + 5), None, "edited issue time");
        for bad in ["", "d1", "d1.a.b.c", "x.y.z.w.v", &"d".repeat(500)] {
            assert_eq!(verify(&c, bad, "ann@example.com", NOW), None, "{bad:?}");
        }
    }

    #[test]
    fn a_rotated_out_signing_key_still_verifies_while_configured() {
        let old = config('a');
        let t = issue(&old, "ann@example.com", None, NOW);
        let mut rotated = config('c');
        rotated.keys.push(old.keys[0].clone());
        assert!(verify(&rotated, &t, "ann@example.com", NOW).is_some());
    }
}
