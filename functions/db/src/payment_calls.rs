//! Limits on calls that reach the payment provider on a caller's behalf (`payment_call_counts`).
//!
//! Counted in Postgres, not in memory: a Lambda instance lives for minutes and dozens run at
//! once, so only a shared count limits a caller. Each call increments its buckets' counters
//! for the current fixed window in one statement and reads them back, so concurrent calls
//! cannot both see the last free slot (unlike counting rows, then inserting one).

use std::time::Duration;

use tokio_postgres::types::Type;

use crate::pool::{Database, StoreError};
use crate::row::RowExt;

/// A counter and its allowance in the current window: `ip:203.0.113.7` may make 30 calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// `ip:<client ip>` or `order:<order id>`; at most 200 bytes.
    pub key: String,
    /// Calls allowed per window, this one included.
    pub limit: u32,
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// A bucket is over its limit: no call until its window ends, in `retry_after_secs`.
    Limited {
        bucket: String,
        retry_after_secs: u32,
    },
}

#[derive(Clone)]
pub struct PaymentCalls {
    db: Database,
}

impl PaymentCalls {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// Counts one call against every bucket in the current `window` (fixed windows aligned to
    /// the Unix epoch on the database's clock) and says whether all are still within their
    /// limits. A refused call counts too: hammering does not shorten the wait. Windows older
    /// than a day are deleted in the same statement.
    pub async fn admit(&self, buckets: &[Bucket], window: Duration) -> Result<Admission, StoreError> {
        if buckets.is_empty() {
            return Ok(Admission::Admitted);
        }
        // One row per bucket: a repeated key would make the upsert touch a row twice.
        let mut keys: Vec<&str> = buckets.iter().map(|b| b.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let window_secs = window.as_secs_f64().max(1.0);
        let conn = self.db.primary.conn().await?;
        let rows = conn
            .query(
                "counting a payment call",
                "WITH swept AS (DELETE FROM payment_call_counts WHERE window_start < now() - interval '1 day'), \
                 win AS (SELECT to_timestamp(floor(extract(epoch FROM now())::float8 / $2) * $2) AS start) \
                 INSERT INTO payment_call_counts AS c (bucket, window_start, calls) \
                 SELECT b.key, win.start, 1 FROM unnest($1::text[]) AS b(key), win \
                 ON CONFLICT (bucket, window_start) DO UPDATE SET calls = c.calls + 1 \
                 RETURNING c.bucket, c.calls, \
                   ceil(extract(epoch FROM (c.window_start + make_interval(secs => $2) - now())))::int8 AS retry_after",
                &[(&keys, Type::TEXT_ARRAY), (&window_secs, Type::FLOAT8)],
            )
            .await?;
        for row in &rows {
            let key: &str = row.column("bucket")?;
            let calls: i32 = row.column("calls")?;
            let limit = buckets.iter().find(|b| b.key == key).map_or(u32::MAX, |b| b.limit);
            if u32::try_from(calls).unwrap_or(0) > limit {
                let retry_after: i64 = row.column("retry_after")?;
                return Ok(Admission::Limited {
                    bucket: key.to_owned(),
                    retry_after_secs: u32::try_from(retry_after.max(1)).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(Admission::Admitted)
    }
}
