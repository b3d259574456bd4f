//! Schema migrations: the SQL files in `migrations/`, embedded at build time and applied in
//! version order by refinery, each file and its history row in one transaction.
//!
//! Start-up never ignores a migration problem (the old system did): [`schema_state`] tells
//! a function whether the database is behind the code or was migrated with a file that has
//! since been edited, and [`check_at_start`] refuses to serve either way.
//!
//! **Expand first.** Deploys run migrations, then shift traffic to the new functions
//! gradually, so the previous build keeps serving on the newer schema for a while.
//! Migrations are therefore additive (a column is dropped one release after the code stops
//! using it), and a database *ahead* of a build — every migration it knows applied
//! unchanged, plus newer ones — is one that build runs on, with a warning.

use refinery::Migration;
use thiserror::Error;
use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The seed catalog from DOMAIN.md. Inserts only missing rows.
const SEED_CATALOG: &str = include_str!("../../../migrations/seed/catalog.sql");

/// Serialises concurrent `migrate` runs (two deploys racing) on one database.
const MIGRATION_LOCK: i64 = 0x5354_4d49_4752; // "STMIGR"

#[derive(Debug, Error)]
pub enum MigrateError {
    #[error("migration failed: {0}")]
    Refinery(#[from] refinery::Error),
    #[error("database error while {doing}: {source}")]
    Db {
        doing: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// How the database's recorded migrations compare with the ones built into this binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    UpToDate {
        version: i32,
    },
    /// Every migration of this binary is applied, unchanged, and newer ones too: a newer
    /// build migrated the database. Deploys migrate first and then shift traffic gradually,
    /// so the previous build runs on the expanded schema for a while; it may serve.
    Ahead {
        /// The newest migration this binary has.
        version: i32,
        /// The newer migrations it does not know, oldest first.
        unknown: Vec<String>,
    },
    /// Migrations this binary has that the database lacks.
    Behind {
        pending: Vec<String>,
    },
    /// An applied migration whose file changed afterwards, or an unknown one that is not
    /// newer than everything this binary has (another branch's history).
    Diverged {
        detail: String,
    },
}

impl SchemaState {
    /// Whether this build may run on the database: up to date or ahead (expand-first
    /// migrations keep old code working), never behind or diverged.
    pub fn allows_serving(&self) -> bool {
        matches!(self, Self::UpToDate { .. } | Self::Ahead { .. })
    }
}

/// Why a function refuses to start on a database.
#[derive(Debug, Error)]
pub enum SchemaRefusal {
    #[error("the database is missing migrations {pending:?}: run `make migrate` (or the deploy's migrate step) first")]
    Behind { pending: Vec<String> },
    #[error("refusing to start: {detail}")]
    Diverged { detail: String },
    #[error("reading the migration history: {0}")]
    Unreadable(#[from] MigrateError),
}

fn runner() -> refinery::Runner {
    embedded::migrations::runner().set_grouped(false).set_abort_divergent(true).set_abort_missing(true)
}

/// How long one migration statement may wait for a table lock before it gives up
/// (`lock_timeout`). A schema change queued behind a long transaction holds every later
/// reader and writer of that table behind itself: waiting without a bound would turn one
/// slow report into an outage of the shop. Failing fast leaves nothing applied (each
/// migration is one transaction) and the deploy's migrate step tries again.
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Applies every pending migration, each statement waiting at most
/// [`DEFAULT_LOCK_TIMEOUT`] for a lock. Returns the names applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    migrate_with(client, runner(), DEFAULT_LOCK_TIMEOUT).await
}

/// [`migrate`] with this build's migrations plus `newer` (`("V<n>__name", sql)`) and the
/// lock timeout given: tests that play a newer build's deploy.
#[cfg(feature = "test-support")]
pub async fn migrate_as_newer_build(
    client: &mut Client,
    newer: &[(&str, &str)],
    lock_timeout: std::time::Duration,
) -> Result<Vec<String>, MigrateError> {
    let mut all = embedded();
    for (name, sql) in newer {
        all.push(Migration::unapplied(name, sql)?);
    }
    let runner = refinery::Runner::new(&all).set_grouped(false).set_abort_divergent(true).set_abort_missing(true);
    migrate_with(client, runner, lock_timeout).await
}

impl MigrateError {
    /// Whether a migration gave up waiting for a lock (`lock_timeout`): worth another try
    /// once the transaction holding the lock has ended.
    pub fn is_lock_timeout(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
                if pg.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                    return true;
                }
            }
            if e.to_string().contains("lock timeout") {
                return true;
            }
            source = e.source();
        }
        false
    }
}

async fn migrate_with(
    client: &mut Client,
    runner: refinery::Runner,
    lock_timeout: std::time::Duration,
) -> Result<Vec<String>, MigrateError> {
    let db = |doing| move |source| MigrateError::Db { doing, source };
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db("taking the migration lock"))?;
    client
        .batch_execute(&format!("SET lock_timeout = {}", lock_timeout.as_millis().max(1)))
        .await
        .map_err(db("setting the lock timeout"))?;
    let result = match schema_state(client).await {
        // Refinery refuses a history holding versions it does not know; a database a newer
        // build migrated has nothing for this one to do (a rollback deploy runs this).
        Ok(SchemaState::Ahead { unknown, .. }) => {
            tracing::warn!(newer = ?unknown, "the database is ahead of this build; nothing to apply");
            Ok(None)
        }
        Ok(_) => runner.run_async(client).await.map(Some).map_err(MigrateError::from),
        Err(e) => Err(e),
    };
    client.batch_execute("RESET lock_timeout").await.map_err(db("resetting the lock timeout"))?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db("releasing the migration lock"))?;
    Ok(result?.map(|report| report.applied_migrations().iter().map(describe).collect()).unwrap_or_default())
}

/// Loads the seed catalog in one transaction.
pub async fn seed(client: &mut Client) -> Result<(), MigrateError> {
    let db = |doing| move |source| MigrateError::Db { doing, source };
    let tx = client.transaction().await.map_err(db("starting the seed transaction"))?;
    tx.batch_execute(SEED_CATALOG).await.map_err(db("loading the seed catalog"))?;
    tx.commit().await.map_err(db("committing the seed catalog"))
}

/// Compares the database with the embedded migrations without changing anything.
pub async fn schema_state(client: &mut Client) -> Result<SchemaState, MigrateError> {
    let runner = runner();
    let history = client
        .query_one("SELECT to_regclass('refinery_schema_history') IS NOT NULL", &[])
        .await
        .map_err(|source| MigrateError::Db { doing: "looking for the migration history", source })?;
    let applied =
        if history.get::<_, bool>(0) { runner.get_applied_migrations_async(client).await? } else { Vec::new() };
    Ok(compare(&applied, runner.get_migrations()))
}

/// The comparison itself: `applied` from the history table, `embedded` from this build.
fn compare(applied: &[Migration], embedded: &[Migration]) -> SchemaState {
    let newest_known = embedded.iter().map(Migration::version).max().unwrap_or(0);
    let mut unknown = Vec::new();
    for done in applied {
        match embedded.iter().find(|m| m.version() == done.version()) {
            None if done.version() > newest_known => unknown.push(done),
            None => {
                return SchemaState::Diverged {
                    detail: format!(
                        "{} is applied but unknown to this build, and older than its newest migration V{newest_known}",
                        describe(done)
                    ),
                };
            }
            Some(m) if m.checksum() != done.checksum() || m.name() != done.name() => {
                return SchemaState::Diverged { detail: format!("{} was edited after it was applied", describe(m)) };
            }
            Some(_) => {}
        }
    }
    let pending: Vec<String> =
        embedded.iter().filter(|m| !applied.iter().any(|a| a.version() == m.version())).map(describe).collect();
    if !pending.is_empty() {
        return SchemaState::Behind { pending };
    }
    if unknown.is_empty() {
        let version = applied.iter().map(Migration::version).max().unwrap_or(0);
        return SchemaState::UpToDate { version };
    }
    unknown.sort_by_key(|m| m.version());
    SchemaState::Ahead { version: newest_known, unknown: unknown.into_iter().map(describe).collect() }
}

/// What start-up does about the schema, the same for every function: serve when the
/// database is up to date or ahead (warning with the newer versions), refuse when it is
/// behind or diverged. `Ok(None)`: the database could not be reached, so nothing was
/// checked; the caller starts anyway (answering 503s or retrying jobs until it is back)
/// rather than crash-looping cold starts over a blip.
pub async fn check_at_start(db: &crate::Database) -> Result<Option<SchemaState>, SchemaRefusal> {
    let conn = match db.primary.conn().await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(error = %e, "database unreachable at start-up; schema not checked");
            return Ok(None);
        }
    };
    let state = conn.schema_state().await?;
    match &state {
        SchemaState::UpToDate { version } => tracing::info!(version, "schema is up to date"),
        SchemaState::Ahead { version, unknown } => tracing::warn!(
            version,
            newer = ?unknown,
            "the database has migrations this build does not know (a newer build migrated it); starting"
        ),
        SchemaState::Behind { pending } => return Err(SchemaRefusal::Behind { pending: pending.clone() }),
        SchemaState::Diverged { detail } => return Err(SchemaRefusal::Diverged { detail: detail.clone() }),
    }
    Ok(Some(state))
}

/// The newest migration version built into this binary.
pub fn newest_version() -> i32 {
    runner().get_migrations().iter().map(Migration::version).max().unwrap_or(0)
}

/// This build's migrations, for tests that play a newer or older build.
#[cfg(feature = "test-support")]
pub(crate) fn embedded() -> Vec<Migration> {
    runner().get_migrations().clone()
}

fn describe(m: &Migration) -> String {
    format!("V{}__{}", m.version(), m.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: i32, sql: &str) -> Migration {
        Migration::unapplied(&format!("V{version}__m{version}"), sql).unwrap()
    }

    /// What the history table holds after `m` was applied.
    fn applied(m: &Migration) -> Migration {
        Migration::applied(m.version(), m.name().to_owned(), time::OffsetDateTime::UNIX_EPOCH, m.checksum())
    }

    #[test]
    fn the_history_is_compared_version_by_version() {
        let build = [file(1, "a"), file(2, "b")];
        let newer = file(3, "c");
        let history = |ms: &[&Migration]| ms.iter().map(|m| applied(m)).collect::<Vec<_>>();

        assert_eq!(compare(&history(&[&build[0], &build[1]]), &build), SchemaState::UpToDate { version: 2 });
        assert_eq!(
            compare(&history(&[&build[0], &build[1], &newer]), &build),
            SchemaState::Ahead { version: 2, unknown: vec!["V3__m3".into()] }
        );
        assert_eq!(compare(&history(&[&build[0]]), &build), SchemaState::Behind { pending: vec!["V2__m2".into()] });
        assert_eq!(
            compare(&history(&[&build[0], &newer]), &build),
            SchemaState::Behind { pending: vec!["V2__m2".into()] },
            "missing one of ours is behind, whatever else is there"
        );
        let edited = file(2, "b, edited");
        let state = compare(&history(&[&build[0], &edited, &newer]), &build);
        assert!(matches!(&state, SchemaState::Diverged { detail } if detail.contains("V2__m2")), "{state:?}");
        let older_unknown = file(0, "elsewhere");
        let state = compare(&history(&[&older_unknown, &build[0], &build[1]]), &build);
        assert!(matches!(&state, SchemaState::Diverged { detail } if detail.contains("V0__m0")), "{state:?}");
    }
}
