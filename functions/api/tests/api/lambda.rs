//! The Lambda path: API Gateway (HTTP API, payload v2) events become requests for the same
//! router. No Lambda runtime is needed: `lambda_http` parses the event exactly as it would
//! inside Lambda, and the router answers it.

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::TestApp;

/// An API Gateway HTTP API (v2) event, shaped like the ones AWS sends.
fn event(method: &str, path: &str, body: Option<&str>, request_id: &str) -> String {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
            "user-agent": "curl/8.5.0",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-proto": "https"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0"
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795939200000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
    .to_string()
}

async fn invoke(app: &TestApp, event_json: &str) -> (u16, http::HeaderMap, Value) {
    let request = lambda_http::request::from_str(event_json).expect("a valid API Gateway v2 event");
    let request = request.map(|body| Body::from(body.to_vec()));
    let router = api::router(app.app_state.clone(), &crate::helpers::config(&app.db.url, &[]), None);
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, headers, body)
}

#[tokio::test]
async fn an_api_gateway_v2_event_for_a_product_is_answered_by_the_router() {
    let app = TestApp::spawn().await;
    let (status, headers, body) =
        invoke(&app, &event("GET", "/api/products/classic-tee", None, "JKJaXmPLvHcESHA=")).await;
    assert_eq!(status, 200);
    assert_eq!(body["product"]["slug"], "classic-tee");
    assert_eq!(headers["x-request-id"], "JKJaXmPLvHcESHA=", "API Gateway's request id names the request");
    app.stop().await;
}

#[tokio::test]
async fn an_api_gateway_v2_event_with_a_json_body_gets_a_quote() {
    let app = TestApp::spawn().await;
    let variant = app.variant_id("ST-TEE-BLK-L").await;
    let body = json!({"variant_id": variant, "method": "dtg", "placements": [{"location": "front", "width_in": 10, "height_in": 10}], "quantity": 2}).to_string();
    let (status, headers, response) =
        invoke(&app, &event("POST", "/api/price/quote", Some(&body), "K3yXv0rzIAMEVbA")).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(headers["x-request-id"], "K3yXv0rzIAMEVbA");
    // (12.99 + 5.00 + 100 × 0.03) × 2 = 41.98
    assert_eq!(response["quote"]["total_cents"], 4198);

    let (status, _, response) =
        invoke(&app, &event("POST", "/api/price/quote", Some("{oops"), "K3yXv0rzIAMEVbB")).await;
    assert_eq!(status, 400);
    assert_eq!(response["error"]["request_id"], "K3yXv0rzIAMEVbB");
    app.stop().await;
}
