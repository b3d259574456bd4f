//! Asking Supabase about a signed-in user (`GET <SUPABASE_URL>/auth/v1/user`).
//!
//! A Supabase access token says which address the user had when it was issued, not whether
//! they ever proved they own it (with e-mail confirmations off, or after an unconfirmed
//! change, they need not have), and the `email_verified` flag GoTrue puts in `user_metadata`
//! is the user's to edit. Supabase's own record is the authority: `email_confirmed_at` is
//! set only when the address was confirmed (or came verified from a provider). The same call
//! also refuses sessions that were revoked since the token was issued.

use std::sync::OnceLock;
use std::time::Duration;

use domain::Email;
use serde::Deserialize;

use super::config::SupabaseConfig;
use super::tokens::SupabaseIdentity;

/// Bounds the call: a slow Supabase delays a sign-in, never a request past its timeout.
const TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why Supabase could not vouch for the user.
#[derive(Debug, thiserror::Error)]
pub enum SupabaseError {
    /// Supabase refused the token (revoked session, deleted user) or described another user.
    #[error("Supabase refused the session: {0}")]
    Refused(String),
    /// Supabase could not be asked (network, timeout, 5xx, 429, unreadable answer).
    #[error("Supabase is unavailable: {0}")]
    Unavailable(String),
}

/// The fields of GoTrue's user object that matter here.
#[derive(Debug, Deserialize)]
struct SupabaseUser {
    id: String,
    email: Option<String>,
    email_confirmed_at: Option<String>,
    #[serde(default)]
    is_anonymous: bool,
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // The request carries the user's bearer token: never follow it elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new())
    })
}

/// Whether Supabase confirms that the user `identity` names owns `identity.email` (a
/// confirmed, non-anonymous account whose current address is the token's). Errors when the
/// session is refused or Supabase cannot be asked.
#[tracing::instrument(skip_all, fields(supabase_user = %identity.supabase_id))]
pub async fn email_confirmed(
    base_url: &str,
    config: &SupabaseConfig,
    access_token: &str,
    identity: &SupabaseIdentity,
) -> Result<bool, SupabaseError> {
    let mut request = client().get(format!("{base_url}/auth/v1/user")).bearer_auth(access_token);
    if let Some(key) = &config.anon_key {
        request = request.header("apikey", key);
    }
    let response = request.send().await.map_err(|e| SupabaseError::Unavailable(e.to_string()))?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED
        || status == reqwest::StatusCode::FORBIDDEN
        || status == reqwest::StatusCode::NOT_FOUND
    {
        return Err(SupabaseError::Refused(format!("status {status}")));
    }
    if !status.is_success() {
        return Err(SupabaseError::Unavailable(format!("status {status}")));
    }
    let user: SupabaseUser = response.json().await.map_err(|e| SupabaseError::Unavailable(e.to_string()))?;
    if user.id != identity.supabase_id {
        return Err(SupabaseError::Refused("the token belongs to another user".into()));
    }
    let same_address = user.email.as_deref().and_then(|e| Email::parse(e).ok()).is_some_and(|e| e == identity.email);
    let confirmed = user.email_confirmed_at.as_deref().is_some_and(|t| !t.trim().is_empty());
    if !same_address {
        tracing::info!("the token's address is no longer the user's address");
    }
    Ok(confirmed && same_address && !user.is_anonymous)
}
