//! `edge-loadgen`: the two halves of `make bench-edge` that wrk cannot do.
//!
//! * `edge-loadgen origin BIND` — a stub origin standing in for the API, so the benchmark
//!   measures the edge and not Postgres: `GET /api/products` and `/api/products/{slug}`
//!   answer ~2 KB of JSON with the API's catalog `Cache-Control` (`public, max-age=3600,
//!   stale-while-revalidate=7200`); `GET /api/nocache` the same body with `no-store`;
//!   `GET /health` 200.
//! * `edge-loadgen phases URL SCALE [SLUGS]` — the seed's Artillery scenario, open loop
//!   (arrivals on a clock, not after responses): phases warm-up 60 s at 10 new visitors/s,
//!   ramp 120 s at 50/s, sustained 300 s at 100/s, every duration and the 3 s think time
//!   multiplied by SCALE. Each visitor does `GET /api/products?utm_source=…` (a tracking
//!   parameter unique to the visitor), thinks, then `GET /api/products/{slug}`. Prints one
//!   `PHASE` line per phase and a `TOTAL` line: requests, HIT/MISS/STALE, errors, hit ratio,
//!   latency percentiles (from the scheduled send time, so stalls are not hidden).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["origin", bind] => match bind.parse() {
            Ok(addr) => origin(addr).await,
            Err(e) => usage(&format!("bad address {bind}: {e}")),
        },
        ["phases", url, scale, rest @ ..] => {
            let Ok(scale) = scale.parse::<f64>() else { return usage("SCALE must be a number, e.g. 0.1") };
            if !(0.001..=10.0).contains(&scale) {
                return usage("SCALE must be between 0.001 and 10");
            }
            let slugs: Vec<String> =
                rest.first().map_or("classic-tee,hoodie", |s| s).split(',').map(str::to_owned).collect();
            phases(url.trim_end_matches('/').to_owned(), scale, slugs).await
        }
        _ => usage("expected `origin BIND` or `phases URL SCALE [SLUG,SLUG]`"),
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!(
        "edge-loadgen: {problem}\nusage: edge-loadgen origin 127.0.0.1:3900\n       edge-loadgen phases http://127.0.0.1:8787 0.1 [classic-tee,hoodie]"
    );
    ExitCode::from(2)
}

async fn origin(addr: SocketAddr) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("edge-loadgen: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // ~2 KB, the size of the seed catalog's product list.
    let item = r#"{"slug":"classic-tee","name":"Classic Tee","base_price_cents":1800,"variants":["S","M","L","XL"]}"#;
    let catalog = Bytes::from(format!("{{\"products\":[{}]}}", vec![item; 20].join(",")));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let catalog = catalog.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let catalog = catalog.clone();
                async move {
                    let path = req.uri().path();
                    let (status, cache_control, body) = if path == "/health" {
                        (StatusCode::OK, "no-store", Bytes::from_static(b"{\"status\":\"ok\"}"))
                    } else if path == "/api/nocache" {
                        (StatusCode::OK, "no-store", catalog)
                    } else if path == "/api/products" || path.starts_with("/api/products/") {
                        (StatusCode::OK, "public, max-age=3600, stale-while-revalidate=7200", catalog)
                    } else {
                        (
                            StatusCode::NOT_FOUND,
                            "public, max-age=60",
                            Bytes::from_static(b"{\"error\":{\"code\":\"not_found\"}}"),
                        )
                    };
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .header("cache-control", cache_control)
                        .body(Full::new(body))
                        .expect("static response");
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

#[derive(Default)]
struct Tally {
    hit: u64,
    miss: u64,
    stale: u64,
    errors: u64,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn line(&mut self, label: &str, visitors: u64, seconds: f64) -> String {
        self.latencies_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.latencies_us.is_empty() {
                return 0.0;
            }
            let i = ((p / 100.0) * (self.latencies_us.len() - 1) as f64).round() as usize;
            self.latencies_us[i] as f64 / 1000.0
        };
        let requests = self.hit + self.miss + self.stale + self.errors;
        let served = (self.hit + self.miss + self.stale).max(1);
        format!(
            "{label} seconds={seconds:.1} visitors={visitors} requests={requests} rps={:.1} hit={} miss={} stale={} errors={} hit_ratio={:.4} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2}",
            requests as f64 / seconds.max(0.001),
            self.hit,
            self.miss,
            self.stale,
            self.errors,
            (self.hit + self.stale) as f64 / served as f64,
            pct(50.0),
            pct(95.0),
            pct(99.0),
            self.latencies_us.last().copied().unwrap_or(0) as f64 / 1000.0,
        )
    }
}

async fn phases(base: String, scale: f64, slugs: Vec<String>) -> ExitCode {
    const PHASES: [(&str, f64, f64); 3] = [("warm-up", 60.0, 10.0), ("ramp", 120.0, 50.0), ("sustained", 300.0, 100.0)];
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).pool_max_idle_per_host(512).build(connector);
    let think = Duration::from_secs_f64(3.0 * scale);
    let total = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let mut visitor_id: u64 = 0;
    let mut all_visitors = 0;
    for (name, duration, rate) in PHASES {
        let phase_tally = Arc::new(Mutex::new(Tally::default()));
        let seconds = duration * scale;
        let visitors = (seconds * rate).round() as u64;
        let gap = Duration::from_secs_f64(1.0 / rate);
        let phase_start = tokio::time::Instant::now();
        let mut tasks = Vec::with_capacity(visitors as usize);
        for i in 0..visitors {
            let due = phase_start + gap.mul_f64(i as f64);
            tokio::time::sleep_until(due).await;
            visitor_id += 1;
            let slug = slugs[(visitor_id as usize) % slugs.len()].clone();
            let urls =
                [format!("{base}/api/products?utm_source=visitor{visitor_id}"), format!("{base}/api/products/{slug}")];
            let (client, phase_tally, total) = (client.clone(), phase_tally.clone(), total.clone());
            tasks.push(tokio::spawn(async move {
                for (step, url) in urls.iter().enumerate() {
                    if step == 1 {
                        tokio::time::sleep(think).await;
                    }
                    let sent = Instant::now();
                    let outcome = request(&client, url).await;
                    let us = sent.elapsed().as_micros() as u64;
                    for tally in [&phase_tally, &total] {
                        let mut t = tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        match outcome.as_deref() {
                            Some("HIT") => t.hit += 1,
                            Some("STALE") => t.stale += 1,
                            Some(_) => t.miss += 1,
                            None => t.errors += 1,
                        }
                        t.latencies_us.push(us);
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        all_visitors += visitors;
        let line = phase_tally.lock().unwrap_or_else(std::sync::PoisonError::into_inner).line(
            &format!("PHASE name={name}"),
            visitors,
            phase_start.elapsed().as_secs_f64(),
        );
        println!("{line}");
    }
    let line = total.lock().unwrap_or_else(std::sync::PoisonError::into_inner).line(
        "TOTAL",
        all_visitors,
        started.elapsed().as_secs_f64(),
    );
    println!("{line}");
    ExitCode::SUCCESS
}

/// `X-Cache` of a 2xx answer, `None` for an error.
async fn request(client: &Client<HttpConnector, Empty<Bytes>>, url: &str) -> Option<String> {
    let request = Request::get(url).body(Empty::new()).ok()?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request)).await.ok()?.ok()?;
    let ok = response.status().is_success();
    let x_cache = response.headers().get("x-cache").and_then(|v| v.to_str().ok()).unwrap_or("MISS").to_owned();
    response.into_body().collect().await.ok()?;
    ok.then_some(x_cache)
}
