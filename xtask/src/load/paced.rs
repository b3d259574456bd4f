//! Open-loop paced load: requests leave on a fixed schedule whatever the server's latency
//! (wrk is closed-loop: its rate falls when the server slows, which hides queueing). Latency
//! is measured from each request's *scheduled* send time, so a generator or server that falls
//! behind shows up as latency rather than being hidden (no coordinated omission).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::client::{self, exchange};
use crate::stats::{Latencies, LatencySummary};

/// Requests per second, 1..=100 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate(u32);

/// Run length in whole seconds, 1..=3600.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seconds(u32);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("the rate must be 1..=100000 requests per second (got {0})")]
    Rate(u32),
    #[error("the duration must be 1..=3600 seconds (got {0})")]
    Seconds(u32),
}

impl Rate {
    pub fn new(per_second: u32) -> Result<Self, PlanError> {
        (1..=100_000).contains(&per_second).then_some(Self(per_second)).ok_or(PlanError::Rate(per_second))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Seconds {
    pub fn new(seconds: u32) -> Result<Self, PlanError> {
        (1..=3600).contains(&seconds).then_some(Self(seconds)).ok_or(PlanError::Seconds(seconds))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// What to send: POST `body` as JSON when there is one, else GET.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    pub rate: Rate,
    pub seconds: Seconds,
    pub body: Option<Bytes>,
}

/// One run. Latencies are of the successful (2xx) requests; everything else is an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacedResult {
    pub rate: u32,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// Successful requests per second of wall time.
    pub achieved_rps: f64,
    #[serde(flatten)]
    pub latency: LatencySummary,
}

/// `PACED_RESULT rate=.. sent=.. ok=.. errors=.. achieved_rps=.. p50_us=.. p95_us=.. p99_us=.. max_us=..`
impl fmt::Display for PacedResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        write!(
            f,
            "PACED_RESULT rate={} sent={} ok={} errors={} achieved_rps={:.1} p50_us={} p95_us={} p99_us={} max_us={}",
            self.rate, self.sent, self.ok, self.errors, self.achieved_rps, l.p50_us, l.p95_us, l.p99_us, l.max_us
        )
    }
}

/// At most this many requests in flight, so a dead server cannot make us open unbounded
/// sockets. Waiting for a slot counts as latency.
const MAX_IN_FLIGHT: usize = 1024;

pub async fn run(plan: Plan) -> PacedResult {
    let rate = u64::from(plan.rate.get());
    let total = rate * u64::from(plan.seconds.get());
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let client = client::client();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let method = if plan.body.is_some() { Method::POST } else { Method::GET };

    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let (client, url, body, method) = (client.clone(), plan.url.clone(), plan.body.clone(), method.clone());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let ok = exchange(&client, method, &url, body).await.is_ok_and(|a| a.status.is_success());
            let elapsed = scheduled.elapsed();
            drop(permit);
            if ok {
                latencies.lock().unwrap_or_else(PoisonError::into_inner).push(elapsed.as_micros() as u64);
            } else {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let wall = start.elapsed().as_secs_f64();
    let latencies = Latencies::new(std::mem::take(&mut *latencies.lock().unwrap_or_else(PoisonError::into_inner)));
    PacedResult {
        rate: plan.rate.get(),
        sent: total,
        ok: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        achieved_rps: latencies.len() as f64 / wall,
        latency: latencies.summary(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_are_bounded() {
        assert!(Rate::new(200).is_ok() && Seconds::new(30).is_ok());
        assert_eq!(Rate::new(0), Err(PlanError::Rate(0)));
        assert_eq!(Rate::new(100_001), Err(PlanError::Rate(100_001)));
        assert_eq!(Seconds::new(3601), Err(PlanError::Seconds(3601)));
    }

    #[test]
    fn a_result_prints_as_the_paced_result_line() {
        let r = PacedResult {
            rate: 200,
            sent: 6000,
            ok: 5999,
            errors: 1,
            achieved_rps: 199.96,
            latency: LatencySummary { p50_us: 4700, p95_us: 5900, p99_us: 8500, max_us: 26_100 },
        };
        assert_eq!(
            r.to_string(),
            "PACED_RESULT rate=200 sent=6000 ok=5999 errors=1 achieved_rps=200.0 p50_us=4700 p95_us=5900 p99_us=8500 max_us=26100"
        );
    }
}
