//! The seed's Artillery scenario against the edge, open loop (arrivals on a clock, not after
//! responses): phases warm-up 60 s at 10 new visitors/s, ramp 120 s at 50/s, sustained 300 s
//! at 100/s, every duration and the 3 s think time multiplied by a scale. Each visitor does
//! `GET /api/products?utm_source=visitor<N>` (a tracking parameter unique to the visitor),
//! thinks, then `GET /api/products/{slug}`. Per phase and in total: requests, the edge's
//! `X-Cache` verdicts, errors, hit ratio and latency percentiles.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

use crate::client::{self, Client, exchange_with};
use crate::stats::{Latencies, LatencySummary};

/// One Artillery phase at scale 1.
pub struct Phase {
    pub name: &'static str,
    pub seconds: f64,
    pub arrivals_per_second: f64,
}

pub const ARTILLERY: [Phase; 3] = [
    Phase { name: "warm-up", seconds: 60.0, arrivals_per_second: 10.0 },
    Phase { name: "ramp", seconds: 120.0, arrivals_per_second: 50.0 },
    Phase { name: "sustained", seconds: 300.0, arrivals_per_second: 100.0 },
];

/// Think time between a visitor's two requests, at scale 1.
pub const THINK_SECONDS: f64 = 3.0;

/// The time factor applied to every phase and to the think time, 0.001..=10.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Scale(f64);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the phase scale must be a number between 0.001 and 10 (got {0})")]
pub struct BadScale(String);

impl Scale {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Scale {
    type Error = BadScale;

    fn try_from(x: f64) -> Result<Self, Self::Error> {
        (0.001..=10.0).contains(&x).then_some(Self(x)).ok_or(BadScale(x.to_string()))
    }
}

impl From<Scale> for f64 {
    fn from(s: Scale) -> Self {
        s.0
    }
}

impl FromStr for Scale {
    type Err = BadScale;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse::<f64>().map_err(|_| BadScale(s.to_owned()))?.try_into()
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One phase, or the whole run when `name` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    pub name: Option<String>,
    pub seconds: f64,
    pub visitors: u64,
    pub hit: u64,
    pub miss: u64,
    pub stale: u64,
    pub errors: u64,
    #[serde(flatten)]
    pub latency: LatencySummary,
}

impl PhaseResult {
    pub fn requests(&self) -> u64 {
        self.hit + self.miss + self.stale + self.errors
    }

    pub fn rps(&self) -> f64 {
        self.requests() as f64 / self.seconds.max(0.001)
    }

    /// Answers served from the cache (fresh or stale) among all answers.
    pub fn hit_ratio(&self) -> f64 {
        (self.hit + self.stale) as f64 / (self.hit + self.miss + self.stale).max(1) as f64
    }
}

/// `PHASE name=ramp seconds=.. visitors=.. requests=.. rps=.. hit=.. miss=.. stale=.. errors=..
/// hit_ratio=.. p50_ms=.. p95_ms=.. p99_ms=.. max_ms=..`, or `TOTAL seconds=..` for the run.
impl fmt::Display for PhaseResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "PHASE name={name}")?,
            None => f.write_str("TOTAL")?,
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let l = &self.latency;
        write!(
            f,
            " seconds={:.1} visitors={} requests={} rps={:.1} hit={} miss={} stale={} errors={} hit_ratio={:.4} p50_ms={:.2} p95_ms={:.2} p99_ms={:.2} max_ms={:.2}",
            self.seconds,
            self.visitors,
            self.requests(),
            self.rps(),
            self.hit,
            self.miss,
            self.stale,
            self.errors,
            self.hit_ratio(),
            ms(l.p50_us),
            ms(l.p95_us),
            ms(l.p99_us),
            ms(l.max_us),
        )
    }
}

/// The edge's verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Hit,
    Miss,
    Stale,
    Error,
}

impl Outcome {
    /// A 2xx answer is classified by its `X-Cache` (absent counts as a miss); anything else,
    /// including a timeout, is an error.
    fn of(answer: Result<client::Answer, client::ExchangeError>) -> Self {
        match answer {
            Ok(a) if a.status.is_success() => match a.headers.get("x-cache").and_then(|v| v.to_str().ok()) {
                Some("HIT") => Self::Hit,
                Some("STALE") => Self::Stale,
                _ => Self::Miss,
            },
            _ => Self::Error,
        }
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
    fn record(&mut self, outcome: Outcome, latency: Duration) {
        match outcome {
            Outcome::Hit => self.hit += 1,
            Outcome::Miss => self.miss += 1,
            Outcome::Stale => self.stale += 1,
            Outcome::Error => self.errors += 1,
        }
        self.latencies_us.push(latency.as_micros() as u64);
    }

    fn finish(self, name: Option<&str>, visitors: u64, seconds: f64) -> PhaseResult {
        PhaseResult {
            name: name.map(str::to_owned),
            seconds,
            visitors,
            hit: self.hit,
            miss: self.miss,
            stale: self.stale,
            errors: self.errors,
            latency: Latencies::new(self.latencies_us).summary(),
        }
    }
}

type Shared = Arc<Mutex<Tally>>;

fn record(tallies: [&Shared; 2], outcome: Outcome, latency: Duration) {
    for tally in tallies {
        tally.lock().unwrap_or_else(PoisonError::into_inner).record(outcome, latency);
    }
}

fn take(tally: &Shared) -> Tally {
    std::mem::take(&mut *tally.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Runs the phases against `base` (the edge's URL), reporting each phase as it ends.
/// Returns the phases and the total.
///
/// With `ip_header` (e.g. `cf-connecting-ip`, which workerd's local entry passes through as
/// Cloudflare would set it), each visitor sends its own address ([`client::visitor_ip`]),
/// so per-client rate limits count visitors, not the load generator.
pub async fn run(
    base: &str,
    scale: Scale,
    slugs: &[String],
    ip_header: Option<HeaderName>,
    mut on_phase: impl FnMut(&PhaseResult),
) -> (Vec<PhaseResult>, PhaseResult) {
    let base = base.trim_end_matches('/');
    let client = client::client();
    let think = Duration::from_secs_f64(THINK_SECONDS * scale.get());
    let total: Shared = Arc::default();
    let started = Instant::now();
    let mut visitor_id: u64 = 0;
    let mut all_visitors = 0;
    let mut results = Vec::with_capacity(ARTILLERY.len());
    for phase in &ARTILLERY {
        let tally: Shared = Arc::default();
        let visitors = (phase.seconds * scale.get() * phase.arrivals_per_second).round() as u64;
        let gap = Duration::from_secs_f64(1.0 / phase.arrivals_per_second);
        let phase_start = Instant::now();
        let mut tasks = Vec::with_capacity(visitors as usize);
        for i in 0..visitors {
            let due = phase_start + gap.mul_f64(i as f64);
            tokio::time::sleep_until(due.into()).await;
            visitor_id += 1;
            let list = format!("{base}/api/products?utm_source=visitor{visitor_id}");
            let product = format!("{base}/api/products/{}", slugs[visitor_id as usize % slugs.len()]);
            let headers: Vec<_> = ip_header.iter().map(|h| (h.clone(), client::visitor_ip(visitor_id))).collect();
            let (client, tally, total) = (client.clone(), tally.clone(), total.clone());
            tasks.push(tokio::spawn(visit(client, [list, product], headers, due, think, [tally, total])));
        }
        for task in tasks {
            let _ = task.await;
        }
        all_visitors += visitors;
        let result = take(&tally).finish(Some(phase.name), visitors, phase_start.elapsed().as_secs_f64());
        on_phase(&result);
        results.push(result);
    }
    (results, take(&total).finish(None, all_visitors, started.elapsed().as_secs_f64()))
}

/// One visitor: the list at its arrival time, then the product page after thinking. Each
/// latency runs from when the request was due.
async fn visit(
    client: Client,
    urls: [String; 2],
    headers: Vec<(HeaderName, HeaderValue)>,
    arrival: Instant,
    think: Duration,
    tallies: [Shared; 2],
) {
    let [list, product] = urls;
    let outcome = Outcome::of(exchange_with(&client, Method::GET, &list, &headers, None).await);
    record([&tallies[0], &tallies[1]], outcome, arrival.elapsed());
    tokio::time::sleep(think).await;
    let due = Instant::now();
    let outcome = Outcome::of(exchange_with(&client, Method::GET, &product, &headers, None).await);
    record([&tallies[0], &tallies[1]], outcome, due.elapsed());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: Option<&str>) -> PhaseResult {
        PhaseResult {
            name: name.map(str::to_owned),
            seconds: 6.2,
            visitors: 60,
            hit: 117,
            miss: 3,
            stale: 0,
            errors: 0,
            latency: LatencySummary { p50_us: 280, p95_us: 430, p99_us: 3100, max_us: 4000 },
        }
    }

    #[test]
    fn a_phase_prints_as_its_phase_line() {
        assert_eq!(
            result(Some("warm-up")).to_string(),
            "PHASE name=warm-up seconds=6.2 visitors=60 requests=120 rps=19.4 hit=117 miss=3 stale=0 errors=0 \
             hit_ratio=0.9750 p50_ms=0.28 p95_ms=0.43 p99_ms=3.10 max_ms=4.00"
        );
        assert!(result(None).to_string().starts_with("TOTAL seconds=6.2 visitors=60"));
    }

    #[test]
    fn stale_answers_count_as_hits_and_errors_do_not_count_at_all() {
        let r = PhaseResult { hit: 6, miss: 2, stale: 2, errors: 5, ..result(None) };
        assert_eq!((r.requests(), r.hit_ratio()), (15, 0.8));
        let nothing = PhaseResult { hit: 0, miss: 0, stale: 0, errors: 3, ..result(None) };
        assert_eq!(nothing.hit_ratio(), 0.0);
    }

    #[test]
    fn scales_are_bounded() {
        assert_eq!("0.1".parse::<Scale>().map(Scale::get), Ok(0.1));
        assert!("0".parse::<Scale>().is_err());
        assert!("11".parse::<Scale>().is_err());
        assert!("fast".parse::<Scale>().is_err());
    }

    #[test]
    fn at_scale_one_tenth_the_phases_are_48_seconds_and_3660_visitors() {
        let seconds: f64 = ARTILLERY.iter().map(|p| p.seconds * 0.1).sum();
        let visitors: f64 = ARTILLERY.iter().map(|p| (p.seconds * 0.1 * p.arrivals_per_second).round()).sum();
        assert_eq!((seconds.round(), visitors), (48.0, 3660.0));
    }
}
