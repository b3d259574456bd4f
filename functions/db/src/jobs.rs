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
//!
//! **Ownership.** Uploads and the assets they become belong to an account (`owner_id`) or a
//! guest (`guest_id`, proved by the API's signed guest token). Every read a customer can
//! trigger takes a [`MediaOwner`] and finds only what belongs to it, so someone else's id
//! reads as "no such row" — the API answers 404 and the id is not even confirmed to exist.
//!
//! **Job lifecycle.** A job is `queued` → `running` → `done` or `error`, and it ends by its
//! `deadline_at` whatever happens to its messages: past the deadline no worker claims it
//! (nor within the worker's stale-claim time of it, so a claimed attempt always finishes
//! before the deadline), and whoever looks at it first fails it ([`Media::reap_overdue_jobs`],
//! [`Media::job_for`], [`Media::request_job`]). `error` is final: a new request for the same
//! upload makes a new job.

use std::time::Duration;

use domain::{AssetId, AssetKind, GuestId, JobId, JobStatus, UploadId, UploadStatus, UserId};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, Param, StoreError};
use crate::row::{self, FromRow, RowExt, corrupt_column};

/// What the customer reads on a job that ran out of time.
pub const OVERDUE_MESSAGE: &str = "the cut-out did not finish in time; please try again";

/// Who a request speaks for: a signed-in account, a guest (proved by a signed guest token),
/// both, or neither. A row is theirs when its owner is the account or its guest is the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaOwner {
    pub user: Option<UserId>,
    pub guest: Option<GuestId>,
}

impl MediaOwner {
    /// Neither an account nor a guest: owns nothing, and every scoped read finds nothing.
    pub fn is_nobody(&self) -> bool {
        self.user.is_none() && self.guest.is_none()
    }

    fn params(&self) -> (Option<Uuid>, Option<Uuid>) {
        (self.user.map(|u| u.as_uuid()), self.guest.map(|g| g.as_uuid()))
    }
}

/// An upload to reserve, as `POST /api/uploads` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub id: UploadId,
    /// Where the browser PUTs the file (`incoming/…`, random: it says nothing about the id).
    pub object_key: String,
    pub content_type: String,
    pub byte_size: i64,
    pub original_name: Option<String>,
    pub expires_at: OffsetDateTime,
    /// Who the upload, and the asset it becomes, belong to.
    pub owner: MediaOwner,
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

/// How [`Media::complete_upload`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// The asset was recorded now, with the upload's owner.
    Recorded(Asset),
    /// A concurrent or earlier `complete` recorded this asset first; the caller's copy is
    /// not used.
    AlreadyCompleted(Asset),
    /// The upload is gone (swept after it expired).
    Vanished,
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
    /// The job is `done` or `error` by then, whatever happens to its messages.
    pub deadline_at: OffsetDateTime,
    /// When the queue took its message; `None` while it still has to be sent.
    pub enqueued_at: Option<OffsetDateTime>,
    /// Queued or running past its deadline, on the database's clock when read.
    pub overdue: bool,
}

impl Job {
    /// Queued and its message not yet (known to be) with the queue.
    pub fn needs_sending(&self) -> bool {
        self.status == JobStatus::Queued && self.enqueued_at.is_none()
    }
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
const JOB_COLUMNS: &str = "id, upload_asset_id, status, logs, error_message, result, attempts, created_at, \
     completed_at, deadline_at, enqueued_at, (status IN ('queued', 'running') AND deadline_at <= now()) AS overdue";
/// Sets a live job to `error` with message `$1` (the statements that use it bind it first).
const FAIL_SET: &str = "status = 'error', error_message = $1, logs = 'error', completed_at = now()";

/// `a.id, a.object_key, …`: a column list for a statement that joins.
fn qualified(columns: &str, alias: &str) -> String {
    columns.split(", ").map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", ")
}

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
            deadline_at: row.column("deadline_at")?,
            enqueued_at: row.column("enqueued_at")?,
            overdue: row.column("overdue")?,
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
        let (owner, guest) = upload.owner.params();
        conn.query(
            "reserving an upload",
            "INSERT INTO uploads (id, object_key, content_type, byte_size, original_name, expires_at, owner_id, guest_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                (&upload.id.as_uuid(), Type::UUID),
                (&upload.object_key, Type::TEXT),
                (&upload.content_type, Type::TEXT),
                (&upload.byte_size, Type::INT8),
                (&upload.original_name, Type::TEXT),
                (&upload.expires_at, Type::TIMESTAMPTZ),
                (&owner, Type::UUID),
                (&guest, Type::UUID),
            ],
        )
        .await?;
        Ok(())
    }

    /// The upload, if it belongs to `owner` (`None` for unknown and for someone else's alike).
    pub async fn upload_for(&self, id: UploadId, owner: &MediaOwner) -> Result<Option<Upload>, StoreError> {
        if owner.is_nobody() {
            return Ok(None);
        }
        let conn = self.db.primary.conn().await?;
        let (user, guest) = owner.params();
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 AND (owner_id = $2 OR guest_id = $3)");
        let rows = conn
            .query("finding an upload", &sql, &[(&id.as_uuid(), Type::UUID), (&user, Type::UUID), (&guest, Type::UUID)])
            .await?;
        row::first(&rows)
    }

    /// Records the upload's asset, owned as the upload is, and marks the upload completed,
    /// atomically. The upload row is locked, so of two concurrent completions exactly one
    /// records its object; the other learns which asset won.
    pub async fn complete_upload(&self, upload_id: UploadId, asset: &NewAsset<'_>) -> Result<Completion, StoreError> {
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 FOR UPDATE");
        let locked = tx.query("locking the upload", &sql, &[(&upload_id.as_uuid(), Type::UUID)]).await?;
        let completion = match row::first::<Upload>(&locked)?.map(|u| u.state) {
            None => Completion::Vanished,
            Some(UploadState::Completed(asset_id)) => {
                let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
                let rows = tx
                    .query("reading the completed upload's asset", &sql, &[(&asset_id.as_uuid(), Type::UUID)])
                    .await?;
                Completion::AlreadyCompleted(
                    row::first(&rows)?.ok_or_else(|| StoreError::Corrupt(format!("asset {asset_id} missing")))?,
                )
            }
            Some(UploadState::Pending) => {
                let inserted = upsert_asset(&tx, asset).await?;
                let params: [Param<'_>; 3] = [
                    (&upload_id.as_uuid(), Type::UUID),
                    (&inserted.id.as_uuid(), Type::UUID),
                    (&UploadStatus::Completed.as_str(), Type::TEXT),
                ];
                tx.query(
                    "giving the asset the upload's owner",
                    "UPDATE assets a SET owner_id = u.owner_id, guest_id = u.guest_id FROM uploads u \
                     WHERE u.id = $1 AND a.id = $2",
                    &params[..2],
                )
                .await?;
                tx.query(
                    "completing the upload",
                    "UPDATE uploads SET status = $3, asset_id = $2 WHERE id = $1",
                    &params,
                )
                .await?;
                Completion::Recorded(inserted)
            }
        };
        tx.commit().await?;
        Ok(completion)
    }

    /// Any asset by id, unscoped: for staff and for results reached through a job the
    /// caller owns. Customer-facing lookups use [`Media::asset_for`].
    pub async fn asset(&self, id: AssetId) -> Result<Option<Asset>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
        let rows = conn.query("finding an asset", &sql, &[(&id.as_uuid(), Type::UUID)]).await?;
        row::first(&rows)
    }

    /// The asset, if it belongs to `owner`: its own owner or guest, or — for a cut-out the
    /// worker made — those of the upload its job started from.
    pub async fn asset_for(&self, id: AssetId, owner: &MediaOwner) -> Result<Option<Asset>, StoreError> {
        if owner.is_nobody() {
            return Ok(None);
        }
        let conn = self.db.primary.conn().await?;
        let (user, guest) = owner.params();
        let sql = format!(
            "SELECT {} FROM assets a \
               LEFT JOIN jobs j ON j.id = a.job_id \
               LEFT JOIN assets src ON src.id = j.upload_asset_id \
             WHERE a.id = $1 \
               AND (COALESCE(a.owner_id, src.owner_id) = $2 OR COALESCE(a.guest_id, src.guest_id) = $3)",
            qualified(ASSET_COLUMNS, "a")
        );
        let rows = conn
            .query("finding an asset", &sql, &[(&id.as_uuid(), Type::UUID), (&user, Type::UUID), (&guest, Type::UUID)])
            .await?;
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

    /// The upload's live job, or a new `queued` one that must end by now + `deadline`.
    ///
    /// A live job past its deadline is failed first (superseded), so asking again for an
    /// upload whose job died always gets a job that can still run. Nothing is sent here: the
    /// job is committed, then the caller sends its message and calls [`Media::mark_enqueued`]
    /// (commit, then send — no row lock is held across the queue call). A job whose message
    /// was never sent keeps `enqueued_at` empty, and [`Job::needs_sending`] tells the next
    /// request for it, or the relay ([`Media::unsent_jobs`]), to send it.
    pub async fn request_job(&self, asset_id: AssetId, deadline: Duration) -> Result<JobRequest, StoreError> {
        let asset = asset_id.as_uuid();
        let deadline_secs = deadline.as_secs_f64();
        let mut conn = self.db.primary.conn().await?;
        // A concurrent request may win the insert and then lose its job to the deadline
        // between our two statements; a few rounds settle it.
        for _ in 0..3 {
            let tx = conn.transaction().await?;
            let superseded = format!(
                "UPDATE jobs SET {FAIL_SET} \
                 WHERE upload_asset_id = $2 AND status IN ('queued', 'running') AND deadline_at <= now() \
                 RETURNING id"
            );
            let stale = tx
                .query(
                    "superseding an overdue job",
                    &superseded,
                    &[(&OVERDUE_MESSAGE, Type::TEXT), (&asset, Type::UUID)],
                )
                .await?;
            for row in &stale {
                let id: Uuid = row.column("id")?;
                tracing::warn!(job = %id, asset = %asset, "an overdue job was superseded by a new request");
            }
            let insert = format!(
                "INSERT INTO jobs (id, upload_asset_id, status, logs, deadline_at) \
                 VALUES ($1, $2, $3, 'queued', now() + make_interval(secs => $4)) \
                 ON CONFLICT (upload_asset_id) WHERE status <> 'error' DO NOTHING \
                 RETURNING {JOB_COLUMNS}"
            );
            let id = Uuid::new_v4();
            let queued = JobStatus::Queued.as_str();
            let params: [Param<'_>; 4] =
                [(&id, Type::UUID), (&asset, Type::UUID), (&queued, Type::TEXT), (&deadline_secs, Type::FLOAT8)];
            let created = tx.query("creating a job", &insert, &params).await?;
            if let Some(job) = row::first(&created)? {
                tx.commit().await?;
                return Ok(JobRequest::Created(job));
            }
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE upload_asset_id = $1 AND status <> 'error'");
            let live = tx.query("finding the live job", &sql, &[(&asset, Type::UUID)]).await?;
            let existing = row::first(&live)?;
            tx.commit().await?;
            if let Some(job) = existing {
                return Ok(JobRequest::Existing(job));
            }
        }
        Err(StoreError::Corrupt(format!("no live job for asset {asset_id} could be found or created")))
    }

    /// Records that the queue took the job's message.
    pub async fn mark_enqueued(&self, job_id: JobId) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "recording a job as sent",
            "UPDATE jobs SET enqueued_at = now() WHERE id = $1 AND enqueued_at IS NULL",
            &[(&job_id.as_uuid(), Type::UUID)],
        )
        .await
        .map(drop)
    }

    /// Queued jobs whose message was not sent `older_than` after they were created (the
    /// request that made them died or the queue refused) and that can still run: the
    /// outbox's backlog, oldest first, at most `limit`.
    pub async fn unsent_jobs(&self, older_than: Duration, limit: i64) -> Result<Vec<(JobId, AssetId)>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "finding unsent jobs",
                "SELECT id, upload_asset_id FROM jobs \
                 WHERE status = 'queued' AND enqueued_at IS NULL \
                   AND created_at < now() - make_interval(secs => $1) AND deadline_at > now() \
                 ORDER BY created_at LIMIT $2",
                &[(&older_than.as_secs_f64(), Type::FLOAT8), (&limit, Type::INT8)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((JobId::from_uuid(r.column("id")?), AssetId::from_uuid(r.column("upload_asset_id")?))))
            .collect()
    }

    /// The job, if its upload belongs to `owner` (`None` for unknown and for someone else's
    /// alike). A job found past its deadline is failed on the spot, so a poll never shows a
    /// job that can no longer finish as still running.
    pub async fn job_for(&self, id: JobId, owner: &MediaOwner) -> Result<Option<Job>, StoreError> {
        if owner.is_nobody() {
            return Ok(None);
        }
        let conn = self.db.primary.conn().await?;
        let (user, guest) = owner.params();
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND EXISTS \
               (SELECT 1 FROM assets a WHERE a.id = jobs.upload_asset_id AND (a.owner_id = $2 OR a.guest_id = $3))"
        );
        let rows = conn
            .query("finding a job", &sql, &[(&id.as_uuid(), Type::UUID), (&user, Type::UUID), (&guest, Type::UUID)])
            .await?;
        let Some(job) = row::first::<Job>(&rows)? else { return Ok(None) };
        if !job.overdue {
            return Ok(Some(job));
        }
        let sql = format!(
            "UPDATE jobs SET {FAIL_SET} WHERE id = $2 AND status IN ('queued', 'running') AND deadline_at <= now() \
             RETURNING {JOB_COLUMNS}"
        );
        let failed = conn
            .query("failing an overdue job", &sql, &[(&OVERDUE_MESSAGE, Type::TEXT), (&id.as_uuid(), Type::UUID)])
            .await?;
        match row::first::<Job>(&failed)? {
            Some(failed) => {
                tracing::warn!(job = %id, "an overdue job was failed when polled");
                Ok(Some(failed))
            }
            // Finished or failed by someone else in between: read it as it is now.
            None => {
                let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
                row::first(&conn.query("re-reading a job", &sql, &[(&id.as_uuid(), Type::UUID)]).await?)
            }
        }
    }

    /// The reaper: fails up to `limit` queued or running jobs past their deadline (oldest
    /// deadline first; rows another reaper holds are skipped) and returns them. Run by the API
    /// when jobs are requested, by the worker with every batch and by `make dev` on a timer,
    /// so a job whose messages all died still ends.
    pub async fn reap_overdue_jobs(&self, limit: i64) -> Result<Vec<Job>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let sql = format!(
            "UPDATE jobs SET {FAIL_SET} \
             WHERE id IN (SELECT id FROM jobs WHERE status IN ('queued', 'running') AND deadline_at <= now() \
                          ORDER BY deadline_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
               AND status IN ('queued', 'running') \
             RETURNING {JOB_COLUMNS}"
        );
        let rows =
            conn.query("reaping overdue jobs", &sql, &[(&OVERDUE_MESSAGE, Type::TEXT), (&limit, Type::INT8)]).await?;
        let reaped: Vec<Job> = row::all(&rows)?;
        for job in &reaped {
            tracing::warn!(job = %job.id, attempts = job.attempts, "reaped a job past its deadline");
        }
        Ok(reaped)
    }

    /// Deletes up to `limit` uploads still pending `grace` after their URL expired (the file
    /// never came, or `complete` was never called) and returns their object keys, for the
    /// caller to delete from storage. Rows go first: an object left behind by a failed delete
    /// is removed by the bucket's lifecycle rule on `incoming/`.
    pub async fn sweep_abandoned_uploads(&self, grace: Duration, limit: i64) -> Result<Vec<String>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "sweeping abandoned uploads",
                "DELETE FROM uploads \
                 WHERE id IN (SELECT id FROM uploads \
                              WHERE status = 'pending' AND expires_at < now() - make_interval(secs => $1) \
                              ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
                   AND status = 'pending' \
                 RETURNING object_key",
                &[(&grace.as_secs_f64(), Type::FLOAT8), (&limit, Type::INT8)],
            )
            .await?;
        rows.iter().map(|r| r.column("object_key")).collect()
    }
}

/// What the worker may do with a delivered job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This worker now runs the job: attempt number, the upload to cut out, and the random
    /// prefix its results are stored under (`None` for jobs from before it existed).
    Claimed { attempt: i32, upload: Asset, object_prefix: Option<String> },
    /// Already done: a redelivered message, acknowledged without work.
    AlreadyDone,
    /// Already failed (for good: `error` is final; the customer asks again for a new job).
    AlreadyFailed,
    /// Another worker holds it (and is not stale).
    Busy,
    /// A worker died holding it (it is `running` and stale) and the policy did not allow
    /// taking it over: the message's last delivery, where a job that already killed a worker
    /// is given up rather than allowed to take the rest of the batch down with it.
    Abandoned { attempts: i32 },
    /// Too close to (or past) its deadline for an attempt to finish in time.
    TooLate,
    /// Every attempt has been made (a duplicate or redriven message): nothing left to try.
    Exhausted { attempts: i32 },
    /// No such job (its creation was rolled back after the message was sent).
    NotFound,
}

/// What a worker may claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimPolicy {
    /// A `running` job silent this long was abandoned by a worker that died; it is also the
    /// least time an attempt must have before the job's deadline.
    pub stale_after: Duration,
    /// Attempts a job gets; past them it is never claimed.
    pub max_attempts: i32,
    /// Whether an abandoned job may be taken over (or is reported as [`Claim::Abandoned`]).
    pub take_over_abandoned: bool,
}

/// A job as the worker orders a batch by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    pub status: JobStatus,
    pub attempts: i32,
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
    /// Atomically moves a job to `running` (from `queued`, or — when the policy allows — from
    /// a `running` whose worker has been silent longer than `stale_after`), counting the
    /// attempt; unless `max_attempts` have been made, or the deadline is less than
    /// `stale_after` away (an attempt claimed now could still be running when it passes;
    /// `stale_after` exceeds the function's timeout). `error` and `done` are never claimed
    /// again.
    pub async fn claim_job(&self, job_id: JobId, policy: &ClaimPolicy) -> Result<Claim, StoreError> {
        let conn = self.db.primary.conn().await?;
        let (id, stale_secs, running) =
            (job_id.as_uuid(), policy.stale_after.as_secs_f64(), JobStatus::Running.as_str());
        let (max_attempts, take_over) = (policy.max_attempts, policy.take_over_abandoned);
        let sql = format!(
            "UPDATE jobs j SET status = $3, attempts = j.attempts + 1, logs = 'running: fetching the original', \
                    error_message = NULL, completed_at = NULL \
             FROM assets a \
             WHERE j.id = $1 AND a.id = j.upload_asset_id \
               AND (j.status = 'queued' \
                    OR ($5 AND j.status = 'running' AND j.updated_at < now() - make_interval(secs => $2))) \
               AND j.deadline_at > now() + make_interval(secs => $2) \
               AND j.attempts < $4 \
             RETURNING j.attempts, j.object_prefix, {}",
            qualified(ASSET_COLUMNS, "a")
        );
        let params: [Param<'_>; 5] = [
            (&id, Type::UUID),
            (&stale_secs, Type::FLOAT8),
            (&running, Type::TEXT),
            (&max_attempts, Type::INT4),
            (&take_over, Type::BOOL),
        ];
        let rows = conn.query("claiming a job", &sql, &params).await?;
        // `attempts` and `object_prefix` are the job's; every other column is the upload asset's.
        if let Some(row) = rows.first() {
            return Ok(Claim::Claimed {
                attempt: row.column("attempts")?,
                upload: Asset::from_row(row)?,
                object_prefix: row.column("object_prefix")?,
            });
        }
        let rows = conn
            .query(
                "reading why a job cannot be claimed",
                "SELECT status, attempts, \
                        updated_at < now() - make_interval(secs => $2) AS stale, \
                        deadline_at > now() + make_interval(secs => $2) AS in_time \
                 FROM jobs WHERE id = $1",
                &params[..2],
            )
            .await?;
        let Some(row) = rows.first() else { return Ok(Claim::NotFound) };
        let attempts: i32 = row.column("attempts")?;
        Ok(match row.parsed::<JobStatus>("status")? {
            JobStatus::Done => Claim::AlreadyDone,
            JobStatus::Error => Claim::AlreadyFailed,
            JobStatus::Running if !row.column::<bool>("stale")? => Claim::Busy,
            JobStatus::Queued | JobStatus::Running if !row.column::<bool>("in_time")? => Claim::TooLate,
            JobStatus::Queued | JobStatus::Running if attempts >= max_attempts => Claim::Exhausted { attempts },
            JobStatus::Running if !take_over => Claim::Abandoned { attempts },
            // Changed between the two statements (another worker claimed it): theirs now.
            JobStatus::Queued | JobStatus::Running => Claim::Busy,
        })
    }

    /// Status and attempts of the given jobs (unknown ids are left out), for ordering a batch.
    pub async fn progress(&self, ids: &[JobId]) -> Result<Vec<(JobId, JobProgress)>, StoreError> {
        let conn = self.db.primary.conn().await?;
        let ids: Vec<Uuid> = ids.iter().map(JobId::as_uuid).collect();
        let rows = conn
            .query(
                "reading jobs' progress",
                "SELECT id, status, attempts FROM jobs WHERE id = ANY($1)",
                &[(&ids, Type::UUID_ARRAY)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    JobId::from_uuid(r.column("id")?),
                    JobProgress { status: r.parsed("status")?, attempts: r.column("attempts")? },
                ))
            })
            .collect()
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
