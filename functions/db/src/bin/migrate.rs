//! `migrate [--seed] [--check]`: applies the schema migrations to `DATABASE_URL`.
//!
//! `--seed` also loads the seed catalog (idempotent). `--check` changes nothing and exits
//! non-zero when the database is behind or has diverged. Deploys run this before shifting
//! traffic; the functions refuse to start on a database that is behind, and run on one that
//! is ahead (a newer build migrated it), where this tool also has nothing to do. It connects the way the
//! functions do (TLS with `sslmode=require`, `DB_SSL_ROOT_CERT`), without a statement timeout.

use anyhow::{Context, bail};
use config::Env;
use db::migrate::{self, SchemaState};
use db::{Connector, DbConfig, Purpose};
use runtime::telemetry;

const USAGE: &str = "usage: migrate [--seed] [--check]   (reads DATABASE_URL and the DB_* settings)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process();
    telemetry::init_from(&env);
    let mut seed = false;
    let mut check = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--seed" => seed = true,
            "--check" => check = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; {USAGE}"),
        }
    }
    const LOCK_ATTEMPTS: u64 = 4;
    let config = DbConfig::from_env(&env).context("reading the database settings")?;
    let connector = Connector::new(&config, &config.primary_url, Purpose::Maintenance)?;
    let shown = connector.shown().to_owned();
    let mut client = connector.connect("connecting to run migrations").await?;
    tracing::info!(database = %shown, tls = connector.uses_tls(), "connected");

    if check {
        return match migrate::schema_state(&mut client).await.context("reading the migration history")? {
            SchemaState::UpToDate { version } => {
                tracing::info!(version, database = %shown, "schema is up to date");
                Ok(())
            }
            SchemaState::Ahead { version, unknown } => {
                tracing::warn!(version, newer = ?unknown, database = %shown, "the database is ahead of this build; it can run on it");
                Ok(())
            }
            other => bail!("schema is not current: {other:?}"),
        };
    }

    // A migration that could not get its lock within the lock timeout applied nothing; the
    // long transaction in its way usually ends within seconds, so try a few times.
    let mut attempt = 1;
    let applied = loop {
        match migrate::migrate(&mut client).await {
            Ok(applied) => break applied,
            Err(e) if e.is_lock_timeout() && attempt < LOCK_ATTEMPTS => {
                tracing::warn!(attempt, error = %e, "a migration could not get its lock in time; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(2 * attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e).context("applying migrations"),
        }
    };
    if applied.is_empty() {
        tracing::info!(database = %shown, "no pending migrations");
    } else {
        tracing::info!(database = %shown, applied = ?applied, "applied migrations");
    }
    if seed {
        migrate::seed(&mut client).await.context("loading the seed catalog")?;
        tracing::info!("seed catalog loaded");
    }
    Ok(())
}
