//! The `remove-bg` function: cuts the background out of uploaded images, one SQS message
//! (`{job_id, asset_id}`) per job.
//!
//! For each message in a batch:
//! 1. **Claim** the job atomically (`queued`/`error` → `running`, attempts + 1). A job that
//!    is already `done` is acknowledged without work (SQS delivers at least once); one held
//!    by a live worker is retried later; an unknown one is acknowledged.
//! 2. **Fetch** the original (bounded to the upload limit), **cut out** with the U²-Net
//!    engine on a blocking thread, decoding under the same rules the upload API checked
//!    ([`rules`]), **encode** the mask and the transparent 300-DPI PNG,
//!    **store** both under `cutouts/{job}/…`, and **finish**: assets and `done` with the
//!    result, in one transaction. `logs` is updated at each step for the polling storefront.
//! 3. Outcomes: a bad image (undecodable, too large, …) marks the job `error` with the
//!    reason and acknowledges the message — retrying cannot help. A transient fault (object
//!    store, database) re-queues the job and reports that message alone as a batch item
//!    failure, so SQS retries it; after `max_attempts` the job is `error` and the message,
//!    failed once more, moves to the DLQ (the queue's `maxReceiveCount` equals
//!    `max_attempts`). A panic while handling one message fails only that message.
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
use db::jobs::{Claim, CutoutResult, Media, NewAsset};
use domain::{AssetKind, CutoutMessage, JobId};
use objects::{ObjectError, ObjectKey, ObjectStore};
use runtime::Metrics;
use runtime::metrics::{JobOutcome, JobTimes, Service};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tracing::Instrument;

pub mod rules;

/// Everything a worker needs, built once per process (the model load is the cold start).
pub struct Worker {
    pub media: Media,
    pub objects: Arc<dyn ObjectStore>,
    pub engine: Arc<Engine>,
    /// Attempts before a job is given up (equal to the queue's maxReceiveCount).
    pub max_attempts: i32,
    /// A `running` job silent for this long is presumed abandoned and may be reclaimed.
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
    /// Handles a batch: messages one after another (inference already uses every core),
    /// each isolated in its own task so that a panic fails only that message.
    pub async fn handle_batch(self: &Arc<Self>, event: SqsEvent) -> SqsBatchResponse {
        let mut failures = Vec::new();
        for message in event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let job_id = message
                .body
                .as_deref()
                .and_then(|b| serde_json::from_str::<CutoutMessage>(b).ok())
                .map(|m| JobId::from_uuid(m.job_id));
            let worker = Arc::clone(self);
            let outcome = match tokio::spawn(async move { worker.handle_message(message).await }).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "message handler panicked");
                    // Hand the job back at once: left `running`, redeliveries would find it
                    // busy until it went stale, spending the message's receive count.
                    if let Some(job_id) = job_id {
                        if let Err(e) = self.media.requeue_job(job_id, "an internal error").await {
                            tracing::warn!(error = %e, "could not re-queue the job after a panic");
                        }
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

    /// Handles one message; see the crate docs for the outcomes.
    pub async fn handle_message(&self, message: SqsMessage) -> Outcome {
        let message_id = message.message_id.clone().unwrap_or_default();
        let receive_count = message.attributes.get("ApproximateReceiveCount").cloned().unwrap_or_default();
        let parsed = message.body.as_deref().map(serde_json::from_str::<CutoutMessage>);
        let job = match parsed {
            Some(Ok(m)) => m,
            _ => {
                tracing::error!(%message_id, "malformed message acknowledged without work");
                return Outcome::Skipped("malformed message");
            }
        };
        let span = tracing::info_span!("job", job_id = %job.job_id, %message_id, receive_count = %receive_count);
        async {
            let started = Instant::now();
            let outcome = self.run(JobId::from_uuid(job.job_id)).await;
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

    async fn run(&self, job_id: JobId) -> Outcome {
        let started = Instant::now();
        let (attempt, upload) = match self.media.claim_job(job_id, self.stale_after).await {
            Ok(Claim::Claimed { attempt, upload }) => (attempt, upload),
            Ok(Claim::AlreadyDone) => return Outcome::Skipped("already done"),
            Ok(Claim::Superseded) => return Outcome::Skipped("superseded by a newer job"),
            Ok(Claim::NotFound) => return Outcome::Skipped("no such job"),
            Ok(Claim::Busy) => return Outcome::Retry("another worker holds the job".into()),
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        match self.cut_out(job_id, &upload).await {
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
            Err(Transient(reason)) if attempt >= self.max_attempts => {
                let message = format!("gave up after {attempt} attempts: {reason}");
                match self.media.fail_job(job_id, "the cut-out could not be completed; please try again").await {
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
        let dir = format!("cutouts/{}", job_id.as_uuid().simple());
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
    /// worker's job is reclaimed by the next delivery).
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
