//! Cut-out jobs and uploads across the database, the queue and object storage: asking for a
//! job (commit, then send), and the housekeeping that keeps both tables bounded.
//!
//! **Commit, then send.** A job is committed first and its message sent after, so no row lock
//! is held while the queue answers (it may take seconds, or time out). The job's
//! `enqueued_at` is the outbox flag: empty until the queue took the message. If the send
//! fails the request answers 503 and the job waits, unsent; the next request for the same
//! upload sends it again, and so does the relay ([`relay_unsent`]) once it has waited
//! [`RELAY_AFTER`] — for a client that never came back. A message sent twice (a race between
//! two requests, or a relay overlapping a slow send) is harmless: the worker's claim makes
//! every delivery after the first a no-op.
//!
//! **Housekeeping without a scheduler.** Nothing here needs a cron: the API reaps overdue
//! jobs and relays unsent ones when jobs are requested, sweeps abandoned uploads when uploads
//! start, and the worker reaps with every batch (as `login_attempts` are pruned on insert). A
//! job's deadline holds even when nobody runs these: every read of a job fails it on the spot
//! once it is overdue ([`db::jobs::Media::job_for`]). Each pass does a bounded amount of work.

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use config::{ConfigError, Env};
use db::StoreError;
use db::jobs::{JobRequest, Media};
use domain::{AssetId, CutoutMessage, JobId};
use objects::{ObjectKey, ObjectStore};
use queue::{JobQueue, QueueError};
use serde::Deserialize;

/// The default job deadline: the default attempts × visibility timeout + stale-claim time of
/// `infra/template.yaml` (3 × 360 s + 300 s), 23 minutes. Every message a job can get has
/// been delivered, and every attempt has ended, by then.
pub const DEFAULT_JOB_DEADLINE_SECS: u64 = 3 * 360 + 300;

/// A queued job still unsent this long after it was created is sent by the relay.
pub const RELAY_AFTER: Duration = Duration::from_secs(30);

/// Abandoned uploads are swept this long after their URL expired, so a PUT that started just
/// before the expiry has long finished.
pub const UPLOAD_SWEEP_GRACE: Duration = Duration::from_secs(3600);

/// Most rows one pass of each chore handles (each pass rides on a customer's request).
const REAP_BATCH: i64 = 20;
const RELAY_BATCH: i64 = 5;
const SWEEP_BATCH: i64 = 5;

/// The API's settings for cut-out jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaConfig {
    /// `CUTOUT_JOB_DEADLINE_SECS` (default [`DEFAULT_JOB_DEADLINE_SECS`]): a job is `done` or
    /// `error` this long after it was created. Must be at least the worker's attempts ×
    /// the queue's visibility timeout + `CUTOUT_STALE_AFTER_SECS` (the deploy checks it), or
    /// jobs are given up while a delivery may still come.
    pub job_deadline: Duration,
}

/// The variables above, as they are set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct MediaSettings {
    #[serde(default = "default_deadline")]
    pub cutout_job_deadline_secs: NonZeroU64,
}

fn default_deadline() -> NonZeroU64 {
    NonZeroU64::new(DEFAULT_JOB_DEADLINE_SECS).unwrap_or(NonZeroU64::MIN)
}

impl MediaConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let s: MediaSettings = env.parse()?;
        Ok(Self { job_deadline: Duration::from_secs(s.cutout_job_deadline_secs.get()) })
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self { job_deadline: Duration::from_secs(DEFAULT_JOB_DEADLINE_SECS) }
    }
}

/// Why a job could not be given to the customer.
#[derive(Debug, thiserror::Error)]
pub enum RequestJobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job is committed but its message could not be sent; asking again sends it.
    #[error("the job could not be queued: {0}")]
    Queue(#[from] QueueError),
}

/// The upload's live job, or a new one (an overdue one is superseded), with its message
/// sent if it has not been yet.
pub async fn request_cutout(
    media: &Media,
    queue: &Arc<dyn JobQueue>,
    asset: AssetId,
    deadline: Duration,
) -> Result<JobRequest, RequestJobError> {
    let outcome = media.request_job(asset, deadline).await?;
    let (JobRequest::Created(job) | JobRequest::Existing(job)) = &outcome;
    if job.needs_sending() {
        send(media, queue, job.id, asset).await?;
    }
    Ok(outcome)
}

/// Sends the job's message and records that the queue took it.
async fn send(media: &Media, queue: &Arc<dyn JobQueue>, job: JobId, asset: AssetId) -> Result<(), QueueError> {
    let message = CutoutMessage { job_id: job.as_uuid(), asset_id: asset.as_uuid() };
    let message_id = queue.enqueue(&message).await?;
    tracing::info!(%job, %asset, %message_id, "job sent to the queue");
    if let Err(e) = media.mark_enqueued(job).await {
        // The message is on its way; unmarked, the relay may send it once more (harmless).
        tracing::warn!(%job, error = %e, "could not record the job as sent");
    }
    Ok(())
}

/// The chores that ride on job requests: fail overdue jobs, send unsent ones. Failures are
/// logged, never the request's: the next pass tries again.
pub async fn job_chores(media: &Media, queue: &Arc<dyn JobQueue>) {
    if let Err(e) = media.reap_overdue_jobs(REAP_BATCH).await {
        tracing::warn!(error = %e, "reaping overdue jobs");
    }
    relay_unsent(media, queue).await;
}

/// Sends queued jobs whose message never left (see the module docs).
pub async fn relay_unsent(media: &Media, queue: &Arc<dyn JobQueue>) {
    let unsent = match media.unsent_jobs(RELAY_AFTER, RELAY_BATCH).await {
        Ok(unsent) => unsent,
        Err(e) => {
            tracing::warn!(error = %e, "finding unsent jobs");
            return;
        }
    };
    for (job, asset) in unsent {
        if let Err(e) = send(media, queue, job, asset).await {
            tracing::warn!(%job, error = %e, "relaying an unsent job");
            return; // the queue is down: the next pass tries again
        }
    }
}

/// Deletes uploads abandoned [`UPLOAD_SWEEP_GRACE`] after their URL expired, rows then
/// objects. Returns how many rows went.
pub async fn sweep_abandoned_uploads(media: &Media, objects: &Arc<dyn ObjectStore>) -> usize {
    let keys = match media.sweep_abandoned_uploads(UPLOAD_SWEEP_GRACE, SWEEP_BATCH).await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(error = %e, "sweeping abandoned uploads");
            return 0;
        }
    };
    for key in &keys {
        // The row is gone; an object left behind here is expired by the bucket's lifecycle
        // rule on incoming/ (two days).
        match ObjectKey::parse(key) {
            Ok(key) => {
                if let Err(e) = objects.delete(&key).await {
                    tracing::warn!(%key, error = %e, "deleting an abandoned upload's object");
                }
            }
            Err(e) => tracing::warn!(error = %e, "an abandoned upload's key is not an object key"),
        }
    }
    if !keys.is_empty() {
        tracing::info!(count = keys.len(), "swept abandoned uploads");
    }
    keys.len()
}
