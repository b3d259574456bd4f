//! The job queue between the API and the cut-out function: SQS in production, an
//! in-process queue for `make dev` and tests. Delivery is at least once; consumers are
//! idempotent (see the remove-bg function).

pub mod config;
pub mod memory;
pub mod sqs;

pub use config::QueueConfig;
pub use memory::{Delivery, MemoryQueue, MemoryReceiver};
pub use sqs::{QueuePair, ReceivedMessage, SqsQueue, SqsQueueConfig};

use async_trait::async_trait;
use thiserror::Error;

/// The one message the queue carries (defined in `domain`, which both ends link).
pub use domain::CutoutMessage;

#[derive(Debug, Error)]
pub enum QueueError {
    #[error("queue unavailable while {doing}: {reason}")]
    Unavailable { doing: &'static str, reason: String },
    #[error("queue refused {doing}: {reason}")]
    Rejected { doing: &'static str, reason: String },
}

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends one message. Returns the queue's message id.
    async fn enqueue(&self, message: &CutoutMessage) -> Result<String, QueueError>;
}
