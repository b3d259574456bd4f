//! [`JobQueue`] over SQS (AWS, or moto for tests), plus the few other SQS calls that tests
//! and local tooling need: creating a queue with its dead-letter queue, receiving, deleting.
//! In production the Lambda service polls the queue and hands batches to the remove-bg
//! function, so only `enqueue` runs there.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};

use crate::{CutoutMessage, JobQueue, QueueError};
use aws::{AwsConnection, Fault, classify, https_client};

/// Everything an [`SqsQueue`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsQueueConfig {
    pub queue_url: String,
    pub connection: AwsConnection,
}

/// One SQS queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

/// A message as [`SqsQueue::receive`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub message_id: String,
    /// Needed to delete the message or change its visibility.
    pub receipt_handle: String,
    pub body: String,
    /// SQS's `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
}

/// A work queue and the dead-letter queue its failures move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    pub queue_url: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

fn queue_error(fault: Fault, doing: &'static str) -> QueueError {
    match fault {
        Fault::Transient(reason) => QueueError::Unavailable { doing, reason },
        Fault::Permanent(reason) => QueueError::Rejected { doing, reason },
        // A missing queue is configuration, not something a retry fixes.
        Fault::NotFound => QueueError::Rejected { doing, reason: "the queue does not exist".into() },
    }
}

/// An SQS client for `connection`; no network traffic until the first call.
pub fn sqs_client(connection: &AwsConnection) -> aws_sdk_sqs::Client {
    let mut builder = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(connection.region.clone()))
        .credentials_provider(connection.credentials_provider())
        .http_client(https_client())
        .timeout_config(connection.timeout_config())
        .retry_config(connection.retry_config());
    if let Some(endpoint) = &connection.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    aws_sdk_sqs::Client::from_conf(builder.build())
}

/// Creates (or finds: SQS's CreateQueue is idempotent for equal attributes) the queue `name`
/// and `name-dlq`, with a redrive policy that moves a message to the DLQ once it has been
/// received `max_receive_count` times without being deleted. For tests and local set-ups;
/// production queues come from infrastructure.
pub async fn create_queue_with_dlq(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
    visibility_timeout: Duration,
) -> Result<QueuePair, QueueError> {
    const DOING: &str = "creating a queue";
    let valid_name =
        (1..=76).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if !valid_name || !(1..=1000).contains(&max_receive_count) || visibility_timeout > Duration::from_secs(43_200) {
        return Err(QueueError::Rejected {
            doing: DOING,
            reason: "name must be 1-76 of [A-Za-z0-9_-], max receive count 1-1000, visibility at most 12 h".into(),
        });
    }
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .map_err(|e| queue_error(classify(&e), DOING))?
        .queue_url
        .ok_or_else(|| QueueError::Rejected { doing: DOING, reason: "no URL for the dead-letter queue".into() })?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| queue_error(classify(&e), DOING))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| QueueError::Rejected { doing: DOING, reason: "no ARN for the dead-letter queue".into() })?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count.to_string(),
    })
    .to_string();
    let queue_url = client
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(HashMap::from([
            (QueueAttributeName::RedrivePolicy, redrive),
            (QueueAttributeName::VisibilityTimeout, visibility_timeout.as_secs().to_string()),
        ])))
        .send()
        .await
        .map_err(|e| queue_error(classify(&e), DOING))?
        .queue_url
        .ok_or_else(|| QueueError::Rejected { doing: DOING, reason: "no URL for the queue".into() })?;
    Ok(QueuePair { queue_url, dlq_url, dlq_arn })
}

impl SqsQueue {
    pub fn new(config: &SqsQueueConfig) -> Self {
        Self { client: sqs_client(&config.connection), queue_url: config.queue_url.clone() }
    }

    /// The same queue through an existing client (e.g. the DLQ of a [`QueuePair`]).
    pub fn with_client(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Sends a raw body (tests of hostile messages; production sends only [`CutoutMessage`]s).
    pub async fn send_raw(&self, body: &str) -> Result<String, QueueError> {
        const DOING: &str = "sending a message";
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| queue_error(classify(&e), DOING))?
            .message_id
            .ok_or_else(|| QueueError::Rejected { doing: DOING, reason: "SQS returned no message id".into() })
    }

    /// Receives up to `max` (1–10) messages, long-polling up to `wait` (≤ 20 s) for the first.
    /// Received messages stay invisible for the queue's visibility timeout; delete them when
    /// done, or [`release`](Self::release) them to have them delivered again.
    pub async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<ReceivedMessage>, QueueError> {
        const DOING: &str = "receiving messages";
        let max = i32::try_from(max.clamp(1, 10)).unwrap_or(10);
        let wait_secs = wait.as_secs().min(20);
        // A long poll legitimately outlasts the normal attempt timeout.
        let long_poll = Duration::from_secs(wait_secs + 10);
        let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(long_poll)
            .operation_timeout(long_poll * 2)
            .build();
        let out = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(i32::try_from(wait_secs).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .customize()
            .config_override(aws_sdk_sqs::config::Builder::default().timeout_config(timeouts))
            .send()
            .await
            .map_err(|e| queue_error(classify(&e), DOING))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                Some(ReceivedMessage {
                    message_id: m.message_id?,
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receive_count,
                })
            })
            .collect())
    }

    /// Acknowledges a message: it will not be delivered again.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| queue_error(classify(&e), "deleting a message"))?;
        Ok(())
    }

    /// Makes a received message visible again at once (what a failed attempt amounts to,
    /// without waiting out the visibility timeout).
    pub async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| queue_error(classify(&e), "releasing a message"))?;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, message: &CutoutMessage) -> Result<String, QueueError> {
        let body = serde_json::to_string(message)
            .map_err(|e| QueueError::Rejected { doing: "encoding a message", reason: e.to_string() })?;
        self.send_raw(&body).await
    }
}
