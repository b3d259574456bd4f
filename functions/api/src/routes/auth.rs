//! `POST /api/auth/register`, `POST /api/auth/login`, `POST /api/auth/supabase`,
//! `GET /api/auth/me`.
//!
//! Sign-in failures are limited to 5 per 15 minutes per e-mail and per client IP, counted in
//! Postgres so the limit holds across every Lambda instance. The e-mail limit applies to the
//! address as typed, whether or not an account has it, and an unknown address costs a full
//! Argon2 verification like a wrong password: the responses (401 `invalid_credentials`,
//! 429 `too_many_attempts`) and their timing say nothing about which addresses exist.
//! A success does not clear earlier failures; they age out of the window.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use db::accounts::{SupabaseLink, User};
use domain::{Email, NewPassword};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::{Auth, ClientIp, password, tokens, unauthenticated};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::no_store;

pub const MAX_FAILURES: i64 = 5;
pub const WINDOW_SECS: i64 = 15 * 60;
/// Longest password accepted at sign-in (bounds the hashing work an attacker can ask for).
const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub email: String,
    pub password: String,
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupabaseSignIn {
    pub access_token: String,
}

fn user_json(user: &User) -> serde_json::Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "created_at": user.created_at.unix_timestamp(),
    })
}

fn signed_in(state: &AppState, user: &User, status: StatusCode) -> Result<Response, ApiError> {
    let token = tokens::issue(&state.auth, user.id, user.role, &user.email).map_err(|e| {
        tracing::error!(error = %e, "token signing failed");
        ApiError::internal()
    })?;
    Ok(no_store((status, Json(json!({ "user": user_json(user), "token": token })))))
}

pub async fn register(State(state): State<AppState>, ApiJson(body): ApiJson<Register>) -> Result<Response, ApiError> {
    let email =
        Email::parse(&body.email).map_err(|e| ApiError::unprocessable("invalid_email", "email", e.to_string()))?;
    let password = NewPassword::parse(body.password)
        .map_err(|e| ApiError::unprocessable("weak_password", "password", e.to_string()))?;
    let name = match body.name.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(domain::parse_name(n, 200).ok_or_else(|| {
            ApiError::unprocessable("invalid_name", "name", "a name is 1 to 200 characters without control characters")
        })?),
    };
    let hash = password::hash(password.expose().to_owned()).await.map_err(|e| {
        tracing::error!(error = %e, "hashing failed");
        ApiError::internal()
    })?;
    let user = state.accounts.register(&email, name.as_deref(), &hash).await?.ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "email_taken", "an account with this e-mail exists; sign in")
    })?;
    tracing::info!(user = %user.id, "account registered");
    signed_in(&state, &user, StatusCode::CREATED)
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong e-mail or password");
    // The limit is keyed on the normalised address when it parses, else on the raw input
    // (bounded), so malformed addresses are limited too and answer exactly like unknown ones.
    let parsed = Email::parse(&body.email).ok();
    let email_key: String = match &parsed {
        Some(e) => e.as_str().to_owned(),
        None => body.email.trim().to_lowercase().chars().take(254).collect(),
    };
    let email_key = if email_key.is_empty() { "-".to_owned() } else { email_key };

    let counts = state.accounts.recent_failures(&email_key, &ip, WINDOW_SECS).await?;
    if counts.by_email >= MAX_FAILURES || counts.by_ip >= MAX_FAILURES {
        tracing::warn!(ip = %ip, by_email = counts.by_email, by_ip = counts.by_ip, "sign-in refused: too many failures");
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed sign-ins; try again in 15 minutes",
        );
        e.retry_after_secs = Some(WINDOW_SECS as u32);
        return Err(e);
    }

    let credentials = match &parsed {
        Some(email) if body.password.len() <= MAX_LOGIN_PASSWORD_BYTES => state.accounts.credentials(email).await?,
        _ => None,
    };
    let (user, stored) = match credentials {
        Some(c) => (Some(c.user), c.password_hash),
        None => (None, None),
    };
    let password: String = if body.password.len() <= MAX_LOGIN_PASSWORD_BYTES { body.password } else { String::new() };
    let ok = password::verify(password, stored).await;
    match user {
        Some(user) if ok => {
            tracing::info!(user = %user.id, "signed in");
            signed_in(&state, &user, StatusCode::OK)
        }
        _ => {
            state.accounts.record_failure(&email_key, &ip).await?;
            tracing::info!(ip = %ip, "sign-in failed");
            Err(invalid())
        }
    }
}

pub async fn me(State(state): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    let user =
        state.accounts.user(auth.user().id).await?.ok_or_else(|| unauthenticated("the account no longer exists"))?;
    Ok(no_store(Json(json!({ "user": user_json(&user) }))))
}

pub async fn supabase(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SupabaseSignIn>,
) -> Result<Response, ApiError> {
    let Some(config) = &state.auth.supabase else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "supabase_disabled", "Supabase sign-in is not configured"));
    };
    let identity = tokens::verify_supabase(config, &body.access_token).map_err(|e| {
        tracing::info!(reason = %e, "Supabase token refused");
        unauthenticated("the Supabase access token is invalid or expired")
    })?;
    if !identity.email_verified {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "email_not_verified",
            "confirm your e-mail address with Supabase first",
        ));
    }
    match state.accounts.supabase_sign_in(&identity.supabase_id, &identity.email, identity.name.as_deref()).await? {
        SupabaseLink::User(user) => {
            tracing::info!(user = %user.id, "signed in with Supabase");
            signed_in(&state, &user, StatusCode::OK)
        }
        SupabaseLink::Conflict => Err(ApiError::new(
            StatusCode::CONFLICT,
            "account_conflict",
            "this e-mail belongs to an account linked to another sign-in",
        )),
    }
}
