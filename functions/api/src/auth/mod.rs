//! Who is calling, and what they may do.
//!
//! Roles are enforced by extractors, never by hand in a handler: a handler that takes
//! [`Auth<Staff>`] cannot run for a customer. [`Auth<R>`] needs a valid bearer token and a role
//! allowed by `R`; [`MaybeAuth`] is for routes open to guests (checkout) and still refuses a
//! token that is present but invalid — a broken token is an error, not an anonymous visit.
//!
//! Customer-level routes trust the role in the (15-minute) token. Staff routes re-read the
//! role from the database on every request, so a demoted or deleted staff account loses
//! access at once.

pub mod config;
pub mod device;
pub mod limits;
pub mod password;
pub mod supabase;
pub mod tokens;

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::{Role, UserId};

pub use config::AuthConfig;
pub use tokens::{IssuedToken, TokenIdentity};

use crate::app::AppState;
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub id: UserId,
    pub role: Role,
    pub email: String,
}

/// Which roles a route admits.
pub trait Requirement: Send + Sync + 'static {
    fn allows(role: Role) -> bool;
    /// Whether the role must be re-read from the database (staff routes).
    const RECHECK: bool;
}

/// Any signed-in account.
pub struct AnyUser;
/// Fulfilment staff or admins.
pub struct Staff;
/// Admins only.
pub struct Admin;

impl Requirement for AnyUser {
    const RECHECK: bool = false;
    fn allows(_: Role) -> bool {
        true
    }
}

impl Requirement for Staff {
    const RECHECK: bool = true;
    fn allows(role: Role) -> bool {
        role.is_staff()
    }
}

impl Requirement for Admin {
    const RECHECK: bool = true;
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
}

/// A caller whose token verified and whose role `R` admits.
pub struct Auth<R: Requirement = AnyUser>(pub AuthUser, PhantomData<R>);

impl<R: Requirement> Auth<R> {
    pub fn user(&self) -> &AuthUser {
        &self.0
    }
}

/// The caller if a bearer token was sent (and verified), `None` for guests.
pub struct MaybeAuth(pub Option<AuthUser>);

pub fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| unauthenticated("the Authorization header is not a bearer token"))?;
    let (scheme, token) =
        value.trim().split_once(' ').ok_or_else(|| unauthenticated("expected Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthenticated("expected Authorization: Bearer <token>"));
    }
    Ok(Some(token.trim()))
}

fn identify(state: &AppState, token: &str) -> Result<AuthUser, ApiError> {
    let identity = tokens::verify(&state.auth, token).map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        unauthenticated("the token is invalid or expired")
    })?;
    Ok(AuthUser { id: identity.user_id, role: identity.role, email: identity.email })
}

impl<R: Requirement> FromRequestParts<AppState> for Auth<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token =
            bearer(parts)?.ok_or_else(|| unauthenticated("sign in first: send Authorization: Bearer <token>"))?;
        let mut user = identify(state, token)?;
        if R::RECHECK {
            let stored =
                state.accounts.user(user.id).await?.ok_or_else(|| unauthenticated("the account no longer exists"))?;
            user.role = stored.role;
            user.email = stored.email;
        }
        if !R::allows(user.role) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this account may not do that"));
        }
        Ok(Self(user, PhantomData))
    }
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            None => Ok(Self(None)),
            Some(token) => identify(state, token).map(|u| Self(Some(u))),
        }
    }
}

/// The client's IP, for per-IP limits: the edge's client-IP header (`CLIENT_IP_HEADER`) on a
/// request the edge authenticated ([`FromEdge`](crate::origin::FromEdge)) — the edge's own
/// address is all the API sees there — else API Gateway's source IP, else the TCP peer, else
/// `unknown`. A client-IP header on any other request is ignored: anyone can write one, and
/// believing it would let every caller pick a fresh IP per guess.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let clean = |s: &str| {
            let s = s.split(',').next().unwrap_or("").trim();
            (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit() || b".:[]".contains(&b)))
                .then(|| s.to_owned())
        };
        if parts.extensions.get::<crate::origin::FromEdge>().is_some() {
            let header = &state.origin.client_ip_header;
            if let Some(ip) = parts.headers.get(header).and_then(|v| v.to_str().ok()).and_then(clean) {
                return Ok(Self(ip));
            }
        }
        use lambda_http::request::RequestContext;
        let lambda_ip = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
            Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
            _ => None,
        };
        if let Some(ip) = lambda_ip.as_deref().and_then(clean) {
            return Ok(Self(ip));
        }
        if let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            return Ok(Self(addr.ip().to_string()));
        }
        Ok(Self("unknown".into()))
    }
}
