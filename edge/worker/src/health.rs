//! Active health across isolates. The Cron Trigger probes every pool's readiness path and
//! publishes the [`ProbeReport`] to one [`HealthBoard`] Durable Object; every isolate reads
//! the board at most every `EDGE_HEALTH_BOARD_SECS`, in `wait_until` after a response (so a
//! request never waits on it), and applies reports newer than the last it applied.
//!
//! Why a Durable Object: the scheduled event runs in an isolate of its own choosing, and
//! the Cache API is per location; one object is the one place every isolate everywhere reads.

use std::cell::Cell;

use edge::ProbeReport;
use worker::{DurableObject, Env, Method, ObjectNamespace, Request, RequestInit, Response, State, durable_object};

/// The binding name (see `wrangler.toml`).
pub const HEALTH_BOARD_BINDING: &str = "HEALTH_BOARD";
/// The one board every isolate shares.
const BOARD_NAME: &str = "pools";
const REPORT_KEY: &str = "report";

/// The last probe report, stored by the Cron Trigger.
#[durable_object]
pub struct HealthBoard {
    state: State,
}

impl DurableObject for HealthBoard {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    /// `PUT /report` stores a report unless a newer one is stored; `GET /report` returns
    /// the stored one (404 before the first).
    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let storage = self.state.storage();
        let stored: Option<ProbeReport> = storage.get(REPORT_KEY).await.ok().flatten();
        match req.method() {
            Method::Put => {
                let report: ProbeReport = req.json().await?;
                if stored.as_ref().is_none_or(|s| s.probed_at_ms <= report.probed_at_ms) {
                    storage.put(REPORT_KEY, &report).await?;
                }
                Response::empty().map(|r| r.with_status(204))
            }
            Method::Get => match stored {
                Some(report) => Response::from_json(&report),
                None => Response::error("no report yet", 404),
            },
            _ => Response::error("method not allowed", 405),
        }
    }
}

fn board(namespace: &ObjectNamespace) -> worker::Result<worker::Stub> {
    namespace.id_from_name(BOARD_NAME)?.get_stub()
}

/// Stores `report` on the board.
pub async fn publish(namespace: &ObjectNamespace, report: &ProbeReport) -> worker::Result<()> {
    let mut init = RequestInit::new();
    init.with_method(Method::Put).with_body(Some(serde_json::to_string(report)?.into()));
    let request = Request::new_with_init("https://health-board/report", &init)?;
    let response = board(namespace)?.fetch_with_request(request).await?;
    match response.status_code() {
        200..=299 => Ok(()),
        status => Err(worker::Error::RustError(format!("the health board answered {status}"))),
    }
}

/// The board's report, if there is one.
pub async fn read(namespace: &ObjectNamespace) -> worker::Result<Option<ProbeReport>> {
    let mut response = board(namespace)?.fetch_with_str("https://health-board/report").await?;
    match response.status_code() {
        404 => Ok(None),
        200 => response.json().await.map(Some),
        status => Err(worker::Error::RustError(format!("the health board answered {status}"))),
    }
}

/// When this isolate last read the board and which report it last applied.
#[derive(Debug, Default)]
pub struct BoardSync {
    last_read_ms: Cell<u64>,
    applied_ms: Cell<u64>,
}

impl BoardSync {
    /// Whether a read is due at `now_ms` (and if so, marks it started: one read at a time
    /// per interval, however many requests arrive).
    pub fn due(&self, now_ms: u64, every_ms: u64) -> bool {
        if now_ms.saturating_sub(self.last_read_ms.get()) < every_ms {
            return false;
        }
        self.last_read_ms.set(now_ms);
        true
    }

    /// Whether `report` is newer than the last applied (and if so, records it as applied).
    pub fn is_new(&self, report: &ProbeReport) -> bool {
        if report.probed_at_ms <= self.applied_ms.get() {
            return false;
        }
        self.applied_ms.set(report.probed_at_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_is_read_once_per_interval_and_each_report_applied_once() {
        let sync = BoardSync::default();
        assert!(sync.due(10_000, 10_000));
        assert!(!sync.due(15_000, 10_000), "read 5 s ago");
        assert!(sync.due(20_000, 10_000));
        let report = |at| ProbeReport { probed_at_ms: at, pools: vec![] };
        assert!(sync.is_new(&report(1)));
        assert!(!sync.is_new(&report(1)), "already applied");
        assert!(!sync.is_new(&report(0)), "older than what was applied");
        assert!(sync.is_new(&report(2)));
    }
}
