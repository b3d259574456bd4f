//! What the worker checks before it takes jobs: the schema (expand-first deploys: it runs
//! on a database a newer build migrated, never on one behind it or with an edited history),
//! the model file's SHA-256, and its configuration. Real Postgres and the real model
//! (`make test` provides both).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use cutout::{ModelDigest, ModelName, ModelSpec};
use db::testing::TestDb;
use remove_bg::{Worker, WorkerConfig};
use runtime::Metrics;
use runtime::metrics::{ManualClock, MemorySink, Service};

/// The worker's environment as a deployment sets it, over `database_url`.
fn env(database_url: &str, extra: &[(&str, &str)]) -> config::Env {
    let objects = std::env::temp_dir().join(format!("remove-bg-startup-{}", uuid::Uuid::new_v4().simple()));
    let mut env = config::Env::from_pairs([
        ("DATABASE_URL", database_url.to_owned()),
        ("LOCAL_OBJECTS_DIR", objects.display().to_string()),
    ]);
    if let Some(dir) = std::env::var_os("MODELS_DIR") {
        env = env.with("MODELS_DIR", dir.to_string_lossy().into_owned());
    }
    for (key, value) in extra {
        env = env.with(key, *value);
    }
    env
}

fn u2netp() -> PathBuf {
    let dirs: Vec<PathBuf> =
        std::env::var_os("MODELS_DIR").map(PathBuf::from).into_iter().chain(cutout::default_search_dirs()).collect();
    ModelSpec::Named(ModelName::U2netp).resolve_in(&dirs).expect("the u2netp model: run `make model`")
}

async fn build(env: &config::Env) -> anyhow::Result<Worker> {
    Worker::build(&WorkerConfig::from_env(env).expect("a valid configuration")).await
}

#[tokio::test]
async fn the_worker_starts_on_a_database_a_newer_build_migrated_and_reports_its_pool() {
    let future = format!("V{}__future", db::migrate::newest_version() + 1);
    let db = TestDb::migrated_by_newer_build(&[(&future, "ALTER TABLE jobs ADD COLUMN future_note TEXT")]).await;
    let config = WorkerConfig::from_env(&env(&db.url, &[("METRICS", "emf"), ("STAGE", "test")])).unwrap();
    let sink = Arc::new(MemorySink::default());
    let metrics = Metrics::with_output(
        &config.metrics,
        Service::RemoveBg,
        sink.clone(),
        Arc::new(ManualClock::at(SystemTime::now())),
    );
    let worker = Worker::build_with_metrics(&config, metrics).await.expect("old code starts on an expanded schema");
    let (digest, _) = worker.engine.verified_sha256().expect("u2netp's file is checked by default");
    assert_eq!(Some(digest), ModelName::U2netp.sha256());

    let lines: Vec<serde_json::Value> = sink.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "the pool gauges once after start-up: {lines:?}");
    assert_eq!((lines[0]["Service"].as_str(), lines[0]["Stage"].as_str()), (Some("remove-bg"), Some("test")));
    assert_eq!(lines[0]["DbConnectionsOpen"], 1, "the schema check's connection stays pooled");
    db.drop_db().await;
}

#[tokio::test]
async fn the_worker_refuses_a_database_missing_its_latest_migration() {
    let newest = db::migrate::newest_version();
    let db = TestDb::migrated_to(newest - 1).await;
    let err = format!("{:#}", build(&env(&db.url, &[])).await.err().expect("start-up must fail"));
    assert!(err.contains("missing migrations") && err.contains(&format!("V{newest}__")), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn the_worker_refuses_a_database_whose_applied_migration_changed() {
    let db = TestDb::migrated().await;
    db.client()
        .await
        .batch_execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1")
        .await
        .unwrap();
    let err = format!("{:#}", build(&env(&db.url, &[])).await.err().expect("start-up must fail"));
    assert!(err.contains("edited after it was applied"), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn the_worker_refuses_a_model_file_that_is_not_the_one_model_sha256_names() {
    let db = TestDb::migrated().await;
    let other = ModelDigest::of(b"some other model");
    let err =
        build(&env(&db.url, &[("MODEL_SHA256", other.to_string().as_str())])).await.err().expect("start-up must fail");
    let err = format!("{err:#}");
    let found = ModelDigest::of(&std::fs::read(u2netp()).unwrap());
    assert!(err.contains(&format!("expects {other}")) && err.contains(&format!("has SHA-256 {found}")), "{err}");
    assert!(err.contains("MODEL_SHA256"), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn a_model_sha256_that_is_not_a_digest_is_a_configuration_error() {
    for bad in ["abc", "sha256:309c", &"z".repeat(64)] {
        let err = WorkerConfig::from_env(&env("postgres://postgres@127.0.0.1:1/none", &[("MODEL_SHA256", bad)]))
            .expect_err("a malformed digest is refused before anything starts");
        assert_eq!(err.key(), "MODEL_SHA256", "{bad}: {err}");
        assert!(err.to_string().contains("64 hexadecimal digits"), "{err}");
    }
}

#[test]
fn the_worker_reads_its_metric_settings_once_with_the_rest() {
    let config = WorkerConfig::from_env(&env("postgres://postgres@127.0.0.1:1/none", &[])).unwrap();
    assert!(!Metrics::new(&config.metrics, Service::RemoveBg).is_on(), "off outside Lambda by default");
    let err =
        WorkerConfig::from_env(&env("postgres://postgres@127.0.0.1:1/none", &[("STAGE", "no spaces")])).unwrap_err();
    assert_eq!(err.key(), "STAGE");
}
