//! The native host: the edge as a local HTTP server for `make dev`, the tests and the
//! benchmark. Never deployed; the Worker (`edge/worker`) is the production host.
//!
//! * [`MemoryCache`]: a bounded in-memory cache (bytes budget, oldest-first eviction).
//! * [`LocalBucket`]: the local object store's directory (`LOCAL_OBJECTS_DIR`, the same
//!   one the API's `LocalStore` writes: `data/<key>` + a JSON sidecar in `meta/<key>`).
//! * [`HyperOrigin`]: a pooled hyper client to the origins (plain HTTP: local origins).
//! * [`MemoryRateLimits`]: token buckets in a sharded map.
//! * [`serve`]: a hyper HTTP/1 server; `x-edge-country` sets the client's country here
//!   (local mode), never in the Worker.

mod bucket;
mod cache;
mod limits;
mod origin;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;

pub use bucket::LocalBucket;
pub use cache::MemoryCache;
pub use limits::MemoryRateLimits;
pub use origin::HyperOrigin;
pub use server::{RunningEdge, serve, start};

use crate::config::ConfigError;
use crate::geo::Country;
use crate::platform::{Clock, Platform};

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The native bindings of [`Platform`].
#[derive(Debug)]
pub struct NativePlatform {
    pub cache: MemoryCache,
    pub bucket: LocalBucket,
    pub origin: HyperOrigin,
    pub limits: MemoryRateLimits,
    pub clock: SystemClock,
}

impl NativePlatform {
    pub fn new(native: &NativeConfig) -> Self {
        Self {
            cache: MemoryCache::new(native.cache_max_bytes),
            bucket: LocalBucket::new(native.objects_dir.clone()),
            origin: HyperOrigin::new(native.max_origin_body_bytes),
            limits: MemoryRateLimits::default(),
            clock: SystemClock,
        }
    }
}

impl Platform for NativePlatform {
    type Cache = MemoryCache;
    type Bucket = LocalBucket;
    type Origin = HyperOrigin;
    type Limits = MemoryRateLimits;
    type Clock = SystemClock;

    fn cache(&self) -> &MemoryCache {
        &self.cache
    }
    fn bucket(&self) -> &LocalBucket {
        &self.bucket
    }
    fn origin(&self) -> &HyperOrigin {
        &self.origin
    }
    fn limits(&self) -> &MemoryRateLimits {
        &self.limits
    }
    fn clock(&self) -> &SystemClock {
        &self.clock
    }
}

/// The native host's own keys (the edge's are in [`crate::EdgeConfig`]).
#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// `EDGE_BIND`, default 127.0.0.1:8787.
    pub bind: SocketAddr,
    /// `LOCAL_OBJECTS_DIR`, default `.dev/objects` (the API's local object store).
    pub objects_dir: PathBuf,
    /// `EDGE_CACHE_MAX_BYTES`, default 64 MiB.
    pub cache_max_bytes: usize,
    /// `EDGE_MAX_BODY_BYTES`, default 1 MiB: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `EDGE_MAX_ORIGIN_BODY_BYTES`, default 32 MiB: larger origin responses are a failure.
    pub max_origin_body_bytes: usize,
    /// Local mode: `x-edge-country` sets the client's country (`EDGE_TRUST_COUNTRY_HEADER`,
    /// default true natively).
    pub trust_country_header: bool,
    /// `EDGE_DEFAULT_COUNTRY`: the country of requests without the header.
    pub default_country: Option<Country>,
}

impl Default for NativeConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8787)),
            objects_dir: PathBuf::from(".dev/objects"),
            cache_max_bytes: 64 << 20,
            max_body_bytes: 1 << 20,
            max_origin_body_bytes: 32 << 20,
            trust_country_header: true,
            default_country: None,
        }
    }
}

impl NativeConfig {
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| var(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let invalid =
            |key: &'static str, reason: String| ConfigError::invalid(key, &get(key).unwrap_or_default(), reason);
        let mut c = Self::default();
        if let Some(raw) = get("EDGE_BIND") {
            c.bind = raw.parse().map_err(|e: std::net::AddrParseError| invalid("EDGE_BIND", e.to_string()))?;
        }
        if let Some(raw) = get("LOCAL_OBJECTS_DIR") {
            c.objects_dir = PathBuf::from(raw);
        }
        let size = |key: &'static str, default: usize| -> Result<usize, ConfigError> {
            get(key).map_or(Ok(default), |raw| {
                raw.parse().map_err(|e: std::num::ParseIntError| invalid(key, e.to_string()))
            })
        };
        c.cache_max_bytes = size("EDGE_CACHE_MAX_BYTES", c.cache_max_bytes)?;
        c.max_body_bytes = size("EDGE_MAX_BODY_BYTES", c.max_body_bytes)?;
        c.max_origin_body_bytes = size("EDGE_MAX_ORIGIN_BODY_BYTES", c.max_origin_body_bytes)?;
        c.trust_country_header = match get("EDGE_TRUST_COUNTRY_HEADER").as_deref() {
            None | Some("true" | "1" | "on") => true,
            Some("false" | "0" | "off") => false,
            Some(other) => return Err(invalid("EDGE_TRUST_COUNTRY_HEADER", format!("{other:?} is not true/false"))),
        };
        c.default_country = get("EDGE_DEFAULT_COUNTRY")
            .map(|raw| raw.parse::<Country>().map_err(|e| invalid("EDGE_DEFAULT_COUNTRY", e.to_string())))
            .transpose()?;
        Ok(c)
    }
}
