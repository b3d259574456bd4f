//! Job queues against real backends: `SqsQueue` against moto's SQS server (started by
//! `make test`, endpoint in `MOTO_ENDPOINT`), including the redrive to a dead-letter queue
//! that the remove-bg function relies on; `MemoryQueue` through the same trait.

use std::sync::Arc;
use std::time::Duration;

use aws::{AwsConnection, AwsTimeouts};
use queue::sqs::{create_queue_with_dlq, sqs_client};
use queue::{CutoutMessage, JobQueue, MemoryQueue, QueueError, SqsQueue, SqsQueueConfig};
use uuid::Uuid;

/// moto's endpoint. Missing is a failure, not a skip: a green run must have tested SQS.
fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "MOTO_ENDPOINT is not set. Run the tests with `make test`, which starts moto, or start it yourself: \
             `export MOTO_ENDPOINT=$(scripts/moto.sh start)` (stop it with `scripts/moto.sh stop`)"
        ),
    }
}

fn moto() -> AwsConnection {
    AwsConnection::local(moto_endpoint(), "testing", "testing")
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..16])
}

fn message() -> CutoutMessage {
    CutoutMessage { job_id: Uuid::new_v4(), asset_id: Uuid::new_v4() }
}

const SHORT_WAIT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn sqs_send_receive_delete_round_trip() {
    let client = sqs_client(&moto());
    let pair = create_queue_with_dlq(&client, &unique("cutouts"), 3, Duration::from_secs(30)).await.expect("create");
    let queue = SqsQueue::new(&SqsQueueConfig { queue_url: pair.queue_url.clone(), connection: moto() });
    let jobs: Arc<dyn JobQueue> = Arc::new(queue.clone());

    let sent = message();
    let id = jobs.enqueue(&sent).await.expect("enqueue");
    assert!(!id.is_empty());

    let batch = queue.receive(10, Duration::from_secs(5)).await.expect("receive");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].message_id, id);
    assert_eq!(batch[0].receive_count, 1);
    let got: CutoutMessage = serde_json::from_str(&batch[0].body).expect("body is a CutoutMessage");
    assert_eq!(got, sent);
    assert_eq!(batch[0].body, format!(r#"{{"job_id":"{}","asset_id":"{}"}}"#, sent.job_id, sent.asset_id));

    queue.delete(&batch[0].receipt_handle).await.expect("delete");
    assert!(queue.receive(10, SHORT_WAIT).await.expect("receive").is_empty(), "deleted means gone");
}

#[tokio::test]
async fn sqs_moves_a_message_to_the_dlq_after_max_receive_count() {
    let client = sqs_client(&moto());
    let pair = create_queue_with_dlq(&client, &unique("cutouts"), 2, Duration::from_secs(30)).await.expect("create");
    // Creating again with the same attributes is fine (deploys and dev restarts repeat it).
    let name = pair.queue_url.rsplit('/').next().expect("queue name").to_owned();
    let again = create_queue_with_dlq(&client, &name, 2, Duration::from_secs(30)).await.expect("create again");
    assert_eq!(again, pair);

    let queue = SqsQueue::with_client(client.clone(), &pair.queue_url);
    let dlq = SqsQueue::with_client(client, &pair.dlq_url);
    let sent = message();
    let id = queue.enqueue(&sent).await.expect("enqueue");

    // Two failed attempts (received, released without delete) …
    for attempt in 1..=2 {
        let batch = queue.receive(10, Duration::from_secs(5)).await.expect("receive");
        assert_eq!(batch.len(), 1, "attempt {attempt}");
        assert_eq!(batch[0].receive_count, attempt);
        queue.release(&batch[0].receipt_handle).await.expect("release");
    }
    // … and the next receive finds it moved to the dead-letter queue.
    assert!(queue.receive(10, SHORT_WAIT).await.expect("receive").is_empty(), "redriven away");
    let dead = dlq.receive(10, Duration::from_secs(5)).await.expect("receive from the DLQ");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message_id, id);
    assert_eq!(serde_json::from_str::<CutoutMessage>(&dead[0].body).expect("body"), sent);
}

#[tokio::test]
async fn sqs_missing_queue_is_rejected() {
    let endpoint = moto_endpoint();
    let queue = SqsQueue::new(&SqsQueueConfig {
        queue_url: format!("{endpoint}/123456789012/{}", unique("never-created")),
        connection: moto(),
    });
    let err = queue.enqueue(&message()).await.expect_err("no such queue");
    assert!(matches!(err, QueueError::Rejected { .. }), "{err:?}");
}

#[tokio::test]
async fn sqs_unreachable_endpoint_is_unavailable_and_bounded() {
    let mut connection = AwsConnection::local("http://127.0.0.1:9", "testing", "testing");
    connection.timeouts = AwsTimeouts {
        connect: Duration::from_millis(500),
        attempt: Duration::from_secs(1),
        operation: Duration::from_secs(3),
        max_attempts: 2,
    };
    let queue = SqsQueue::new(&SqsQueueConfig { queue_url: "http://127.0.0.1:9/1/q".into(), connection });
    let started = std::time::Instant::now();
    let err = queue.enqueue(&message()).await.expect_err("nothing listens");
    assert!(matches!(err, QueueError::Unavailable { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
}

#[tokio::test]
async fn memory_queue_through_the_trait() {
    let (queue, rx) = MemoryQueue::new();
    let jobs: Arc<dyn JobQueue> = Arc::new(queue);
    let sent = message();
    let id = jobs.enqueue(&sent).await.expect("enqueue");
    let worker = tokio::spawn(async move { rx.receive(10, Duration::from_secs(5)).await });
    let batch = worker.await.expect("worker");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].message_id, id);
    assert_eq!(serde_json::from_str::<CutoutMessage>(&batch[0].body).expect("body"), sent);
}
