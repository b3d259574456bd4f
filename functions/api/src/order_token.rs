//! Guests' order tokens: the capability to read one order without an account.
//!
//! A token is `ot2.<expiry>.<mac>`: the expiry in Unix seconds, and the URL-safe base64 of an
//! HMAC-SHA256 (key `ORDER_TOKEN_SECRET`) over the order id and that expiry. It opens exactly
//! one order until it expires (`ORDER_TOKEN_TTL_SECS`, 30 days by default), is checked in
//! constant time, and travels in the `X-Order-Token` header: a query string ends up in access
//! logs, browser history and `Referer` headers, so `?token=` is refused outright.
//!
//! Tokens of the earlier form (a bare MAC, no expiry) never expire and are not accepted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::OrderId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The request header that carries a guest's order token.
pub const HEADER: &str = "x-order-token";

const PREFIX: &str = "ot2";

/// A token as handed to a guest, with when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedOrderToken {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// What a presented token proves about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderTokenCheck {
    /// Signed for this order and not expired.
    Valid,
    /// Signed for this order, but its time is up: the guest must get a new one (placing the
    /// order again with the same `Idempotency-Key` returns one) or sign in.
    Expired,
    /// Not a token for this order: forged, garbled, another order's, or of the old form.
    Invalid,
}

fn mac(secret: &[u8], order: OrderId, expires_at: u64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"stolentee-order-token:v2:");
    mac.update(order.as_uuid().as_bytes());
    mac.update(&expires_at.to_be_bytes());
    mac
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A token for `order`, valid for `ttl` from `now`.
pub fn issue(secret: &[u8], order: OrderId, ttl: Duration, now: SystemTime) -> IssuedOrderToken {
    let expires_at = unix(now).saturating_add(ttl.as_secs());
    let tag = URL_SAFE_NO_PAD.encode(mac(secret, order, expires_at).finalize().into_bytes());
    IssuedOrderToken { token: format!("{PREFIX}.{expires_at}.{tag}"), expires_at }
}

/// Checks `token` for `order` at `now`. The signature is checked before the expiry, so
/// `Expired` is only ever said about a genuine token for this order.
pub fn check(secret: &[u8], order: OrderId, token: &str, now: SystemTime) -> OrderTokenCheck {
    let token = token.trim();
    if token.len() > 200 {
        return OrderTokenCheck::Invalid;
    }
    let mut parts = token.split('.');
    let (Some(PREFIX), Some(expiry), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return OrderTokenCheck::Invalid;
    };
    if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return OrderTokenCheck::Invalid;
    }
    let (Ok(expires_at), Ok(tag)) = (expiry.parse::<u64>(), URL_SAFE_NO_PAD.decode(tag)) else {
        return OrderTokenCheck::Invalid;
    };
    if mac(secret, order, expires_at).verify_slice(&tag).is_err() {
        return OrderTokenCheck::Invalid;
    }
    if unix(now) >= expires_at { OrderTokenCheck::Expired } else { OrderTokenCheck::Valid }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = &[1; 32];
    const DAY: Duration = Duration::from_secs(86_400);

    fn order() -> OrderId {
        OrderId::from_uuid(uuid::Uuid::new_v4())
    }

    fn at(unix: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix)
    }

    #[test]
    fn a_token_opens_its_order_until_it_expires() {
        let a = order();
        let issued = issue(SECRET, a, DAY, at(1_000_000));
        assert_eq!(issued.expires_at, 1_000_000 + 86_400);
        assert!(issued.token.starts_with("ot2.1086400."), "{}", issued.token);
        assert_eq!(check(SECRET, a, &issued.token, at(1_000_000)), OrderTokenCheck::Valid);
        assert_eq!(check(SECRET, a, &issued.token, at(1_086_399)), OrderTokenCheck::Valid);
        assert_eq!(check(SECRET, a, &issued.token, at(1_086_400)), OrderTokenCheck::Expired);
        assert_eq!(check(SECRET, a, &issued.token, at(u64::MAX / 2)), OrderTokenCheck::Expired);
    }

    #[test]
    fn a_token_is_bound_to_its_order_its_secret_and_its_expiry() {
        let (a, b) = (order(), order());
        let issued = issue(SECRET, a, DAY, at(1_000_000));
        assert_eq!(check(SECRET, b, &issued.token, at(1_000_000)), OrderTokenCheck::Invalid);
        assert_eq!(check(&[2; 32], a, &issued.token, at(1_000_000)), OrderTokenCheck::Invalid);
        // Pushing the expiry out breaks the signature: an expired token cannot be revived.
        let tag = issued.token.rsplit('.').next().unwrap();
        let extended = format!("ot2.{}.{tag}", issued.expires_at + 86_400 * 365);
        assert_eq!(check(SECRET, a, &extended, at(2_000_000)), OrderTokenCheck::Invalid);
    }

    #[test]
    fn old_and_garbled_tokens_are_invalid_never_a_panic() {
        let a = order();
        let issued = issue(SECRET, a, DAY, at(1_000_000));
        let tag = issued.token.rsplit('.').next().unwrap().to_owned();
        let cases = [
            String::new(),
            tag.clone(), // the earlier form: a bare MAC
            format!("ot1.{}.{tag}", issued.expires_at),
            format!("ot2..{tag}"),
            format!("ot2.+1086400.{tag}"),
            format!("ot2.99999999999999999999999.{tag}"),
            format!("ot2.{}.{tag}.x", issued.expires_at),
            format!("ot2.{}.{tag}!", issued.expires_at),
            format!("ot2.{}.", issued.expires_at),
            "ot2.1.2".into(),
            "a".repeat(10_000),
            "ot2.١٠٨٦٤٠٠.x".into(),
        ];
        for token in cases {
            assert_eq!(check(SECRET, a, &token, at(1_000_000)), OrderTokenCheck::Invalid, "{token:?}");
        }
        let padded = format!("  {}\t", issued.token);
        assert_eq!(check(SECRET, a, &padded, at(1_000_000)), OrderTokenCheck::Valid, "surrounding blanks are trimmed");
    }
}
