//! Password work under the sign-in limits: sign-in, Supabase linking and registration.
//!
//! Each of them first *reserves* an attempt (`db::sign_in`: counted under advisory locks in
//! one transaction, judged by [`crate::auth::limits`]) and only then spends Argon2 time, so
//! the number of hashes an attacker can cause is bounded by the limits however many requests
//! arrive at once. A success deletes its reservation; a wrong password (or a taken address
//! at registration) leaves it to count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use db::accounts::{Accounts, User};
use db::sign_in::{AttemptKey, SignInAttempts};
use db::{Database, StoreError};
use domain::{Email, NewPassword};

use crate::auth::device::{self, DeviceId};
use crate::auth::limits::{self, Throttled};
use crate::auth::{AuthConfig, password};

/// Longest password accepted at sign-in (bounds the hashing work an attacker can ask for).
pub const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hashing(#[from] password::HashError),
}

/// The outcome of a password check.
#[derive(Debug)]
pub enum PasswordCheck {
    /// The password is the account's. `device`: the client's device (the one its token
    /// named, or a new one) for the device token it gets back.
    Passed { user: User, device: DeviceId },
    /// Wrong password, unknown or malformed address, or an account without a password:
    /// indistinguishable by design.
    Failed,
    /// Not checked: the client must wait.
    Throttled(Throttled),
}

/// The outcome of a registration.
#[derive(Debug)]
pub enum Registration {
    Created(User),
    /// The address has an account (see docs/API.md on why registration says so).
    Taken,
    Throttled(Throttled),
}

#[derive(Clone)]
pub struct SignIn {
    attempts: SignInAttempts,
    accounts: Accounts,
    /// Argon2 hashes and verifications started by this instance: the limits' cost, observed.
    argon2_runs: Arc<AtomicU64>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What an address is counted under: the normalised address when it parses, else the raw
/// input (trimmed, lower-cased, bounded), so malformed addresses are limited too and answer
/// exactly like unknown ones.
pub fn email_key(raw: &str) -> String {
    match Email::parse(raw) {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => {
            let key: String = raw.trim().to_lowercase().chars().take(Email::MAX_LEN).collect();
            if key.is_empty() { "-".to_owned() } else { key }
        }
    }
}

impl SignIn {
    pub fn new(db: Database) -> Self {
        Self {
            attempts: SignInAttempts::new(db.clone()),
            accounts: Accounts::new(db),
            argon2_runs: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How many Argon2 hashes and verifications this instance has started.
    pub fn argon2_runs(&self) -> u64 {
        self.argon2_runs.load(Ordering::Relaxed)
    }

    /// Checks `password` for the account at `email` (as typed), within the limits.
    #[tracing::instrument(skip_all, fields(client_ip = %client_ip, known_device = tracing::field::Empty))]
    pub async fn check_password(
        &self,
        auth: &AuthConfig,
        email: &str,
        password: String,
        client_ip: &str,
        device_token: Option<&str>,
    ) -> Result<PasswordCheck, SignInError> {
        let parsed = Email::parse(email).ok();
        let key_email = email_key(email);
        let device = device_token.and_then(|t| device::verify(auth, t, &key_email, now_secs()));
        tracing::Span::current().record("known_device", device.is_some());
        let key = AttemptKey { email: &key_email, client_ip, device: device.as_ref().map(DeviceId::as_str) };
        let attempt = match self.attempts.reserve(&key, &limits::WINDOWS, limits::decide).await? {
            Ok(attempt) => attempt,
            Err(throttled) => {
                tracing::warn!(retry_after_secs = throttled.retry_after_secs(), "sign-in refused: too many attempts");
                return Ok(PasswordCheck::Throttled(throttled));
            }
        };
        let too_long = password.len() > MAX_LOGIN_PASSWORD_BYTES;
        let credentials = match &parsed {
            Some(email) if !too_long => self.accounts.credentials(email).await?,
            _ => None,
        };
        let (user, stored) = match credentials {
            Some(c) => (Some(c.user), c.password_hash),
            None => (None, None),
        };
        let password = if too_long { String::new() } else { password };
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let ok = password::verify(password, stored).await;
        match user {
            Some(user) if ok => {
                self.attempts.succeeded(attempt, key.device).await?;
                Ok(PasswordCheck::Passed { user, device: device.unwrap_or_default() })
            }
            _ => {
                tracing::info!("password check failed");
                Ok(PasswordCheck::Failed)
            }
        }
    }

    /// Registers a customer, within the same limits as a sign-in: an attempt on a taken
    /// address counts like a wrong password, so probing which addresses have accounts
    /// through registration is as slow as guessing passwords.
    #[tracing::instrument(skip_all, fields(client_ip = %client_ip))]
    pub async fn register(
        &self,
        email: &Email,
        name: Option<&str>,
        password: &NewPassword,
        client_ip: &str,
    ) -> Result<Registration, SignInError> {
        let key = AttemptKey { email: email.as_str(), client_ip, device: None };
        let attempt = match self.attempts.reserve(&key, &limits::WINDOWS, limits::decide).await? {
            Ok(attempt) => attempt,
            Err(throttled) => {
                tracing::warn!(
                    retry_after_secs = throttled.retry_after_secs(),
                    "registration refused: too many attempts"
                );
                return Ok(Registration::Throttled(throttled));
            }
        };
        self.argon2_runs.fetch_add(1, Ordering::Relaxed);
        let hash = password::hash(password.expose().to_owned()).await?;
        match self.accounts.register(email, name, &hash).await? {
            Some(user) => {
                self.attempts.succeeded(attempt, None).await?;
                Ok(Registration::Created(user))
            }
            None => Ok(Registration::Taken),
        }
    }
}
