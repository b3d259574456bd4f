//! Which job queue a function uses, read from the environment once at start-up.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `QUEUE` | `memory` outside Lambda; required in Lambda | `sqs` or `memory` |
//! | `SQS_QUEUE_URL` | (required for `sqs`) | the cut-out queue |
//! | `SQS_ENDPOINT` | AWS | e.g. `http://127.0.0.1:5005` for moto |
//! | `SQS_REGION` | `AWS_REGION`, else the region in an AWS queue URL, else `us-east-1` with an endpoint | |
//! | `SQS_ACCESS_KEY_ID`, `SQS_SECRET_ACCESS_KEY` | the `AWS_*` variables | static keys |
//! | `SQS_ATTEMPT_TIMEOUT_MS`, `SQS_OPERATION_TIMEOUT_MS`, `SQS_MAX_ATTEMPTS` | 10000, 30000, 3 | bounds |
//!
//! An in-memory queue inside Lambda is refused: the API's instance and the worker's are
//! different processes, so nothing sent would ever be received.

use crate::aws::{AwsConnection, ConnectionKeys, check_http_url};
use crate::config::ConfigError;

use super::sqs::SqsQueueConfig;

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
    /// [`super::memory::MemoryQueue`]: the process must also run the worker.
    Memory,
}

impl QueueConfig {
    /// Reads the keys above through `var` (the process environment, or a map in tests).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>, in_lambda: bool) -> Result<Self, ConfigError> {
        let get = |key: &str| var(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let kind = match get("QUEUE") {
            Some(kind) => kind,
            None if in_lambda => return Err(ConfigError::Missing("QUEUE")),
            None => "memory".to_owned(),
        };
        match kind.as_str() {
            "sqs" => {
                let queue_url = get("SQS_QUEUE_URL").ok_or(ConfigError::Missing("SQS_QUEUE_URL"))?;
                check_http_url("SQS_QUEUE_URL", &queue_url)?;
                let connection = AwsConnection::from_lookup(&var, &SQS_KEYS, region_of_aws_queue_url(&queue_url))?;
                Ok(Self::Sqs(SqsQueueConfig { queue_url, connection }))
            }
            "memory" if in_lambda => Err(ConfigError::Invalid {
                key: "QUEUE",
                reason: "memory is for development: Lambda instances share no memory; use sqs".into(),
            }),
            "memory" => Ok(Self::Memory),
            other => Err(ConfigError::Invalid { key: "QUEUE", reason: format!("{other:?}: expected sqs or memory") }),
        }
    }

    pub fn from_env(in_lambda: bool) -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok(), in_lambda)
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
    use std::collections::HashMap;

    use super::*;
    use crate::aws::AwsCredentials;

    fn parse(pairs: &[(&str, &str)], in_lambda: bool) -> Result<QueueConfig, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        QueueConfig::from_lookup(|k| env.get(k).cloned(), in_lambda)
    }

    #[test]
    fn memory_outside_lambda_only() {
        assert_eq!(parse(&[], false), Ok(QueueConfig::Memory));
        assert_eq!(parse(&[("QUEUE", "memory")], false), Ok(QueueConfig::Memory));
        assert_eq!(parse(&[], true), Err(ConfigError::Missing("QUEUE")));
        assert!(matches!(parse(&[("QUEUE", "memory")], true), Err(ConfigError::Invalid { key: "QUEUE", .. })));
        assert!(matches!(parse(&[("QUEUE", "kafka")], false), Err(ConfigError::Invalid { key: "QUEUE", .. })));
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
