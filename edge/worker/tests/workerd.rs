//! The shipping Worker, built for wasm32 and running in workerd — the Workers runtime —
//! with local bindings: the Cache API, the R2 bucket, the RateLimiter and HealthBoard
//! Durable Objects, the Cron Trigger. Everything that depends on those bindings is
//! specified here, against real HTTP origins; the logic alone is specified natively in
//! `edge/tests/`.
//!
//! Needs the build (`scripts/worker-build.sh`) and the pinned Node and workerd
//! (`scripts/edge-tools.sh run`); `make test` runs both first. A missing piece fails.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use support::*;

async fn two_pools() -> (Origin, Origin, ZoneApi) {
    (Origin::start("us").await, Origin::start("eu").await, ZoneApi::start().await)
}

fn catalog(max_age: u32, swr: u32, version: &'static str) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    move |_| {
        let cc = format!("public, max-age={max_age}, stale-while-revalidate={swr}");
        reply(200, &[("content-type", "application/json"), ("cache-control", &cc), ("etag", "\"v1\"")], version)
    }
}

// --- caching ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_reads_go_miss_then_hit_then_stale_with_one_refresh_in_the_background() {
    let (us, eu, zone) = two_pools().await;
    us.set(catalog(1, 60, "first"));
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;

    let miss = get(&edge.url, "/api/products").await;
    assert_eq!((miss.status, miss.x_cache(), miss.text().as_str()), (StatusCode::OK, "MISS", "first"));
    assert_eq!(miss.header("x-edge-pool"), Some("us-west"));
    let hit = get(&edge.url, "/api/products").await;
    assert_eq!((hit.x_cache(), hit.text().as_str()), ("HIT", "first"));
    assert!(hit.header("age").is_some(), "cached answers carry Age");
    assert_eq!(us.hits(), 1, "the hit never reached the origin");

    // Past max-age, inside stale-while-revalidate: the stale copy now, a refresh after.
    us.set(catalog(60, 60, "second"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let stale = get(&edge.url, "/api/products").await;
    assert_eq!((stale.x_cache(), stale.text().as_str()), ("STALE", "first"));
    assert!(eventually(Duration::from_secs(5), || async { us.hits() == 2 }).await, "one background refresh");
    assert!(
        eventually(Duration::from_secs(5), || async { get(&edge.url, "/api/products").await.text() == "second" }).await,
        "the refreshed entry replaces the stale one"
    );
    let after = get(&edge.url, "/api/products").await;
    assert_eq!(after.x_cache(), "HIT");
    assert_eq!(us.hits(), 2, "exactly one refresh for all those stale reads");

    // The client's validator is answered from the cache.
    let not_modified = get_with(&edge.url, "/api/products", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_keys_drop_tracking_parameters_and_sort_the_rest() {
    let (us, eu, zone) = two_pools().await;
    us.set(catalog(60, 0, "page"));
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;

    let first = get(&edge.url, "/api/products?sort=price&utm_source=mail&category=tees&gclid=abc").await;
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(us.last().uri, "/api/products?category=tees&sort=price", "the origin is asked for the key");
    let same = get(&edge.url, "/api/products?category=tees&fbclid=x&sort=price").await;
    assert_eq!(same.x_cache(), "HIT");
    let other = get(&edge.url, "/api/products?category=hoodies").await;
    assert_eq!(other.x_cache(), "MISS");
    assert_eq!(us.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_cookies_and_set_cookie_answers_bypass_the_cache() {
    let (us, eu, zone) = two_pools().await;
    us.set(|seen| {
        if seen.uri.starts_with("/api/products/mine") {
            reply(200, &[("cache-control", "public, max-age=60"), ("set-cookie", "s=1; HttpOnly")], "personal")
        } else {
            reply(200, &[("cache-control", "public, max-age=60")], "public")
        }
    });
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;

    for _ in 0..2 {
        let authed = get_with(&edge.url, "/api/products", &[("authorization", "Bearer t")]).await;
        assert_eq!(authed.x_cache(), "MISS");
        let cookied = get_with(&edge.url, "/api/products", &[("cookie", "session=abc")]).await;
        assert_eq!(cookied.x_cache(), "MISS");
    }
    assert_eq!(us.hits(), 4, "every credentialed read went to the origin");
    assert!(us.requests().iter().any(|s| s.headers.get("authorization").is_some()), "credentials are forwarded");
    // Nothing of theirs was stored: an anonymous read is still a miss.
    assert_eq!(get(&edge.url, "/api/products").await.x_cache(), "MISS");
    assert_eq!(get(&edge.url, "/api/products").await.x_cache(), "HIT");

    for _ in 0..2 {
        let personal = get(&edge.url, "/api/products/mine").await;
        assert_eq!(personal.x_cache(), "MISS", "an answer setting a cookie is never stored");
        assert_eq!(personal.header("set-cookie"), Some("s=1; HttpOnly"));
    }
}

// --- purge --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_clears_this_location_and_reaches_every_location_through_the_zone_api() {
    let (us, eu, zone) = two_pools().await;
    us.set(catalog(300, 0, "cached"));
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;
    let purge = |body: &'static str, secret: &'static str| {
        let url = edge.url.clone();
        async move {
            let auth = format!("Bearer {secret}");
            send(&url, Method::POST, "/__edge/purge", &[("authorization", auth.as_bytes())], body).await
        }
    };

    get(&edge.url, "/api/products?b=2&a=1").await;
    assert_eq!(get(&edge.url, "/api/products?a=1&b=2").await.x_cache(), "HIT");

    let refused = purge(r#"{"keys":["/api/products?a=1&b=2"]}"#, "wrong-secret-wrong-secret-wrong-secret").await;
    assert_eq!((refused.status, refused.error_code()), (StatusCode::UNAUTHORIZED, "unauthorized".into()));
    assert!(zone.purges().is_empty(), "a refused purge reaches nobody");

    // Keys are normalised like requests; the zone API gets the full URL.
    let done = purge(r#"{"keys":["/api/products?utm_source=x&b=2&a=1"]}"#, SECRET).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json()["purged_keys"], 1);
    assert_eq!(get(&edge.url, "/api/products?a=1&b=2").await.x_cache(), "MISS", "gone from this location");
    assert_eq!(
        zone.purges(),
        vec![serde_json::json!({ "files": [format!("https://{PUBLIC_HOST}/api/products?a=1&b=2")] })]
    );

    // Prefixes: only the zone API can (the Cache API cannot enumerate).
    let by_prefix = purge(r#"{"prefixes":["/api/products/"]}"#, SECRET).await;
    assert_eq!(by_prefix.status, StatusCode::OK, "{}", by_prefix.text());
    assert_eq!(zone.purges()[1], serde_json::json!({ "prefixes": [format!("{PUBLIC_HOST}/api/products/")] }));

    // When Cloudflare's API fails, a prefix purge says so instead of pretending.
    *zone.failing.lock().unwrap() = true;
    let failed = purge(r#"{"prefixes":["/api/products/"]}"#, SECRET).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE, "{}", failed.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_with_again_after_is_repeated_by_the_worker_after_it_has_answered() {
    let (us, eu, zone) = two_pools().await;
    us.set(catalog(300, 0, "old"));
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;
    let purge = |body: String| {
        let url = edge.url.clone();
        async move {
            let auth = format!("Bearer {SECRET}");
            send(&url, Method::POST, "/__edge/purge", &[("authorization", auth.as_bytes())], &body).await
        }
    };
    for bad in ["-1", "26", "1.5", "\"2\"", "0"] {
        let refused = purge(format!(r#"{{"keys":["/api/products"],"again_after_secs":{bad}}}"#)).await;
        assert_eq!((refused.status, refused.error_code()), (StatusCode::BAD_REQUEST, "invalid_again_after".into()));
    }
    assert!(zone.purges().is_empty(), "a refused purge reaches nobody");

    get(&edge.url, "/api/products").await;
    let done = purge(r#"{"keys":["/api/products"],"again_after_secs":2}"#.to_owned()).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json()["again_after_secs"], 2);
    // An origin that has not seen the write refills this location right after the purge.
    let refilled = get(&edge.url, "/api/products").await;
    assert_eq!((refilled.x_cache(), refilled.text().as_str()), ("MISS", "old"));
    assert_eq!(get(&edge.url, "/api/products").await.x_cache(), "HIT");
    assert_eq!(zone.purges().len(), 1);

    // Every origin has the new price now. The Worker answered long ago; its wait_until
    // repeats the purge here and at the zone API after 2 s.
    us.set(catalog(300, 0, "new"));
    assert!(eventually(Duration::from_secs(8), || async { zone.purges().len() == 2 }).await, "purged again");
    let purges = zone.purges();
    assert_eq!(purges[1], purges[0], "the same purge");
    let after = get(&edge.url, "/api/products").await;
    assert_eq!((after.x_cache(), after.text().as_str()), ("MISS", "new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_purging_on_the_zone_credentials_are_required() {
    let (us, eu, zone) = two_pools().await;
    let setup = Setup::pools(&us.url(), &eu.url(), &zone.url()).without("CF_API_TOKEN");
    let edge = Workerd::start(setup).await;
    let answer = get(&edge.url, "/api/products").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.error_code(), "edge_misconfigured");
    assert!(answer.text().contains("CF_API_TOKEN"), "the key is named: {}", answer.text());
    assert_eq!(us.hits(), 0);
}

// --- routing and failover -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_follows_cf_country_then_continent_and_never_a_client_header() {
    let (us, eu, zone) = two_pools().await;
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;
    let pool = |cf_blob: Option<String>, extra: Option<(&'static str, &'static str)>| {
        let url = edge.url.clone();
        async move {
            let mut headers: Vec<(&str, String)> = Vec::new();
            if let Some(blob) = cf_blob {
                headers.push(("mf-cf-blob", blob));
            }
            if let Some((k, v)) = extra {
                headers.push((k, v.to_owned()));
            }
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let answer = get_with(&url, "/api/jobs/00000000-0000-4000-8000-000000000000", &headers).await;
            assert_eq!(answer.status, StatusCode::OK);
            answer.header("x-edge-pool").unwrap_or_default().to_owned()
        }
    };
    assert_eq!(pool(Some(cf("GB", "EU")), None).await, "eu-west", "continent rule");
    assert_eq!(pool(Some(cf("KE", "AF")), None).await, "eu-west");
    assert_eq!(pool(Some(cf("JP", "AS")), None).await, "us-west", "a country rule beats its continent");
    assert_eq!(pool(Some(cf("BR", "SA")), None).await, "us-west");
    assert_eq!(pool(Some(cf("GB", "EU")), Some(("x-edge-country", "US"))).await, "eu-west", "the header is ignored");
    assert_eq!(pool(Some(cf("US", "NA")), Some(("x-edge-country", "GB"))).await, "us-west");
    assert!(eu.requests().iter().all(|s| s.headers.get("x-edge-country").is_none()));
    assert!(us.requests().iter().all(|s| s.headers.get("x-forwarded-for").is_some()), "the client is named");
    // The origins learn who the client is from a header they believe only beside the edge's
    // secret; neither can come from the visitor.
    let forged = get_with(
        &edge.url,
        "/api/jobs/00000000-0000-4000-8000-000000000000",
        &[("mf-cf-blob", cf("US", "NA")), ("x-edge-auth", "forged".into()), ("x-client-ip", "10.0.0.1".into())]
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(forged.status, StatusCode::OK);
    for seen in us.requests() {
        assert_eq!(seen.headers.get("x-edge-auth").map(|v| v.as_bytes()), Some(ORIGIN_SECRET.as_bytes()));
        let client = seen.headers.get("x-client-ip").expect("the client is named").to_str().unwrap();
        assert_ne!(client, "10.0.0.1", "a visitor cannot name itself");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_an_origin_dies_mid_response_every_read_is_answered_by_the_next_pool() {
    let (us, eu, zone) = two_pools().await;
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;
    let read = |i: usize| {
        let url = edge.url.clone();
        async move {
            let headers = [("mf-cf-blob", cf("GB", "EU"))];
            let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
            try_send(&url, Method::GET, &format!("/api/orders/{i}"), &headers, "").await
        }
    };
    for i in 0..10 {
        let answer = read(i).await.unwrap();
        assert_eq!((answer.status, answer.header("x-edge-pool")), (StatusCode::OK, Some("eu-west")));
    }
    // eu-west now sends half an answer and drops the connection, every time.
    eu.set(|_| Reply::DieMidBody { bytes: bytes::Bytes::from_static(b"{\"served_by\":\"eu\",\"pa"), declared: 400 });
    let mut failed = Vec::new();
    let mut served_by = Vec::new();
    for i in 10..40 {
        match read(i).await {
            Ok(answer) if answer.status == StatusCode::OK => {
                served_by.push(answer.json()["served_by"].as_str().unwrap_or_default().to_owned());
            }
            other => failed.push(format!("{i}: {other:?}")),
        }
    }
    assert!(failed.is_empty(), "failed GETs: {failed:#?}");
    assert!(served_by.iter().all(|s| s == "us"), "every answer is whole, from us-west: {served_by:?}");
    // After three failures in the window the pool is skipped outright.
    let cut_short = eu.hits() - 10;
    assert!((3..30).contains(&cut_short), "eu-west was tried {cut_short} times, then skipped");
    let status = get(&edge.url, "/__edge/health").await.json();
    assert_eq!(status["pools"][1], serde_json::json!({ "name": "eu-west", "up": false, "origins": 1 }));
}

// --- active health ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cron_trigger_probes_readiness_and_every_isolate_learns_the_result() {
    let (us, eu, zone) = two_pools().await;
    eu.set(|seen| {
        if seen.uri == "/health/ready" {
            reply(503, &[], r#"{"status":"not ready"}"#)
        } else {
            reply(200, &[], r#"{"served_by":"eu"}"#)
        }
    });
    let setup = Setup::pools(&us.url(), &eu.url(), &zone.url()).var("EDGE_HEALTH_BOARD_SECS", "1");
    let edge = Workerd::start(setup).await;
    let up = |base: String| async move {
        let status = get(&base, "/__edge/health").await.json();
        status["pools"].as_array().unwrap().iter().map(|p| p["up"].as_bool().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(up(edge.second_url.clone()).await, [true, true], "nothing probed yet");

    edge.fire_cron().await;
    assert_eq!((us.probes(), eu.probes()), (1, 1), "one probe of /health/ready per pool");
    assert_eq!(up(edge.url.clone()).await, [true, false], "the isolate that probed knows");
    // The other isolate reads the board after its responses, at most every second.
    assert!(
        eventually(Duration::from_secs(10), || async { up(edge.second_url.clone()).await == [true, false] }).await,
        "the second isolate learnt it from the health board"
    );
    // So a European visitor there goes to us-west without eu-west being asked first.
    let before = eu.hits();
    let answer = get_with(&edge.second_url, "/api/orders/1", &[("mf-cf-blob", &cf("GB", "EU"))]).await;
    assert_eq!((answer.status, answer.header("x-edge-pool")), (StatusCode::OK, Some("us-west")));
    assert_eq!(eu.hits(), before);

    // Ready again: the next round brings it back everywhere.
    eu.set(|_| reply(200, &[], "{}"));
    edge.fire_cron().await;
    assert_eq!(up(edge.url.clone()).await, [true, true]);
    assert!(eventually(Duration::from_secs(10), || async { up(edge.second_url.clone()).await == [true, true] }).await);
}

// --- assets -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_and_cut_out_results_are_served_from_r2_with_validators_ranges_and_no_traversal() {
    let (us, eu, zone) = two_pools().await;
    let objects = TempDir::default();
    objects.put_object("assets/app.3f2a9c1b.js", b"console.log('stolen tee');", "text/javascript");
    objects.put_object("media/hero.txt", b"0123456789", "text/plain");
    objects.put_object("cutouts/4f1c2b/cutout.png", b"\x89PNG\r\n\x1a\nnot-really", "image/png");
    objects.put_object("uploads/secret/original.png", b"private", "image/png");
    let mut setup =
        Setup::pools(&us.url(), &eu.url(), &zone.url()).var("EDGE_ASSET_PREFIXES", "assets/,media/,cutouts/");
    setup.objects = Some(&objects);
    let edge = Workerd::start(setup).await;

    let js = get(&edge.url, "/assets/app.3f2a9c1b.js").await;
    assert_eq!((js.status, js.text().as_str()), (StatusCode::OK, "console.log('stolen tee');"));
    assert_eq!(js.header("content-type"), Some("text/javascript"));
    assert_eq!(js.header("cache-control"), Some("public, max-age=31536000, immutable"), "content-hashed name");
    let etag = js.header("etag").expect("an ETag").to_owned();
    assert!(js.header("last-modified").is_some());
    let again = get_with(&edge.url, "/assets/app.3f2a9c1b.js", &[("if-none-match", &etag)]).await;
    assert_eq!((again.status, again.body.len()), (StatusCode::NOT_MODIFIED, 0));

    let part = get_with(&edge.url, "/media/hero.txt", &[("range", "bytes=2-5")]).await;
    assert_eq!((part.status, part.text().as_str()), (StatusCode::PARTIAL_CONTENT, "2345"));
    assert_eq!(part.header("content-range"), Some("bytes 2-5/10"));
    let tail = get_with(&edge.url, "/media/hero.txt", &[("range", "bytes=-3")]).await;
    assert_eq!((tail.status, tail.text().as_str()), (StatusCode::PARTIAL_CONTENT, "789"));
    let beyond = get_with(&edge.url, "/media/hero.txt", &[("range", "bytes=10-")]).await;
    assert_eq!(
        (beyond.status, beyond.header("content-range")),
        (StatusCode::RANGE_NOT_SATISFIABLE, Some("bytes */10"))
    );
    let head = send(&edge.url, Method::HEAD, "/media/hero.txt", &[], "").await;
    assert_eq!((head.status, head.header("content-length"), head.body.len()), (StatusCode::OK, Some("10"), 0));

    let cutout = get(&edge.url, "/cutouts/4f1c2b/cutout.png").await;
    assert_eq!((cutout.status, cutout.header("content-type")), (StatusCode::OK, Some("image/png")));
    assert!(cutout.body.starts_with(b"\x89PNG"));

    // What the API adds later (a new cut-out) is mirrored into R2 and served.
    objects.put_object("cutouts/9a9a9a/cutout.png", b"\x89PNGlater", "image/png");
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&edge.url, "/cutouts/9a9a9a/cutout.png").await.status == StatusCode::OK
        })
        .await
    );

    for (path, status) in [
        ("/assets/..%2fuploads%2fsecret%2foriginal.png", StatusCode::BAD_REQUEST),
        ("/assets/%2e%2e%5cuploads%5csecret%5coriginal.png", StatusCode::BAD_REQUEST),
        ("/media/.env", StatusCode::BAD_REQUEST),
        ("/media/a%5cb", StatusCode::BAD_REQUEST),
        ("/media/a%00b", StatusCode::BAD_REQUEST),
        ("/media/", StatusCode::NOT_FOUND),
        ("/media/missing.png", StatusCode::NOT_FOUND),
    ] {
        let answer = get(&edge.url, path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.text());
        assert!(!answer.text().contains("private"), "{path}");
    }
    // Dot segments, even encoded, are resolved by the runtime's URL parser before the
    // Worker runs: `/assets/%2e%2e/uploads/...` arrives as `/uploads/...`, outside the asset
    // prefixes, so it goes to the origin like any other path and never to the bucket.
    for path in ["/assets/%2e%2e/uploads/secret/original.png", "/assets/../uploads/secret/original.png"] {
        let answer = get(&edge.url, path).await;
        assert_eq!(answer.header("x-edge-pool"), Some("us-west"), "{path}");
        assert_eq!(answer.json()["path"], "/uploads/secret/original.png", "{path}");
        assert!(!answer.text().contains("private"), "{path}");
    }
    let write = send(&edge.url, Method::PUT, "/assets/app.3f2a9c1b.js", &[], "overwritten").await;
    assert_eq!((write.status, write.header("allow")), (StatusCode::METHOD_NOT_ALLOWED, Some("GET, HEAD")));
}

// --- rate limits --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_live_in_a_durable_object_shared_by_isolates_and_restarts() {
    let (us, eu, zone) = two_pools().await;
    let setup = Setup::pools(&us.url(), &eu.url(), &zone.url()).var("EDGE_RATE_API", "6/15m");
    let edge = Workerd::start(setup).await;
    let from = |base: &str, ip: &'static str| {
        let base = base.to_owned();
        async move { get_with(&base, "/api/orders/1", &[("cf-connecting-ip", ip)]).await }
    };
    // Six tokens, spent across both isolates.
    for i in 0..6 {
        let base = if i % 2 == 0 { &edge.url } else { &edge.second_url };
        assert_eq!(from(base, "198.51.100.7").await.status, StatusCode::OK, "request {i}");
    }
    for base in [&edge.url, &edge.second_url] {
        let limited = from(base, "198.51.100.7").await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.error_code(), "rate_limited");
        assert_eq!(limited.header("retry-after"), Some("150"), "one token per 150 s");
        assert!(limited.header("strict-transport-security").is_some());
    }
    assert_eq!(us.hits(), 6, "refused requests never reach the origin");
    assert_eq!(from(&edge.url, "198.51.100.8").await.status, StatusCode::OK, "another client is unaffected");

    // Cache hits of the public catalog are not charged: the bucket stays empty, yet they
    // are served.
    us.set(catalog(300, 0, "catalog"));
    let other = "203.0.113.50";
    let first = get_with(&edge.url, "/api/products", &[("cf-connecting-ip", other)]).await;
    assert_eq!(first.x_cache(), "MISS");
    let hit = get_with(&edge.url, "/api/products", &[("cf-connecting-ip", "198.51.100.7")]).await;
    assert_eq!((hit.status, hit.x_cache()), (StatusCode::OK, "HIT"));

    // A new process, the same stored state: still limited.
    let state = edge.stop();
    let mut setup = Setup::pools(&us.url(), &eu.url(), &zone.url()).var("EDGE_RATE_API", "6/15m");
    setup.state = Some(state);
    let restarted = Workerd::start(setup).await;
    assert_eq!(from(&restarted.url, "198.51.100.7").await.status, StatusCode::TOO_MANY_REQUESTS);
}

// --- headers and CORS ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_every_answer_and_cors_only_for_the_storefront() {
    let (us, eu, zone) = two_pools().await;
    us.set(|_| reply(200, &[("access-control-allow-origin", "*")], "{}"));
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;

    for path in ["/api/orders/1", "/media/none.png", "/__edge/health", "/"] {
        let answer = get(&edge.url, path).await;
        assert_eq!(answer.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"), "{path}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(answer.header("referrer-policy"), Some("strict-origin-when-cross-origin"), "{path}");
        assert_eq!(answer.header("content-security-policy").is_some(), path.starts_with("/api/"), "{path}");
    }

    let granted = get_with(&edge.url, "/api/orders/1", &[("origin", STOREFRONT)]).await;
    assert_eq!(granted.header("access-control-allow-origin"), Some(STOREFRONT), "the origin's * is replaced");
    let foreign = get_with(&edge.url, "/api/orders/1", &[("origin", "https://evil.example")]).await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    let preflight = |origin: &'static str| {
        let url = edge.url.clone();
        async move {
            let headers: [(&str, &[u8]); 2] =
                [("origin", origin.as_bytes()), ("access-control-request-method", b"POST")];
            send(&url, Method::OPTIONS, "/api/orders", &headers, "").await
        }
    };
    let ok = preflight(STOREFRONT).await;
    assert_eq!((ok.status, ok.header("access-control-allow-origin")), (StatusCode::NO_CONTENT, Some(STOREFRONT)));
    let refused = preflight("https://evil.example").await;
    assert_eq!((refused.status, refused.header("access-control-allow-origin")), (StatusCode::FORBIDDEN, None));
    assert_eq!(us.requests().iter().filter(|s| s.method == Method::OPTIONS).count(), 0, "answered at the edge");
}

// --- hostile requests ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_bodies_are_refused_and_bodies_are_reframed() {
    let (us, eu, zone) = two_pools().await;
    let setup = Setup::pools(&us.url(), &eu.url(), &zone.url())
        .var("EDGE_MAX_BODY_BYTES", "1024")
        .var("EDGE_MAX_HEADER_BYTES", "8192");
    let edge = Workerd::start(setup).await;

    let big_header = "x".repeat(10_000);
    let answer = get_with(&edge.url, "/api/orders/1", &[("x-padding", &big_header)]).await;
    assert_eq!(
        (answer.status, answer.error_code()),
        (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large".into())
    );

    let long_uri = format!("/api/products?q={}", "a".repeat(9000));
    assert_eq!(get(&edge.url, &long_uri).await.status, StatusCode::URI_TOO_LONG);

    // Declared too large: refused before reading.
    let big = "y".repeat(2048);
    let answer = send(&edge.url, Method::POST, "/api/orders", &[("content-type", b"application/json")], &big).await;
    assert_eq!((answer.status, answer.error_code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into()));
    // Chunked, no length: refused once past the cap.
    let chunked = raw(
        &edge.url,
        format!(
            "POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{big}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(statuses(&chunked), [413], "{}", String::from_utf8_lossy(&chunked));
    assert_eq!(us.hits(), 0, "nothing oversized reached the origin");

    // A body within the cap arrives whole, framed by the edge.
    let small = r#"{"items":[]}"#;
    let answer = send(&edge.url, Method::POST, "/api/orders", &[("content-type", b"application/json")], small).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = us.last();
    assert_eq!(&seen.body[..], small.as_bytes());
    assert_eq!(seen.headers.get("content-length").map(|v| v.as_bytes()), Some(small.len().to_string().as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_attempts_cannot_desynchronise_the_origin() {
    let (us, eu, zone) = two_pools().await;
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;

    // CL.TE: a length covering a chunked body that hides a second request. The runtime
    // reads the chunked framing (RFC 9112: Transfer-Encoding wins), so the "hidden" request
    // is the client's next request, answered by the edge like any other; the POST, whose
    // body is shorter than its declared length, is refused. Nothing reaches the origin that
    // the edge did not answer, and what it forwards is framed by the edge itself.
    let hidden =
        "0\r\n\r\nGET /api/orders/hidden HTTP/1.1\r\nHost: x\r\nx-edge-country: GB\r\nConnection: close\r\n\r\n";
    let cl_te = format!(
        "POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{hidden}",
        hidden.len()
    );
    let answer = raw(&edge.url, cl_te.as_bytes()).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(statuses(&answer), [400, 200], "{text}");
    assert!(text.contains("body_length_mismatch"), "{text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = us.requests();
    assert_eq!(seen.iter().map(|s| s.uri.as_str()).collect::<Vec<_>>(), ["/api/orders/hidden"]);
    assert!(seen[0].headers.get("x-forwarded-for").is_some(), "it went through the edge's logic");
    assert!(seen[0].headers.get("x-edge-country").is_none(), "client headers were filtered");

    // TE.CL the other way round: a chunk that hides a request. The runtime reads the chunk
    // as the body, longer than the declared length: refused, and the inner request never
    // runs on its own.
    let inner = "GET /api/orders/inner HTTP/1.1\r\nHost: x\r\n\r\n";
    let te_cl = format!(
        "POST /api/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\nConnection: close\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
        inner.len()
    );
    let answer = raw(&edge.url, te_cl.as_bytes()).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    assert_eq!(statuses(&answer), [400], "{text}");
    assert!(text.contains("body_length_mismatch"), "{text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(us.hits(), 1, "only the client's own second request above reached the origin");

    // Two Content-Lengths that disagree: the runtime refuses the request before the Worker
    // runs (workerd answers 500 locally; Cloudflare's front line answers 400).
    let before = us.hits();
    let double = "POST /api/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\nConnection: close\r\n\r\nabc";
    let answer = raw(&edge.url, double.as_bytes()).await;
    let refused = statuses(&answer);
    assert!(!refused.is_empty() && refused.iter().all(|&s| s >= 400), "{}", String::from_utf8_lossy(&answer));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(us.hits(), before, "nothing of it reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_beyond_ascii_are_passed_on_not_dropped() {
    let (us, eu, zone) = two_pools().await;
    us.set(|seen| {
        let echoed = seen.headers.get("x-note").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        let mut response = http::Response::builder().status(200).body(bytes::Bytes::from_static(b"{}")).unwrap();
        response.headers_mut().insert("x-echo", http::HeaderValue::from_bytes(&echoed).unwrap());
        let disposition = "inline; filename=\"café ☺.png\"";
        response
            .headers_mut()
            .insert("content-disposition", http::HeaderValue::from_bytes(disposition.as_bytes()).unwrap());
        Reply::Full(response)
    });
    let edge = Workerd::start(Setup::pools(&us.url(), &eu.url(), &zone.url())).await;

    // UTF-8 text crosses byte for byte, in both directions.
    let note = "Grüße, café ☺".as_bytes();
    let answer = send(&edge.url, Method::GET, "/api/orders/1", &[("x-note", note)], "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(us.last().headers.get("x-note").unwrap().as_bytes(), note, "the origin got the bytes");
    assert_eq!(answer.headers.get("x-echo").unwrap().as_bytes(), note, "and the client got them back");
    assert_eq!(
        answer.headers.get("content-disposition").unwrap().as_bytes(),
        "inline; filename=\"café ☺.png\"".as_bytes()
    );

    // Bytes that are not UTF-8 reach the Worker already decoded by workerd (U+FFFD); the
    // request is neither refused nor stripped of the header.
    let answer = send(&edge.url, Method::GET, "/api/orders/2", &[("x-note", b"caf\xe9")], "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(us.last().headers.get("x-note").unwrap().as_bytes(), "caf\u{fffd}".as_bytes());
}
