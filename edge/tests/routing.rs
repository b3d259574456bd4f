//! Geo-steering and failover: each visitor goes to their region's pool, a failing pool is
//! marked down after three failures and skipped until its cool-down ends, idempotent
//! requests get one retry on the next healthy pool, and other writes are never repeated.

mod support;

use std::time::Duration;

use edge::platform::OriginError;
use http::{Method, StatusCode};
use support::{Harness, answer, body, header, request, x_cache};

fn all_healthy(h: &Harness) {
    for (authority, name) in [("us.test", "us"), ("eu.test", "eu"), ("ap.test", "ap")] {
        h.origins().set(authority, move |_| answer(200, &[("cache-control", "no-store")], name));
    }
}

#[tokio::test]
async fn each_country_is_served_by_its_regions_pool() {
    let h = Harness::new(&[]);
    all_healthy(&h);
    let cases = [
        (Some("US"), "us-west"), // continent NA
        (Some("BR"), "us-west"), // continent SA
        (Some("GB"), "eu-west"), // country rule
        (Some("DE"), "eu-west"), // continent EU
        (Some("JP"), "ap-southeast"),
        (Some("AU"), "ap-southeast"), // OC
        (Some("XX"), "us-west"),      // unknown: fallback
        (None, "us-west"),
    ];
    for (country, pool) in cases {
        let response = h.send(request(Method::GET, "/api/jobs/1", &[]), country).await.response;
        assert_eq!(header(&response, "x-edge-pool"), Some(pool), "{country:?}");
        assert_eq!(x_cache(&response), "MISS");
    }
}

#[tokio::test]
async fn a_get_that_meets_a_5xx_is_retried_once_on_the_next_healthy_pool() {
    let h = Harness::new(&[]);
    all_healthy(&h);
    h.origins().set("eu.test", |_| answer(502, &[], "bad gateway"));
    let response = h.send(request(Method::GET, "/api/jobs/1", &[]), Some("GB")).await.response;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(&response), "us");
    assert_eq!((h.origins().calls_to("eu.test"), h.origins().calls_to("us.test")), (1, 1));
}

#[tokio::test]
async fn connect_errors_and_timeouts_are_retried_for_gets_too() {
    for failure in [OriginError::Connect("refused".into()), OriginError::Timeout] {
        let h = Harness::new(&[]);
        all_healthy(&h);
        let f = failure.clone();
        h.origins().set("eu.test", move |_| Err(f.clone()));
        let response = h.send(request(Method::HEAD, "/api/jobs/1", &[]), Some("GB")).await.response;
        assert_eq!(
            (response.status(), header(&response, "x-edge-pool")),
            (StatusCode::OK, Some("us-west")),
            "{failure}"
        );
    }
}

#[tokio::test]
async fn a_post_is_never_retried() {
    let h = Harness::new(&[]);
    all_healthy(&h);
    h.origins().set("eu.test", |_| answer(503, &[], "unavailable"));
    let response = h.send(request(Method::POST, "/api/jobs", &[]), Some("GB")).await.response;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "the origin's own answer");
    assert_eq!(h.origins().total(), 1);

    h.origins().set("eu.test", |_| Err(OriginError::Exchange("connection reset".into())));
    let response = h.send(request(Method::POST, "/api/jobs", &[]), Some("GB")).await.response;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(body(&response).contains("origin_unavailable"));
    assert_eq!(h.origins().calls_to("us.test"), 0, "a write that may have happened is not repeated");
}

#[tokio::test]
async fn a_write_with_an_idempotency_key_may_be_retried() {
    let h = Harness::new(&[]);
    all_healthy(&h);
    h.origins().set("eu.test", |_| Err(OriginError::Connect("refused".into())));
    let response =
        h.send(request(Method::POST, "/api/orders", &[("idempotency-key", "k-1")]), Some("GB")).await.response;
    assert_eq!((response.status(), body(&response)), (StatusCode::OK, "us"));
}

#[tokio::test]
async fn three_failures_mark_a_pool_down_until_the_cooldown_ends() {
    let h = Harness::new(&[("EDGE_HEALTH_COOLDOWN_SECS", "30")]);
    all_healthy(&h);
    h.origins().set("eu.test", |_| answer(500, &[], "boom"));
    for _ in 0..3 {
        h.send(request(Method::GET, "/api/jobs/1", &[]), Some("GB")).await;
    }
    assert_eq!(h.origins().calls_to("eu.test"), 3);
    let status = h.get("/__edge/health").await;
    assert!(body(&status).contains(r#"{"name":"eu-west","origins":1,"up":false}"#), "{}", body(&status));

    // Down: European visitors go straight to the next pool.
    let response = h.send(request(Method::GET, "/api/jobs/1", &[]), Some("GB")).await.response;
    assert_eq!(header(&response, "x-edge-pool"), Some("us-west"));
    assert_eq!(h.origins().calls_to("eu.test"), 3);

    // After the cool-down it is tried again (and here it has recovered).
    h.origins().set("eu.test", |_| answer(200, &[], "eu"));
    h.clock().advance(Duration::from_secs(31));
    let response = h.send(request(Method::GET, "/api/jobs/1", &[]), Some("GB")).await.response;
    assert_eq!(header(&response, "x-edge-pool"), Some("eu-west"));
}

#[tokio::test]
async fn failures_outside_the_window_do_not_add_up() {
    let h = Harness::new(&[("EDGE_HEALTH_WINDOW_SECS", "10")]);
    all_healthy(&h);
    h.origins().set("eu.test", |_| answer(500, &[], "boom"));
    for _ in 0..5 {
        h.send(request(Method::GET, "/api/jobs/1", &[]), Some("GB")).await;
        h.clock().advance(Duration::from_secs(6));
    }
    assert_eq!(h.origins().calls_to("eu.test"), 5, "never more than two failures in 10 s");
}

#[tokio::test]
async fn when_every_pool_fails_the_client_gets_a_clear_error() {
    let h = Harness::new(&[]);
    let response = h.send(request(Method::GET, "/api/jobs/1", &[]), Some("GB")).await.response;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(header(&response, "content-type"), Some("application/json"));
    h.origins().set("eu.test", |_| Err(OriginError::Timeout));
    h.origins().set("us.test", |_| Err(OriginError::Timeout));
    let response = h.send(request(Method::GET, "/api/jobs/1", &[]), Some("GB")).await.response;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn a_visitor_keeps_reading_from_the_pool_that_took_their_write() {
    let h = Harness::new(&[]);
    all_healthy(&h);
    h.origins().set("eu.test", |_| Err(OriginError::Connect("refused".into())));
    // The write fails over to us-west (it carries an idempotency key)...
    let write = h.send(request(Method::POST, "/api/orders", &[("idempotency-key", "k")]), Some("GB")).await.response;
    let cookie = header(&write, "set-cookie").expect("affinity cookie").to_owned();
    assert!(
        cookie.starts_with("__edge_pool=us-west;") && cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    // ...and once eu-west is back, this visitor still reads from us-west.
    h.origins().set("eu.test", |_| answer(200, &[], "eu"));
    let read =
        h.send(request(Method::GET, "/api/jobs/1", &[("cookie", "__edge_pool=us-west")]), Some("GB")).await.response;
    assert_eq!(header(&read, "x-edge-pool"), Some("us-west"));
    // Reads do not set the cookie; an unknown pool in the cookie is ignored.
    assert!(header(&read, "set-cookie").is_none());
    let other =
        h.send(request(Method::GET, "/api/jobs/1", &[("cookie", "__edge_pool=mars")]), Some("GB")).await.response;
    assert_eq!(header(&other, "x-edge-pool"), Some("eu-west"));
}

#[tokio::test]
async fn the_origin_learns_who_the_client_is_but_not_the_local_country_header() {
    let h = Harness::new(&[]);
    all_healthy(&h);
    h.send(
        request(
            Method::GET,
            "/api/jobs/1?x=1",
            &[
                ("host", "shop.test"),
                ("x-edge-country", "JP"),
                ("x-forwarded-for", "1.2.3.4"),
                ("connection", "keep-alive"),
            ],
        ),
        Some("GB"),
    )
    .await;
    let call = h.origins().last_call();
    assert_eq!(call.uri, "http://eu.test/api/jobs/1?x=1");
    assert_eq!(call.headers.get("x-forwarded-for").unwrap(), "203.0.113.7", "client-sent values are replaced");
    assert_eq!(call.headers.get("x-forwarded-host").unwrap(), "shop.test");
    assert!(call.headers.get("x-edge-country").is_none());
    assert!(call.headers.get("connection").is_none());
}

#[tokio::test]
async fn the_edge_proves_itself_to_the_origins_and_visitors_cannot_forge_its_headers() {
    let secret = "the-edge-origin-secret-0123456789abcdef";
    let h = Harness::new(&[("EDGE_ORIGIN_SECRET", secret)]);
    all_healthy(&h);
    h.send(
        request(Method::POST, "/api/auth/login", &[("x-edge-auth", "forged"), ("x-client-ip", "10.9.8.7")]),
        Some("GB"),
    )
    .await;
    let call = h.origins().last_call();
    assert_eq!(call.headers.get("x-edge-auth").unwrap(), secret, "the visitor's value is replaced");
    assert_eq!(call.headers.get("x-client-ip").unwrap(), "203.0.113.7", "the visitor's value is replaced");

    // Probes carry it too: in production the origins' readiness answers only the edge.
    h.edge.probe(&h.platform).await;
    let probe = h.origins().last_call();
    assert_eq!(probe.uri.rsplit_once('/').map(|(_, p)| p), Some("ready"));
    assert_eq!(probe.headers.get("x-edge-auth").unwrap(), secret);

    // Without a configured secret a visitor's X-Edge-Auth is still never passed on.
    let h = Harness::new(&[]);
    all_healthy(&h);
    h.send(request(Method::GET, "/api/jobs/1", &[("x-edge-auth", "forged")]), Some("GB")).await;
    assert!(h.origins().last_call().headers.get("x-edge-auth").is_none());
}

#[test]
fn a_short_origin_secret_is_refused() {
    let err = edge::EdgeConfig::from_lookup(|k| (k == "EDGE_ORIGIN_SECRET").then(|| "short".to_owned())).unwrap_err();
    assert_eq!(err.key(), "EDGE_ORIGIN_SECRET");
}

#[tokio::test]
async fn one_failed_probe_marks_a_pool_down_and_one_answer_brings_it_back() {
    // Probes are deliberate readiness checks: unlike passive failures (three in the
    // window by default), a single failed round takes the pool out.
    let h = Harness::new(&[]);
    all_healthy(&h);
    h.origins().set("eu.test", |req| {
        if req.uri().path() == "/health/ready" { answer(503, &[], "") } else { answer(200, &[], "eu") }
    });
    h.edge.probe(&h.platform).await;
    let up = h.edge.health().snapshot(h.platform.clock.now_for_tests());
    assert_eq!(up, vec![true, false, true]);
    h.origins().set("eu.test", |_| answer(200, &[], "eu"));
    h.edge.probe(&h.platform).await;
    assert_eq!(h.edge.health().snapshot(h.platform.clock.now_for_tests()), vec![true, true, true]);
}
