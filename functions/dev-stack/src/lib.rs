//! The local stand-in for SQS → Lambda: takes deliveries from the in-process queue, wraps
//! them in real `SqsEvent` values and hands them to the same
//! [`remove_bg::Worker::handle_batch`] that Lambda calls. Messages the worker reports as
//! batch item failures are redelivered after a back-off, with their receive count raised,
//! until the queue's maximum moves them to its dead-letter list — SQS's redrive, in
//! miniature.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use queue::{Delivery, MemoryReceiver};
use remove_bg::Worker;

/// Wraps a delivery as SQS would present it to a Lambda.
pub fn sqs_message(delivery: &Delivery) -> SqsMessage {
    let mut attributes = HashMap::new();
    attributes.insert("ApproximateReceiveCount".to_owned(), delivery.receive_count.to_string());
    let mut message = SqsMessage::default();
    message.message_id = Some(delivery.message_id.clone());
    message.body = Some(delivery.body.clone());
    message.attributes = attributes;
    message.event_source = Some("stolentee:memory-queue".into());
    message
}

/// Runs until the receiver's queue is dropped: batches of up to `batch_size` messages.
pub async fn run_worker(worker: Arc<Worker>, receiver: MemoryReceiver, batch_size: usize, retry_after: Duration) {
    loop {
        let deliveries = receiver.receive(batch_size, Duration::from_secs(1)).await;
        if deliveries.is_empty() {
            continue;
        }
        let mut event = SqsEvent::default();
        event.records = deliveries.iter().map(sqs_message).collect();
        let response = worker.handle_batch(event).await;
        for failure in response.batch_item_failures {
            if let Some(delivery) = deliveries.iter().find(|d| d.message_id == failure.item_identifier) {
                tracing::warn!(message_id = %delivery.message_id, receive_count = delivery.receive_count, "redelivering");
                receiver.redeliver_after(delivery.clone(), retry_after);
            }
        }
    }
}

/// The API's chores on a timer, so an idle `make dev` still fails overdue jobs, relays
/// unsent ones and sweeps abandoned uploads (in production they ride on requests and on the
/// worker's batches; see `api::services::media`).
pub async fn run_chores(state: api::AppState, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        api::services::media::job_chores(&state.media, &state.queue).await;
        api::services::media::sweep_abandoned_uploads(&state.media, &state.objects).await;
    }
}
