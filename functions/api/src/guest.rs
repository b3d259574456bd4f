//! Guest capabilities: how a visitor without an account proves that an upload, its asset and
//! its cut-out jobs are theirs.
//!
//! A guest who starts an upload gets a **guest token** in the response and sends it back in
//! the `X-Guest-Token` header on `complete`, `POST /api/jobs` and `GET /api/jobs/{id}`. The
//! token names a random guest id, its expiry, and an HMAC-SHA256 over both:
//!
//! ```text
//! v1.<guest id, 32 hex>.<expiry, unix seconds>.<MAC, URL-safe base64>
//! ```
//!
//! Verification needs no database (the id is stored with each upload and asset; the MAC is
//! what cannot be forged), runs in constant time on the MAC, and refuses expired tokens. A
//! guest who sends their token when starting another upload keeps the same id, so one token
//! covers all their media; each start returns it renewed for [`GUEST_TOKEN_TTL`].
//!
//! **The key.** The MAC key is derived from `ORDER_TOKEN_SECRET` with its own purpose label
//! (`HMAC(ORDER_TOKEN_SECRET, "stolentee guest media capability v1")`), so guest tokens and
//! order tokens never share a key: neither can be presented as the other, and no new secret
//! is needed to deploy. Rotating `ORDER_TOKEN_SECRET` ends every guest token too.
//!
//! [`MediaCaller`] is the extractor the media routes take: the account behind a bearer
//! token (as [`MaybeAuth`]) and the guest behind a guest token, either or both. A token that
//! is present but invalid or expired is 401, never an anonymous visit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use db::jobs::MediaOwner;
use domain::GuestId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::MaybeAuth;
use crate::error::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// The request header a guest sends their token in.
pub const GUEST_TOKEN_HEADER: &str = "x-guest-token";

/// How long a guest token is valid after it was issued (each upload start renews it).
pub const GUEST_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The derivation label: the guest key is `HMAC(ORDER_TOKEN_SECRET, PURPOSE)`.
const PURPOSE: &[u8] = b"stolentee guest media capability v1";
/// The version tag inside every MAC and at the front of every token.
const VERSION: &str = "v1";
/// Longest header accepted (a v1 token is about 90 characters).
const MAX_TOKEN_LEN: usize = 256;

/// The key guest tokens are signed with.
#[derive(Clone)]
pub struct GuestKey(HmacSha256);

impl std::fmt::Debug for GuestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuestKey(***)")
    }
}

/// Why a guest token was refused. Every variant answers the same 401; the reason is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestTokenError {
    #[error("malformed guest token")]
    Malformed,
    #[error("guest token signature does not match")]
    BadSignature,
    #[error("guest token expired")]
    Expired,
}

impl GuestKey {
    /// The guest key derived from `ORDER_TOKEN_SECRET` (see the module docs).
    pub fn derive(order_token_secret: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        let mut kdf = HmacSha256::new_from_slice(order_token_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        kdf.update(PURPOSE);
        let key = kdf.finalize().into_bytes();
        Self(HmacSha256::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC takes any key length")))
    }

    fn mac(&self, guest: GuestId, expires: u64) -> HmacSha256 {
        let mut mac = self.0.clone();
        // Fixed-width fields, newline-separated: the encoding is unambiguous.
        mac.update(format!("{VERSION}\n{}\n{expires}", guest.as_uuid().simple()).as_bytes());
        mac
    }

    /// A token for `guest`, valid for [`GUEST_TOKEN_TTL`] from `now`.
    pub fn issue(&self, guest: GuestId, now: SystemTime) -> String {
        let expires = unix(now).saturating_add(GUEST_TOKEN_TTL.as_secs());
        let mac = URL_SAFE_NO_PAD.encode(self.mac(guest, expires).finalize().into_bytes());
        format!("{VERSION}.{}.{expires}.{mac}", guest.as_uuid().simple())
    }

    /// The guest a token speaks for, if its MAC verifies and it has not expired at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<GuestId, GuestTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(GuestTokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(VERSION), Some(id), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(GuestTokenError::Malformed);
        };
        // The simple (32 hex digit) form only, so one id has one spelling inside the MAC.
        if id.len() != 32 {
            return Err(GuestTokenError::Malformed);
        }
        let guest = Uuid::try_parse(id).map(GuestId::from_uuid).map_err(|_| GuestTokenError::Malformed)?;
        if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GuestTokenError::Malformed);
        }
        let expires: u64 = expires.parse().map_err(|_| GuestTokenError::Malformed)?;
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| GuestTokenError::Malformed)?;
        // `verify_slice` compares in constant time.
        self.mac(guest, expires).verify_slice(&mac).map_err(|_| GuestTokenError::BadSignature)?;
        if unix(now) > expires {
            return Err(GuestTokenError::Expired);
        }
        Ok(guest)
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A new guest id: random, 122 bits.
pub fn new_guest() -> GuestId {
    GuestId::from_uuid(Uuid::new_v4())
}

/// Who a media request speaks for: the account behind a bearer token, the guest behind a
/// guest token, either, both or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaCaller(pub MediaOwner);

impl MediaCaller {
    pub fn owner(&self) -> &MediaOwner {
        &self.0
    }
}

fn refused(e: GuestTokenError) -> ApiError {
    tracing::info!(reason = %e, "guest token refused");
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the guest token is invalid or expired")
}

impl FromRequestParts<AppState> for MediaCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let MaybeAuth(user) = MaybeAuth::from_request_parts(parts, state).await?;
        let guest = match parts.headers.get(GUEST_TOKEN_HEADER) {
            None => None,
            Some(value) => {
                let token = value.to_str().map_err(|_| refused(GuestTokenError::Malformed))?.trim();
                let key = GuestKey::derive(&state.auth.order_token_secret);
                Some(key.verify(token, SystemTime::now()).map_err(refused)?)
            }
        };
        Ok(Self(MediaOwner { user: user.map(|u| u.id), guest }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GuestKey {
        GuestKey::derive(&[7; 32])
    }

    #[test]
    fn a_token_names_its_guest_until_it_expires() {
        let guest = new_guest();
        let now = SystemTime::now();
        let token = key().issue(guest, now);
        assert!(token.starts_with("v1.") && token.len() < MAX_TOKEN_LEN, "{token}");
        assert_eq!(key().verify(&token, now), Ok(guest));
        let later = now + GUEST_TOKEN_TTL - Duration::from_secs(1);
        assert_eq!(key().verify(&token, later), Ok(guest));
        let expired = now + GUEST_TOKEN_TTL + Duration::from_secs(2);
        assert_eq!(key().verify(&token, expired), Err(GuestTokenError::Expired));
    }

    #[test]
    fn a_token_cannot_be_moved_to_another_guest_extended_or_signed_with_another_key() {
        let now = SystemTime::now();
        let (guest, other) = (new_guest(), new_guest());
        let token = key().issue(guest, now);
        let parts: Vec<&str> = token.split('.').collect();
        let moved = format!("v1.{}.{}.{}", other.as_uuid().simple(), parts[2], parts[3]);
        assert_eq!(key().verify(&moved, now), Err(GuestTokenError::BadSignature));
        let extended = format!("v1.{}.{}.{}", parts[1], parts[2].parse::<u64>().unwrap() + 86_400, parts[3]);
        assert_eq!(key().verify(&extended, now), Err(GuestTokenError::BadSignature));
        assert_eq!(GuestKey::derive(&[8; 32]).verify(&token, now), Err(GuestTokenError::BadSignature));
    }

    #[test]
    fn the_guest_key_is_not_the_order_token_key() {
        // Domain separation: the derived key differs from the secret it comes from, so an
        // HMAC under one is never valid under the other.
        let secret = [7u8; 32];
        let mut direct = HmacSha256::new_from_slice(&secret).unwrap();
        direct.update(format!("{VERSION}\n{}\n1", Uuid::nil().simple()).as_bytes());
        let direct = direct.finalize().into_bytes();
        assert!(key().mac(GuestId::from_uuid(Uuid::nil()), 1).verify_slice(&direct).is_err());
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let now = SystemTime::now();
        let guest = new_guest().as_uuid();
        for bad in [
            String::new(),
            "v1".into(),
            format!("v2.{}.1.AAAA", guest.simple()),
            format!("v1.{}.1.AAAA", guest.hyphenated()),
            format!("v1.{}.-1.AAAA", guest.simple()),
            format!("v1.{}.1.AAAA.extra", guest.simple()),
            format!("v1.{}.99999999999999999999999.AAAA", guest.simple()),
            format!("v1.{}.1.not base64!", guest.simple()),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(key().verify(&bad, now), Err(GuestTokenError::Malformed), "{bad:?}");
        }
    }
}
