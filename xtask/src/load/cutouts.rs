//! Background removal under load, the way the storefront does it, through the edge: at a
//! steady rate a new designer (its own client address) declares an upload, PUTs the image
//! to the presigned URL, completes it, queues a cut-out job and polls `GET /api/jobs/{id}`
//! every 2 s until the job is final. Reports the jobs' latency (queued → seen final, as the
//! storefront sees it, so it includes up to one poll interval), and every refusal: a poll
//! or an upload answered 429 is counted apart from other errors.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use crate::client::{self, Answer, Client, exchange_with};
use crate::stats::{Latencies, LatencySummary};

/// How often the storefront polls a job.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// A job not final after this long counts as failed.
pub const JOB_DEADLINE: Duration = Duration::from_secs(180);

/// What to run.
pub struct Plan {
    /// The edge's base URL.
    pub base: String,
    /// One new designer every `every`.
    pub every: Duration,
    /// For how long designers keep arriving.
    pub seconds: f64,
    /// The image each designer uploads (PNG).
    pub image: Bytes,
    /// The header carrying each designer's own address (see [`client::visitor_ip`]).
    pub ip_header: Option<HeaderName>,
    /// Offset for the designers' addresses, so they differ from other generators'.
    pub first_visitor: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct CutoutsResult {
    pub jobs: u64,
    pub done: u64,
    /// Ended in `error`, never became final, or a step failed.
    pub failed: u64,
    pub polls: u64,
    pub polls_limited: u64,
    pub uploads_limited: u64,
    /// Answers other than 2xx/429 on any step, and transport errors.
    pub errors: u64,
    pub latency: LatencySummary,
}

/// `CUTOUTS jobs=.. done=.. failed=.. polls=.. polls_limited=.. uploads_limited=.. errors=..
/// p50_ms=.. p95_ms=.. max_ms=..`
impl fmt::Display for CutoutsResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        write!(
            f,
            "CUTOUTS jobs={} done={} failed={} polls={} polls_limited={} uploads_limited={} errors={} p50_ms={:.0} p95_ms={:.0} max_ms={:.0}",
            self.jobs,
            self.done,
            self.failed,
            self.polls,
            self.polls_limited,
            self.uploads_limited,
            self.errors,
            ms(self.latency.p50_us),
            ms(self.latency.p95_us),
            ms(self.latency.max_us),
        )
    }
}

#[derive(Default)]
struct Tally {
    result: CutoutsResult,
    latencies_us: Vec<u64>,
}

type Shared = Arc<Mutex<Tally>>;

fn tally(shared: &Shared, f: impl FnOnce(&mut Tally)) {
    f(&mut shared.lock().unwrap_or_else(PoisonError::into_inner));
}

pub async fn run(plan: Plan) -> CutoutsResult {
    let client = client::client();
    let shared: Shared = Arc::default();
    let designers = (plan.seconds / plan.every.as_secs_f64()).floor().max(1.0) as u64;
    let started = Instant::now();
    let base = plan.base.trim_end_matches('/').to_owned();
    let mut tasks = Vec::new();
    for i in 0..designers {
        tokio::time::sleep_until((started + plan.every.mul_f64(i as f64)).into()).await;
        let headers: Vec<_> =
            plan.ip_header.iter().map(|h| (h.clone(), client::visitor_ip(plan.first_visitor + i))).collect();
        let (client, shared, base, image) = (client.clone(), shared.clone(), base.clone(), plan.image.clone());
        tasks.push(tokio::spawn(async move {
            let ok = designer(&client, &base, &headers, image, &shared).await;
            if !ok {
                tally(&shared, |t| t.result.failed += 1);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut t = std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner));
    t.result.latency = Latencies::new(t.latencies_us).summary();
    t.result
}

fn json_of(answer: &Answer) -> Option<Value> {
    serde_json::from_slice(&answer.body).ok()
}

/// One designer's upload and job. `false` when it did not end with a finished job.
async fn designer(
    client: &Client,
    base: &str,
    headers: &[(HeaderName, HeaderValue)],
    image: Bytes,
    shared: &Shared,
) -> bool {
    let step = |answer: Result<Answer, client::ExchangeError>, limited: Option<fn(&mut Tally)>| match answer {
        Ok(a) if a.status.is_success() => Some(a),
        Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS => {
            tally(shared, |t| limited.unwrap_or(|t: &mut Tally| t.result.errors += 1)(t));
            None
        }
        _ => {
            tally(shared, |t| t.result.errors += 1);
            None
        }
    };
    let declare = json!({ "content_type": "image/png", "byte_size": image.len(), "filename": "design.png" });
    let declared = exchange_with(
        client,
        Method::POST,
        &format!("{base}/api/uploads"),
        headers,
        Some(Bytes::from(declare.to_string())),
    )
    .await;
    let Some(declared) = step(declared, Some(|t| t.result.uploads_limited += 1)).as_ref().and_then(json_of) else {
        return false;
    };
    let (Some(upload_id), Some(put_url)) =
        (declared["upload"]["id"].as_str(), declared["upload"]["put"]["url"].as_str())
    else {
        tally(shared, |t| t.result.errors += 1);
        return false;
    };
    // A guest: complete and the job routes answer only to the token the upload start gave.
    let Some(guest) = declared["guest_token"]["token"].as_str().and_then(|t| HeaderValue::from_str(t).ok()) else {
        tally(shared, |t| t.result.errors += 1);
        return false;
    };
    let headers: Vec<(HeaderName, HeaderValue)> =
        headers.iter().cloned().chain([(HeaderName::from_static("x-guest-token"), guest)]).collect();
    let headers = headers.as_slice();
    let put_headers = [(CONTENT_TYPE, HeaderValue::from_static("image/png"))];
    if step(exchange_with(client, Method::PUT, put_url, &put_headers, Some(image)).await, None).is_none() {
        return false;
    }
    let completed =
        exchange_with(client, Method::POST, &format!("{base}/api/uploads/{upload_id}/complete"), headers, None).await;
    let Some(asset) = step(completed, None).as_ref().and_then(json_of) else { return false };
    let Some(asset_id) = asset["asset"]["id"].as_str() else { return false };
    let job = json!({ "asset_id": asset_id }).to_string();
    let queued = exchange_with(client, Method::POST, &format!("{base}/api/jobs"), headers, Some(job.into())).await;
    let Some(job) = step(queued, None).as_ref().and_then(json_of) else { return false };
    let Some(job_id) = job["job"]["id"].as_str().map(str::to_owned) else { return false };
    let since = Instant::now();
    tally(shared, |t| t.result.jobs += 1);

    let poll_url = format!("{base}/api/jobs/{job_id}");
    while since.elapsed() < JOB_DEADLINE {
        tokio::time::sleep(POLL_EVERY).await;
        tally(shared, |t| t.result.polls += 1);
        let polled = exchange_with(client, Method::GET, &poll_url, headers, None).await;
        let Some(answer) = step(polled, Some(|t| t.result.polls_limited += 1)) else { continue };
        match json_of(&answer).as_ref().and_then(|j| j["job"]["status"].as_str().map(str::to_owned)).as_deref() {
            Some("done") => {
                let took = since.elapsed().as_micros() as u64;
                tally(shared, |t| {
                    t.result.done += 1;
                    t.latencies_us.push(took);
                });
                return true;
            }
            Some("error") => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_prints_as_one_cutouts_line() {
        let r = CutoutsResult {
            jobs: 12,
            done: 11,
            failed: 1,
            polls: 40,
            polls_limited: 0,
            uploads_limited: 0,
            errors: 0,
            latency: LatencySummary { p50_us: 2_100_000, p95_us: 4_050_000, p99_us: 4_100_000, max_us: 4_200_000 },
        };
        assert_eq!(
            r.to_string(),
            "CUTOUTS jobs=12 done=11 failed=1 polls=40 polls_limited=0 uploads_limited=0 errors=0 p50_ms=2100 p95_ms=4050 max_ms=4200"
        );
    }
}
