//! Our access tokens (HS256 JWTs with a `kid`), Supabase access tokens, and guests' order
//! tokens.
//!
//! Verification is strict: the algorithm is fixed (HS256; `alg: none` and every other
//! algorithm are refused before any key is tried), the `kid` must name a configured key,
//! `exp`, `iss` and `aud` are required and checked with 30 s of leeway for clock skew.

use std::time::{SystemTime, UNIX_EPOCH};

use domain::{Email, OrderId, Role, UserId};
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::config::{AuthConfig, SupabaseConfig};

/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    email: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Who a valid token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub user_id: UserId,
    pub role: Role,
    pub email: String,
}

/// An issued token.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// Why a token was refused. Callers answer 401 with one code whatever the reason (the
/// reason goes to the log, not to a prober).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed or uses an unaccepted algorithm")]
    Malformed,
    #[error("the token names no configured key")]
    UnknownKey,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the token's claims are unusable")]
    BadClaims,
    #[error("could not sign a token")]
    Signing,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn issue(config: &AuthConfig, user_id: UserId, role: Role, email: &str) -> Result<IssuedToken, TokenError> {
    let key = &config.keys[0];
    let now = now_secs();
    let ttl = config.ttl.as_secs();
    let claims = Claims {
        sub: user_id.to_string(),
        role: role.as_str().into(),
        email: email.into(),
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        iat: now,
        exp: now + ttl,
    };
    let header = Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::HS256) };
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&key.secret))
        .map_err(|_| TokenError::Signing)?;
    Ok(IssuedToken { token, token_type: "Bearer", expires_in: ttl })
}

pub fn verify(config: &AuthConfig, token: &str) -> Result<TokenIdentity, TokenError> {
    if token.len() > 8 * 1024 {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Malformed);
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let key = config.keys.iter().find(|k| k.kid == kid).ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key.secret), &validation)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let claims = data.claims;
    Ok(TokenIdentity {
        user_id: claims.sub.parse().map_err(|_| TokenError::BadClaims)?,
        role: Role::parse(&claims.role).ok_or(TokenError::BadClaims)?,
        email: claims.email,
    })
}

#[derive(Debug, Deserialize)]
struct SupabaseClaims {
    sub: String,
    email: Option<String>,
    #[serde(default)]
    is_anonymous: bool,
    #[serde(default)]
    user_metadata: serde_json::Value,
    #[serde(default)]
    app_metadata: serde_json::Value,
}

/// The one sign-in provider whose token alone vouches for the address: Google hands out
/// verified addresses only, and `app_metadata.provider` is set by Supabase, not the user.
const PROVIDERS_THAT_VERIFY: [&str; 1] = ["google"];

/// A Supabase user whose access token verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupabaseIdentity {
    pub supabase_id: String,
    pub email: Email,
    /// From `user_metadata`: display only, the user may have typed anything there.
    pub name: Option<String>,
    /// Whether the token's server-controlled claims alone vouch for the address (used when
    /// `SUPABASE_URL` is not set to ask Supabase): a non-anonymous user whose
    /// `app_metadata.provider` verifies addresses. `user_metadata` — where GoTrue copies an
    /// `email_verified` flag — is never consulted: its owner can edit it at will.
    pub provider_vouches: bool,
}

/// Verifies a Supabase access token: HS256 under the project's JWT secret, unexpired,
/// audience `authenticated`, and the issuer when configured. The old system issued a token
/// for whatever e-mail a request named; here nothing is read from a token that did not verify.
pub fn verify_supabase(config: &SupabaseConfig, token: &str) -> Result<SupabaseIdentity, TokenError> {
    if token.len() > 16 * 1024 {
        return Err(TokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Malformed);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.set_audience(&["authenticated"]);
    let mut required = vec!["exp", "aud", "sub"];
    if let Some(issuer) = &config.issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    validation.set_required_spec_claims(&required);
    let data = jsonwebtoken::decode::<SupabaseClaims>(token, &DecodingKey::from_secret(&config.secret), &validation)
        .map_err(|e| TokenError::Invalid(e.to_string()))?;
    let c = data.claims;
    if c.sub.is_empty() || c.sub.len() > 255 {
        return Err(TokenError::BadClaims);
    }
    let email = Email::parse(c.email.as_deref().unwrap_or_default()).map_err(|_| TokenError::BadClaims)?;
    let provider = c.app_metadata.get("provider").and_then(|v| v.as_str());
    let name = ["full_name", "name"]
        .iter()
        .find_map(|k| c.user_metadata.get(*k).and_then(|v| v.as_str()))
        .and_then(|n| domain::parse_name(n, 200));
    Ok(SupabaseIdentity {
        supabase_id: c.sub,
        email,
        name,
        provider_vouches: !c.is_anonymous && provider.is_some_and(|p| PROVIDERS_THAT_VERIFY.contains(&p)),
    })
}

type HmacSha256 = Hmac<Sha256>;

fn order_mac(secret: &[u8], order: OrderId) -> HmacSha256 {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"stolentee-order-token:");
    mac.update(order.as_uuid().as_bytes());
    mac
}

/// The capability a guest gets with their order: URL-safe base64 of an HMAC of the id.
pub fn order_token(secret: &[u8], order: OrderId) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(order_mac(secret, order).finalize().into_bytes())
}

/// Constant-time check of a guest's order token.
pub fn check_order_token(secret: &[u8], order: OrderId, token: &str) -> bool {
    use base64::Engine;
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
        return false;
    };
    order_mac(secret, order).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::config::JwtKey;

    fn config() -> AuthConfig {
        AuthConfig {
            keys: vec![
                JwtKey { kid: "k1".into(), secret: vec![7; 32] },
                JwtKey { kid: "k0".into(), secret: vec![9; 32] },
            ],
            issuer: "iss".into(),
            audience: "aud".into(),
            ttl: Duration::from_secs(900),
            supabase: None,
            order_token_secret: vec![1; 32],
        }
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_identity() {
        let c = config();
        let id = UserId::from_uuid(uuid::Uuid::new_v4());
        let t = issue(&c, id, Role::Admin, "a@example.com").unwrap();
        assert_eq!(
            verify(&c, &t.token).unwrap(),
            TokenIdentity { user_id: id, role: Role::Admin, email: "a@example.com".into() }
        );
    }

    #[test]
    fn tokens_from_a_rotated_out_key_or_another_audience_fail() {
        let c = config();
        let id = UserId::from_uuid(uuid::Uuid::new_v4());
        let t = issue(&c, id, Role::Customer, "a@example.com").unwrap();
        let mut other = config();
        other.keys.remove(0);
        assert_eq!(verify(&other, &t.token), Err(TokenError::UnknownKey));
        let mut other = config();
        other.audience = "elsewhere".into();
        assert!(matches!(verify(&other, &t.token), Err(TokenError::Invalid(_))));
        assert!(verify(&c, "not.a.token").is_err());
        assert!(verify(&c, &"a".repeat(10_000)).is_err());
    }

    fn supabase_token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&[5; 32])).unwrap()
    }

    #[test]
    fn only_server_controlled_claims_vouch_for_a_supabase_address() {
        let config = SupabaseConfig { secret: vec![5; 32], issuer: None, url: None, anon_key: None };
        let exp = now_secs() + 600;
        let claims = |app: serde_json::Value, user: serde_json::Value, anonymous: bool| {
            serde_json::json!({"sub": "u1", "email": "Ann@Example.com", "aud": "authenticated", "exp": exp,
                               "is_anonymous": anonymous, "app_metadata": app, "user_metadata": user})
        };
        let vouches = |c| verify_supabase(&config, &supabase_token(c)).unwrap().provider_vouches;
        let edited = serde_json::json!({"email_verified": true, "provider": "google"});
        assert!(!vouches(claims(serde_json::json!({"provider": "email"}), edited.clone(), false)), "user_metadata");
        assert!(!vouches(claims(serde_json::json!({}), edited, false)));
        assert!(vouches(claims(serde_json::json!({"provider": "google"}), serde_json::json!({}), false)));
        assert!(!vouches(claims(serde_json::json!({"provider": "google"}), serde_json::json!({}), true)), "anonymous");
        let identity =
            verify_supabase(&config, &supabase_token(claims(serde_json::json!({}), serde_json::json!({}), false)))
                .unwrap();
        assert_eq!(identity.email.as_str(), "ann@example.com");
    }

    #[test]
    fn order_tokens_are_bound_to_the_order() {
        let a = OrderId::from_uuid(uuid::Uuid::new_v4());
        let b = OrderId::from_uuid(uuid::Uuid::new_v4());
        let t = order_token(&[1; 32], a);
        assert!(check_order_token(&[1; 32], a, &t));
        assert!(!check_order_token(&[1; 32], b, &t));
        assert!(!check_order_token(&[2; 32], a, &t));
        assert!(!check_order_token(&[1; 32], a, "garbage!"));
    }
}
