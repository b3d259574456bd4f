//! The small traits the edge's logic runs over. Each host binds them: the native host to
//! process memory, a directory and a hyper client (`crate::native`); the Worker to the
//! Cache API, an R2 bucket, `Fetch` and a Durable Object (`edge/worker`).
//!
//! The traits use `async fn` without `Send` bounds on purpose: workers-rs futures are not
//! `Send` (JavaScript promises, one thread), while the native host only ever calls concrete
//! implementations, whose futures the compiler sees are `Send`.
#![allow(async_fn_in_trait)]

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use thiserror::Error;

use crate::assets::{AssetKey, ByteRange, ObjectMeta};
use crate::cache::{CacheKey, CachedResponse};
use crate::ratelimit::{Acquire, Decision, LimitKey, Rule};
use crate::routing::Origin;

/// The time. `SystemTime::now()` panics on wasm32, so the logic never calls it directly.
pub trait Clock {
    fn now(&self) -> SystemTime;
}

/// The edge cache (Cloudflare's Cache API in production).
pub trait EdgeCache {
    async fn get(&self, key: &CacheKey) -> Option<CachedResponse>;
    async fn put(&self, key: &CacheKey, entry: CachedResponse);
    /// Removes one key; whether it was there (hosts that cannot tell say `true`).
    async fn delete(&self, key: &CacheKey) -> bool;
    /// Removes every key starting with `prefix`; how many, when the host can tell.
    async fn purge_prefix(&self, prefix: &str) -> Result<Option<u64>, PurgeError>;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PurgeError {
    #[error("this cache cannot purge by prefix")]
    Unsupported,
    #[error("purge failed: {0}")]
    Failed(String),
}

/// Object storage for assets (R2 in production).
pub trait Bucket {
    async fn head(&self, key: &AssetKey) -> Result<Option<ObjectMeta>, BucketError>;
    /// The object's bytes, or only `range` of them. `None` if it vanished meanwhile.
    async fn get(&self, key: &AssetKey, range: Option<ByteRange>) -> Result<Option<Bytes>, BucketError>;
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("bucket unavailable: {0}")]
pub struct BucketError(pub String);

/// HTTP to one origin server (`Fetch` in production). Implementations buffer the response
/// body (bounded) and apply `timeout` to the whole exchange.
pub trait OriginClient {
    async fn send(
        &self,
        origin: &Origin,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, OriginError>;
}

/// Why an origin request failed. All of them count against the pool's health.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OriginError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("timed out")]
    Timeout,
    /// The connection broke or the origin spoke bad HTTP, or its body was too large.
    #[error("bad exchange: {0}")]
    Exchange(String),
}

/// Where token buckets live (process memory natively, a Durable Object on Cloudflare).
pub trait RateLimitStore {
    async fn acquire(&self, key: &LimitKey, rule: Rule, mode: Acquire, now: SystemTime) -> Decision;
}

/// One host's bindings, handed to [`crate::Edge::handle`] with every request.
pub trait Platform {
    type Cache: EdgeCache;
    type Bucket: Bucket;
    type Origin: OriginClient;
    type Limits: RateLimitStore;
    type Clock: Clock;

    fn cache(&self) -> &Self::Cache;
    fn bucket(&self) -> &Self::Bucket;
    fn origin(&self) -> &Self::Origin;
    fn limits(&self) -> &Self::Limits;
    fn clock(&self) -> &Self::Clock;
}
