//! `migrate [--seed] [--check]`: applies the schema migrations to `DATABASE_URL`.
//!
//! `--seed` also loads the seed catalog (idempotent). `--check` changes nothing and exits
//! non-zero when the database is behind or has diverged. Deploys run this before shifting
//! traffic; the API refuses to start on a database in either state.

use anyhow::{Context, bail};
use store::migrate::{self, SchemaState};
use store::telemetry;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    telemetry::init(telemetry::LogFormat::from_env(telemetry::in_lambda()));
    let mut seed = false;
    let mut check = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--seed" => seed = true,
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: migrate [--seed] [--check]   (reads DATABASE_URL)");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}; usage: migrate [--seed] [--check]"),
        }
    }
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL is required")?;
    let shown = store::config::redact_url(&url);
    let (mut client, connection) =
        tokio_postgres::connect(&url, tokio_postgres::NoTls).await.with_context(|| format!("connecting to {shown}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "database connection closed");
        }
    });

    if check {
        return match migrate::schema_state(&mut client).await.context("reading the migration history")? {
            SchemaState::UpToDate { version } => {
                tracing::info!(version, database = %shown, "schema is up to date");
                Ok(())
            }
            other => bail!("schema is not current: {other:?}"),
        };
    }

    let applied = migrate::migrate(&mut client).await.context("applying migrations")?;
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
