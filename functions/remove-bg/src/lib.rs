//! The `remove-bg` function: cuts the background out of uploaded images, one SQS message
//! (`{job_id, asset_id}`) per job.
//!
//! For each batch:
//! 0. **Reap** jobs past their deadline (a bounded `UPDATE`), so a job whose messages all
//!    died still ends `error`; and **order** the batch so that messages whose job has been
//!    tried before — above all one left `running` by a worker that died — go last. A message
//!    that kills the process (out of memory, a crash in native code) then takes down only
//!    the suspects after it; every fresh message before it has finished, and SQS's
//!    redelivery of those is acknowledged without work.
//!
//! For each message:
//! 1. **Claim** the job atomically (`queued` → `running`, attempts + 1; or a `running` job
//!    whose worker has been silent for `stale_after`). A job that is `done` or `error` is
//!    acknowledged without work (SQS delivers at least once; `error` is final). One held by a
//!    live worker is retried later. A job too close to its deadline for an attempt to finish
//!    (less than `stale_after` left), or with every attempt made, is failed and acknowledged.
//!    On the message's last delivery a job abandoned by a dead worker is not taken over but
//!    failed: whatever killed that worker would likely kill this one, and with it every
//!    acknowledgement of the batch. An unknown job or a malformed message is acknowledged.
//! 2. **Fetch** the original (bounded to the upload limit), **cut out** with the U²-Net
//!    engine on a blocking thread, decoding under the same rules the upload API checked
//!    ([`rules`]), **encode** the mask and the transparent 300-DPI PNG,
//!    **store** both under `cutouts/<the job's random prefix>/…`, and **finish**: assets and
//!    `done` with the result, in one transaction. `logs` is updated at each step for the
//!    polling storefront.
//! 3. Outcomes: a bad image (undecodable, too large, …) marks the job `error` with the
//!    reason and acknowledges the message — retrying cannot help. A transient fault (object
//!    store, database) re-queues the job and reports that message alone as a batch item
//!    failure, so SQS retries it. On the message's last delivery (its receive count reached
//!    `max_attempts`, which is the queue's `maxReceiveCount`) the job is marked `error`
//!    *before* the message is failed once more and moves to the dead-letter queue, so a
//!    dead-lettered message never leaves its job `queued` or `running` — unless the database
//!    is down or the process dies then, and the deadline ends the job instead. A panic while
//!    handling one message fails only that message.
//! 4. Metrics (`METRICS=emf`, see `runtime::metrics`): a job that reaches `done` or `error`
//!    writes `CutoutJobLatency` (since the job was created, on the database's clock) and
//!    `CutoutProcessingTime` (this attempt); the first message of each minute also writes
//!    the pool gauges.
//!
//! Never, unlike the old system, is the original returned as if it were a cut-out.

use std::num::{NonZeroU16, NonZeroU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bytes::Bytes;
use cutout::{CutoutOptions, Engine, EngineSettings, PRINT_DPI, PngCompression};
use db::StoreError;
use db::jobs::{Claim, ClaimPolicy, CutoutResult, JobProgress, Media, NewAsset, OVERDUE_MESSAGE};
use domain::{AssetKind, CutoutMessage, JobId, JobStatus};
use objects::{ObjectError, ObjectKey, ObjectStore};
use runtime::Metrics;
use runtime::metrics::{JobOutcome, JobTimes, Service};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;

pub mod rules;

/// What the customer reads on a job whose attempts were all spent on faults.
const GAVE_UP_MESSAGE: &str = "the cut-out could not be completed; please try again";

/// Most overdue jobs one batch reaps.
const REAP_BATCH: i64 = 20;

/// Everything a worker needs, built once per process (the model load is the cold start).
pub struct Worker {
    pub media: Media,
    pub objects: Arc<dyn ObjectStore>,
    pub engine: Arc<Engine>,
    /// Attempts before a job is given up (equal to the queue's maxReceiveCount).
    pub max_attempts: i32,
    /// A `running` job silent for this long is presumed abandoned and may be reclaimed; no
    /// job is claimed less than this before its deadline.
    pub stale_after: Duration,
    /// CloudWatch EMF lines (`METRICS`): each finished job's timings, and the pool gauges
    /// once a minute.
    pub metrics: Metrics,
}

/// How one message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Nothing to do (already done, superseded, unknown job, malformed message).
    Skipped(&'static str),
    /// The job failed for good (bad image, or attempts exhausted).
    Failed(String),
    /// Retry the message later.
    Retry(String),
}

impl Outcome {
    /// Whether SQS should deliver the message again.
    pub fn is_batch_failure(&self) -> bool {
        matches!(self, Self::Retry(_))
    }
}

/// A fault worth retrying, with what we were doing.
#[derive(Debug)]
struct Transient(String);

impl From<StoreError> for Transient {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

impl From<ObjectError> for Transient {
    fn from(e: ObjectError) -> Self {
        Self(e.to_string())
    }
}

impl Worker {
    /// Handles a batch: reaps overdue jobs, then handles the messages one after another
    /// (inference already uses every core), suspects last, each isolated in its own task so
    /// that a panic fails only that message.
    pub async fn handle_batch(self: &Arc<Self>, event: SqsEvent) -> SqsBatchResponse {
        let records = self.in_safe_order(event.records).await;
        let mut failures = Vec::new();
        for message in records {
            let id = message.message_id.clone().unwrap_or_default();
            let job_id = job_of(&message);
            let receive_count = receive_count(&message);
            let worker = Arc::clone(self);
            let outcome = match tokio::spawn(async move { worker.handle_message(message).await }).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "message handler panicked");
                    if let Some(job_id) = job_id {
                        self.after_panic(job_id, receive_count).await;
                    }
                    Outcome::Retry("the handler panicked".into())
                }
            };
            if outcome.is_batch_failure() {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                failures.push(failure);
            }
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        response
    }

    /// The batch, reordered so that a message that may kill the process cannot cost the
    /// others: first what is cheap or fresh (malformed, unknown, finished, never tried), then
    /// jobs re-queued after a fault, then jobs left `running` (a worker died holding them),
    /// each group by attempts. Also reaps overdue jobs. With the database down the order is
    /// kept (every claim will fail and be retried anyway).
    async fn in_safe_order(&self, mut records: Vec<SqsMessage>) -> Vec<SqsMessage> {
        let ids: Vec<JobId> = records.iter().filter_map(job_of).collect();
        let progress = match self.media.progress(&ids).await {
            Ok(progress) => progress,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the batch's jobs; keeping SQS's order");
                return records;
            }
        };
        if let Err(e) = self.media.reap_overdue_jobs(REAP_BATCH).await {
            tracing::warn!(error = %e, "reaping overdue jobs");
        }
        let suspicion = |message: &SqsMessage| -> (u8, i32) {
            let found = job_of(message).and_then(|id| progress.iter().find(|(j, _)| *j == id).map(|(_, p)| *p));
            match found {
                None => (0, 0),
                Some(JobProgress { status: JobStatus::Done | JobStatus::Error, .. }) => (0, 0),
                Some(JobProgress { status: JobStatus::Queued, attempts: 0 }) => (0, 0),
                Some(JobProgress { status: JobStatus::Queued, attempts }) => (1, attempts),
                Some(JobProgress { status: JobStatus::Running, attempts }) => (2, attempts),
            }
        };
        // Stable: equals keep SQS's order.
        records.sort_by_key(suspicion);
        records
    }

    /// A handler panicked holding `job_id`: hand the job back for the retry, or, on the
    /// message's last delivery, fail it before the message goes to the dead-letter queue.
    async fn after_panic(&self, job_id: JobId, receive_count: u32) {
        let result = if self.is_last_delivery(receive_count) {
            self.media.fail_job(job_id, GAVE_UP_MESSAGE).await.map(drop)
        } else {
            // Left `running`, redeliveries would find it busy until it went stale.
            self.media.requeue_job(job_id, "an internal error").await
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not hand the job back after a panic");
        }
    }

    fn is_last_delivery(&self, receive_count: u32) -> bool {
        i64::from(receive_count) >= i64::from(self.max_attempts)
    }

    /// Handles one message; see the crate docs for the outcomes.
    pub async fn handle_message(&self, message: SqsMessage) -> Outcome {
        let message_id = message.message_id.clone().unwrap_or_default();
        let receive_count = receive_count(&message);
        let parsed = message.body.as_deref().map(serde_json::from_str::<CutoutMessage>);
        let job = match parsed {
            Some(Ok(m)) => m,
            _ => {
                tracing::error!(%message_id, "malformed message acknowledged without work");
                return Outcome::Skipped("malformed message");
            }
        };
        let span = tracing::info_span!("job", job_id = %job.job_id, %message_id, receive_count);
        async {
            let started = Instant::now();
            let outcome = self.run(JobId::from_uuid(job.job_id), receive_count).await;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            match &outcome {
                Outcome::Done => tracing::info!(elapsed_ms, "job done"),
                Outcome::Skipped(why) => tracing::info!(why, "job skipped"),
                Outcome::Failed(why) => tracing::warn!(why, "job failed"),
                Outcome::Retry(why) => tracing::warn!(why, "job will be retried"),
            }
            self.metrics.pool_gauges(|| self.media.database().gauges());
            outcome
        }
        .instrument(span)
        .await
    }

    async fn run(&self, job_id: JobId, receive_count: u32) -> Outcome {
        let started = Instant::now();
        let last_delivery = self.is_last_delivery(receive_count);
        // On the last delivery a job that already killed a worker is not tried again: another
        // crash would cost the whole batch its acknowledgements (see `in_safe_order`).
        let policy = ClaimPolicy {
            stale_after: self.stale_after,
            max_attempts: self.max_attempts,
            take_over_abandoned: !last_delivery,
        };
        let (attempt, upload, prefix) = match self.media.claim_job(job_id, &policy).await {
            Ok(Claim::Claimed { attempt, upload, object_prefix }) => (attempt, upload, object_prefix),
            Ok(Claim::AlreadyDone) => return Outcome::Skipped("already done"),
            Ok(Claim::AlreadyFailed) => return Outcome::Skipped("already failed"),
            Ok(Claim::NotFound) => return Outcome::Skipped("no such job"),
            // The holder's own message finishes it, or fails it when the holder dies; this
            // delivery (a duplicate) must not fail a job that is running.
            Ok(Claim::Busy) if last_delivery => return Outcome::Skipped("another worker holds the job"),
            Ok(Claim::Busy) => return Outcome::Retry("another worker holds the job".into()),
            Ok(Claim::TooLate) => {
                return self.give_up(job_id, OVERDUE_MESSAGE, "too close to its deadline", started).await;
            }
            Ok(Claim::Exhausted { .. }) => {
                return self.give_up(job_id, GAVE_UP_MESSAGE, "every attempt was made", started).await;
            }
            Ok(Claim::Abandoned { attempts }) => {
                // Failed, and the message failed once more: it goes to the dead-letter queue
                // for inspection, with its job already `error`.
                return match self.give_up(job_id, GAVE_UP_MESSAGE, "a worker died holding it", started).await {
                    Outcome::Skipped(_) => {
                        Outcome::Retry(format!("gave up after {attempts} attempts: a worker died during the last"))
                    }
                    other => other,
                };
            }
            Err(e) if last_delivery => {
                // The message is about to be dead-lettered: record the failure if the
                // database lets us (when it does not, the job's deadline ends it).
                if let Err(e) = self.media.fail_job(job_id, GAVE_UP_MESSAGE).await {
                    tracing::warn!(error = %e, "could not fail the job before dead-lettering its message");
                }
                return Outcome::Retry(format!("claiming on the last delivery: {e}"));
            }
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        match self.cut_out(job_id, &upload, prefix.as_deref()).await {
            Ok(Ok(job)) => {
                self.finished(Some(&job), JobOutcome::Done, started);
                Outcome::Done
            }
            Ok(Err(bad_input)) => match self.media.fail_job(job_id, &bad_input).await {
                Ok(job) => {
                    self.finished(job.as_ref(), JobOutcome::Failed, started);
                    Outcome::Failed(bad_input)
                }
                Err(e) => Outcome::Retry(format!("recording the failure: {e}")),
            },
            Err(Transient(reason)) if attempt >= self.max_attempts || last_delivery => {
                let message = format!("gave up after {attempt} attempts: {reason}");
                match self.media.fail_job(job_id, GAVE_UP_MESSAGE).await {
                    // Failed once more, the message moves to the DLQ for inspection.
                    Ok(job) => {
                        self.finished(job.as_ref(), JobOutcome::Failed, started);
                        Outcome::Retry(message)
                    }
                    Err(e) => Outcome::Retry(format!("{message}; recording it: {e}")),
                }
            }
            Err(Transient(reason)) => {
                if let Err(e) = self.media.requeue_job(job_id, "a temporary fault").await {
                    tracing::warn!(error = %e, "could not re-queue the job");
                }
                Outcome::Retry(reason)
            }
        }
    }

    /// Fails a job that must not run (again) and acknowledges its message.
    async fn give_up(&self, job_id: JobId, message: &str, why: &'static str, started: Instant) -> Outcome {
        match self.media.fail_job(job_id, message).await {
            Ok(job) => {
                self.finished(job.as_ref(), JobOutcome::Failed, started);
                Outcome::Skipped(why)
            }
            Err(e) => Outcome::Retry(format!("{why}; recording it: {e}")),
        }
    }

    /// A job reached its final status: its timings as metrics. The latency is measured on
    /// the database's clock (creation to completion, both `now()` there), the processing
    /// time on this instance's.
    fn finished(&self, job: Option<&db::jobs::Job>, outcome: JobOutcome, started: Instant) {
        let Some(job) = job else { return };
        let Some(completed_at) = job.completed_at else { return };
        let latency = Duration::try_from(completed_at - job.created_at).unwrap_or_default();
        self.metrics.job_finished(&JobTimes {
            job_id: job.id.as_uuid().to_string(),
            outcome,
            latency,
            processing: started.elapsed(),
        });
    }

    /// The work itself. `Ok(Ok(job))`: done. `Ok(Err(reason))`: the input is bad, stop.
    /// `Err`: retry.
    async fn cut_out(
        &self,
        job_id: JobId,
        upload: &db::jobs::Asset,
        prefix: Option<&str>,
    ) -> Result<Result<db::jobs::Job, String>, Transient> {
        let key = ObjectKey::parse(&upload.object_key).map_err(|e| Transient(e.to_string()))?;
        // Bounded to the upload limit: anything bigger in storage is refused unread.
        let original = match self.objects.get(&key, rules::RULES.max_bytes()).await {
            Ok(bytes) => bytes,
            Err(ObjectError::NotFound(_)) => return Ok(Err("the uploaded file is missing".into())),
            Err(ObjectError::TooLarge { .. }) => return Ok(Err("the uploaded file is too large".into())),
            Err(e) => return Err(e.into()),
        };

        self.media.log_step(job_id, "running: removing the background").await?;
        let engine = Arc::clone(&self.engine);
        let options = CutoutOptions { limits: rules::decode_limits(&rules::RULES), ..CutoutOptions::default() };
        let made = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, Vec<u8>, u32, u32), cutout::CutoutError> {
            let cut = engine.cut_out(&original, &options)?;
            // Fast compression: the default level costs seconds on large photos for ~20 % less size.
            let mask = cut.mask_png(PngCompression::Fast)?;
            let transparent = cut.transparent_png(PngCompression::Fast)?;
            Ok((mask, transparent, cut.width, cut.height))
        })
        .await
        .map_err(|e| Transient(format!("the cut-out task failed: {e}")))?;
        let (mask, transparent, width, height) = match made {
            Ok(parts) => parts,
            Err(e) if e.is_bad_input() => return Ok(Err(e.to_string())),
            Err(e) => return Err(Transient(e.to_string())),
        };

        self.media.log_step(job_id, "running: storing the cut-out").await?;
        // The job's own random prefix: results of a retried attempt overwrite the same keys,
        // and nothing about the key is guessable from the job id (jobs from before prefixes
        // existed keep the old layout).
        let dir = match prefix {
            Some(prefix) => format!("cutouts/{prefix}"),
            None => format!("cutouts/{}", job_id.as_uuid().simple()),
        };
        let mask_key = ObjectKey::parse(&format!("{dir}/mask.png")).map_err(|e| Transient(e.to_string()))?;
        let transparent_key =
            ObjectKey::parse(&format!("{dir}/transparent.png")).map_err(|e| Transient(e.to_string()))?;
        let (mask_hash, transparent_hash) = (sha256_hex(&mask), sha256_hex(&transparent));
        let (mask_len, transparent_len) = (mask.len() as i64, transparent.len() as i64);
        self.objects.put(&mask_key, Bytes::from(mask), "image/png").await?;
        self.objects.put(&transparent_key, Bytes::from(transparent), "image/png").await?;

        let (w, h) = (i32::try_from(width).unwrap_or(i32::MAX), i32::try_from(height).unwrap_or(i32::MAX));
        let dpi = i32::try_from(PRINT_DPI).unwrap_or(300);
        let (mask_key, transparent_key) = (mask_key.to_string(), transparent_key.to_string());
        let result_asset = |kind, object_key, byte_size, content_hash| NewAsset {
            object_key,
            kind,
            content_type: "image/png",
            byte_size,
            content_hash,
            width: w,
            height: h,
            dpi: Some(dpi),
            original_name: None,
            job_id: Some(job_id),
        };
        let result = CutoutResult {
            mask: result_asset(AssetKind::Mask, &mask_key, mask_len, &mask_hash),
            transparent: result_asset(AssetKind::Transparent, &transparent_key, transparent_len, &transparent_hash),
            width: w,
            height: h,
            dpi,
        };
        Ok(Ok(self.media.finish_job(job_id, upload.id, &result).await?))
    }
}

/// The job a message names, if its body parses.
fn job_of(message: &SqsMessage) -> Option<JobId> {
    let body = message.body.as_deref()?;
    serde_json::from_str::<CutoutMessage>(body).ok().map(|m| JobId::from_uuid(m.job_id))
}

/// SQS's `ApproximateReceiveCount` (1 on the first delivery; 1 when absent).
fn receive_count(message: &SqsMessage) -> u32 {
    message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The worker's configuration, from the environment, validated once.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub db: db::DbConfig,
    pub objects: objects::ObjectsConfig,
    /// `MODEL_PATH`/`CUTOUT_MODEL`/`MODELS_DIR`, `CUTOUT_THREADS`, `CUTOUT_RESIZE_MATMUL`.
    pub engine: EngineSettings,
    /// `CUTOUT_MAX_ATTEMPTS` (default 3): must equal the queue's `maxReceiveCount`.
    pub max_attempts: i32,
    /// `CUTOUT_STALE_AFTER_SECS` (default 300): longer than the function's timeout (a live
    /// worker is never robbed) and shorter than the queue's visibility timeout (a crashed
    /// worker's job is reclaimed by the next delivery). Also the least time left before a
    /// job's deadline for a claim: an attempt started later might outlive it.
    pub stale_after: Duration,
    /// `METRICS` and `STAGE`: CloudWatch EMF lines (see `runtime::metrics`).
    pub metrics: runtime::MetricsConfig,
}

/// The worker's own variables, as they are set.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct WorkerSettings {
    #[serde(default = "defaults::max_attempts")]
    pub cutout_max_attempts: NonZeroU16,
    #[serde(default = "defaults::stale_after_secs")]
    pub cutout_stale_after_secs: NonZeroU64,
}

mod defaults {
    use std::num::{NonZeroU16, NonZeroU64};

    pub fn max_attempts() -> NonZeroU16 {
        NonZeroU16::new(3).unwrap_or(NonZeroU16::MIN)
    }
    pub fn stale_after_secs() -> NonZeroU64 {
        NonZeroU64::new(300).unwrap_or(NonZeroU64::MIN)
    }
}

impl WorkerConfig {
    /// Reads every section the worker needs from one snapshot of the environment.
    pub fn from_env(env: &config::Env) -> Result<Self, config::ConfigError> {
        let own: WorkerSettings = env.parse()?;
        Ok(Self {
            db: db::DbConfig::from_env(env)?,
            objects: objects::ObjectsConfig::from_env(env)?,
            engine: env.parse()?,
            max_attempts: i32::from(own.cutout_max_attempts.get()),
            stale_after: Duration::from_secs(own.cutout_stale_after_secs.get()),
            metrics: runtime::MetricsConfig::from_env(env)?,
        })
    }
}

impl Worker {
    /// Opens the pool and the object store, checks the schema and loads the model
    /// (`MODEL_PATH` / `MODELS_DIR` / `CUTOUT_MODEL`, its SHA-256 verified first): the cold
    /// start, logged with its duration. Metrics go to stdout as `METRICS` says.
    ///
    /// Refuses to start on a database behind this build's migrations or whose history
    /// diverged, and on a model file whose digest is not the expected one; starts on a
    /// database a newer build migrated, and on one it cannot reach (jobs are retried).
    pub async fn build(config: &WorkerConfig) -> anyhow::Result<Self> {
        Self::build_with_metrics(config, Metrics::new(&config.metrics, Service::RemoveBg)).await
    }

    /// [`Worker::build`] with the metrics given (tests capture them).
    pub async fn build_with_metrics(config: &WorkerConfig, metrics: Metrics) -> anyhow::Result<Self> {
        use anyhow::Context;
        let database = db::Database::new(&config.db).context("building the database pool")?;
        db::migrate::check_at_start(&database).await?;
        let objects = config.objects.open().context("opening the object store")?.store();
        let started = Instant::now();
        let engine = Engine::from_settings(&config.engine).context("loading the cut-out model")?;
        let verified = engine.verified_sha256();
        tracing::info!(
            model = engine.model_name(),
            model_path = %engine.model_path().display(),
            model_sha256 = verified.map_or_else(|| "not checked".to_owned(), |(digest, _)| digest.to_string()),
            hash_ms = verified.map_or(0, |(_, took)| took.as_millis() as u64),
            threads = engine.threads(),
            load_ms = started.elapsed().as_millis() as u64,
            plan = %config.db.plan,
            max_attempts = config.max_attempts,
            metrics = %config.metrics,
            "remove-bg worker ready"
        );
        metrics.pool_gauges(|| database.gauges());
        Ok(Self {
            media: Media::new(database),
            objects,
            engine: Arc::new(engine),
            max_attempts: config.max_attempts,
            stale_after: config.stale_after,
            metrics,
        })
    }
}
