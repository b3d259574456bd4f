//! A bounded in-memory [`EdgeCache`]: 16 shards, each a map plus insertion order; when a
//! shard is over its share of the byte budget the oldest entries go first.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::cache::{CacheKey, CachedResponse};
use crate::platform::{EdgeCache, PurgeError};

const SHARDS: usize = 16;

#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<CacheKey, (CachedResponse, u64)>,
    /// (key, generation) in insertion order; stale generations are skipped on eviction.
    order: VecDeque<(CacheKey, u64)>,
    bytes: usize,
    generation: u64,
}

impl Shard {
    fn remove(&mut self, key: &CacheKey) -> bool {
        match self.entries.remove(key) {
            Some((entry, _)) => {
                self.bytes = self.bytes.saturating_sub(entry.weight());
                true
            }
            None => false,
        }
    }
}

#[derive(Debug)]
pub struct MemoryCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
}

impl MemoryCache {
    pub fn new(max_bytes: usize) -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), shard_budget: (max_bytes / SHARDS).max(1) }
    }

    fn shard(&self, key: &CacheKey) -> MutexGuard<'_, Shard> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        self.shards[(hasher.finish() as usize) % SHARDS].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries and bytes held (for tests and logs).
    pub fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock().unwrap_or_else(PoisonError::into_inner);
            (n + s.entries.len(), b + s.bytes)
        })
    }
}

impl EdgeCache for MemoryCache {
    async fn get(&self, key: &CacheKey) -> Option<CachedResponse> {
        self.shard(key).entries.get(key).map(|(entry, _)| entry.clone())
    }

    async fn put(&self, key: &CacheKey, entry: CachedResponse) {
        let weight = entry.weight();
        if weight > self.shard_budget {
            return;
        }
        let mut shard = self.shard(key);
        shard.remove(key);
        shard.generation += 1;
        let generation = shard.generation;
        shard.bytes += weight;
        shard.entries.insert(key.clone(), (entry, generation));
        shard.order.push_back((key.clone(), generation));
        while shard.bytes > self.shard_budget {
            let Some((old, old_generation)) = shard.order.pop_front() else { break };
            if shard.entries.get(&old).is_some_and(|(_, g)| *g == old_generation) {
                shard.remove(&old);
            }
        }
        // Keep the order queue from growing without bound under overwrites.
        if shard.order.len() > 2 * shard.entries.len() + 64 {
            let live: Vec<(CacheKey, u64)> = shard
                .order
                .iter()
                .filter(|(k, g)| shard.entries.get(k).is_some_and(|(_, live)| live == g))
                .cloned()
                .collect();
            shard.order = live.into();
        }
    }

    async fn delete(&self, key: &CacheKey) -> bool {
        self.shard(key).remove(key)
    }

    async fn purge_prefix(&self, prefix: &str) -> Result<Option<u64>, PurgeError> {
        let mut purged = 0u64;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let doomed: Vec<CacheKey> =
                shard.entries.keys().filter(|k| k.as_str().starts_with(prefix)).cloned().collect();
            for key in doomed {
                purged += u64::from(shard.remove(&key));
            }
        }
        Ok(Some(purged))
    }
}
