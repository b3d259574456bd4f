//! What the S3 and SQS clients share: endpoint, region, credentials, timeouts, retries and
//! the HTTPS client.
//!
//! We build the SDK configuration by hand instead of through `aws-config`: that crate brings
//! the STS, SSO and SSO-OIDC clients (minutes of build time) for credential sources a Lambda
//! function never uses. Inside Lambda the execution role's credentials arrive as the standard
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`),
//! which [`AwsCredentials::Environment`] reads; R2 and local servers take static keys.
//! Profiles, SSO and instance metadata are deliberately not supported.
//!
//! The HTTPS client is rustls over ring, built explicitly, because the SDK's default client
//! would compile aws-lc (a large C library) for the same job.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use config::ConfigError;
pub use config::check_http_url;

/// Where credentials come from.
#[derive(Clone, PartialEq, Eq)]
pub enum AwsCredentials {
    /// Fixed keys: R2 API tokens, moto/s3s test keys.
    Static { access_key_id: String, secret_access_key: String, session_token: Option<String> },
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`, read
    /// whenever the SDK asks (it caches them): what Lambda gives the execution role.
    Environment,
}

impl std::fmt::Debug for AwsCredentials {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static { access_key_id, session_token, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"***")
                .field("session_token", &session_token.as_ref().map(|_| "***"))
                .finish(),
            Self::Environment => f.write_str("Environment"),
        }
    }
}

/// Bounds on every request. The SDK's standard retry mode (exponential back-off with
/// jitter, retry quota) retries throttling, 5xx, timeouts and connection failures up to
/// `max_attempts` in total; each attempt gets `attempt`, the whole operation `operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
    pub max_attempts: u32,
}

impl Default for AwsTimeouts {
    /// Tuned for objects up to the 25 MB upload limit and Lambda's short runs: a dead
    /// endpoint costs at most 30 s, a slow attempt is cut at 10 s and retried.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            attempt: Duration::from_secs(10),
            operation: Duration::from_secs(30),
            max_attempts: 3,
        }
    }
}

/// How to reach one AWS-API service (S3 or SQS, AWS or a compatible server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConnection {
    /// `None`: the service's AWS endpoint for `region`. Set for R2
    /// (`https://<account>.r2.cloudflarestorage.com`), moto, s3s.
    pub endpoint: Option<String>,
    /// `auto` for R2; any name for moto/s3s (they accept `us-east-1`).
    pub region: String,
    pub credentials: AwsCredentials,
    pub timeouts: AwsTimeouts,
}

impl AwsConnection {
    /// A connection to a local test server (moto, s3s-fs) with its usual dummy keys.
    pub fn local(endpoint: impl Into<String>, access_key_id: &str, secret_access_key: &str) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            region: "us-east-1".into(),
            credentials: AwsCredentials::Static {
                access_key_id: access_key_id.into(),
                secret_access_key: secret_access_key.into(),
                session_token: None,
            },
            timeouts: AwsTimeouts::default(),
        }
    }

    pub fn credentials_provider(&self) -> aws_credential_types::provider::SharedCredentialsProvider {
        match &self.credentials {
            AwsCredentials::Static { access_key_id, secret_access_key, session_token } => {
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    access_key_id,
                    secret_access_key,
                    session_token.clone(),
                    None,
                    "stolentee-static",
                ))
            }
            AwsCredentials::Environment => {
                aws_credential_types::provider::SharedCredentialsProvider::new(EnvironmentCredentials)
            }
        }
    }

    pub fn timeout_config(&self) -> aws_smithy_types::timeout::TimeoutConfig {
        aws_smithy_types::timeout::TimeoutConfig::builder()
            .connect_timeout(self.timeouts.connect)
            .operation_attempt_timeout(self.timeouts.attempt)
            .operation_timeout(self.timeouts.operation)
            .build()
    }

    pub fn retry_config(&self) -> aws_smithy_types::retry::RetryConfig {
        aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(self.timeouts.max_attempts.max(1))
    }
}

/// One HTTPS client (rustls + ring, system roots) per store or queue; it also speaks plain
/// HTTP for local servers.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// Reads the standard AWS variables each time the SDK's identity cache asks.
#[derive(Debug)]
struct EnvironmentCredentials;

impl EnvironmentCredentials {
    fn load() -> Result<Credentials, CredentialsError> {
        let var = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                Ok(Credentials::new(id, secret, var("AWS_SESSION_TOKEN"), None, "stolentee-environment"))
            }
            _ => Err(CredentialsError::not_loaded(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set (Lambda sets them from the \
                 execution role; elsewhere set them or configure static keys)",
            )),
        }
    }
}

impl ProvideCredentials for EnvironmentCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Self::load())
    }
}

/// What a failed SDK call means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The object (key) does not exist. Never used for a missing bucket or queue: that is
    /// configuration, not data.
    NotFound,
    /// Network, timeout, throttling, 5xx: retrying later may succeed.
    Transient(String),
    /// Credentials, permissions, a missing bucket or queue, a malformed request: it will fail
    /// again.
    Permanent(String),
}

/// Sorts an SDK error (after the SDK's own retries) into [`Fault`]s.
pub fn classify<E>(err: &SdkError<E, HttpResponse>) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let reason = DisplayErrorContext(err).to_string();
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().unwrap_or_default();
            match (status, code) {
                (_, "NoSuchKey" | "NotFound") | (404, "") => Fault::NotFound,
                (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout" | "ServiceUnavailable")
                | (408 | 429 | 500..=599, _) => Fault::Transient(reason),
                _ => Fault::Permanent(reason),
            }
        }
        // A response we could not read: the connection broke or the server misbehaved.
        SdkError::ResponseError(_) | SdkError::TimeoutError(_) => Fault::Transient(reason),
        SdkError::DispatchFailure(failure) if failure.is_user() => Fault::Permanent(reason),
        SdkError::DispatchFailure(_) => Fault::Transient(reason),
        SdkError::ConstructionFailure(_) => Fault::Permanent(reason),
        _ => Fault::Transient(reason),
    }
}

/// The variable names of one service's connection, for errors that name what to fix.
pub struct ConnectionKeys {
    pub endpoint: &'static str,
    pub region: &'static str,
    pub access_key_id: &'static str,
    pub secret_access_key: &'static str,
    pub attempt_timeout_ms: &'static str,
    pub operation_timeout_ms: &'static str,
    pub max_attempts: &'static str,
}

/// One service's connection settings as set, before checking: the S3 and SQS settings
/// structs fill it from their own variables (`S3_*`, `SQS_*`).
#[derive(Debug, Default)]
pub struct ConnectionSettings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `AWS_REGION`, which Lambda sets.
    pub aws_region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub attempt_timeout_ms: Option<u64>,
    pub operation_timeout_ms: Option<u64>,
    pub max_attempts: Option<u64>,
}

impl AwsConnection {
    /// Checks endpoint, region, credentials and timeouts; errors name the service's own
    /// keys. `default_region` is tried after the service's key and `AWS_REGION`.
    pub fn from_settings(
        s: ConnectionSettings,
        keys: &ConnectionKeys,
        default_region: Option<String>,
    ) -> Result<Self, ConfigError> {
        let endpoint = s.endpoint;
        if let Some(url) = &endpoint {
            check_http_url(keys.endpoint, url)?;
        }
        let region = s
            .region
            .or(s.aws_region)
            .or(default_region)
            // Custom endpoints (R2, moto, s3s) accept any region; R2 treats us-east-1 as `auto`.
            .or_else(|| endpoint.as_ref().map(|_| "us-east-1".to_owned()))
            .ok_or(ConfigError::Missing(keys.region))?;
        if !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(ConfigError::invalid(keys.region, &region, "not a region name"));
        }
        let credentials = match (s.access_key_id, s.secret_access_key) {
            (Some(access_key_id), Some(secret_access_key)) => {
                AwsCredentials::Static { access_key_id, secret_access_key, session_token: None }
            }
            (None, None) => AwsCredentials::Environment,
            (Some(_), None) => return Err(ConfigError::Missing(keys.secret_access_key)),
            (None, Some(_)) => return Err(ConfigError::Missing(keys.access_key_id)),
        };
        let defaults = AwsTimeouts::default();
        let positive = |key: &'static str, value: Option<u64>, default: u64| -> Result<u64, ConfigError> {
            match value {
                None => Ok(default),
                Some(0) => Err(ConfigError::invalid(key, "0", "must be positive")),
                Some(n) => Ok(n),
            }
        };
        let attempt =
            Duration::from_millis(positive(keys.attempt_timeout_ms, s.attempt_timeout_ms, millis(defaults.attempt))?);
        let operation = Duration::from_millis(positive(
            keys.operation_timeout_ms,
            s.operation_timeout_ms,
            millis(defaults.operation),
        )?);
        if operation < attempt {
            return Err(ConfigError::invalid(
                keys.operation_timeout_ms,
                &operation.as_millis().to_string(),
                format!("must be at least {} ({} ms)", keys.attempt_timeout_ms, attempt.as_millis()),
            ));
        }
        let max_attempts = positive(keys.max_attempts, s.max_attempts, u64::from(defaults.max_attempts))?;
        let max_attempts = u32::try_from(max_attempts)
            .ok()
            .filter(|n| *n <= 10)
            .ok_or_else(|| ConfigError::invalid(keys.max_attempts, &max_attempts.to_string(), "must be 1 to 10"))?;
        Ok(Self {
            endpoint,
            region,
            credentials,
            timeouts: AwsTimeouts { connect: defaults.connect, attempt, operation, max_attempts },
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
