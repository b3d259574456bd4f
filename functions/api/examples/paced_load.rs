//! An open-loop load generator for `make bench-api`: sends requests at a fixed rate, whatever
//! the server's latency (wrk is closed-loop: its rate falls when the server slows, which hides
//! queueing). Used to measure the order path's p95 *at* 200 req/s.
//!
//! ```text
//! paced_load URL RATE SECONDS [BODY_FILE]
//! ```
//! POSTs `BODY_FILE` (JSON) when given, else GETs. Prints one line:
//! `PACED_RESULT rate=.. sent=.. ok=.. errors=.. achieved_rps=.. p50_us=.. p95_us=.. p99_us=.. max_us=..`
//! Latency is measured from each request's *scheduled* send time, so a generator or server
//! that falls behind shows up as latency rather than being hidden (no coordinated omission).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: paced_load URL RATE SECONDS [BODY_FILE]");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let rate: u64 = args[2].parse()?;
    let seconds: u64 = args[3].parse()?;
    let body = args.get(4).map(std::fs::read).transpose()?.map(bytes::Bytes::from);
    if rate == 0 || rate > 100_000 || seconds == 0 || seconds > 3600 {
        eprintln!("RATE must be 1..=100000 and SECONDS 1..=3600");
        std::process::exit(2);
    }

    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).pool_max_idle_per_host(512).build()?;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((rate * seconds) as usize)));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Bound what can be in flight so a dead server cannot make us open unbounded sockets.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(1024));
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let total = rate * seconds;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (http, url, body, latencies, errors) =
            (http.clone(), url.clone(), body.clone(), latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let request = match body {
                Some(b) => http.post(&url).header("content-type", "application/json").body(b),
                None => http.get(&url),
            };
            let ok = match request.send().await {
                Ok(r) => {
                    let status = r.status();
                    let _ = r.bytes().await;
                    status.is_success()
                }
                Err(_) => false,
            };
            let elapsed = scheduled.elapsed();
            drop(permit);
            if ok {
                latencies.lock().await.push(elapsed.as_micros() as u64);
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = start.elapsed().as_secs_f64();
    let mut l = latencies.lock().await.clone();
    l.sort_unstable();
    let pct = |p: f64| if l.is_empty() { 0 } else { l[((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1] };
    println!(
        "PACED_RESULT rate={rate} sent={total} ok={} errors={} achieved_rps={:.1} p50_us={} p95_us={} p99_us={} max_us={}",
        l.len(),
        errors.load(std::sync::atomic::Ordering::Relaxed),
        l.len() as f64 / wall,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        l.last().copied().unwrap_or(0)
    );
    Ok(())
}
