//! Schema migrations: the SQL files in `migrations/`, embedded at build time and applied in
//! version order by refinery, each file and its history row in one transaction.
//!
//! Start-up never ignores a migration problem (the old system did): [`schema_state`] tells
//! the API whether the database is behind the code or was migrated with a file that has
//! since been edited, and the API refuses to serve either way.

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
    /// Migrations this binary has that the database lacks.
    Behind {
        pending: Vec<String>,
    },
    /// An applied migration whose file changed afterwards, or one this binary does not know.
    Diverged {
        detail: String,
    },
}

fn runner() -> refinery::Runner {
    embedded::migrations::runner().set_grouped(false).set_abort_divergent(true).set_abort_missing(true)
}

/// Applies every pending migration. Returns the names applied.
pub async fn migrate(client: &mut Client) -> Result<Vec<String>, MigrateError> {
    let db = |doing| move |source| MigrateError::Db { doing, source };
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(db("taking the migration lock"))?;
    let result = runner().run_async(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db("releasing the migration lock"))?;
    let report = result?;
    Ok(report.applied_migrations().iter().map(describe).collect())
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
    let embedded = runner.get_migrations();
    for done in &applied {
        match embedded.iter().find(|m| m.version() == done.version()) {
            None => {
                return Ok(SchemaState::Diverged {
                    detail: format!("{} is applied but unknown to this build", describe(done)),
                });
            }
            Some(m) if m.checksum() != done.checksum() || m.name() != done.name() => {
                return Ok(SchemaState::Diverged {
                    detail: format!("{} was edited after it was applied", describe(m)),
                });
            }
            Some(_) => {}
        }
    }
    let pending: Vec<String> =
        embedded.iter().filter(|m| !applied.iter().any(|a| a.version() == m.version())).map(describe).collect();
    if pending.is_empty() {
        let version = applied.iter().map(Migration::version).max().unwrap_or(0);
        Ok(SchemaState::UpToDate { version })
    } else {
        Ok(SchemaState::Behind { pending })
    }
}

fn describe(m: &Migration) -> String {
    format!("V{}__{}", m.version(), m.name())
}
