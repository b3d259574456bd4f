//! Password attempts for sign-in limits (`login_attempts`). Always the primary.
//!
//! The race this closes: counting earlier failures, then verifying the password (tens of
//! milliseconds of Argon2), then recording the failure lets every request that arrives while
//! the first ones are still hashing pass the count. Here a request *reserves* its attempt
//! before any password work: one short transaction takes advisory locks on the keys the
//! attempt is counted under, counts the rows in each key's window, lets the caller's policy
//! decide, and inserts the attempt's own row when admitted. Requests sharing a key are thus
//! serialised for that transaction only (never for the hashing), and no more pass than the
//! policy admits, however many arrive at once and on however many instances.
//!
//! A success deletes its own row ([`SignInAttempts::succeeded`]); a failure leaves it, and so
//! does a request that died between the two (it counts as a failure, erring on the safe side).
//!
//! This module decides *what* is counted together; *how many* are allowed, and how long to
//! wait after that, is the caller's policy (`api::auth::limits`).

use std::time::Duration;

use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::pool::{Database, StoreError};
use crate::row::{FromRow, RowExt};

/// Rows older than this are swept as new ones are written; no window may be longer.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Advisory lock classes (the two-key form, which shares no space with the single-key locks
/// migrations take). The second key is `hashtext` of the value: a collision only serialises
/// two unrelated keys a little more.
const LOCK_CLIENT_IP: i32 = 0x5349_0001;
const LOCK_EMAIL: i32 = 0x5349_0002;
const LOCK_DEVICE: i32 = 0x5349_0003;

/// What an attempt is counted under.
#[derive(Debug, Clone, Copy)]
pub struct AttemptKey<'a> {
    /// The address as typed, normalised (whether or not an account has it).
    pub email: &'a str,
    pub client_ip: &'a str,
    /// The id of a valid device token for this e-mail, when the client presented one.
    pub device: Option<&'a str>,
}

/// How far back each key counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub pair: Duration,
    pub client_ip: Duration,
    pub email: Duration,
    pub device: Duration,
}

/// The attempts in one key's window: how many, and when the latest started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub count: i64,
    pub latest: Option<OffsetDateTime>,
}

/// The earlier attempts an attempt is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recent {
    /// No device token: attempts without one, for this (e-mail, IP), this IP (any e-mail) and
    /// this e-mail (any IP).
    Untrusted { pair: Tally, client_ip: Tally, email: Tally },
    /// A device that signed in to this e-mail before: that device's attempts only.
    Device { device: Tally },
}

/// [`Recent`] with the database's clock at the moment it was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub now: OffsetDateTime,
    pub recent: Recent,
}

/// An admitted attempt's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptId(Uuid);

fn tally(row: &Row, prefix: &str) -> Result<Tally, StoreError> {
    Ok(Tally { count: row.column(&format!("{prefix}_count"))?, latest: row.column(&format!("{prefix}_latest"))? })
}

impl FromRow for Counted {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        let device: bool = row.column("by_device")?;
        let recent = if device {
            Recent::Device { device: tally(row, "device")? }
        } else {
            Recent::Untrusted { pair: tally(row, "pair")?, client_ip: tally(row, "ip")?, email: tally(row, "email")? }
        };
        Ok(Counted { now: row.column("now")?, recent })
    }
}

const COUNT_UNTRUSTED: &str = "\
    WITH t AS (SELECT clock_timestamp() AS now) \
    SELECT t.now, false AS by_device, \
      count(a.id) FILTER (WHERE a.email = $1 AND a.client_ip = $2 AND a.created_at > t.now - make_interval(secs => $3)) AS pair_count, \
      max(a.created_at) FILTER (WHERE a.email = $1 AND a.client_ip = $2 AND a.created_at > t.now - make_interval(secs => $3)) AS pair_latest, \
      count(a.id) FILTER (WHERE a.client_ip = $2 AND a.created_at > t.now - make_interval(secs => $4)) AS ip_count, \
      max(a.created_at) FILTER (WHERE a.client_ip = $2 AND a.created_at > t.now - make_interval(secs => $4)) AS ip_latest, \
      count(a.id) FILTER (WHERE a.email = $1 AND a.created_at > t.now - make_interval(secs => $5)) AS email_count, \
      max(a.created_at) FILTER (WHERE a.email = $1 AND a.created_at > t.now - make_interval(secs => $5)) AS email_latest \
    FROM t LEFT JOIN login_attempts a \
      ON a.device IS NULL AND (a.email = $1 OR a.client_ip = $2) \
     AND a.created_at > t.now - make_interval(secs => greatest($3, $4, $5)) \
    GROUP BY t.now";

const COUNT_DEVICE: &str = "\
    WITH t AS (SELECT clock_timestamp() AS now) \
    SELECT t.now, true AS by_device, count(a.id) AS device_count, max(a.created_at) AS device_latest \
    FROM t LEFT JOIN login_attempts a \
      ON a.device = $1 AND a.created_at > t.now - make_interval(secs => $2) \
    GROUP BY t.now";

#[derive(Clone)]
pub struct SignInAttempts {
    db: Database,
}

impl SignInAttempts {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Counts the attempts `key` is judged by and, when `decide` admits, records this one —
    /// atomically with respect to every other attempt sharing a key. `decide` runs inside
    /// the transaction, so it must be quick and do no I/O. Returns the admitted attempt, or
    /// what `decide` refused with.
    pub async fn reserve<R>(
        &self,
        key: &AttemptKey<'_>,
        windows: &Windows,
        decide: impl FnOnce(&Counted) -> Result<(), R>,
    ) -> Result<Result<AttemptId, R>, StoreError> {
        let secs = |d: Duration| d.as_secs_f64();
        debug_assert!(
            [windows.pair, windows.client_ip, windows.email, windows.device].iter().all(|w| *w <= RETENTION),
            "a sign-in window is longer than the rows are kept"
        );
        let mut conn = self.db.primary.conn().await?;
        let tx = conn.transaction().await?;
        let lock = "SELECT pg_advisory_xact_lock($1, hashtext($2))";
        // Always in this order (IP, then e-mail; a device alone), so two attempts never wait
        // for each other's locks in a cycle.
        let rows = match key.device {
            None => {
                tx.query(
                    "locking the client's sign-in attempts",
                    lock,
                    &[(&LOCK_CLIENT_IP, Type::INT4), (&key.client_ip, Type::TEXT)],
                )
                .await?;
                tx.query(
                    "locking the e-mail's sign-in attempts",
                    lock,
                    &[(&LOCK_EMAIL, Type::INT4), (&key.email, Type::TEXT)],
                )
                .await?;
                tx.query(
                    "counting sign-in attempts",
                    COUNT_UNTRUSTED,
                    &[
                        (&key.email, Type::TEXT),
                        (&key.client_ip, Type::TEXT),
                        (&secs(windows.pair), Type::FLOAT8),
                        (&secs(windows.client_ip), Type::FLOAT8),
                        (&secs(windows.email), Type::FLOAT8),
                    ],
                )
                .await?
            }
            Some(device) => {
                tx.query(
                    "locking the device's sign-in attempts",
                    lock,
                    &[(&LOCK_DEVICE, Type::INT4), (&device, Type::TEXT)],
                )
                .await?;
                tx.query(
                    "counting a device's sign-in attempts",
                    COUNT_DEVICE,
                    &[(&device, Type::TEXT), (&secs(windows.device), Type::FLOAT8)],
                )
                .await?
            }
        };
        let counted = crate::row::one::<Counted>(&rows, "counting sign-in attempts")?;
        if let Err(refused) = decide(&counted) {
            // Dropping the transaction rolls back and releases the locks.
            return Ok(Err(refused));
        }
        let rows = tx
            .query(
                "recording a sign-in attempt",
                "WITH swept AS (DELETE FROM login_attempts WHERE created_at < now() - make_interval(secs => $4)) \
                 INSERT INTO login_attempts (email, client_ip, device, created_at) \
                 VALUES ($1, $2, $3, clock_timestamp()) RETURNING id",
                &[
                    (&key.email, Type::TEXT),
                    (&key.client_ip, Type::TEXT),
                    (&key.device, Type::TEXT),
                    (&secs(RETENTION), Type::FLOAT8),
                ],
            )
            .await?;
        let id: Uuid = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("recording a sign-in attempt returned no row".into()))?
            .column("id")?;
        tx.commit().await?;
        Ok(Ok(AttemptId(id)))
    }

    /// The attempt succeeded: it stops counting, and so do the earlier failures of the device
    /// that made it (a device proven to be the owner's starts afresh). Failures without a
    /// device stay until they age out: they may be someone else's on a shared IP.
    pub async fn succeeded(&self, id: AttemptId, device: Option<&str>) -> Result<(), StoreError> {
        let conn = self.db.primary.conn().await?;
        conn.query(
            "clearing a successful sign-in attempt",
            "DELETE FROM login_attempts WHERE id = $1 OR ($2::text IS NOT NULL AND device = $2)",
            &[(&id.0, Type::UUID), (&device, Type::TEXT)],
        )
        .await?;
        Ok(())
    }
}
