//! Caching, as the storefront experiences it: catalog GETs are answered from the edge under
//! normalised keys, stale entries are served while exactly one refresh runs, personal
//! requests and cookie-setting responses never touch the cache, every response says
//! `X-Cache`, and the API can purge what a catalog write changed.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use support::{Harness, SECRET, answer, body, header, request, request_with_body, x_cache};

const CATALOG: &str = "public, max-age=60, stale-while-revalidate=120";

/// us.test answers every catalog request with a counter, so a test can tell a fresh origin
/// answer from a cached one.
fn counting_catalog(h: &Harness, cache_control: &'static str) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    h.origins().set("us.test", move |req| {
        let i = counter.fetch_add(1, Ordering::SeqCst) + 1;
        answer(
            200,
            &[("cache-control", cache_control), ("content-type", "application/json")],
            &format!("{{\"n\":{i},\"uri\":\"{}\"}}", req.uri()),
        )
    });
    n
}

#[tokio::test]
async fn a_catalog_get_is_a_miss_then_a_hit() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);

    let first = h.get("/api/products").await;
    assert_eq!((first.status(), x_cache(&first)), (StatusCode::OK, "MISS"));
    let second = h.get("/api/products").await;
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(body(&second), body(&first));
    assert_eq!(header(&second, "age"), Some("0"));
    assert_eq!(h.origins().total(), 1);
}

#[tokio::test]
async fn tracking_parameters_and_query_order_do_not_split_the_cache() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);

    h.get("/api/products?page=2&sort=price").await;
    for variant in [
        "/api/products?sort=price&page=2",
        "/api/products?utm_source=newsletter&sort=price&page=2&utm_campaign=xmas",
        "/api/products?gclid=abc&page=2&fbclid=def&sort=price",
    ] {
        assert_eq!(x_cache(&h.get(variant).await), "HIT", "{variant}");
    }
    assert_eq!(h.origins().total(), 1);
    // The origin saw the normalised query, without the tracking parameters.
    assert!(h.origins().last_call().uri.ends_with("/api/products?page=2&sort=price"));
    // A different real parameter is a different entry.
    assert_eq!(x_cache(&h.get("/api/products?page=3&sort=price").await), "MISS");
}

#[tokio::test]
async fn a_stale_entry_is_served_while_exactly_one_refresh_runs() {
    let h = Harness::new(&[]);
    let n = counting_catalog(&h, CATALOG);
    h.get("/api/products").await;

    h.clock().advance(Duration::from_secs(61));
    let stale1 = h.send(request(Method::GET, "/api/products", &[]), None).await;
    let stale2 = h.send(request(Method::GET, "/api/products", &[]), None).await;
    assert_eq!(x_cache(&stale1.response), "STALE");
    assert_eq!(x_cache(&stale2.response), "STALE");
    assert!(body(&stale1.response).contains("\"n\":1"));
    let job = stale1.revalidate.expect("the first stale hit starts a refresh");
    assert!(stale2.revalidate.is_none(), "only one refresh per key at a time");
    assert_eq!(n.load(Ordering::SeqCst), 1, "stale answers do not wait for the origin");

    h.edge.revalidate(&h.platform, job).await;
    let fresh = h.get("/api/products").await;
    assert_eq!(x_cache(&fresh), "HIT");
    assert!(body(&fresh).contains("\"n\":2"));

    // Past the stale window the entry is no use: a plain miss.
    h.clock().advance(Duration::from_secs(181));
    assert_eq!(x_cache(&h.get("/api/products").await), "MISS");
}

#[tokio::test]
async fn a_failed_refresh_keeps_serving_stale_and_allows_another_try() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);
    h.get("/api/products").await;
    h.clock().advance(Duration::from_secs(61));
    h.origins().set("us.test", |_| answer(503, &[], "down"));
    h.origins().set("eu.test", |_| answer(503, &[], "down"));

    let job = h.send(request(Method::GET, "/api/products", &[]), None).await.revalidate.unwrap();
    h.edge.revalidate(&h.platform, job).await;
    let again = h.send(request(Method::GET, "/api/products", &[]), None).await;
    assert_eq!(x_cache(&again.response), "STALE");
    assert!(body(&again.response).contains("\"n\":1"));
    assert!(again.revalidate.is_some(), "the finished refresh released the key");
}

#[tokio::test]
async fn requests_with_credentials_are_never_answered_from_or_stored_in_the_cache() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);
    h.get("/api/products").await;

    for credentials in
        [("authorization", "Bearer token"), ("cookie", "session=abc"), ("cookie", "__edge_pool=eu-west; session=abc")]
    {
        let response = h.send(request(Method::GET, "/api/products", &[credentials]), None).await.response;
        assert_eq!(x_cache(&response), "MISS", "{credentials:?}");
    }
    // (The request with an affinity cookie for eu-west tried eu.test first, which refuses.)
    assert_eq!(h.origins().calls_to("us.test"), 4);
    // The edge's own affinity cookie names a region, not a person: still cacheable.
    let affinity = h.send(request(Method::GET, "/api/products", &[("cookie", "__edge_pool=us-west")]), None).await;
    assert_eq!(x_cache(&affinity.response), "HIT");
}

#[tokio::test]
async fn responses_that_set_cookies_or_forbid_storing_are_not_cached() {
    for cache_control in ["no-store", "private, max-age=60", "no-cache", "max-age=0"] {
        let h = Harness::new(&[]);
        counting_catalog(&h, cache_control);
        h.get("/api/products").await;
        assert_eq!(x_cache(&h.get("/api/products").await), "MISS", "{cache_control}");
    }
    let h = Harness::new(&[]);
    h.origins().set("us.test", |_| answer(200, &[("cache-control", CATALOG), ("set-cookie", "a=b")], "{}"));
    h.get("/api/products").await;
    assert_eq!(x_cache(&h.get("/api/products").await), "MISS");
}

#[tokio::test]
async fn only_catalog_routes_are_cached_and_writes_never_are() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);
    h.get("/api/jobs/1").await;
    assert_eq!(x_cache(&h.get("/api/jobs/1").await), "MISS");
    h.send(request(Method::POST, "/api/products", &[]), None).await;
    assert_eq!(x_cache(&h.send(request(Method::POST, "/api/products", &[]), None).await.response), "MISS");
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_without_a_body() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);
    let get = h.get("/api/products").await;
    let head = h.send(request(Method::HEAD, "/api/products", &[]), None).await.response;
    assert_eq!(x_cache(&head), "HIT");
    assert!(head.body().is_empty());
    assert_eq!(header(&head, "content-length"), Some(get.body().len().to_string().as_str()));
}

#[tokio::test]
async fn a_client_that_has_the_entry_gets_304_from_the_edge() {
    let h = Harness::new(&[]);
    h.origins().set("us.test", |req| {
        // The edge asks unconditionally, so it always gets a body to store.
        assert!(req.headers().get("if-none-match").is_none());
        answer(200, &[("cache-control", CATALOG), ("etag", "\"v1\"")], "{}")
    });
    let miss = h.send(request(Method::GET, "/api/products", &[("if-none-match", "\"v1\"")]), None).await.response;
    assert_eq!((miss.status(), x_cache(&miss)), (StatusCode::NOT_MODIFIED, "MISS"));
    let hit = h.send(request(Method::GET, "/api/products", &[("if-none-match", "\"v1\"")]), None).await.response;
    assert_eq!((hit.status(), x_cache(&hit)), (StatusCode::NOT_MODIFIED, "HIT"));
    assert!(hit.body().is_empty());
    let other = h.send(request(Method::GET, "/api/products", &[("if-none-match", "\"v0\"")]), None).await.response;
    assert_eq!((other.status(), body(&other)), (StatusCode::OK, "{}"));
}

#[tokio::test]
async fn every_response_says_x_cache() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);
    let cases = [
        request(Method::GET, "/api/products", &[]),
        request(Method::GET, "/assets/missing.png", &[]),
        request(Method::GET, "/__edge/health", &[]),
        request(Method::POST, "/__edge/purge", &[]),
        request(
            Method::OPTIONS,
            "/api/products",
            &[("origin", "https://evil.test"), ("access-control-request-method", "GET")],
        ),
        request(Method::GET, "/nowhere", &[]),
    ];
    for req in cases {
        let uri = req.uri().to_string();
        let response = h.send(req, None).await.response;
        assert!(["HIT", "MISS", "STALE"].contains(&x_cache(&response)), "{uri}");
    }
}

fn purge(body: &str, secret: Option<&str>) -> http::Request<bytes::Bytes> {
    let auth = secret.map(|s| format!("Bearer {s}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    request_with_body(Method::POST, "/__edge/purge", &headers, body)
}

#[tokio::test]
async fn purging_needs_the_shared_secret() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);
    h.get("/api/products").await;
    let keys = r#"{"keys":["/api/products"]}"#;

    for secret in [None, Some("wrong"), Some(&SECRET[..SECRET.len() - 1])] {
        let response = h.send(purge(keys, secret), None).await.response;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{secret:?}");
    }
    assert_eq!(x_cache(&h.get("/api/products").await), "HIT", "nothing was purged");

    let get =
        h.send(request(Method::GET, "/__edge/purge", &[("authorization", &format!("Bearer {SECRET}"))]), None).await;
    assert_eq!(get.response.status(), StatusCode::METHOD_NOT_ALLOWED);

    let disabled = Harness::new(&[("EDGE_PURGE_SECRET", "")]);
    assert_eq!(disabled.send(purge(keys, Some(SECRET)), None).await.response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_purge_removes_the_given_keys_and_prefixes() {
    let h = Harness::new(&[]);
    counting_catalog(&h, CATALOG);
    for uri in ["/api/products", "/api/products/classic-tee", "/api/products/hoodie", "/api/products?page=2"] {
        h.get(uri).await;
    }

    // Keys are normalised like requests: this names "/api/products?page=2".
    let response =
        h.send(purge(r#"{"keys":["/api/products?utm_source=x&page=2"]}"#, Some(SECRET)), None).await.response;
    assert_eq!(response.status(), StatusCode::OK, "{}", body(&response));
    assert!(body(&response).contains("\"purged_keys\":1"));
    assert_eq!(x_cache(&h.get("/api/products?page=2").await), "MISS");
    assert_eq!(x_cache(&h.get("/api/products").await), "HIT");

    let response = h.send(purge(r#"{"prefixes":["/api/products/"]}"#, Some(SECRET)), None).await.response;
    assert!(body(&response).contains("\"purged_by_prefix\":2"), "{}", body(&response));
    assert_eq!(x_cache(&h.get("/api/products/classic-tee").await), "MISS");
    assert_eq!(x_cache(&h.get("/api/products/hoodie").await), "MISS");
    assert_eq!(x_cache(&h.get("/api/products").await), "HIT");
}

#[tokio::test]
async fn malformed_purges_are_refused_whole() {
    let h = Harness::new(&[]);
    for bad in [
        "",
        "not json",
        r#"{"keys":"x"}"#,
        r#"{"keys":["no-slash"]}"#,
        r#"{"prefixes":["x"]}"#,
        r#"{"everything":true}"#,
    ] {
        let response = h.send(purge(bad, Some(SECRET)), None).await.response;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}
