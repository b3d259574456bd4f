//! Failover over real sockets: the native edge in front of two real origins in different
//! pools. Killing the preferred origin in the middle of a stream of GETs costs the
//! clients nothing: every request is answered 200, by the other pool from the moment the
//! dead one fails.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edge::native::{NativeConfig, start};
use http::{Method, StatusCode};
use support::{RealOrigin, fetch, http_client};

async fn edge_in_front_of(eu: &RealOrigin, us: &RealOrigin, extra: &[(&str, &str)]) -> edge::native::RunningEdge {
    let pools = format!("us-west={};eu-west={}", us.url(), eu.url());
    let mut vars = vec![
        ("EDGE_POOLS", pools.as_str()),
        ("EDGE_COUNTRY_POOLS", "GB=eu-west"),
        ("EDGE_CONTINENT_POOLS", "NA=us-west"),
        ("EDGE_FALLBACK_POOL", "us-west"),
        ("EDGE_ORIGIN_TIMEOUT_MS", "2000"),
    ];
    vars.extend_from_slice(extra);
    let config = support::config(&vars);
    let native = NativeConfig { bind: "127.0.0.1:0".parse().unwrap(), ..NativeConfig::default() };
    start(config, native).await.expect("edge starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_origin_during_a_stream_of_gets_fails_no_client_request() {
    let eu = RealOrigin::start("eu").await;
    let us = RealOrigin::start("us").await;
    // 1200 requests from one address: far beyond the rate limits (job polls have their own
    // bucket), which are not the subject here.
    let edge =
        edge_in_front_of(&eu, &us, &[("EDGE_RATE_API", "100000/1m"), ("EDGE_RATE_JOB_POLLS", "100000/1m")]).await;
    let url = format!("{}/api/jobs/42", edge.url());

    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 150;
    let done = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (url, done) = (url.clone(), done.clone());
        clients.push(tokio::spawn(async move {
            let client = http_client();
            let mut failures = Vec::new();
            let mut served_by = Vec::new();
            for _ in 0..PER_CLIENT {
                match fetch(&client, Method::GET, &url, &[("x-edge-country", "GB")]).await {
                    Ok((StatusCode::OK, headers, _)) => {
                        served_by.push(headers.get("x-edge-pool").unwrap().to_str().unwrap().to_owned());
                    }
                    Ok((status, _, body)) => failures.push(format!("{status}: {}", String::from_utf8_lossy(&body))),
                    Err(e) => failures.push(e),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            (failures, served_by)
        }));
    }
    // Kill eu-west a third of the way through.
    while done.load(Ordering::SeqCst) < CLIENTS * PER_CLIENT / 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let eu_hits_at_kill = eu.hits();
    eu.kill();

    let mut failures = Vec::new();
    let mut served_by = Vec::new();
    for client in clients {
        let (f, s) = client.await.unwrap();
        failures.extend(f);
        served_by.extend(s);
    }
    assert!(failures.is_empty(), "{} failed client requests, e.g. {:?}", failures.len(), failures.first());
    assert_eq!(served_by.len(), CLIENTS * PER_CLIENT);
    assert!(eu_hits_at_kill > 0, "eu-west served before it died");
    assert!(served_by.iter().any(|p| p == "eu-west") && served_by.iter().any(|p| p == "us-west"));
    // After the kill, the last requests were all answered by us-west.
    assert!(served_by.iter().rev().take(CLIENTS * 10).all(|p| p == "us-west"));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_a_dead_origin_fails_instead_of_being_repeated_elsewhere() {
    let eu = RealOrigin::start("eu").await;
    let us = RealOrigin::start("us").await;
    let edge = edge_in_front_of(&eu, &us, &[]).await;
    eu.kill();
    let client = http_client();
    let (status, _, body) =
        fetch(&client, Method::POST, &format!("{}/api/jobs", edge.url()), &[("x-edge-country", "GB")]).await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{}", String::from_utf8_lossy(&body));
    assert_eq!(us.hits(), 0, "the write was not sent to another pool");
    // The same GET is retried and succeeds.
    let (status, headers, _) =
        fetch(&client, Method::GET, &format!("{}/api/jobs/1", edge.url()), &[("x-edge-country", "GB")]).await.unwrap();
    assert_eq!((status, headers.get("x-edge-pool").unwrap().to_str().unwrap()), (StatusCode::OK, "us-west"));
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_country_header_is_honoured_only_in_local_mode() {
    let eu = RealOrigin::start("eu").await;
    let us = RealOrigin::start("us").await;
    let pools = format!("us-west={};eu-west={}", us.url(), eu.url());
    let config =
        support::config(&[("EDGE_POOLS", &pools), ("EDGE_COUNTRY_POOLS", "GB=eu-west"), ("EDGE_CONTINENT_POOLS", "")]);
    let native =
        NativeConfig { bind: "127.0.0.1:0".parse().unwrap(), trust_country_header: false, ..NativeConfig::default() };
    let edge = start(config, native).await.unwrap();
    let (_, headers, _) =
        fetch(&http_client(), Method::GET, &format!("{}/api/jobs/1", edge.url()), &[("x-edge-country", "GB")])
            .await
            .unwrap();
    assert_eq!(headers.get("x-edge-pool").unwrap(), "us-west");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_probes_take_a_dead_pool_out_before_any_visitor_meets_it() {
    let eu = RealOrigin::start("eu").await;
    let us = RealOrigin::start("us").await;
    let edge = edge_in_front_of(&eu, &us, &[("EDGE_HEALTH_PROBE_SECS", "1"), ("EDGE_HEALTH_FAILURES", "1")]).await;
    eu.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body_json, _) = {
        let (s, _, b) =
            fetch(&http_client(), Method::GET, &format!("{}/__edge/health", edge.url()), &[]).await.unwrap();
        (s, String::from_utf8_lossy(&b).into_owned(), ())
    };
    assert!(body_json.contains(r#"{"name":"eu-west","origins":1,"up":false}"#), "{body_json}");
    edge.stop().await;
}
