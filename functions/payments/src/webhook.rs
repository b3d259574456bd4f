//! Stripe webhook signatures: `Stripe-Signature: t=<unix seconds>,v1=<hex>,v1=<hex>,v0=<hex>`,
//! where each `v1` is HMAC-SHA256 of `"{t}.{raw body}"` under an endpoint's signing secret.
//!
//! Verification works on the raw body bytes (re-serialised JSON would not match), accepts the
//! event if *any* `v1` matches *any* configured secret (Stripe sends one `v1` per active secret
//! while a secret is being rolled), compares in constant time, and rejects timestamps more
//! than the tolerance away from now in either direction, which bounds replays.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::unix_seconds;
use crate::event::Event;
use crate::secret::WebhookSecret;

type HmacSha256 = Hmac<Sha256>;

/// Stripe's own default: an event signed more than five minutes ago (or ahead) is refused.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Bounds on what a header may contain, so a hostile header costs little to reject.
const MAX_HEADER_LEN: usize = 4096;
const MAX_SIGNATURES: usize = 16;

/// Why a webhook was refused. The API answers 400 with [`WebhookError::code`] and changes
/// nothing; none of these variants carries the secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the Stripe-Signature header is missing or empty")]
    MissingSignature,
    #[error("the Stripe-Signature header is malformed: {0}")]
    MalformedSignature(&'static str),
    #[error("no v1 signature matches the payload under any configured secret")]
    SignatureMismatch,
    #[error("the signature timestamp is {skew_secs} s away from now, beyond the {tolerance_secs} s tolerance")]
    TimestampOutOfTolerance { timestamp: i64, skew_secs: i64, tolerance_secs: u64 },
    #[error("the payload is not a Stripe event: {0}")]
    MalformedPayload(String),
    #[error("no webhook signing secret is configured")]
    NoSecretConfigured,
}

impl WebhookError {
    /// A stable machine-readable code for the API's error body and for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MalformedSignature(_) => "malformed_signature",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampOutOfTolerance { .. } => "timestamp_out_of_tolerance",
            Self::MalformedPayload(_) => "malformed_payload",
            Self::NoSecretConfigured => "no_webhook_secret",
        }
    }
}

/// A parsed header: the timestamp as written (it is part of the signed string) and its value.
struct SignatureHeader<'a> {
    timestamp_raw: &'a str,
    timestamp: i64,
    v1: Vec<[u8; 32]>,
}

fn parse_header(header: &str) -> Result<SignatureHeader<'_>, WebhookError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(WebhookError::MissingSignature);
    }
    if header.len() > MAX_HEADER_LEN {
        return Err(WebhookError::MalformedSignature("header is too long"));
    }
    let mut timestamp = None;
    let mut v1 = Vec::new();
    for element in header.split(',') {
        let element = element.trim();
        if element.is_empty() {
            continue;
        }
        let Some((key, value)) = element.split_once('=') else {
            return Err(WebhookError::MalformedSignature("an element is not key=value"));
        };
        match key.trim() {
            "t" => {
                if timestamp.is_some() {
                    return Err(WebhookError::MalformedSignature("more than one timestamp"));
                }
                let value = value.trim();
                if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(WebhookError::MalformedSignature("the timestamp is not a number of seconds"));
                }
                let seconds: i64 =
                    value.parse().map_err(|_| WebhookError::MalformedSignature("the timestamp is out of range"))?;
                timestamp = Some((value, seconds));
            }
            "v1" => {
                if v1.len() == MAX_SIGNATURES {
                    return Err(WebhookError::MalformedSignature("too many v1 signatures"));
                }
                let mut signature = [0u8; 32];
                hex::decode_to_slice(value.trim(), &mut signature)
                    .map_err(|_| WebhookError::MalformedSignature("a v1 signature is not 64 hex digits"))?;
                v1.push(signature);
            }
            // v0 (Stripe's test scheme) and any future scheme are ignored, as Stripe advises.
            _ => {}
        }
    }
    let Some((timestamp_raw, timestamp)) = timestamp else {
        return Err(WebhookError::MalformedSignature("no timestamp (t=)"));
    };
    if v1.is_empty() {
        return Err(WebhookError::MalformedSignature("no v1 signature"));
    }
    Ok(SignatureHeader { timestamp_raw, timestamp, v1 })
}

fn mac_for(secret: &WebhookSecret, timestamp: &str, payload: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// Checks the signature and timestamp only; returns the signed timestamp (Unix seconds).
///
/// Order of checks: header shape, then signature, then time. A correctly signed but stale
/// event therefore reports `TimestampOutOfTolerance` (worth knowing: a clock or a replay),
/// while anything unsigned stops at `SignatureMismatch` before its timestamp is trusted.
pub fn verify_signature(
    payload: &[u8],
    signature_header: &str,
    secrets: &[WebhookSecret],
    now: SystemTime,
    tolerance: Duration,
) -> Result<i64, WebhookError> {
    let header = parse_header(signature_header)?;
    if secrets.is_empty() {
        return Err(WebhookError::NoSecretConfigured);
    }
    let mut matched = false;
    for secret in secrets {
        let mac = mac_for(secret, header.timestamp_raw, payload);
        for candidate in &header.v1 {
            // `verify_slice` compares in constant time; no early exit leaks which one matched.
            matched |= mac.clone().verify_slice(candidate).is_ok();
        }
    }
    if !matched {
        return Err(WebhookError::SignatureMismatch);
    }
    let skew = unix_seconds(now).saturating_sub(header.timestamp);
    let tolerance_secs = tolerance.as_secs();
    if skew.unsigned_abs() > tolerance_secs {
        return Err(WebhookError::TimestampOutOfTolerance {
            timestamp: header.timestamp,
            skew_secs: skew,
            tolerance_secs,
        });
    }
    Ok(header.timestamp)
}

/// Verifies a webhook with the default 300 s tolerance and parses the event.
pub fn verify(
    payload: &[u8],
    signature_header: &str,
    secrets: &[WebhookSecret],
    now: SystemTime,
) -> Result<Event, WebhookError> {
    verify_with_tolerance(payload, signature_header, secrets, now, DEFAULT_TOLERANCE)
}

/// [`verify`] with an explicit tolerance.
pub fn verify_with_tolerance(
    payload: &[u8],
    signature_header: &str,
    secrets: &[WebhookSecret],
    now: SystemTime,
    tolerance: Duration,
) -> Result<Event, WebhookError> {
    verify_signature(payload, signature_header, secrets, now, tolerance)?;
    Event::parse(payload)
}

/// Builds a `Stripe-Signature` header (`t=…,v1=…`) for `payload` signed at `timestamp` (Unix
/// seconds). Used by the local provider and by tests; Stripe does the same on its side.
pub fn sign(payload: &[u8], secret: &WebhookSecret, timestamp: i64) -> String {
    let timestamp = timestamp.to_string();
    let tag = mac_for(secret, &timestamp, payload).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_elements_may_carry_spaces_and_unknown_schemes() {
        let sig = "a".repeat(64);
        let header = format!(" t=12 , v0=zz, v9=?, v1={sig} ");
        let parsed = parse_header(&header).unwrap();
        assert_eq!(parsed.timestamp, 12);
        assert_eq!(parsed.v1.len(), 1);
    }

    #[test]
    fn negative_and_huge_timestamps_are_malformed() {
        let sig = "a".repeat(64);
        for t in ["-5", "1e9", "9999999999999", "", "0x10"] {
            let header = format!("t={t},v1={sig}");
            assert!(matches!(parse_header(&header), Err(WebhookError::MalformedSignature(_))), "{t}");
        }
    }
}
