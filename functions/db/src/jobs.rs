//! Uploads, assets and cut-out jobs: the rows behind the upload → job → cut-out flow.
//!
//! Everything here runs on the primary (read-your-writes: the storefront polls a job right
//! after creating it).
//!
//! States are enums on this side ([`JobStatus`], [`AssetKind`], [`UploadStatus`]): parsed
//! when a row is read (an unknown name is [`StoreError::Corrupt`]) and bound with `as_str()`
//! when a statement sets one. The names that remain in SQL text are in `WHERE` clauses,
//! where they must match the partial indexes' predicates (`status <> 'error'`,
//! `status IN ('queued', 'running')`) for the planner to use them.

use domain::{AssetId, AssetKind, JobId, JobStatus, UploadId, UploadStatus};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, Param, StoreError};
use crate::row::{self, FromRow, RowExt, corrupt_column};

/// An upload to reserve, as `POST /api/uploads` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub id: UploadId,
    pub object_key: String,
    pub content_type: String,
    pub byte_size: i64,
    pub original_name: Option<String>,
    pub expires_at: OffsetDateTime,
}

/// A reserved upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: UploadId,
    pub object_key: String,
    pub content_type: String,
    pub byte_size: i64,
    pub original_name: Option<String>,
    pub expires_at: OffsetDateTime,
    pub state: UploadState,
}

/// Where an upload is. A completed upload always has its asset (the schema's CHECK), so
/// the two are one value here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Waiting for the file and `complete`.
    Pending,
    /// Checked and recorded as this `upload` asset.
    Completed(AssetId),
}

/// A stored object's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub id: AssetId,
    pub object_key: String,
    pub kind: AssetKind,
    pub content_type: String,
    pub byte_size: i64,
    pub content_hash: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub dpi: Option<i32>,
    pub original_name: Option<String>,
    /// The job that made it (cut-out results only).
    pub job_id: Option<JobId>,
}

/// What is known of an object about to be recorded as an asset.
#[derive(Debug, Clone)]
pub struct NewAsset<'a> {
    pub object_key: &'a str,
    pub kind: AssetKind,
    pub content_type: &'a str,
    pub byte_size: i64,
    pub content_hash: &'a str,
    pub width: i32,
    pub height: i32,
    pub dpi: Option<i32>,
    pub original_name: Option<&'a str>,
    pub job_id: Option<JobId>,
}

/// A cut-out job as the storefront sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub upload_asset_id: AssetId,
    pub status: JobStatus,
    pub logs: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<serde_json::Value>,
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
}

/// Outcome of asking for a job on an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRequest {
    Created(Job),
    /// A live (queued, running or done) job already exists for this asset.
    Existing(Job),
}

// Column lists for the `FromRow` impls below, which read them by name.
const UPLOAD_COLUMNS: &str = "id, object_key, content_type, byte_size, original_name, expires_at, status, asset_id";
const ASSET_COLUMNS: &str =
    "id, object_key, kind, content_type, byte_size, content_hash, width, height, dpi, original_name, job_id";
const JOB_COLUMNS: &str =
    "id, upload_asset_id, status, logs, error_message, result, attempts, created_at, completed_at";

impl FromRow for Upload {
    /// Reads [`UPLOAD_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let asset_id: Option<Uuid> = row.column("asset_id")?;
        let state = match (row.parsed::<UploadStatus>("status")?, asset_id) {
            (UploadStatus::Pending, _) => UploadState::Pending,
            (UploadStatus::Completed, Some(asset)) => UploadState::Completed(AssetId::from_uuid(asset)),
            (UploadStatus::Completed, None) => return Err(corrupt_column("asset_id", "a completed upload has none")),
        };
        Ok(Upload {
            id: UploadId::from_uuid(row.column("id")?),
            object_key: row.column("object_key")?,
            content_type: row.column("content_type")?,
            byte_size: row.column("byte_size")?,
            original_name: row.column("original_name")?,
            expires_at: row.column("expires_at")?,
            state,
        })
    }
}

impl FromRow for Asset {
    /// Reads [`ASSET_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Asset {
            id: AssetId::from_uuid(row.column("id")?),
            object_key: row.column("object_key")?,
            kind: row.parsed("kind")?,
            content_type: row.column("content_type")?,
            byte_size: row.column("byte_size")?,
            content_hash: row.column("content_hash")?,
            width: row.column("width")?,
            height: row.column("height")?,
            dpi: row.column("dpi")?,
            original_name: row.column("original_name")?,
            job_id: row.column::<Option<Uuid>>("job_id")?.map(JobId::from_uuid),
        })
    }
}

impl FromRow for Job {
    /// Reads [`JOB_COLUMNS`].
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Job {
            id: JobId::from_uuid(row.column("id")?),
            upload_asset_id: AssetId::from_uuid(row.column("upload_asset_id")?),
            status: row.parsed("status")?,
            logs: row.column("logs")?,
            error_message: row.column("error_message")?,
            result: row.column("result")?,
            attempts: row.column("attempts")?,
            created_at: row.column("created_at")?,
            completed_at: row.column("completed_at")?,
        })
    }
}

#[derive(Clone)]
pub struct Media {
    db: Database,
}

impl Media {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The pools behind this store (for their gauges).
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub async fn create_upload(&self, upload: &NewUpload) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "reserving an upload",
            "INSERT INTO uploads (id, object_key, content_type, byte_size, original_name, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                (&upload.id.as_uuid(), Type::UUID),
                (&upload.object_key, Type::TEXT),
                (&upload.content_type, Type::TEXT),
                (&upload.byte_size, Type::INT8),
                (&upload.original_name, Type::TEXT),
                (&upload.expires_at, Type::TIMESTAMPTZ),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn upload(&self, id: UploadId) -> Result<Option<Upload>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1");
        let rows = conn.query("finding an upload", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    /// Records the upload's asset and marks the upload completed, atomically. Completing
    /// twice (a retried request) returns the asset recorded the first time.
    pub async fn complete_upload(&self, upload_id: UploadId, asset: &NewAsset<'_>) -> Result<Asset, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 FOR UPDATE");
        let locked = tx.query("locking the upload", &sql, &[(&upload_id.as_uuid(), Type::UUID)]).await?;
        let state = row::first::<Upload>(&locked)?.map(|u| u.state);
        let asset = match state {
            Some(UploadState::Completed(asset_id)) => {
                let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
                let rows = tx
                    .query("reading the completed upload's asset", &sql, &[(&asset_id.as_uuid(), Type::UUID)])
                    .await?;
                row::first(&rows)?.ok_or_else(|| StoreError::Corrupt(format!("asset {asset_id} missing")))?
            }
            Some(UploadState::Pending) | None => {
                let inserted = upsert_asset(&tx, asset).await?;
                tx.query(
                    "completing the upload",
                    "UPDATE uploads SET status = $3, asset_id = $2 WHERE id = $1",
                    &[
                        (&upload_id.as_uuid(), Type::UUID),
                        (&inserted.id.as_uuid(), Type::UUID),
                        (&UploadStatus::Completed.as_str(), Type::TEXT),
                    ],
                )
                .await?;
                inserted
            }
        };
        tx.commit().await?;
        Ok(asset)
    }

    pub async fn asset(&self, id: AssetId) -> Result<Option<Asset>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
        let rows = conn.query("finding an asset", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    /// Assets by id, in no particular order (a job's results).
    pub async fn assets(&self, ids: &[AssetId]) -> Result<Vec<Asset>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let ids: Vec<Uuid> = ids.iter().map(AssetId::as_uuid).collect();
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = ANY($1)");
        let rows = conn.query("finding assets", &sql, &[(&ids, Type::UUID_ARRAY)]).await?;
        row::all(&rows)
    }

    /// Creates a queued job for `asset_id` unless a live one exists, and calls `enqueue`
    /// with the new job's id before committing: if enqueueing fails the job row is rolled
    /// back, so no job exists that no message will ever run. (The converse — a message for
    /// a job whose commit failed — is harmless: the worker acknowledges unknown jobs.)
    pub async fn request_job<F, Fut, E>(
        &self,
        asset_id: AssetId,
        enqueue: F,
    ) -> Result<Result<JobRequest, E>, StoreError>
    where
        F: FnOnce(JobId) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        // Serialise concurrent requests for the same asset on its row.
        let asset = asset_id.as_uuid();
        tx.query("locking the asset", "SELECT 1 FROM assets WHERE id = $1 FOR UPDATE", &[(&asset, Type::UUID)]).await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE upload_asset_id = $1 AND status <> 'error'");
        let live = tx.query("finding a live job", &sql, &[(&asset, Type::UUID)]).await?;
        if let Some(job) = row::first(&live)? {
            return Ok(Ok(JobRequest::Existing(job)));
        }
        let sql = format!(
            "INSERT INTO jobs (id, upload_asset_id, status, logs) VALUES ($1, $2, $3, 'queued') RETURNING {JOB_COLUMNS}"
        );
        let id = JobId::from_uuid(Uuid::new_v4());
        let queued = JobStatus::Queued.as_str();
        let rows = tx
            .query("creating a job", &sql, &[(&id.as_uuid(), Type::UUID), (&asset, Type::UUID), (&queued, Type::TEXT)])
            .await?;
        let job = row::one(&rows, "creating a job")?;
        if let Err(e) = enqueue(id).await {
            return Ok(Err(e)); // dropping `tx` rolls back
        }
        tx.commit().await?;
        Ok(Ok(JobRequest::Created(job)))
    }

    pub async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let rows = conn.query("finding a job", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }
}

/// What the worker may do with a delivered job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This worker now runs the job: attempt number and the upload to cut out.
    Claimed { attempt: i32, upload: Asset },
    /// Already done: a redelivered message, acknowledged without work.
    AlreadyDone,
    /// Another worker holds it (and is not stale): try again later.
    Busy,
    /// A newer live job exists for the same upload: this one is moot.
    Superseded,
    /// No such job (its creation was rolled back after the message was sent).
    NotFound,
}

/// A cut-out's two stored results.
#[derive(Debug, Clone)]
pub struct CutoutResult<'a> {
    pub mask: NewAsset<'a>,
    pub transparent: NewAsset<'a>,
    pub width: i32,
    pub height: i32,
    pub dpi: i32,
}

impl Media {
    /// Atomically moves a job to `running` (from `queued`, from `error` when an operator
    /// redrives it, or from a `running` whose worker has been silent longer than
    /// `stale_after`), counting the attempt.
    pub async fn claim_job(&self, job_id: JobId, stale_after: std::time::Duration) -> Result<Claim, StoreError> {
        let conn = self.db.primary.conn().await?;
        let (id, stale_secs, running) = (job_id.as_uuid(), stale_after.as_secs_f64(), JobStatus::Running.as_str());
        let sql = format!(
            "UPDATE jobs j SET status = $3, attempts = j.attempts + 1, logs = 'running: fetching the original', \
                    error_message = NULL, completed_at = NULL \
             FROM assets a \
             WHERE j.id = $1 AND a.id = j.upload_asset_id \
               AND (j.status IN ('queued', 'error') \
                    OR (j.status = 'running' AND j.updated_at < now() - make_interval(secs => $2))) \
             RETURNING j.attempts, {}",
            ASSET_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        );
        let claimed = conn
            .query("claiming a job", &sql, &[(&id, Type::UUID), (&stale_secs, Type::FLOAT8), (&running, Type::TEXT)])
            .await;
        match claimed {
            Ok(rows) => {
                // `attempts` is the job's; every other column is the upload asset's.
                if let Some(row) = rows.first() {
                    return Ok(Claim::Claimed { attempt: row.column("attempts")?, upload: Asset::from_row(row)? });
                }
            }
            Err(StoreError::Query { source, .. })
                if source.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                return Ok(Claim::Superseded);
            }
            Err(e) => return Err(e),
        }
        let rows =
            conn.query("reading a job's status", "SELECT status FROM jobs WHERE id = $1", &[(&id, Type::UUID)]).await?;
        let status = rows.first().map(|r| r.parsed::<JobStatus>("status")).transpose()?;
        Ok(match status {
            None => Claim::NotFound,
            Some(JobStatus::Done) => Claim::AlreadyDone,
            Some(JobStatus::Queued | JobStatus::Running | JobStatus::Error) => Claim::Busy,
        })
    }

    /// Records the step a running job is at (what the storefront shows while polling).
    pub async fn log_step(&self, job_id: JobId, step: &str) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "logging a job step",
            "UPDATE jobs SET logs = $2 WHERE id = $1 AND status = 'running'",
            &[(&job_id.as_uuid(), Type::UUID), (&step, Type::TEXT)],
        )
        .await
        .map(drop)
    }

    /// Stores the results and marks the job done, in one transaction. Safe to repeat after
    /// a crash between storing objects and this call: assets are keyed by object key.
    pub async fn finish_job(
        &self,
        job_id: JobId,
        original: AssetId,
        result: &CutoutResult<'_>,
    ) -> Result<Job, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let mask = upsert_asset(&tx, &result.mask).await?.id;
        let transparent = upsert_asset(&tx, &result.transparent).await?.id;
        let summary = serde_json::json!({
            "original": original,
            "transparent": transparent,
            "mask": mask,
            "width": result.width,
            "height": result.height,
            "dpi": result.dpi,
        });
        let sql = format!(
            "UPDATE jobs SET status = $3, result = $2, completed_at = now(), logs = 'done', error_message = NULL \
             WHERE id = $1 AND status = 'running' RETURNING {JOB_COLUMNS}"
        );
        let params: [Param<'_>; 3] =
            [(&job_id.as_uuid(), Type::UUID), (&summary, Type::JSONB), (&JobStatus::Done.as_str(), Type::TEXT)];
        let rows = tx.query("finishing a job", &sql, &params).await?;
        let job = row::first(&rows)?.ok_or_else(|| StoreError::Corrupt(format!("job {job_id} was not running")))?;
        tx.commit().await?;
        Ok(job)
    }

    /// Marks a job failed for good, with a message for the customer. Returns the failed job,
    /// or `None` when it was not queued or running (nothing changed).
    pub async fn fail_job(&self, job_id: JobId, message: &str) -> Result<Option<Job>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "UPDATE jobs SET status = $3, error_message = $2, logs = 'error', completed_at = now() \
             WHERE id = $1 AND status IN ('queued', 'running') RETURNING {JOB_COLUMNS}"
        );
        let params: [Param<'_>; 3] =
            [(&job_id.as_uuid(), Type::UUID), (&message, Type::TEXT), (&JobStatus::Error.as_str(), Type::TEXT)];
        let rows = conn.query("failing a job", &sql, &params).await?;
        row::first(&rows)
    }

    /// Puts a running job back in the queue after a transient fault (the message is retried).
    pub async fn requeue_job(&self, job_id: JobId, reason: &str) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        let log = format!("retrying: {reason}");
        conn.query(
            "re-queueing a job",
            "UPDATE jobs SET status = $3, logs = $2 WHERE id = $1 AND status = 'running'",
            &[(&job_id.as_uuid(), Type::UUID), (&log, Type::TEXT), (&JobStatus::Queued.as_str(), Type::TEXT)],
        )
        .await
        .map(drop)
    }
}

/// Records an asset; an existing row with the same object key (a repeated attempt that
/// stored the same object) is updated instead of duplicated.
async fn upsert_asset(tx: &crate::pool::Tx<'_>, a: &NewAsset<'_>) -> Result<Asset, StoreError> {
    let sql = format!(
        "INSERT INTO assets (object_key, kind, content_type, byte_size, content_hash, width, height, dpi, original_name, job_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (object_key) DO UPDATE SET byte_size = EXCLUDED.byte_size, content_hash = EXCLUDED.content_hash, \
                 width = EXCLUDED.width, height = EXCLUDED.height, dpi = EXCLUDED.dpi \
         RETURNING {ASSET_COLUMNS}"
    );
    let job_id = a.job_id.map(|j| j.as_uuid());
    let rows = tx
        .query(
            "recording an asset",
            &sql,
            &[
                (&a.object_key, Type::TEXT),
                (&a.kind.as_str(), Type::TEXT),
                (&a.content_type, Type::TEXT),
                (&a.byte_size, Type::INT8),
                (&a.content_hash, Type::TEXT),
                (&a.width, Type::INT4),
                (&a.height, Type::INT4),
                (&a.dpi, Type::INT4),
                (&a.original_name, Type::TEXT),
                (&job_id, Type::UUID),
            ],
        )
        .await?;
    row::one(&rows, "recording an asset")
}
