//! Uploads, assets and cut-out jobs: the rows behind the upload → job → cut-out flow.
//!
//! Everything here runs on the primary (read-your-writes: the storefront polls a job right
//! after creating it).

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, StoreError};

/// A reserved upload, as `POST /api/uploads` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: Uuid,
    pub object_key: String,
    pub content_type: String,
    pub byte_size: i64,
    pub original_name: Option<String>,
    pub expires_at: OffsetDateTime,
    /// Set once completed.
    pub asset_id: Option<Uuid>,
}

/// A stored object's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Asset {
    pub id: Uuid,
    #[serde(skip)]
    pub object_key: String,
    pub kind: String,
    pub content_type: String,
    pub byte_size: i64,
    pub content_hash: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub dpi: Option<i32>,
    pub original_name: Option<String>,
    pub job_id: Option<Uuid>,
}

/// What is known of an object about to be recorded as an asset.
#[derive(Debug, Clone)]
pub struct NewAsset<'a> {
    pub object_key: &'a str,
    pub kind: &'a str,
    pub content_type: &'a str,
    pub byte_size: i64,
    pub content_hash: &'a str,
    pub width: i32,
    pub height: i32,
    pub dpi: Option<i32>,
    pub original_name: Option<&'a str>,
    pub job_id: Option<Uuid>,
}

/// A cut-out job as the storefront sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: Uuid,
    pub upload_asset_id: Uuid,
    pub status: String,
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

const ASSET_COLUMNS: &str =
    "id, object_key, kind, content_type, byte_size, content_hash, width, height, dpi, original_name, job_id";
const JOB_COLUMNS: &str =
    "id, upload_asset_id, status, logs, error_message, result, attempts, created_at, completed_at";

#[derive(Clone)]
pub struct Media {
    db: Database,
}

impl Media {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub async fn create_upload(&self, upload: &Upload) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "reserving an upload",
            "INSERT INTO uploads (id, object_key, content_type, byte_size, original_name, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                (&upload.id, Type::UUID),
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

    pub async fn upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "finding an upload",
                "SELECT id, object_key, content_type, byte_size, original_name, expires_at, asset_id FROM uploads WHERE id = $1",
                &[(&id, Type::UUID)],
            )
            .await?;
        Ok(rows.first().map(|r| Upload {
            id: r.get(0),
            object_key: r.get(1),
            content_type: r.get(2),
            byte_size: r.get(3),
            original_name: r.get(4),
            expires_at: r.get(5),
            asset_id: r.get(6),
        }))
    }

    /// Records the upload's asset and marks the upload completed, atomically. Completing
    /// twice (a retried request) returns the asset recorded the first time.
    pub async fn complete_upload(&self, upload_id: Uuid, asset: &NewAsset<'_>) -> Result<Asset, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let locked = tx
            .query(
                "locking the upload",
                "SELECT asset_id FROM uploads WHERE id = $1 FOR UPDATE",
                &[(&upload_id, Type::UUID)],
            )
            .await?;
        let existing: Option<Uuid> = locked.first().and_then(|r| r.get(0));
        let asset = match existing {
            Some(asset_id) => {
                let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
                let rows = tx.query("reading the completed upload's asset", &sql, &[(&asset_id, Type::UUID)]).await?;
                asset_from_row(rows.first().ok_or_else(|| StoreError::Corrupt(format!("asset {asset_id} missing")))?)
            }
            None => {
                let inserted = upsert_asset(&tx, asset).await?;
                tx.query(
                    "completing the upload",
                    "UPDATE uploads SET status = 'completed', asset_id = $2 WHERE id = $1",
                    &[(&upload_id, Type::UUID), (&inserted.id, Type::UUID)],
                )
                .await?;
                inserted
            }
        };
        tx.commit().await?;
        Ok(asset)
    }

    pub async fn asset(&self, id: Uuid) -> Result<Option<Asset>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
        let rows = conn.query("finding an asset", &sql, &[(&id, Type::UUID)]).await?;
        Ok(rows.first().map(asset_from_row))
    }

    /// Assets by id, in no particular order (a job's results).
    pub async fn assets(&self, ids: &[Uuid]) -> Result<Vec<Asset>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = ANY($1)");
        let rows = conn.query("finding assets", &sql, &[(&ids, Type::UUID_ARRAY)]).await?;
        Ok(rows.iter().map(asset_from_row).collect())
    }

    /// Creates a queued job for `asset_id` unless a live one exists, and calls `enqueue`
    /// with the new job's id before committing: if enqueueing fails the job row is rolled
    /// back, so no job exists that no message will ever run. (The converse — a message for
    /// a job whose commit failed — is harmless: the worker acknowledges unknown jobs.)
    pub async fn request_job<F, Fut, E>(&self, asset_id: Uuid, enqueue: F) -> Result<Result<JobRequest, E>, StoreError>
    where
        F: FnOnce(Uuid) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        // Serialise concurrent requests for the same asset on its row.
        tx.query("locking the asset", "SELECT 1 FROM assets WHERE id = $1 FOR UPDATE", &[(&asset_id, Type::UUID)])
            .await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE upload_asset_id = $1 AND status <> 'error'");
        let live = tx.query("finding a live job", &sql, &[(&asset_id, Type::UUID)]).await?;
        if let Some(row) = live.first() {
            return Ok(Ok(JobRequest::Existing(job_from_row(row))));
        }
        let sql = format!(
            "INSERT INTO jobs (id, upload_asset_id, status, logs) VALUES ($1, $2, 'queued', 'queued') RETURNING {JOB_COLUMNS}"
        );
        let id = Uuid::new_v4();
        let rows = tx.query("creating a job", &sql, &[(&id, Type::UUID), (&asset_id, Type::UUID)]).await?;
        let job = job_from_row(rows.first().ok_or_else(|| StoreError::Corrupt("INSERT returned no row".into()))?);
        if let Err(e) = enqueue(id).await {
            return Ok(Err(e)); // dropping `tx` rolls back
        }
        tx.commit().await?;
        Ok(Ok(JobRequest::Created(job)))
    }

    pub async fn job(&self, id: Uuid) -> Result<Option<Job>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let rows = conn.query("finding a job", &sql, &[(&id, Type::UUID)]).await?;
        Ok(rows.first().map(job_from_row))
    }
}

pub(crate) fn asset_from_row(r: &Row) -> Asset {
    Asset {
        id: r.get(0),
        object_key: r.get(1),
        kind: r.get(2),
        content_type: r.get(3),
        byte_size: r.get(4),
        content_hash: r.get(5),
        width: r.get(6),
        height: r.get(7),
        dpi: r.get(8),
        original_name: r.get(9),
        job_id: r.get(10),
    }
}

pub(crate) fn job_from_row(r: &Row) -> Job {
    Job {
        id: r.get(0),
        upload_asset_id: r.get(1),
        status: r.get(2),
        logs: r.get(3),
        error_message: r.get(4),
        result: r.get(5),
        attempts: r.get(6),
        created_at: r.get(7),
        completed_at: r.get(8),
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
    pub async fn claim_job(&self, job_id: Uuid, stale_after: std::time::Duration) -> Result<Claim, StoreError> {
        let conn = self.db.primary.conn().await?;
        let stale_secs = stale_after.as_secs_f64();
        let sql = format!(
            "UPDATE jobs j SET status = 'running', attempts = j.attempts + 1, logs = 'running: fetching the original', \
                    error_message = NULL, completed_at = NULL \
             FROM assets a \
             WHERE j.id = $1 AND a.id = j.upload_asset_id \
               AND (j.status IN ('queued', 'error') \
                    OR (j.status = 'running' AND j.updated_at < now() - make_interval(secs => $2))) \
             RETURNING j.attempts, {}",
            ASSET_COLUMNS.split(", ").map(|c| format!("a.{c}")).collect::<Vec<_>>().join(", ")
        );
        let claimed = conn.query("claiming a job", &sql, &[(&job_id, Type::UUID), (&stale_secs, Type::FLOAT8)]).await;
        match claimed {
            Ok(rows) => {
                if let Some(row) = rows.first() {
                    let attempt: i32 = row.get(0);
                    let upload = Asset {
                        id: row.get(1),
                        object_key: row.get(2),
                        kind: row.get(3),
                        content_type: row.get(4),
                        byte_size: row.get(5),
                        content_hash: row.get(6),
                        width: row.get(7),
                        height: row.get(8),
                        dpi: row.get(9),
                        original_name: row.get(10),
                        job_id: row.get(11),
                    };
                    return Ok(Claim::Claimed { attempt, upload });
                }
            }
            Err(StoreError::Query { source, .. })
                if source.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                return Ok(Claim::Superseded);
            }
            Err(e) => return Err(e),
        }
        let rows = conn
            .query("reading a job's status", "SELECT status FROM jobs WHERE id = $1", &[(&job_id, Type::UUID)])
            .await?;
        Ok(match rows.first().map(|r| r.get::<_, String>(0)).as_deref() {
            None => Claim::NotFound,
            Some("done") => Claim::AlreadyDone,
            Some(_) => Claim::Busy,
        })
    }

    /// Records the step a running job is at (what the storefront shows while polling).
    pub async fn log_step(&self, job_id: Uuid, step: &str) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "logging a job step",
            "UPDATE jobs SET logs = $2 WHERE id = $1 AND status = 'running'",
            &[(&job_id, Type::UUID), (&step, Type::TEXT)],
        )
        .await
        .map(drop)
    }

    /// Stores the results and marks the job done, in one transaction. Safe to repeat after
    /// a crash between storing objects and this call: assets are keyed by object key.
    pub async fn finish_job(&self, job_id: Uuid, original: Uuid, result: &CutoutResult<'_>) -> Result<Job, StoreError> {
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
            "UPDATE jobs SET status = 'done', result = $2, completed_at = now(), logs = 'done', error_message = NULL \
             WHERE id = $1 AND status = 'running' RETURNING {JOB_COLUMNS}"
        );
        let rows = tx.query("finishing a job", &sql, &[(&job_id, Type::UUID), (&summary, Type::JSONB)]).await?;
        let job = rows
            .first()
            .map(job_from_row)
            .ok_or_else(|| StoreError::Corrupt(format!("job {job_id} was not running")))?;
        tx.commit().await?;
        Ok(job)
    }

    /// Marks a job failed for good, with a message for the customer.
    pub async fn fail_job(&self, job_id: Uuid, message: &str) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "failing a job",
            "UPDATE jobs SET status = 'error', error_message = $2, logs = 'error', completed_at = now() \
             WHERE id = $1 AND status IN ('queued', 'running')",
            &[(&job_id, Type::UUID), (&message, Type::TEXT)],
        )
        .await
        .map(drop)
    }

    /// Puts a running job back in the queue after a transient fault (the message is retried).
    pub async fn requeue_job(&self, job_id: Uuid, reason: &str) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        let log = format!("retrying: {reason}");
        conn.query(
            "re-queueing a job",
            "UPDATE jobs SET status = 'queued', logs = $2 WHERE id = $1 AND status = 'running'",
            &[(&job_id, Type::UUID), (&log, Type::TEXT)],
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
    let rows = tx
        .query(
            "recording an asset",
            &sql,
            &[
                (&a.object_key, Type::TEXT),
                (&a.kind, Type::TEXT),
                (&a.content_type, Type::TEXT),
                (&a.byte_size, Type::INT8),
                (&a.content_hash, Type::TEXT),
                (&a.width, Type::INT4),
                (&a.height, Type::INT4),
                (&a.dpi, Type::INT4),
                (&a.original_name, Type::TEXT),
                (&a.job_id, Type::UUID),
            ],
        )
        .await?;
    rows.first().map(asset_from_row).ok_or_else(|| StoreError::Corrupt("upsert returned no row".into()))
}
