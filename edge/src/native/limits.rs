//! Token buckets in process memory, sharded; buckets that have refilled completely are
//! forgotten when a shard grows, so a flood of distinct addresses cannot grow it forever.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::platform::RateLimitStore;
use crate::ratelimit::{Acquire, Decision, LimitKey, Rule, TokenBucket};

const SHARDS: usize = 16;
/// Past this many buckets a shard drops its full ones.
const SWEEP_AT: usize = 8192;

#[derive(Debug)]
pub struct MemoryRateLimits {
    shards: Vec<Mutex<HashMap<LimitKey, (TokenBucket, Rule)>>>,
}

impl Default for MemoryRateLimits {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl RateLimitStore for MemoryRateLimits {
    async fn acquire(&self, key: &LimitKey, rule: Rule, mode: Acquire, now: SystemTime) -> Decision {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let mut shard = self.shards[(hasher.finish() as usize) % SHARDS].lock().unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= SWEEP_AT && !shard.contains_key(key) {
            shard.retain(|_, (bucket, rule)| !bucket.is_full(*rule, now));
        }
        let (bucket, _) = shard.entry(key.clone()).or_insert_with(|| (TokenBucket::full(rule, now), rule));
        bucket.acquire(rule, mode, now)
    }
}
