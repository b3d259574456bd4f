//! `POST /api/auth/register`, `POST /api/auth/login`, `POST /api/auth/supabase`,
//! `POST /api/auth/supabase/link`, `GET /api/auth/me`.
//!
//! **Passwords.** Every password check — sign-in, Supabase link, registration — is counted
//! atomically *before* its Argon2 work and judged by [`crate::auth::limits`]: per e-mail and
//! client IP, per IP and per e-mail for new clients, per device for clients that signed in
//! before (they present the `device_token` a sign-in returns). Parallel guesses cannot
//! outrun the count, and guessing from many addresses slows new clients of an account but
//! never locks out the owner's devices. An unknown address costs a full Argon2 verification
//! like a wrong password: the answers (401 `invalid_credentials`, 429 `too_many_attempts`)
//! and their timing say nothing about which addresses exist.
//!
//! **Supabase.** A Supabase user signs in to the account linked to their Supabase id. Without
//! one, an account is created for them when their address is verified — by Supabase itself
//! (`SUPABASE_URL`: `email_confirmed_at`) or by a provider that verifies addresses (Google),
//! never by the user-editable `user_metadata`. An address that already has an account is
//! never taken over: 409 `link_required` until the caller proves that account's password at
//! `/api/auth/supabase/link`, and staff accounts are never linked. Whether an address has an
//! account is only ever said to a caller whose ownership of it was verified.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use db::accounts::{SupabaseCreate, SupabaseLinkOutcome, User};
use domain::{Email, NewPassword};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::auth::config::SupabaseConfig;
use crate::auth::device::{self, DeviceId};
use crate::auth::limits::Throttled;
use crate::auth::supabase::{SupabaseError, email_confirmed};
use crate::auth::tokens::SupabaseIdentity;
use crate::auth::{Auth, ClientIp, tokens, unauthenticated};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::no_store;
use crate::services::sign_in::{PasswordCheck, Registration};

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
    /// The `device_token` an earlier sign-in to this address returned, if the client kept it.
    pub device_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupabaseSignIn {
    pub access_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupabaseLink {
    pub access_token: String,
    /// The password of the existing account with the Supabase user's address.
    pub password: String,
    pub device_token: Option<String>,
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

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The signed-in answer: the account, a bearer token, and a device token for this client's
/// later password sign-ins (`device`: the one it presented, else a new one).
fn signed_in(
    state: &AppState,
    user: &User,
    status: StatusCode,
    device: Option<&DeviceId>,
) -> Result<Response, ApiError> {
    let token = tokens::issue(&state.auth, user.id, user.role, &user.email).map_err(|e| {
        tracing::error!(error = %e, "token signing failed");
        ApiError::internal()
    })?;
    let device_token = device::issue(&state.auth, &user.email, device, now_secs());
    Ok(no_store((status, Json(json!({ "user": user_json(user), "token": token, "device_token": device_token })))))
}

fn invalid_credentials() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong e-mail or password")
}

fn too_many(throttled: Throttled) -> ApiError {
    let secs = throttled.retry_after_secs();
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many attempts; try again in {secs} s"),
    );
    e.retry_after_secs = Some(secs);
    e
}

pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Register>,
) -> Result<Response, ApiError> {
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
    match state.sign_in.register(&email, name.as_deref(), &password, &ip).await? {
        Registration::Created(user) => {
            tracing::info!(user = %user.id, "account registered");
            signed_in(&state, &user, StatusCode::CREATED, None)
        }
        Registration::Taken => {
            Err(ApiError::new(StatusCode::CONFLICT, "email_taken", "an account with this e-mail exists; sign in"))
        }
        Registration::Throttled(t) => Err(too_many(t)),
    }
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    match state
        .sign_in
        .check_password(&state.auth, &body.email, body.password, &ip, body.device_token.as_deref())
        .await?
    {
        PasswordCheck::Passed { user, device } => {
            tracing::info!(user = %user.id, "signed in");
            signed_in(&state, &user, StatusCode::OK, Some(&device))
        }
        PasswordCheck::Failed => Err(invalid_credentials()),
        PasswordCheck::Throttled(t) => Err(too_many(t)),
    }
}

pub async fn me(State(state): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    let user =
        state.accounts.user(auth.user().id).await?.ok_or_else(|| unauthenticated("the account no longer exists"))?;
    Ok(no_store(Json(json!({ "user": user_json(&user) }))))
}

fn supabase_config(state: &AppState) -> Result<&SupabaseConfig, ApiError> {
    state
        .auth
        .supabase
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "supabase_disabled", "Supabase sign-in is not configured"))
}

fn supabase_identity(config: &SupabaseConfig, access_token: &str) -> Result<SupabaseIdentity, ApiError> {
    tokens::verify_supabase(config, access_token).map_err(|e| {
        tracing::info!(reason = %e, "Supabase token refused");
        unauthenticated("the Supabase access token is invalid or expired")
    })
}

/// Whether the Supabase user's address is verified: Supabase's own record when
/// `SUPABASE_URL` is set (which also refuses revoked sessions), else the token's
/// server-controlled provider.
async fn email_verified(
    config: &SupabaseConfig,
    access_token: &str,
    identity: &SupabaseIdentity,
) -> Result<bool, ApiError> {
    let Some(url) = &config.url else {
        return Ok(identity.provider_vouches);
    };
    email_confirmed(url, config, access_token, identity).await.map_err(|e| match e {
        SupabaseError::Refused(reason) => {
            tracing::info!(%reason, "Supabase refused the session");
            unauthenticated("the Supabase session is no longer valid")
        }
        SupabaseError::Unavailable(reason) => {
            tracing::warn!(%reason, "Supabase unavailable");
            ApiError::unavailable("supabase_unavailable", "Supabase could not be reached; retry shortly", 2)
        }
    })
}

fn email_not_verified() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "email_not_verified", "confirm your e-mail address with Supabase first")
}

fn link_required() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "link_required",
        "an account with this e-mail exists: link it with its password at /api/auth/supabase/link",
    )
}

fn account_conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "account_conflict",
        "this e-mail belongs to an account linked to another sign-in",
    )
}

pub async fn supabase(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SupabaseSignIn>,
) -> Result<Response, ApiError> {
    let config = supabase_config(&state)?;
    let identity = supabase_identity(config, &body.access_token)?;
    let verified = email_verified(config, &body.access_token, &identity).await?;
    if let Some(account) = state.accounts.by_supabase_id(&identity.supabase_id).await? {
        if !account.trusted {
            // Linked by e-mail alone before links needed the account's password.
            return Err(link_required());
        }
        tracing::info!(user = %account.user.id, "signed in with Supabase");
        return signed_in(&state, &account.user, StatusCode::OK, None);
    }
    // Nothing is looked up by e-mail for an address nobody proved to own: the answer for an
    // unverified address is the same whether or not it has an account.
    if !verified {
        return Err(email_not_verified());
    }
    match state.accounts.create_for_supabase(&identity.supabase_id, &identity.email, identity.name.as_deref()).await? {
        SupabaseCreate::Created(user) => {
            tracing::info!(user = %user.id, "account created with Supabase");
            signed_in(&state, &user, StatusCode::OK, None)
        }
        SupabaseCreate::Existing(account) if account.trusted => signed_in(&state, &account.user, StatusCode::OK, None),
        SupabaseCreate::Existing(_) | SupabaseCreate::EmailTaken { linked_elsewhere: false } => Err(link_required()),
        SupabaseCreate::EmailTaken { linked_elsewhere: true } => Err(account_conflict()),
    }
}

/// Links a Supabase user to the existing account with their (verified) address, given that
/// account's password — checked under the same limits as a sign-in. Staff accounts are
/// never linked: they sign in with their password only.
pub async fn supabase_link(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<SupabaseLink>,
) -> Result<Response, ApiError> {
    let config = supabase_config(&state)?;
    let identity = supabase_identity(config, &body.access_token)?;
    if !email_verified(config, &body.access_token, &identity).await? {
        return Err(email_not_verified());
    }
    let check = state
        .sign_in
        .check_password(&state.auth, identity.email.as_str(), body.password, &ip, body.device_token.as_deref())
        .await?;
    let (user, device) = match check {
        PasswordCheck::Passed { user, device } => (user, device),
        PasswordCheck::Failed => return Err(invalid_credentials()),
        PasswordCheck::Throttled(t) => return Err(too_many(t)),
    };
    if user.role.is_staff() {
        tracing::warn!(user = %user.id, "refused to link a staff account to Supabase");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "staff_link_refused",
            "staff accounts sign in with their password only",
        ));
    }
    match state.accounts.link_supabase(user.id, &identity.supabase_id).await? {
        SupabaseLinkOutcome::Linked(user) => {
            tracing::info!(user = %user.id, "Supabase sign-in linked");
            signed_in(&state, &user, StatusCode::OK, Some(&device))
        }
        SupabaseLinkOutcome::Conflict => Err(account_conflict()),
    }
}
