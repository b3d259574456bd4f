//! What the API does at start-up about the schema (expand-first deploys), and the metric
//! lines it writes: the pool gauges after start-up and on the first request of a minute.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use db::testing::TestDb;
use runtime::metrics::{ManualClock, MemorySink, Service};
use runtime::{Metrics, MetricsConfig};
use serde_json::Value;

use crate::helpers::config;

#[tokio::test]
async fn the_api_starts_on_a_database_a_newer_build_migrated() {
    let (name, sql) = db::testing::future_migration();
    let db = TestDb::migrated_by_newer_build(&[(&name, sql)]).await;
    let state = db::migrate::schema_state(&mut db.client().await).await.unwrap();
    assert!(state.allows_serving(), "{state:?}");

    let app = api::App::build(&config(&db.url, &[])).await.expect("old code starts on an expanded schema");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    let ready = reqwest::get(format!("http://{addr}/health/ready")).await.unwrap();
    assert_eq!(ready.status(), 200, "and serves");
    server.abort();
    db.drop_db().await;
}

#[tokio::test]
async fn the_api_refuses_a_database_missing_its_latest_migration() {
    let newest = db::migrate::newest_version();
    let db = TestDb::migrated_to(newest - 1).await;
    let err = api::App::build(&config(&db.url, &[])).await.err().expect("start-up must fail");
    let err = format!("{err:#}");
    assert!(err.contains("missing migrations") && err.contains(&format!("V{newest}__")), "{err}");
    db.drop_db().await;
}

#[tokio::test]
async fn the_api_refuses_a_database_whose_applied_migration_changed() {
    let (name, sql) = db::testing::future_migration();
    // Even on a database that is otherwise ahead: an edited file is never run past.
    let db = TestDb::migrated_by_newer_build(&[(&name, sql)]).await;
    db.client()
        .await
        .batch_execute("UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1")
        .await
        .unwrap();
    let err = api::App::build(&config(&db.url, &[])).await.err().expect("start-up must fail");
    assert!(format!("{err:#}").contains("edited after it was applied"), "{err:#}");
    db.drop_db().await;
}

fn lines(sink: &MemorySink) -> Vec<Value> {
    sink.lines().iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[tokio::test]
async fn with_metrics_on_the_api_writes_pool_gauges_after_start_up_and_once_a_minute_per_pool() {
    let db = TestDb::seeded().await;
    // A replica URL that differs from the primary's text but reaches the same database.
    let replica = format!("{}?application_name=stolentee-replica", db.url);
    let config = config(&db.url, &[("DATABASE_READ_URL", replica.as_str()), ("METRICS", "emf"), ("STAGE", "test")]);
    assert_eq!(config.metrics, MetricsConfig::emf("test").unwrap());
    let sink = Arc::new(MemorySink::default());
    let clock = Arc::new(ManualClock::at(SystemTime::now()));
    let metrics = Metrics::with_output(&config.metrics, Service::Api, sink.clone(), clock.clone());
    let app = api::App::build_with_metrics(&config, metrics).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });

    let after_start = lines(&sink);
    assert_eq!(after_start.len(), 2, "one line per pool after start-up: {after_start:?}");
    let pools: Vec<&str> = after_start.iter().map(|l| l["Pool"].as_str().unwrap()).collect();
    assert_eq!(pools, ["primary", "replica"]);
    // The schema check held a primary connection; the pool keeps it.
    assert_eq!(after_start[0]["DbConnectionsOpen"], 1);

    let products = reqwest::get(format!("http://{addr}/api/products")).await.unwrap();
    assert_eq!(products.status(), 200);
    assert_eq!(sink.lines().len(), 2, "the same minute: nothing more");

    clock.advance(Duration::from_secs(60));
    let missing = reqwest::get(format!("http://{addr}/no/such/route")).await.unwrap();
    assert_eq!(missing.status(), 404, "any request counts, whatever its outcome");
    let all = lines(&sink);
    assert_eq!(all.len(), 4, "the first request of the next minute reports again: {all:?}");
    for line in &all[2..] {
        assert_eq!((line["Service"].as_str(), line["Stage"].as_str()), (Some("api"), Some("test")));
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "StolenTee");
        assert_eq!(line["DbConnectionsInUse"], 0, "between requests nothing is checked out");
        assert_eq!(line["DbConnectionsWaiting"], 0);
    }
    let replica_line = all[2..].iter().find(|l| l["Pool"] == "replica").expect("a replica line");
    assert_eq!(replica_line["DbConnectionsOpen"], 1, "the catalog read opened the replica's connection");
    server.abort();
    db.drop_db().await;
}

#[tokio::test]
async fn with_metrics_off_the_api_writes_nothing() {
    let db = TestDb::seeded().await;
    let config = config(&db.url, &[]);
    assert!(!Metrics::new(&config.metrics, Service::Api).is_on(), "off outside Lambda by default");
    let sink = Arc::new(MemorySink::default());
    let metrics =
        Metrics::with_output(&config.metrics, Service::Api, sink.clone(), Arc::new(ManualClock::at(SystemTime::now())));
    let app = api::App::build_with_metrics(&config, metrics).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    assert_eq!(reqwest::get(format!("http://{addr}/api/products")).await.unwrap().status(), 200);
    assert!(sink.lines().is_empty());
    server.abort();
    db.drop_db().await;
}
