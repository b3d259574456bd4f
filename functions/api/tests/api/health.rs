use std::time::{Duration, Instant};

use crate::helpers::{TestApp, config, error_parts};

#[tokio::test]
async fn liveness_answers_without_touching_the_database() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/health/live"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
    }
    app.stop().await;
}

#[tokio::test]
async fn readiness_checks_the_database_and_reports_the_pool() {
    let app = TestApp::spawn().await;
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["pools"]["primary"]["max_size"], 10);
    app.stop().await;
}

/// Serves an app whose database is `database_url` (which does not answer properly).
async fn spawn_without_database(database_url: &str) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let config = config(database_url, &[]);
    let app = api::App::build(&config).await.expect("starts even though the database is down");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    (addr, server)
}

async fn assert_unavailable_fast(addr: std::net::SocketAddr, path: &str) {
    let started = Instant::now();
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503, "{path}");
    assert!(response.headers().contains_key("retry-after"), "{path}: 503 carries Retry-After");
    assert_eq!(error_parts(response).await.0, "database_unavailable");
    assert!(took < Duration::from_secs(2), "{path} took {took:?}");
}

#[tokio::test]
async fn a_refusing_database_gives_503_with_retry_after_within_two_seconds() {
    let (addr, server) = spawn_without_database("postgres://postgres@127.0.0.1:1/nothing").await;
    for path in ["/health/ready", "/api/products", "/api/products/classic-tee"] {
        assert_unavailable_fast(addr, path).await;
    }
    server.abort();
}

#[tokio::test]
async fn a_hanging_database_gives_503_within_two_seconds_not_a_hang() {
    let (port, tarpit) = db::testing::tarpit().await;
    let (addr, server) = spawn_without_database(&format!("postgres://postgres@127.0.0.1:{port}/nothing")).await;
    assert_unavailable_fast(addr, "/api/products").await;
    assert_unavailable_fast(addr, "/health/ready").await;
    server.abort();
    tarpit.abort();
}

#[tokio::test]
async fn the_api_refuses_to_start_on_a_database_behind_its_migrations() {
    let db = db::testing::TestDb::empty().await;
    let err = api::App::build(&config(&db.url, &[])).await.err().expect("start-up must fail");
    assert!(format!("{err:#}").contains("missing migrations"), "{err:#}");
    db.drop_db().await;
}
