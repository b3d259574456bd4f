//! Production mode and the closed origin: `APP_ENV=production` needs every secret and the
//! edge's, whatever the host; only the edge may call the origin, and only the edge's word on
//! the client's IP counts.

use std::collections::HashMap;

use api::{ApiConfig, App};
use config::{ConfigError, Env};
use serde_json::{Value, json};

use crate::helpers::{EDGE_SECRET, TestApp, edge_client};

/// A complete production environment, outside Lambda. The database is unreachable on
/// purpose: start-up does not need it, and routes that do answer 503.
fn production_env() -> Vec<(&'static str, String)> {
    vec![
        ("APP_ENV", "production".into()),
        ("API_BIND", "127.0.0.1:0".into()),
        ("DATABASE_URL", "postgres://api:pw@127.0.0.1:1/shop?sslmode=require".into()),
        ("MAX_CONCURRENCY", "10".into()),
        ("DB_MAX_CONNECTIONS", "20".into()),
        ("JWT_KEYS", format!("k1:{}", "j".repeat(40))),
        ("ORDER_TOKEN_SECRET", "o".repeat(40)),
        ("STRIPE_SECRET_KEY", format!("sk_test_{}", "s".repeat(24))),
        ("STRIPE_WEBHOOK_SECRET", format!("whsec_{}", "w".repeat(32))),
        ("OBJECT_STORE", "s3".into()),
        ("S3_BUCKET", "stolentee-media".into()),
        ("S3_REGION", "us-west-2".into()),
        ("QUEUE", "sqs".into()),
        ("SQS_QUEUE_URL", "https://sqs.us-west-2.amazonaws.com/123456789012/cutouts".into()),
        ("EDGE_ORIGIN_SECRETS", EDGE_SECRET.into()),
        ("EDGE_PURGE_URL", "https://edge.example.com/__edge/purge".into()),
        ("EDGE_PURGE_SECRET", "p".repeat(40)),
    ]
}

fn parse(vars: &[(&'static str, String)]) -> Result<ApiConfig, ConfigError> {
    ApiConfig::from_env(&Env::from_pairs(vars.iter().map(|(k, v)| (k.to_string(), v.clone()))))
}

#[test]
fn production_refuses_to_start_without_any_one_of_its_requirements_whatever_the_host() {
    let complete = production_env();
    assert!(parse(&complete).is_ok(), "{:?}", parse(&complete).err());
    for required in [
        "MAX_CONCURRENCY",
        "JWT_KEYS",
        "ORDER_TOKEN_SECRET",
        "STRIPE_SECRET_KEY",
        "OBJECT_STORE",
        "QUEUE",
        "EDGE_ORIGIN_SECRETS",
        "EDGE_PURGE_URL",
    ] {
        let without: Vec<_> = complete.iter().filter(|(k, _)| *k != required).cloned().collect();
        let err = parse(&without).expect_err(required);
        assert_eq!(err.key(), required, "without {required}: {err}");
    }
    // Local stand-ins, a plain database connection and pretend payments are refused.
    for (key, value) in [
        ("OBJECT_STORE", "local"),
        ("QUEUE", "memory"),
        ("DATABASE_URL", "postgres://api:pw@db.example.com/shop"),
        ("PAYMENTS_REQUIRE_STRIPE", "false"),
    ] {
        let mut vars: Vec<_> = complete.iter().filter(|(k, _)| *k != key).cloned().collect();
        vars.push((key, value.into()));
        let err = parse(&vars).expect_err(key);
        assert_eq!(err.key(), key, "{key}={value}: {err}");
    }
    // The same gaps are fine in development: random keys and local stand-ins.
    let development: Vec<(&'static str, String)> =
        vec![("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/x".into())];
    assert!(parse(&development).is_ok());
}

async fn serve(config: &ApiConfig) -> (String, tokio::task::JoinHandle<()>) {
    let app = App::build(config).await.expect("the app starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app.router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await.unwrap()
    });
    (format!("http://{addr}"), server)
}

#[tokio::test]
async fn in_production_the_origin_answers_only_the_edge_and_liveness() {
    let config = parse(&production_env()).unwrap();
    let (base, server) = serve(&config).await;
    let direct = reqwest::Client::new();

    for path in ["/api/products", "/health/ready", "/api/auth/me", "/no/such/route"] {
        let response = direct.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 403, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "origin_forbidden", "{path}: {body}");
    }
    // A wrong or truncated secret is no better than none.
    for wrong in ["nope", &EDGE_SECRET[..EDGE_SECRET.len() - 1]] {
        let response = direct.get(format!("{base}/api/products")).header("x-edge-auth", wrong).send().await.unwrap();
        assert_eq!(response.status(), 403);
    }
    let quote = json!({"variant_id": "00000000-0000-0000-0000-000000000000", "quantity": 1});
    let response = direct.post(format!("{base}/api/price/quote")).json(&quote).send().await.unwrap();
    assert_eq!(response.status(), 403, "writes too");

    // Liveness says nothing and answers anyone (load balancers, smoke tests).
    assert_eq!(direct.get(format!("{base}/health/live")).send().await.unwrap().status(), 200);
    // The edge gets through (the database is unreachable here, hence 503, not 403).
    let through_edge = edge_client().get(format!("{base}/health/ready")).send().await.unwrap();
    assert_eq!(through_edge.status(), 503);
    // No development route exists in production.
    let dev = edge_client().post(format!("{base}/api/dev/payments/pi_1/confirm")).send().await.unwrap();
    assert_eq!(dev.status(), 404);
    server.abort();
}

#[tokio::test]
async fn development_mounts_the_dev_payment_route_production_never_does() {
    let app = TestApp::spawn().await;
    let response = app.http.post(app.url("/api/dev/payments/pi_missing/confirm")).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    // The route exists: it answers about the missing intent, not about a missing route.
    assert_ne!(body["error"]["message"], "route not found", "{body}");
    let unknown = app.http.post(app.url("/api/dev/nothing/here/at-all")).send().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["error"]["message"], "route not found", "the comparison can fail: {unknown}");
    app.stop().await;
}

/// Failed sign-ins recorded for `email`, with the client IP each was counted under.
async fn counted_ips(app: &TestApp, email: &str) -> Vec<String> {
    let client = app.db.client().await;
    let rows = client.query("SELECT client_ip FROM login_attempts WHERE email = $1", &[&email]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn a_client_ip_header_counts_only_on_requests_the_edge_authenticated() {
    let app = TestApp::spawn().await;
    let login = |email: &'static str| json!({"email": email, "password": "wrong password, surely"});

    // Through the edge: the edge's header names the client.
    let response = app
        .http
        .post(app.url("/api/auth/login"))
        .header("x-client-ip", "198.51.100.7")
        .json(&login("via-edge@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(counted_ips(&app, "via-edge@example.com").await, ["198.51.100.7"]);

    // Straight to the origin with a forged header (and a wrong secret): the header is ignored,
    // the caller is the address it connected from.
    for secret in [None, Some("not-the-secret")] {
        let mut request = reqwest::Client::new()
            .post(app.url("/api/auth/login"))
            .header("x-client-ip", "203.0.113.99")
            .json(&login("direct@example.com"));
        if let Some(secret) = secret {
            request = request.header("x-edge-auth", secret);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    assert_eq!(counted_ips(&app, "direct@example.com").await, ["127.0.0.1", "127.0.0.1"]);
    app.stop().await;
}

#[test]
fn unknown_app_env_values_are_refused() {
    let mut vars: HashMap<&str, String> = HashMap::new();
    vars.insert("APP_ENV", "staging".into());
    vars.insert("DATABASE_URL", "postgres://postgres@127.0.0.1/x".into());
    let err = ApiConfig::from_env(&Env::from_pairs(vars.iter().map(|(k, v)| (k.to_string(), v.clone())))).unwrap_err();
    assert_eq!(err.key(), "APP_ENV");
}
