use api::{ApiConfig, with_layers};
use axum::Router;
use axum::routing::get;

use crate::helpers::{TestApp, config, error_parts};

#[tokio::test]
async fn unknown_routes_are_json_404s_with_a_request_id() {
    let app = TestApp::spawn().await;
    for path in ["/nope", "/api", "/api/products/classic-tee/extra", "/%2e%2e/%2e%2e/etc/passwd"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(error_parts(response).await.0, "not_found");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_plain_caller_request_id_is_kept_and_a_hostile_one_replaced() {
    let app = TestApp::spawn().await;
    let kept = app.http.get(app.url("/health")).header("x-request-id", "edge-abc-123").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "edge-abc-123");

    let replaced = app.http.get(app.url("/health")).header("x-request-id", "a b <script>").send().await.unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, "a b <script>");
    assert_eq!(id.len(), 32);
    app.stop().await;
}

async fn boom() -> &'static str {
    panic!("handler bug")
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn test_config(extra: &[(&str, &str)]) -> ApiConfig {
    config("postgres://postgres@127.0.0.1:1/unused", extra)
}

#[tokio::test]
async fn a_panicking_handler_fails_only_its_own_request() {
    let routes = Router::new().route("/boom", get(boom)).route("/fine", get(|| async { "fine" }));
    let addr = serve(with_layers(routes, &test_config(&[]))).await;

    let boom = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
    assert_eq!(boom.status(), 500);
    assert_eq!(error_parts(boom).await.0, "internal");
    let fine = reqwest::get(format!("http://{addr}/fine")).await.unwrap();
    assert_eq!(fine.status(), 200);
}

#[tokio::test]
async fn a_request_that_outlives_the_time_limit_gets_a_503_not_a_hang() {
    let routes =
        Router::new().route("/slow", get(|| async { tokio::time::sleep(std::time::Duration::from_secs(30)).await }));
    let addr = serve(with_layers(routes, &test_config(&[("REQUEST_TIMEOUT_MS", "300")]))).await;
    let started = std::time::Instant::now();
    let response = reqwest::get(format!("http://{addr}/slow")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(error_parts(response).await.0, "timeout");
}
