//! Rate limits (the old system's numbers, per client address and route class, 429 with
//! `Retry-After`, the Stripe webhook exempt), CORS from an allowlist, and the security
//! headers every response carries.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use support::{Harness, STOREFRONT, answer, header, request};

fn api_ok(h: &Harness) {
    h.origins().set("us.test", |req| {
        if req.uri().path() == "/api/auth/login" {
            let ok = req.headers().get("x-test-password").is_some_and(|v| v == "right");
            if ok { answer(200, &[], "{}") } else { answer(401, &[], "{\"error\":{\"code\":\"invalid_credentials\"}}") }
        } else {
            answer(200, &[("access-control-allow-origin", "*")], "{}")
        }
    });
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_101st_api_request_in_15_minutes_gets_429_with_retry_after() {
    let h = Harness::new(&[]);
    api_ok(&h);
    for i in 0..100 {
        let r = h.send_from(request(Method::GET, "/api/orders/1", &[]), ip("198.51.100.1")).await.response;
        assert_eq!(r.status(), StatusCode::OK, "request {i}");
    }
    let r = h.send_from(request(Method::GET, "/api/orders/1", &[]), ip("198.51.100.1")).await.response;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after"), Some("9"), "one token per 9 s");
    assert!(support::body(&r).contains("rate_limited"));
    assert_eq!(h.origins().total(), 100, "refused requests never reach the origin");

    // Someone else is unaffected; assets and the edge's own endpoints are not limited.
    let other = h.send_from(request(Method::GET, "/api/orders/1", &[]), ip("198.51.100.2")).await.response;
    assert_eq!(other.status(), StatusCode::OK);
    let asset = h.send_from(request(Method::GET, "/assets/x.png", &[]), ip("198.51.100.1")).await.response;
    assert_eq!(asset.status(), StatusCode::NOT_FOUND);

    // Tokens come back with time.
    h.clock().advance(Duration::from_secs(9));
    let r = h.send_from(request(Method::GET, "/api/orders/1", &[]), ip("198.51.100.1")).await.response;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn cache_hits_of_the_public_catalog_spend_no_tokens_but_every_origin_request_does() {
    let h = Harness::new(&[("EDGE_RATE_API", "3/15m")]);
    h.origins().set("us.test", |_| answer(200, &[("cache-control", "public, max-age=60")], "[]"));
    let visitor = ip("198.51.100.9");
    // One miss fills the cache (a token), then hits cost nothing, however many.
    for _ in 0..20 {
        let r = h.send_from(request(Method::GET, "/api/products", &[]), visitor).await.response;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(h.origins().total(), 1);
    // Cache-busting queries, credentials and writes reach the origin and are charged: two
    // tokens were left, the third such request is refused.
    let busted = h.send_from(request(Method::GET, "/api/products?page=2", &[]), visitor).await.response;
    assert_eq!(busted.status(), StatusCode::OK);
    let authed =
        h.send_from(request(Method::GET, "/api/products", &[("authorization", "Bearer x")]), visitor).await.response;
    assert_eq!(authed.status(), StatusCode::OK);
    let refused = h.send_from(request(Method::GET, "/api/products?page=3", &[]), visitor).await.response;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h.origins().total(), 3);
    // Hits are still served to a visitor whose bucket is empty.
    let hit = h.send_from(request(Method::GET, "/api/products", &[]), visitor).await.response;
    assert_eq!((hit.status(), header(&hit, "x-cache")), (StatusCode::OK, Some("HIT")));
}

#[tokio::test]
async fn a_storefront_polling_a_job_every_2_s_for_15_minutes_is_not_limited() {
    let h = Harness::new(&[]);
    api_ok(&h);
    let client = ip("198.51.100.7");
    for i in 0..450 {
        let r = h.send_from(request(Method::GET, "/api/jobs/1", &[]), client).await.response;
        assert_eq!(r.status(), StatusCode::OK, "poll {i}");
        h.clock().advance(Duration::from_secs(2));
    }
    // The polls did not spend the /api/ budget: a full 100 other API calls still pass.
    for i in 0..100 {
        let r = h.send_from(request(Method::GET, "/api/orders/1", &[]), client).await.response;
        assert_eq!(r.status(), StatusCode::OK, "api request {i}");
    }
}

#[tokio::test]
async fn the_stripe_webhook_is_never_limited() {
    let h = Harness::new(&[]);
    api_ok(&h);
    for _ in 0..150 {
        let r = h.send_from(request(Method::POST, "/api/webhooks/stripe", &[]), ip("54.187.174.169")).await.response;
        assert_eq!(r.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn uploads_are_limited_to_ten_an_hour() {
    let h = Harness::new(&[]);
    api_ok(&h);
    for _ in 0..10 {
        let r = h.send_from(request(Method::POST, "/api/uploads", &[]), ip("198.51.100.3")).await.response;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = h.send_from(request(Method::POST, "/api/uploads", &[]), ip("198.51.100.3")).await.response;
    assert_eq!((r.status(), header(&r, "retry-after")), (StatusCode::TOO_MANY_REQUESTS, Some("360")));
    // Other API calls still work.
    let r = h.send_from(request(Method::GET, "/api/jobs/1", &[]), ip("198.51.100.3")).await.response;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn five_failed_logins_block_the_sixth_attempt_but_successes_cost_nothing() {
    let h = Harness::new(&[]);
    api_ok(&h);
    let login = |password: &str| request(Method::POST, "/api/auth/login", &[("x-test-password", password)]);
    for _ in 0..10 {
        let r = h.send_from(login("right"), ip("198.51.100.4")).await.response;
        assert_eq!(r.status(), StatusCode::OK);
    }
    for _ in 0..5 {
        let r = h.send_from(login("wrong"), ip("198.51.100.4")).await.response;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let calls = h.origins().total();
    let r = h.send_from(login("right"), ip("198.51.100.4")).await.response;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    assert!(header(&r, "retry-after").is_some());
    assert_eq!(h.origins().total(), calls);
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_at_the_edge() {
    let h = Harness::new(&[]);
    let r = h
        .send(
            request(
                Method::OPTIONS,
                "/api/price/quote",
                &[
                    ("origin", STOREFRONT),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "Content-Type, Idempotency-Key"),
                ],
            ),
            None,
        )
        .await
        .response;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "access-control-allow-origin"), Some(STOREFRONT));
    assert!(header(&r, "access-control-allow-methods").unwrap().contains("POST"));
    assert!(header(&r, "access-control-allow-headers").unwrap().contains("idempotency-key"));
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    assert_eq!(header(&r, "vary"), Some("Origin"));
    assert_eq!(h.origins().total(), 0);
}

#[tokio::test]
async fn disallowed_preflights_get_no_cors_headers() {
    let h = Harness::new(&[]);
    let cases: [&[(&str, &str)]; 4] = [
        &[("origin", "https://evil.test"), ("access-control-request-method", "POST")],
        &[("origin", "https://stolentee.com.evil.test"), ("access-control-request-method", "GET")],
        &[("origin", STOREFRONT), ("access-control-request-method", "TRACE")],
        &[
            ("origin", STOREFRONT),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "x-admin"),
        ],
    ];
    for headers in cases {
        let r = h.send(request(Method::OPTIONS, "/api/price/quote", headers), None).await.response;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(r.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{headers:?}");
    }
}

#[tokio::test]
async fn actual_responses_grant_cors_only_to_allowed_origins() {
    let h = Harness::new(&[]);
    api_ok(&h);
    let allowed = h.send(request(Method::GET, "/api/jobs/1", &[("origin", STOREFRONT)]), None).await.response;
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(STOREFRONT));
    assert!(header(&allowed, "access-control-expose-headers").unwrap().contains("x-cache"));
    // The origin said "*"; the edge's allowlist decides.
    let evil = h.send(request(Method::GET, "/api/jobs/1", &[("origin", "https://evil.test")]), None).await.response;
    assert!(evil.headers().keys().all(|k| !k.as_str().starts_with("access-control-")));
    let none = h.send(request(Method::GET, "/api/jobs/1", &[]), None).await.response;
    assert!(header(&none, "access-control-allow-origin").is_none());
    assert!(header(&none, "vary").unwrap().contains("Origin"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_api_ones_a_csp() {
    let h = Harness::new(&[]);
    api_ok(&h);
    for (uri, is_api) in [("/api/jobs/1", true), ("/assets/none.png", false), ("/", false), ("/__edge/health", false)] {
        let r = h.send(request(Method::GET, uri, &[]), None).await.response;
        assert_eq!(header(&r, "strict-transport-security"), Some("max-age=31536000; includeSubDomains"), "{uri}");
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"), "{uri}");
        assert_eq!(header(&r, "x-frame-options"), Some("DENY"), "{uri}");
        assert_eq!(header(&r, "referrer-policy"), Some("strict-origin-when-cross-origin"), "{uri}");
        assert_eq!(header(&r, "content-security-policy").is_some(), is_api, "{uri}");
    }
    // Even a 429 has them.
    let h = Harness::new(&[("EDGE_RATE_API", "1/1h")]);
    api_ok(&h);
    h.send(request(Method::GET, "/api/orders/1", &[]), None).await;
    let r = h.send(request(Method::GET, "/api/orders/1", &[]), None).await.response;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&r, "content-security-policy").unwrap().contains("default-src 'none'"));
}
