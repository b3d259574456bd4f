//! Catalog writes and the edge's copies: a purge can ask to be repeated (`again_after_secs`),
//! which removes a response computed before the write that the edge stored after the first
//! purge; and the API's long, edge-only lifetime (`CDN-Cache-Control`) stays at the edge.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use support::{Harness, SECRET, answer, body, header, request_with_body, x_cache};

/// us.test answers catalog reads with the price of the moment: `old` until the test says the
/// origin has seen the write. Returns the number of origin answers so far.
fn catalog_origin(h: &Harness, seen_write: Arc<AtomicUsize>) -> Arc<AtomicUsize> {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    h.origins().set("us.test", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        let price = if seen_write.load(Ordering::SeqCst) == 1 { "new" } else { "old" };
        answer(
            200,
            &[
                ("cache-control", "public, max-age=30"),
                ("cdn-cache-control", "public, max-age=3600, stale-while-revalidate=7200"),
                ("content-type", "application/json"),
            ],
            &format!("{{\"price\":\"{price}\"}}"),
        )
    });
    calls
}

fn purge(body: &str) -> http::Request<bytes::Bytes> {
    let auth = format!("Bearer {SECRET}");
    request_with_body(
        Method::POST,
        "/__edge/purge",
        &[("content-type", "application/json"), ("authorization", auth.as_str())],
        body,
    )
}

#[tokio::test]
async fn a_repeated_purge_removes_an_old_answer_stored_between_the_two_purges() {
    let h = Harness::new(&[]);
    let seen_write = Arc::new(AtomicUsize::new(0));
    let calls = catalog_origin(&h, seen_write.clone());
    assert_eq!(body(&h.get("/api/products").await), r#"{"price":"old"}"#);
    assert_eq!(body(&h.get("/api/products/classic-tee").await), r#"{"price":"old"}"#);

    // The write commits; the API purges and asks for a repeat in 12 s.
    let handled =
        h.send(purge(r#"{"keys":["/api/products"],"prefixes":["/api/products/"],"again_after_secs":12}"#), None).await;
    assert_eq!(handled.response.status(), StatusCode::OK, "{}", body(&handled.response));
    assert!(body(&handled.response).contains("\"again_after_secs\":12"), "{}", body(&handled.response));
    let again = handled.purge_again.expect("the repeat is handed to the host");
    assert_eq!(again.after(), Duration::from_secs(12));

    // Right after the purge the edge refills from an origin that has not seen the write yet
    // (another instance inside its version check interval): the old price is stored again.
    let refilled = h.get("/api/products").await;
    assert_eq!((x_cache(&refilled), body(&refilled)), ("MISS", r#"{"price":"old"}"#));
    h.get("/api/products/classic-tee").await;
    assert_eq!(x_cache(&h.get("/api/products").await), "HIT");

    // Every origin knows the new price now; the cached old one would live for an hour.
    seen_write.store(1, Ordering::SeqCst);
    h.clock().advance(Duration::from_secs(12));
    assert_eq!(body(&h.get("/api/products").await), r#"{"price":"old"}"#, "still cached");
    h.edge.purge_again(&h.platform, again).await;
    for path in ["/api/products", "/api/products/classic-tee"] {
        let after = h.get(path).await;
        assert_eq!((x_cache(&after), body(&after)), ("MISS", r#"{"price":"new"}"#), "{path}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_purge_without_again_after_is_done_once() {
    let h = Harness::new(&[]);
    catalog_origin(&h, Arc::new(AtomicUsize::new(0)));
    h.get("/api/products").await;
    for body_text in [r#"{"keys":["/api/products"]}"#, r#"{"keys":["/api/products"],"again_after_secs":null}"#] {
        let handled = h.send(purge(body_text), None).await;
        assert_eq!(handled.response.status(), StatusCode::OK);
        assert!(handled.purge_again.is_none(), "{body_text}");
        assert!(body(&handled.response).contains("\"again_after_secs\":null"));
    }
}

#[tokio::test]
async fn bad_again_after_values_are_refused_whole_with_a_precise_400() {
    let h = Harness::new(&[]);
    catalog_origin(&h, Arc::new(AtomicUsize::new(0)));
    h.get("/api/products").await;
    let cases = [
        ("-1", "negative"),
        ("-0.5", "negative"),
        ("26", "too long"),
        ("86400", "too long"),
        ("18446744073709551616", "too long"),
        ("1e9", "too long"),
        ("0", "leave it out"),
        ("1.5", "not whole seconds"),
        ("\"5\"", "not a number"),
        ("true", "not a number"),
        ("[5]", "not a number"),
        ("{\"secs\":5}", "not a number"),
    ];
    for (value, why) in cases {
        let handled = h.send(purge(&format!(r#"{{"keys":["/api/products"],"again_after_secs":{value}}}"#)), None).await;
        let response = handled.response;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{value}");
        let error: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(error["error"]["code"], "invalid_again_after", "{value}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("from 1 to 25") && message.contains(why), "{value}: {message}");
        assert!(handled.purge_again.is_none());
    }
    assert_eq!(x_cache(&h.get("/api/products").await), "HIT", "a refused purge purges nothing");
}

#[tokio::test]
async fn the_edge_keeps_the_cdn_lifetime_and_hands_browsers_the_short_one() {
    let h = Harness::new(&[]);
    let calls = catalog_origin(&h, Arc::new(AtomicUsize::new(0)));
    let first = h.get("/api/products").await;
    assert_eq!(header(&first, "cache-control"), Some("public, max-age=30"));
    assert_eq!(header(&first, "cdn-cache-control"), None, "the edge's lifetime stops at the edge");

    // Past the browsers' 30 s the edge still has it fresh: CDN-Cache-Control rules here.
    h.clock().advance(Duration::from_secs(600));
    let hit = h.get("/api/products").await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(header(&hit, "cache-control"), Some("public, max-age=30"));
    assert_eq!(header(&hit, "cdn-cache-control"), None);
    h.clock().advance(Duration::from_secs(3000));
    assert_eq!(x_cache(&h.get("/api/products").await), "STALE", "then its stale-while-revalidate");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
