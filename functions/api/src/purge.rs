//! Purging the edge cache after an admin catalog write.
//!
//! The edge's contract (`edge/src/edge.rs`): `POST /__edge/purge` with
//! `Authorization: Bearer <EDGE_PURGE_SECRET>` and `{"keys": [...], "prefixes": [...]}`.
//! A purge that fails is logged and does not fail the admin's write (it is committed); the
//! edge's copies then expire by their own TTL.

use std::time::Duration;

use serde_json::json;

use crate::config::EdgePurgeConfig;

#[derive(Clone)]
pub struct EdgePurge {
    url: String,
    secret: String,
    http: reqwest::Client,
}

impl EdgePurge {
    pub fn new(config: &EdgePurgeConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        Ok(Self { url: config.url.clone(), secret: config.secret.clone(), http })
    }

    /// Asks the edge to drop `keys` (exact paths) and everything under `prefixes`.
    /// Returns whether the edge accepted.
    pub async fn purge(&self, keys: &[String], prefixes: &[String]) -> bool {
        let result = self
            .http
            .post(&self.url)
            .bearer_auth(&self.secret)
            .json(&json!({ "keys": keys, "prefixes": prefixes }))
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(keys = keys.len(), prefixes = prefixes.len(), "edge purged");
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
