//! The Stolen Tee edge: what Cloudflare does in front of the API, as plain Rust over `http`
//! types — caching with normalised keys and stale-while-revalidate, geo-steering to regional
//! origin pools with passive health and one safe retry, assets straight from R2, rate
//! limits, security headers and CORS.
//!
//! The logic ([`Edge`]) runs over the small traits in [`platform`]; each host binds them:
//!
//! * `native` (feature, default): a hyper server on 127.0.0.1:8787 for `make dev`, the tests
//!   and the benchmark — in-memory cache and rate limits, the local object store's
//!   directory as the bucket, a pooled HTTP client to the origins;
//! * `edge/worker` (`stolentee-edge-worker`): the Cloudflare Worker — `worker::Cache`, an R2
//!   `Bucket`, `Fetch`, `req.cf()`, a Durable Object for rate limits.
//!
//! Architecture invariant: nothing outside `native` does I/O, spawns, sleeps or reads the
//! clock; everything outside `native` compiles for wasm32.

pub mod assets;
pub mod cache;
pub mod config;
pub mod edge;
pub mod geo;
pub mod headers;
pub mod platform;
pub mod ratelimit;
pub mod routing;

#[cfg(feature = "native")]
pub mod native;

pub use config::{ConfigError, EdgeConfig};
pub use edge::{Edge, Handled, PoolProbe, ProbeReport, PurgeAgain, Revalidation};
pub use geo::{ClientGeo, ClientInfo};
pub use platform::{Bucket, Clock, EdgeCache, OriginClient, Platform, RateLimitStore};
