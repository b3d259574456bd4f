//! [`JobQueue`] inside one process, for `make dev` and tests: the API enqueues, a worker
//! task in the same process receives. It keeps SQS's contract where the worker can tell:
//! batches of up to N, a long poll, a receive count that grows with each delivery, and a
//! dead-letter list once a message has been received `max_receive_count` times without
//! succeeding. There is no visibility timeout: a consumer reports failure explicitly with
//! [`MemoryReceiver::redeliver`] (what a batch item failure does on Lambda); a delivery it
//! simply drops counts as done. Nothing survives the process.
//!
//! No Lambda types here: the remove-bg function turns [`Delivery`]s into its `SqsEvent`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::{CutoutMessage, JobQueue, QueueError};

/// SQS's usual setting for a work queue with a DLQ.
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 3;

/// One delivery of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    pub body: String,
    /// 1 on the first delivery, like SQS's `ApproximateReceiveCount`.
    pub receive_count: u32,
}

#[derive(Debug)]
struct Pending {
    delivery: Delivery,
    /// Not handed out before this instant (a redelivery with a delay).
    visible_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Pending>,
    dead: Vec<Delivery>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    arrived: Notify,
    max_receive_count: u32,
}

impl Shared {
    /// A panic elsewhere while holding the lock leaves a consistent queue (every critical
    /// section is a few plain collection operations), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, pending: Pending) {
        self.lock().ready.push_back(pending);
        self.arrived.notify_waiters();
    }
}

/// The sending side; cheap to clone, one per API instance.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    shared: Arc<Shared>,
}

/// The receiving side; cloneable, so several workers may share one queue.
#[derive(Debug, Clone)]
pub struct MemoryReceiver {
    shared: Arc<Shared>,
}

impl MemoryQueue {
    /// A queue that dead-letters after [`DEFAULT_MAX_RECEIVE_COUNT`] receives.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> (MemoryQueue, MemoryReceiver) {
        Self::with_max_receive_count(DEFAULT_MAX_RECEIVE_COUNT)
    }

    /// `max_receive_count` is raised to at least 1.
    pub fn with_max_receive_count(max_receive_count: u32) -> (MemoryQueue, MemoryReceiver) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            max_receive_count: max_receive_count.max(1),
        });
        (MemoryQueue { shared: shared.clone() }, MemoryReceiver { shared })
    }

    /// Queues a raw body (tests of malformed messages). Returns the message id.
    pub fn send_raw(&self, body: impl Into<String>) -> String {
        let message_id = uuid::Uuid::new_v4().to_string();
        self.shared.push(Pending {
            delivery: Delivery { message_id: message_id.clone(), body: body.into(), receive_count: 0 },
            visible_at: None,
        });
        message_id
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn enqueue(&self, message: &CutoutMessage) -> Result<String, QueueError> {
        let body = serde_json::to_string(message)
            .map_err(|e| QueueError::Rejected { doing: "encoding a message", reason: e.to_string() })?;
        Ok(self.send_raw(body))
    }
}

impl MemoryReceiver {
    /// Waits up to `wait` for at least one visible message, then returns up to `max` of
    /// them (at least one is asked for even when `max` is 0), each with its receive count
    /// raised. An empty batch means the wait ran out.
    pub async fn receive(&self, max: usize, wait: Duration) -> Vec<Delivery> {
        let max = max.max(1);
        let deadline = later(wait);
        loop {
            // Registered before looking, so a message sent in between still wakes us.
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let now = Instant::now();
            let next_visible = {
                let mut state = self.shared.lock();
                let batch = take_visible(&mut state.ready, max, now);
                if !batch.is_empty() {
                    return batch;
                }
                state.ready.iter().filter_map(|p| p.visible_at).min()
            };
            if now >= deadline {
                return Vec::new();
            }
            let wake = next_visible.map_or(deadline, |at| at.min(deadline));
            tokio::select! {
                () = &mut arrived => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Reports that processing `delivery` failed: it is delivered again (with a receive count
    /// one higher), unless it has already been received `max_receive_count` times, in which
    /// case it moves to the dead-letter list, as SQS's redrive policy does.
    pub fn redeliver(&self, delivery: Delivery) {
        self.redeliver_after(delivery, Duration::ZERO);
    }

    /// [`redeliver`](Self::redeliver), visible again only after `delay` (SQS's visibility
    /// timeout), so a failing message does not spin.
    pub fn redeliver_after(&self, delivery: Delivery, delay: Duration) {
        if delivery.receive_count >= self.shared.max_receive_count {
            self.shared.lock().dead.push(delivery);
            return;
        }
        let visible_at = (!delay.is_zero()).then(|| later(delay));
        self.shared.push(Pending { delivery, visible_at });
    }

    /// Messages that exhausted their receives, oldest first.
    pub fn dead_letters(&self) -> Vec<Delivery> {
        self.shared.lock().dead.clone()
    }

    /// Messages waiting (visible or delayed), not counting those being processed.
    pub fn pending(&self) -> usize {
        self.shared.lock().ready.len()
    }

    pub fn max_receive_count(&self) -> u32 {
        self.shared.max_receive_count
    }
}

/// Now plus `delay`, saturating (an absurd delay must not panic on `Instant` overflow).
fn later(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay).or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600))).unwrap_or(now)
}

/// Removes up to `max` visible messages in order, counting the receive.
fn take_visible(ready: &mut VecDeque<Pending>, max: usize, now: Instant) -> Vec<Delivery> {
    let mut batch = Vec::new();
    let mut kept = VecDeque::with_capacity(ready.len());
    while let Some(pending) = ready.pop_front() {
        if batch.len() < max && pending.visible_at.is_none_or(|at| at <= now) {
            let mut delivery = pending.delivery;
            delivery.receive_count = delivery.receive_count.saturating_add(1);
            batch.push(delivery);
        } else {
            kept.push_back(pending);
        }
    }
    *ready = kept;
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> CutoutMessage {
        CutoutMessage { job_id: uuid::Uuid::new_v4(), asset_id: uuid::Uuid::new_v4() }
    }

    #[tokio::test]
    async fn batches_are_bounded_and_ordered() {
        let (queue, rx) = MemoryQueue::new();
        let mut sent = Vec::new();
        for _ in 0..5 {
            let m = message();
            queue.enqueue(&m).await.expect("enqueue");
            sent.push(m);
        }
        let first = rx.receive(3, Duration::from_millis(10)).await;
        let second = rx.receive(10, Duration::from_millis(10)).await;
        assert_eq!((first.len(), second.len()), (3, 2));
        let got: Vec<CutoutMessage> = first
            .iter()
            .chain(&second)
            .map(|d| serde_json::from_str(&d.body).expect("body is a CutoutMessage"))
            .collect();
        assert_eq!(got, sent);
        assert!(first.iter().chain(&second).all(|d| d.receive_count == 1));
        assert!(rx.receive(10, Duration::from_millis(10)).await.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_send() {
        let (queue, rx) = MemoryQueue::new();
        let waiter = tokio::spawn(async move { rx.receive(10, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = std::time::Instant::now();
        let id = queue.send_raw("hello");
        let batch = waiter.await.expect("receiver task");
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].message_id, id);
        assert!(started.elapsed() < Duration::from_secs(1), "woke on send, not at the timeout");
    }

    #[tokio::test]
    async fn an_empty_wait_ends_at_the_timeout() {
        let (_queue, rx) = MemoryQueue::new();
        let started = std::time::Instant::now();
        assert!(rx.receive(1, Duration::from_millis(50)).await.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn failures_are_redelivered_then_dead_lettered() {
        let (queue, rx) = MemoryQueue::with_max_receive_count(3);
        let id = queue.send_raw("{}");
        for attempt in 1..=3 {
            let batch = rx.receive(10, Duration::from_millis(10)).await;
            assert_eq!(batch.len(), 1, "attempt {attempt}");
            assert_eq!(batch[0].receive_count, attempt);
            rx.redeliver(batch[0].clone());
        }
        assert!(rx.receive(10, Duration::from_millis(10)).await.is_empty());
        let dead = rx.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].message_id.as_str(), dead[0].receive_count), (id.as_str(), 3));
        assert_eq!(rx.pending(), 0);
    }

    #[tokio::test]
    async fn absurd_durations_do_not_panic() {
        let (queue, rx) = MemoryQueue::new();
        queue.send_raw("x");
        let first = rx.receive(usize::MAX, Duration::MAX).await;
        assert_eq!(first.len(), 1);
        rx.redeliver_after(first[0].clone(), Duration::MAX);
        assert_eq!(rx.pending(), 1);
        assert!(rx.receive(0, Duration::ZERO).await.is_empty());
    }

    #[tokio::test]
    async fn delayed_redelivery_waits() {
        let (queue, rx) = MemoryQueue::new();
        queue.send_raw("x");
        let first = rx.receive(1, Duration::from_millis(10)).await;
        rx.redeliver_after(first[0].clone(), Duration::from_millis(100));
        assert!(rx.receive(1, Duration::from_millis(10)).await.is_empty(), "still invisible");
        let started = std::time::Instant::now();
        let again = rx.receive(1, Duration::from_secs(5)).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
        assert!(started.elapsed() < Duration::from_secs(1), "woke when it became visible");
    }
}
