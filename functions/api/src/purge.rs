//! Purging the edge cache after an admin catalog write.
//!
//! The edge's contract (`edge/src/edge.rs`): `POST /__edge/purge` with
//! `Authorization: Bearer <EDGE_PURGE_SECRET>` and
//! `{"keys": [...], "prefixes": [...], "again_after_secs": n}`.
//!
//! **Why purge twice.** A catalog response computed from before the write — by an instance
//! that has not read the new catalog version yet, or by any request that started before the
//! commit — can reach the edge just *after* the first purge and sit there for the edge's
//! whole lifetime. Such a response comes from a request that read this instance's knowledge
//! of the version less than `CATALOG_VERSION_CHECK_MS` after the commit, and every request
//! ends within `REQUEST_TIMEOUT_MS`; so the edge repeats the purge [`again_after`] that sum
//! (plus a second for the trip to the edge), and nothing older can be stored after it.
//!
//! An edge older than `again_after_secs` refuses the field (400); the purge is then sent again
//! without it, so a deploy that updates the API before the Worker still purges (once).
//!
//! A purge that fails is logged and does not fail the admin's write (it is committed); the
//! response says `edge_purged: false`, and the edge's copies then expire by their own TTL.

use std::time::Duration;

use serde_json::json;

use crate::config::EdgePurgeConfig;

/// The most the edge accepts: a Cloudflare Worker may keep working 30 s after answering.
pub const MAX_AGAIN_AFTER: Duration = Duration::from_secs(25);

/// When the edge should repeat a purge: the version check interval plus the request time
/// limit, plus one second for the response's trip to the edge, rounded up to whole seconds
/// and capped at [`MAX_AGAIN_AFTER`]. `None` would mean no second purge; the API always asks.
pub fn again_after(version_check: Duration, request_timeout: Duration) -> Duration {
    let total = version_check + request_timeout + Duration::from_secs(1);
    let secs = total.as_secs() + u64::from(total.subsec_nanos() > 0);
    Duration::from_secs(secs).min(MAX_AGAIN_AFTER)
}

#[derive(Clone)]
pub struct EdgePurge {
    url: String,
    secret: String,
    again_after: Duration,
    http: reqwest::Client,
}

impl EdgePurge {
    pub fn new(config: &EdgePurgeConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        Ok(Self { url: config.url.clone(), secret: config.secret.clone(), again_after: config.again_after, http })
    }

    /// How long after this purge the edge repeats it.
    pub fn again_after(&self) -> Duration {
        self.again_after
    }

    /// Asks the edge to drop `keys` (exact paths) and everything under `prefixes` now and
    /// again after [`Self::again_after`]. Returns whether the edge accepted.
    pub async fn purge(&self, keys: &[String], prefixes: &[String]) -> bool {
        let again_after_secs = self.again_after.as_secs();
        let body = json!({ "keys": keys, "prefixes": prefixes, "again_after_secs": again_after_secs });
        let mut result = self.http.post(&self.url).bearer_auth(&self.secret).json(&body).send().await;
        if matches!(&result, Ok(r) if r.status() == reqwest::StatusCode::BAD_REQUEST) {
            tracing::warn!("the edge refused again_after_secs (an older edge?): purging once, without the repeat");
            let body = json!({ "keys": keys, "prefixes": prefixes });
            result = self.http.post(&self.url).bearer_auth(&self.secret).json(&body).send().await;
        }
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(keys = keys.len(), prefixes = prefixes.len(), again_after_secs, "edge purged");
                true
            }
            Ok(r) => {
                tracing::warn!(status = r.status().as_u16(), "edge purge refused");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "edge purge failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_purge_waits_out_the_check_interval_and_the_slowest_request() {
        let ms = Duration::from_millis;
        assert_eq!(again_after(ms(1_000), ms(10_000)), Duration::from_secs(12), "the defaults");
        assert_eq!(again_after(ms(0), ms(100)), Duration::from_secs(2), "rounded up");
        assert_eq!(again_after(ms(1_500), ms(2_000)), Duration::from_secs(5));
        assert_eq!(again_after(ms(10_000), ms(60_000)), MAX_AGAIN_AFTER, "capped at what a Worker can wait");
    }
}
