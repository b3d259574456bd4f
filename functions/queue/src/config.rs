//! Which job queue a function uses, read from the environment once at start-up.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `QUEUE` | `memory` in development; required in production (`APP_ENV`) | `sqs` or `memory` |
//! | `SQS_QUEUE_URL` | (required for `sqs`) | the cut-out queue |
//! | `SQS_ENDPOINT` | AWS | e.g. `http://127.0.0.1:5005` for moto |
//! | `SQS_REGION` | `AWS_REGION`, else the region in an AWS queue URL, else `us-east-1` with an endpoint | |
//! | `SQS_ACCESS_KEY_ID`, `SQS_SECRET_ACCESS_KEY` | the `AWS_*` variables | static keys |
//! | `SQS_ATTEMPT_TIMEOUT_MS`, `SQS_OPERATION_TIMEOUT_MS`, `SQS_MAX_ATTEMPTS` | 10000, 30000, 3 | bounds |
//!
//! An in-memory queue in production (`APP_ENV=production`, the default inside Lambda) is
//! refused: the API's instances and the worker's are different processes, so nothing sent
//! would ever be received.

use aws::{AwsConnection, ConnectionKeys, ConnectionSettings};
use config::{ConfigError, Env, check_http_url};
use serde::Deserialize;

use crate::sqs::SqsQueueConfig;

const SQS_KEYS: ConnectionKeys = ConnectionKeys {
    endpoint: "SQS_ENDPOINT",
    region: "SQS_REGION",
    access_key_id: "SQS_ACCESS_KEY_ID",
    secret_access_key: "SQS_SECRET_ACCESS_KEY",
    attempt_timeout_ms: "SQS_ATTEMPT_TIMEOUT_MS",
    operation_timeout_ms: "SQS_OPERATION_TIMEOUT_MS",
    max_attempts: "SQS_MAX_ATTEMPTS",
};

/// The job queue chosen by the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueConfig {
    Sqs(SqsQueueConfig),
    /// [`crate::memory::MemoryQueue`]: the process must also run the worker.
    Memory,
}

/// The variables in the table above, as they are set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct QueueSettings {
    pub queue: Option<QueueKind>,
    pub sqs_queue_url: Option<String>,
    pub sqs_endpoint: Option<String>,
    pub sqs_region: Option<String>,
    pub aws_region: Option<String>,
    pub sqs_access_key_id: Option<String>,
    pub sqs_secret_access_key: Option<String>,
    pub sqs_attempt_timeout_ms: Option<u64>,
    pub sqs_operation_timeout_ms: Option<u64>,
    pub sqs_max_attempts: Option<u64>,
}

/// `QUEUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    Sqs,
    Memory,
}

impl QueueConfig {
    /// Reads the variables in the table above.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::from_settings(env.parse()?, env.mode()?.is_production())
    }

    /// Checks the settings: which queue, and everything it needs.
    pub fn from_settings(s: QueueSettings, production: bool) -> Result<Self, ConfigError> {
        let kind = match s.queue {
            Some(kind) => kind,
            None if production => return Err(ConfigError::Missing("QUEUE")),
            None => QueueKind::Memory,
        };
        match kind {
            QueueKind::Sqs => {
                let queue_url = s.sqs_queue_url.ok_or(ConfigError::Missing("SQS_QUEUE_URL"))?;
                check_http_url("SQS_QUEUE_URL", &queue_url)?;
                let connection = AwsConnection::from_settings(
                    ConnectionSettings {
                        endpoint: s.sqs_endpoint,
                        region: s.sqs_region,
                        aws_region: s.aws_region,
                        access_key_id: s.sqs_access_key_id,
                        secret_access_key: s.sqs_secret_access_key,
                        attempt_timeout_ms: s.sqs_attempt_timeout_ms,
                        operation_timeout_ms: s.sqs_operation_timeout_ms,
                        max_attempts: s.sqs_max_attempts,
                    },
                    &SQS_KEYS,
                    region_of_aws_queue_url(&queue_url),
                )?;
                Ok(Self::Sqs(SqsQueueConfig { queue_url, connection }))
            }
            QueueKind::Memory if production => Err(ConfigError::invalid(
                "QUEUE",
                "memory",
                "memory is for development, not APP_ENV=production: function instances share no memory; use sqs",
            )),
            QueueKind::Memory => Ok(Self::Memory),
        }
    }
}

/// `https://sqs.eu-west-1.amazonaws.com/123/q` → `eu-west-1`.
fn region_of_aws_queue_url(url: &str) -> Option<String> {
    let host = url.strip_prefix("https://")?.split('/').next()?;
    let region = host.strip_prefix("sqs.")?.strip_suffix(".amazonaws.com")?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws::AwsCredentials;

    fn parse(pairs: &[(&str, &str)], in_lambda: bool) -> Result<QueueConfig, ConfigError> {
        let mut env = Env::from_pairs(pairs.iter().copied());
        if in_lambda {
            env = env.with("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        }
        QueueConfig::from_env(&env)
    }

    #[test]
    fn memory_in_development_only() {
        assert_eq!(parse(&[], false), Ok(QueueConfig::Memory));
        assert_eq!(parse(&[("QUEUE", "memory")], false), Ok(QueueConfig::Memory));
        assert_eq!(parse(&[], true), Err(ConfigError::Missing("QUEUE")));
        assert!(matches!(parse(&[("QUEUE", "memory")], true), Err(ConfigError::Invalid { key: "QUEUE", .. })));
        assert!(matches!(parse(&[("QUEUE", "kafka")], false), Err(ConfigError::Invalid { key: "QUEUE", .. })));
        let production = [("APP_ENV", "production"), ("QUEUE", "memory")];
        assert!(matches!(parse(&production, false), Err(ConfigError::Invalid { key: "QUEUE", .. })));
    }

    #[test]
    fn sqs_on_aws_takes_the_region_from_the_url() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/cutouts";
        let Ok(QueueConfig::Sqs(sqs)) = parse(&[("QUEUE", "sqs"), ("SQS_QUEUE_URL", url)], true) else {
            panic!("expected sqs")
        };
        assert_eq!(sqs.queue_url, url);
        assert_eq!(sqs.connection.region, "eu-west-1");
        assert_eq!(sqs.connection.endpoint, None);
        assert_eq!(sqs.connection.credentials, AwsCredentials::Environment);

        let Ok(QueueConfig::Sqs(sqs)) =
            parse(&[("QUEUE", "sqs"), ("SQS_QUEUE_URL", url), ("AWS_REGION", "us-west-2")], true)
        else {
            panic!("expected sqs")
        };
        assert_eq!(sqs.connection.region, "us-west-2", "the configured region wins");
    }

    #[test]
    fn sqs_on_moto() {
        let Ok(QueueConfig::Sqs(sqs)) = parse(
            &[
                ("QUEUE", "sqs"),
                ("SQS_QUEUE_URL", "http://127.0.0.1:5005/123456789012/cutouts"),
                ("SQS_ENDPOINT", "http://127.0.0.1:5005"),
                ("SQS_ACCESS_KEY_ID", "testing"),
                ("SQS_SECRET_ACCESS_KEY", "testing"),
            ],
            false,
        ) else {
            panic!("expected sqs")
        };
        assert_eq!(sqs.connection.endpoint.as_deref(), Some("http://127.0.0.1:5005"));
        assert_eq!(sqs.connection.region, "us-east-1");
        assert!(matches!(sqs.connection.credentials, AwsCredentials::Static { .. }));
    }

    #[test]
    fn sqs_settings_are_validated() {
        assert_eq!(parse(&[("QUEUE", "sqs")], false), Err(ConfigError::Missing("SQS_QUEUE_URL")));
        assert!(matches!(
            parse(&[("QUEUE", "sqs"), ("SQS_QUEUE_URL", "cutouts")], false),
            Err(ConfigError::Invalid { key: "SQS_QUEUE_URL", .. })
        ));
        assert_eq!(
            parse(&[("QUEUE", "sqs"), ("SQS_QUEUE_URL", "http://queue.internal/1/q")], false),
            Err(ConfigError::Missing("SQS_REGION"))
        );
        assert!(matches!(
            parse(
                &[("QUEUE", "sqs"), ("SQS_QUEUE_URL", "http://h/1/q"), ("SQS_ENDPOINT", "h:1"), ("SQS_REGION", "x")],
                false
            ),
            Err(ConfigError::Invalid { key: "SQS_ENDPOINT", .. })
        ));
    }

    #[test]
    fn region_from_url() {
        assert_eq!(region_of_aws_queue_url("https://sqs.us-east-2.amazonaws.com/1/q").as_deref(), Some("us-east-2"));
        assert_eq!(region_of_aws_queue_url("http://127.0.0.1:5005/1/q"), None);
        assert_eq!(region_of_aws_queue_url("https://sqs.amazonaws.com/1/q"), None);
    }
}
