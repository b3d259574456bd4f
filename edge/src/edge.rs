//! [`Edge::handle`]: one request through the edge, in this order —
//!
//! 1. hostile-input bounds (431 for oversized headers, 414 for long URIs);
//! 2. the edge's own endpoints (`POST /__edge/purge`, `GET /__edge/health`);
//! 3. CORS preflights, answered here;
//! 4. rate limits for `/api/` (429 + `Retry-After`), except for cache hits of cacheable
//!    reads, which are looked up first and cost no token;
//! 5. assets from the bucket (`/assets/*`, `/media/*`);
//! 6. everything else to an origin pool: from the cache when allowed (HIT, or STALE with one
//!    background refresh), else forwarded with failover, and stored when cacheable;
//! 7. on the way out: security headers, CORS grants, `X-Cache`, `X-Edge-Pool`, the affinity
//!    cookie, and the failed-login charge.
//!
//! Nothing here panics on input; every failure becomes a JSON error response.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, AGE, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, ETAG,
    HOST, IF_MODIFIED_SINCE, IF_NONE_MATCH, ORIGIN, RETRY_AFTER, SET_COOKIE,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use crate::assets::{self, AssetKey, AssetPathError, AssetPlan};
use crate::cache::{self, CacheKey, CacheStatus, CachedResponse, Freshness};
use crate::config::{AssetRoute, EdgeConfig, PURGE_PATH, STATUS_PATH};
use crate::geo::{ClientInfo, LOCAL_COUNTRY_HEADER};
use crate::headers;
use crate::platform::{Bucket, Clock, EdgeCache, OriginClient, OriginError, Platform, PurgeError, RateLimitStore};
use crate::ratelimit::{Acquire, Charge, Decision, LimitKey};
use crate::routing::{HealthChange, PoolHealth, PoolId};

/// `X-Cache: HIT | MISS | STALE`.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// Which pool answered (for people and tests; harmless to show).
pub const X_EDGE_POOL: HeaderName = HeaderName::from_static("x-edge-pool");
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// The edge's secret, shown to the origins (`EDGE_ORIGIN_SECRET`).
pub const X_EDGE_AUTH: HeaderName = HeaderName::from_static("x-edge-auth");
/// The visitor's IP as the edge saw it; origins believe it only beside a valid `X-Edge-Auth`.
pub const X_CLIENT_IP: HeaderName = HeaderName::from_static("x-client-ip");
const MAX_URI_BYTES: usize = 8 * 1024;
/// Most keys or prefixes one purge request may name.
const MAX_PURGE_ITEMS: usize = 1000;
/// Longest `again_after_secs` a purge may ask for: a Cloudflare Worker may keep working
/// 30 s after it has answered (`ctx.wait_until`), and the repeat must fit in that.
pub const MAX_PURGE_AGAIN_AFTER_SECS: u64 = 25;

/// The edge: configuration plus the state that outlives a request (pool health, which
/// keys are being refreshed). One per process natively, one per isolate on Cloudflare.
#[derive(Debug)]
pub struct Edge {
    config: EdgeConfig,
    health: PoolHealth,
    revalidating: Mutex<HashSet<CacheKey>>,
}

/// A response, and possibly work for the host to run after sending it (natively a spawned
/// task; on Cloudflare `ctx.wait_until`): a refresh of a stale entry, a purge to repeat.
#[derive(Debug)]
pub struct Handled {
    pub response: Response<Bytes>,
    pub revalidate: Option<Revalidation>,
    pub purge_again: Option<PurgeAgain>,
}

/// A purge to run again once [`PurgeAgain::after`] has passed (`again_after_secs`): it
/// removes what a response computed before the catalog write stored after the first purge.
/// The host waits (natively a sleeping task; on Cloudflare a timer inside `ctx.wait_until`)
/// and then calls [`Edge::purge_again`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeAgain {
    after: Duration,
    keys: Vec<CacheKey>,
    prefixes: Vec<String>,
}

impl PurgeAgain {
    pub fn after(&self) -> Duration {
        self.after
    }
}

/// A pending refresh of one stale cache entry. Only one exists per key at a time; dropping
/// it (run or not) lets the next stale hit start another.
#[derive(Debug)]
pub struct Revalidation {
    key: CacheKey,
    client: ClientInfo,
}

impl Revalidation {
    pub fn key(&self) -> &CacheKey {
        &self.key
    }
}

/// What the cache said before the limiter was asked.
enum Lookup {
    /// Not a cacheable read (or over the bounds): the cache was not asked.
    NotAsked,
    /// Nothing fresh or stale under the key.
    Missed,
    /// A hit or a stale hit, answered without asking the limiter.
    Served(Box<Outcome>),
}

/// What step 6 decided, for the finishing touches.
struct Outcome {
    response: Response<Bytes>,
    cache: CacheStatus,
    pool: Option<PoolId>,
    revalidate: Option<Revalidation>,
    purge_again: Option<PurgeAgain>,
    /// Preflights carry their own CORS answer.
    cors_done: bool,
}

impl Outcome {
    fn plain(response: Response<Bytes>) -> Self {
        Self { response, cache: CacheStatus::Miss, pool: None, revalidate: None, purge_again: None, cors_done: false }
    }
}

impl Edge {
    pub fn new(config: EdgeConfig) -> Self {
        let health = PoolHealth::new(config.health, config.steering.pools().len());
        Self { config, health, revalidating: Mutex::new(HashSet::new()) }
    }

    pub fn config(&self) -> &EdgeConfig {
        &self.config
    }

    pub fn health(&self) -> &PoolHealth {
        &self.health
    }

    /// Handles one request. Never fails: errors are responses.
    pub async fn handle<P: Platform>(&self, platform: &P, request: Request<Bytes>, client: ClientInfo) -> Handled {
        let span = tracing::info_span!(
            "edge.request",
            method = %request.method(),
            path = %truncate(request.uri().path(), 200),
            country = tracing::field::display(CountryField(client.country)),
            status = tracing::field::Empty,
            cache = tracing::field::Empty,
            pool = tracing::field::Empty,
        );
        async move {
            let started = platform.clock().now();
            let request_origin = request.headers().get(ORIGIN).cloned();
            let is_api = request.uri().path().starts_with("/api/");
            let method = request.method().clone();
            let charges = self.config.rate_limits.charges(request.method(), request.uri().path());

            // Cache hits of public reads are answered before the limiter is asked: they
            // cost the origins nothing, and on Cloudflare asking means a Durable Object
            // round trip. Everything that reaches an origin is still charged.
            let looked_up =
                if charges.is_empty() { Lookup::NotAsked } else { self.lookup(platform, &request, &client).await };
            let mut outcome = match looked_up {
                Lookup::Served(outcome) => *outcome,
                looked_up => match self.limit(platform, &charges, &client).await {
                    Some(limited) => Outcome::plain(limited),
                    None => self.route(platform, request, &client, looked_up).await,
                },
            };

            // A failed login is charged after the fact.
            let login_failed = matches!(outcome.response.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
            for charge in &charges {
                if let (Charge::CheckThenChargeOnFailure(class), true) = (charge, login_failed) {
                    let rule = self.config.rate_limits.rule(*class);
                    let key = LimitKey::new(*class, client.ip);
                    platform.limits().acquire(&key, rule, Acquire::Take, platform.clock().now()).await;
                }
            }

            let pool_name = outcome.pool.map(|id| self.config.steering.pool(id).name.clone());
            let h = outcome.response.headers_mut();
            headers::apply_security(h, is_api);
            if !outcome.cors_done {
                self.config.cors.apply(request_origin.as_ref(), h);
            }
            h.insert(X_CACHE, HeaderValue::from_static(outcome.cache.as_str()));
            if let Some(name) = &pool_name {
                if let Ok(v) = HeaderValue::from_str(name.as_str()) {
                    h.insert(X_EDGE_POOL, v);
                }
                // Affinity: a visitor whose write a pool took keeps reading from it.
                if let Some(cookie) = &self.config.affinity_cookie {
                    let wrote = method != Method::GET && method != Method::HEAD && method != Method::OPTIONS;
                    if wrote && !outcome.response.status().is_server_error() {
                        let value = format!(
                            "{cookie}={name}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
                            self.config.affinity_max_age.as_secs()
                        );
                        if let Ok(v) = HeaderValue::from_str(&value) {
                            outcome.response.headers_mut().append(SET_COOKIE, v);
                        }
                    }
                }
            }
            let span = tracing::Span::current();
            span.record("status", outcome.response.status().as_u16());
            span.record("cache", outcome.cache.as_str());
            if let Some(name) = &pool_name {
                span.record("pool", name.as_str());
            }
            let elapsed = platform.clock().now().duration_since(started).unwrap_or_default();
            tracing::debug!(elapsed_us = elapsed.as_micros() as u64, "served");
            Handled { response: outcome.response, revalidate: outcome.revalidate, purge_again: outcome.purge_again }
        }
        .instrument(span)
        .await
    }

    /// Step 4: `Some(429)` when a bucket is empty.
    async fn limit<P: Platform>(
        &self,
        platform: &P,
        charges: &[Charge],
        client: &ClientInfo,
    ) -> Option<Response<Bytes>> {
        for charge in charges {
            let (class, mode) = match *charge {
                Charge::Take(class) => (class, Acquire::Take),
                Charge::CheckThenChargeOnFailure(class) => (class, Acquire::Peek),
            };
            let rule = self.config.rate_limits.rule(class);
            let key = LimitKey::new(class, client.ip);
            if let Decision::Limited { retry_after } =
                platform.limits().acquire(&key, rule, mode, platform.clock().now()).await
            {
                tracing::info!(limit = %key, rule = %rule, retry_after_s = retry_after.as_secs(), "rate limited");
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    &format!("too many requests; retry in {} s", retry_after.as_secs()),
                );
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
                return Some(response);
            }
        }
        None
    }

    /// Step 1: `Some(431 | 414)` for a request over the bounds.
    fn over_bounds(&self, request: &Request<Bytes>) -> Option<Response<Bytes>> {
        let header_bytes: usize = request.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        if header_bytes > self.config.max_header_bytes {
            return Some(error(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                "request headers are too large",
            ));
        }
        if request.uri().path_and_query().map_or(0, |pq| pq.as_str().len()) > MAX_URI_BYTES {
            return Some(error(StatusCode::URI_TOO_LONG, "uri_too_long", "request URI is too long"));
        }
        None
    }

    /// The cache, asked before the limiter: a fresh or stale entry for a cacheable read is
    /// served from here. Requests over the bounds, uncacheable ones (credentials, cookies,
    /// ranges, writes, paths outside the cached prefixes) and the edge's own paths are left
    /// to [`Self::route`].
    async fn lookup<P: Platform>(&self, platform: &P, request: &Request<Bytes>, client: &ClientInfo) -> Lookup {
        if self.over_bounds(request).is_some() {
            return Lookup::NotAsked;
        }
        let Ok(key) = cache::request_key(
            request.method(),
            request.uri(),
            request.headers(),
            &self.config.cached_prefixes,
            self.config.affinity_cookie.as_deref(),
        ) else {
            return Lookup::NotAsked;
        };
        let Some(entry) = platform.cache().get(&key).await else { return Lookup::Missed };
        let (method, headers) = (request.method(), request.headers());
        match entry.freshness(platform.clock().now()) {
            Freshness::Fresh { age } => Lookup::Served(Box::new(Outcome {
                cache: CacheStatus::Hit,
                ..Outcome::plain(from_cache(entry, age, method, headers))
            })),
            Freshness::Stale { age } => Lookup::Served(Box::new(Outcome {
                cache: CacheStatus::Stale,
                revalidate: self.start_revalidation(&key, client),
                ..Outcome::plain(from_cache(entry, age, method, headers))
            })),
            Freshness::Expired => Lookup::Missed,
        }
    }

    /// Steps 1–3, 5 and 6.
    async fn route<P: Platform>(
        &self,
        platform: &P,
        request: Request<Bytes>,
        client: &ClientInfo,
        looked_up: Lookup,
    ) -> Outcome {
        if let Some(response) = self.over_bounds(&request) {
            return Outcome::plain(response);
        }
        let path = request.uri().path();
        if path == PURGE_PATH {
            let (response, purge_again) = self.purge(platform, &request).await;
            return Outcome { purge_again, ..Outcome::plain(response) };
        }
        if path == STATUS_PATH {
            return Outcome::plain(self.status(platform.clock().now()));
        }
        if let Some(response) = self.config.cors.preflight(request.method(), request.headers()) {
            return Outcome { cors_done: true, ..Outcome::plain(response) };
        }
        if let Some(route) = self.config.assets.iter().find(|r| path.starts_with(&r.url_prefix)) {
            return Outcome::plain(self.serve_asset(platform, &request, route).await);
        }
        self.proxy(platform, request, client, matches!(looked_up, Lookup::Missed)).await
    }

    /// Step 6. `missed`: [`Self::lookup`] already found nothing usable in the cache.
    async fn proxy<P: Platform>(
        &self,
        platform: &P,
        request: Request<Bytes>,
        client: &ClientInfo,
        missed: bool,
    ) -> Outcome {
        let (mut parts, body) = request.into_parts();
        let affinity = self.affinity_pool(&parts.headers);
        let key = cache::request_key(
            &parts.method,
            &parts.uri,
            &parts.headers,
            &self.config.cached_prefixes,
            self.config.affinity_cookie.as_deref(),
        );
        let Ok(key) = key else {
            return match self.forward(platform, &parts, body, client, affinity).await {
                Ok((response, pool)) => Outcome { pool: Some(pool), ..Outcome::plain(response) },
                Err(response) => Outcome::plain(response),
            };
        };

        let now = platform.clock().now();
        let entry = if missed { None } else { platform.cache().get(&key).await };
        if let Some(entry) = entry {
            match entry.freshness(now) {
                Freshness::Fresh { age } => {
                    return Outcome {
                        cache: CacheStatus::Hit,
                        ..Outcome::plain(from_cache(entry, age, &parts.method, &parts.headers))
                    };
                }
                Freshness::Stale { age } => {
                    let revalidate = self.start_revalidation(&key, client);
                    return Outcome {
                        cache: CacheStatus::Stale,
                        revalidate,
                        ..Outcome::plain(from_cache(entry, age, &parts.method, &parts.headers))
                    };
                }
                Freshness::Expired => {}
            }
        }

        // A miss: ask for exactly what the key names, in identity encoding (the cache
        // keeps one representation per key; compression is the CDN's business).
        // Unconditionally, too: the cache wants the full 200; a client's validators are
        // answered from the stored entry.
        parts.uri = cache::normalised_uri(&key);
        parts.headers.remove(ACCEPT_ENCODING);
        let validators = [parts.headers.remove(IF_NONE_MATCH), parts.headers.remove(IF_MODIFIED_SINCE)];
        match self.forward(platform, &parts, body, client, affinity).await {
            Ok((mut response, pool)) => {
                if parts.method == Method::GET {
                    self.store(platform, &key, &response).await;
                }
                // The targeted lifetime was ours; caches after us get `Cache-Control` only.
                response.headers_mut().remove(cache::CDN_CACHE_CONTROL);
                let [inm, _] = validators;
                let client_has_it = response.status() == StatusCode::OK
                    && inm.zip(etag_of(&response)).is_some_and(|(inm, etag)| etag_header_matches(&inm, etag));
                let response = if client_has_it { not_modified(response) } else { response };
                Outcome { pool: Some(pool), ..Outcome::plain(response) }
            }
            Err(response) => Outcome::plain(response),
        }
    }

    async fn store<P: Platform>(&self, platform: &P, key: &CacheKey, response: &Response<Bytes>) {
        if let Some(lifetime) = cache::storable(response.status(), response.headers()) {
            let mut headers = response.headers().clone();
            headers.remove(cache::CDN_CACHE_CONTROL);
            let entry = CachedResponse {
                status: response.status(),
                headers,
                body: response.body().clone(),
                stored_at: platform.clock().now(),
                lifetime,
            };
            platform.cache().put(key, entry).await;
        }
    }

    fn start_revalidation(&self, key: &CacheKey, client: &ClientInfo) -> Option<Revalidation> {
        let mut set = self.revalidating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set.insert(key.clone()).then(|| Revalidation { key: key.clone(), client: client.clone() })
    }

    /// Runs a refresh handed out with a STALE response: one GET to the origin pools; the
    /// entry is replaced if the answer is storable, and kept (still stale) if not.
    pub async fn revalidate<P: Platform>(&self, platform: &P, job: Revalidation) {
        struct Done<'a>(&'a Edge, CacheKey);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                let mut set = self.0.revalidating.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                set.remove(&self.1);
            }
        }
        let _done = Done(self, job.key.clone());
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = Method::GET;
        parts.uri = cache::normalised_uri(&job.key);
        match self.forward(platform, &parts, Bytes::new(), &job.client, None).await {
            Ok((response, _)) => {
                tracing::debug!(key = %job.key, status = response.status().as_u16(), "revalidated");
                self.store(platform, &job.key, &response).await;
            }
            Err(response) => tracing::warn!(key = %job.key, status = response.status().as_u16(), "revalidation failed"),
        }
    }

    fn affinity_pool(&self, headers: &HeaderMap) -> Option<PoolId> {
        let name = self.config.affinity_cookie.as_deref()?;
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(n, _)| n.trim() == name)
            .and_then(|(_, pool)| self.config.steering.find(pool.trim()))
    }

    /// Sends the request to the best pool; an idempotent request (GET, HEAD, or one with
    /// an `Idempotency-Key`) that meets a connect error, a timeout or a 5xx is retried once
    /// on the next healthy pool. Other writes are never retried: a POST the origin may have
    /// acted on must not happen twice.
    async fn forward<P: Platform>(
        &self,
        platform: &P,
        parts: &http::request::Parts,
        body: Bytes,
        client: &ClientInfo,
        affinity: Option<PoolId>,
    ) -> Result<(Response<Bytes>, PoolId), Response<Bytes>> {
        let idempotent =
            parts.method == Method::GET || parts.method == Method::HEAD || parts.headers.contains_key(IDEMPOTENCY_KEY);
        let candidates = self.config.steering.candidates(client, affinity, &self.health, platform.clock().now());
        let attempts = if idempotent { 2 } else { 1 };
        let mut last_failure: Option<Result<(Response<Bytes>, PoolId), OriginError>> = None;
        for (attempt, &pool_id) in candidates.iter().take(attempts).enumerate() {
            let pool = self.config.steering.pool(pool_id);
            let origin = pool.pick();
            let request = match origin_request(origin, parts, body.clone(), client, self.config.origin_secret.as_ref())
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build the origin request");
                    return Err(error(StatusCode::BAD_REQUEST, "bad_request", "the request cannot be forwarded"));
                }
            };
            let result = platform.origin().send(origin, request, self.config.origin_timeout).await;
            let failed = match &result {
                Ok(response) => response.status().is_server_error(),
                Err(_) => true,
            };
            if !failed {
                let response = result.map(clean_origin_response).unwrap_or_else(|_| Response::new(Bytes::new()));
                let response = if parts.method == Method::HEAD { response } else { drop_length(response) };
                return Ok((response, pool_id));
            }
            let now = platform.clock().now();
            if self.health.record_failure(pool_id, now) == HealthChange::MarkedDown {
                tracing::warn!(pool = %pool.name, cooldown_s = self.config.health.cooldown.as_secs(), "pool marked down");
            }
            match &result {
                Ok(r) => {
                    tracing::info!(pool = %pool.name, %origin, status = r.status().as_u16(), attempt, "origin 5xx")
                }
                Err(e) => tracing::info!(pool = %pool.name, %origin, error = %e, attempt, "origin failed"),
            }
            last_failure = Some(result.map(|r| (drop_length(clean_origin_response(r)), pool_id)));
        }
        match last_failure {
            Some(Ok(response_from_origin)) => Ok(response_from_origin),
            Some(Err(OriginError::Timeout)) => {
                Err(error(StatusCode::GATEWAY_TIMEOUT, "origin_timeout", "the origin did not answer in time"))
            }
            _ => Err(error(StatusCode::BAD_GATEWAY, "origin_unavailable", "no origin could answer the request")),
        }
    }

    /// Step 5: an asset from the bucket.
    async fn serve_asset<P: Platform>(
        &self,
        platform: &P,
        request: &Request<Bytes>,
        route: &AssetRoute,
    ) -> Response<Bytes> {
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "assets are read-only");
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let key = match AssetKey::from_path(request.uri().path(), &route.url_prefix, &route.key_prefix) {
            Ok(key) => key,
            Err(AssetPathError::NotAnObject) => return not_found(),
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_path", &e.to_string()),
        };
        let meta = match platform.bucket().head(&key).await {
            Ok(Some(meta)) => meta,
            Ok(None) => return not_found(),
            Err(e) => {
                tracing::warn!(%key, error = %e, "bucket head failed");
                return unavailable();
            }
        };
        let plan = assets::plan(request.headers(), &meta);
        let body = match plan {
            AssetPlan::Whole | AssetPlan::Partial(_) if method == Method::GET => {
                let range = if let AssetPlan::Partial(r) = plan { Some(r) } else { None };
                match platform.bucket().get(&key, range).await {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => return not_found(),
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "bucket get failed");
                        return unavailable();
                    }
                }
            }
            _ => Bytes::new(),
        };
        assets::response(&key, &meta, plan, method, body)
    }

    /// `POST /__edge/purge` with `Authorization: Bearer <EDGE_PURGE_SECRET>` and
    /// `{"keys": ["/api/products"], "prefixes": ["/api/products/"], "again_after_secs": 12}`.
    /// With `again_after_secs` (1–25) the same purge is handed back to the host to run again
    /// after that many seconds.
    async fn purge<P: Platform>(
        &self,
        platform: &P,
        request: &Request<Bytes>,
    ) -> (Response<Bytes>, Option<PurgeAgain>) {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PurgeRequest {
            #[serde(default)]
            keys: Vec<String>,
            #[serde(default)]
            prefixes: Vec<String>,
            /// Checked by hand below, so a bad value gets its own precise answer.
            #[serde(default)]
            again_after_secs: Option<serde_json::Value>,
        }

        let Some(secret) = &self.config.purge_secret else { return (not_found(), None) };
        if request.method() != Method::POST {
            let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "purge with POST");
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
            return (response, None);
        }
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        if !secret.matches(presented) {
            tracing::warn!("purge refused: bad or missing secret");
            return (error(StatusCode::UNAUTHORIZED, "unauthorized", "purging needs the shared secret"), None);
        }
        let refuse = |code: &str, message: &str| (error(StatusCode::BAD_REQUEST, code, message), None);
        let body: PurgeRequest = match serde_json::from_slice(request.body()) {
            Ok(body) => body,
            Err(e) => {
                return refuse(
                    "invalid_body",
                    &format!("expected {{\"keys\": [..], \"prefixes\": [..], \"again_after_secs\": n}}: {e}"),
                );
            }
        };
        if body.keys.len() + body.prefixes.len() > MAX_PURGE_ITEMS {
            return refuse("invalid_body", "at most 1000 keys and prefixes per purge");
        }
        let again_after = match parse_again_after(body.again_after_secs.as_ref()) {
            Ok(again_after) => again_after,
            Err(message) => return refuse("invalid_again_after", &message),
        };
        let mut keys = Vec::with_capacity(body.keys.len());
        for raw in &body.keys {
            match CacheKey::parse(raw) {
                Some(key) => keys.push(key),
                None => return refuse("invalid_key", &format!("{:?} is not a path", truncate(raw, 100))),
            }
        }
        if let Some(bad) = body.prefixes.iter().find(|p| !p.starts_with('/') || p.len() > 2048) {
            return refuse("invalid_prefix", &format!("{:?} is not a path prefix", truncate(bad, 100)));
        }
        let (purged_keys, purged_by_prefix) = match self.apply_purge(platform, &keys, &body.prefixes).await {
            Ok(counts) => counts,
            Err(response) => return (response, None),
        };
        tracing::info!(
            keys = keys.len(),
            prefixes = body.prefixes.len(),
            purged_keys,
            again_after_secs = ?again_after.map(|d| d.as_secs()),
            "purged"
        );
        let again = again_after.map(|after| PurgeAgain { after, keys, prefixes: body.prefixes });
        let response = json(
            StatusCode::OK,
            serde_json::json!({
                "purged_keys": purged_keys,
                "purged_by_prefix": purged_by_prefix,
                "again_after_secs": again_after.map(|d| d.as_secs()),
            }),
        );
        (response, again)
    }

    /// Removes `keys` and everything under `prefixes`: how many keys were there, and how
    /// many entries the prefixes held (when the cache can tell).
    async fn apply_purge<P: Platform>(
        &self,
        platform: &P,
        keys: &[CacheKey],
        prefixes: &[String],
    ) -> Result<(u64, Option<u64>), Response<Bytes>> {
        let mut purged_keys = 0u64;
        for key in keys {
            purged_keys += u64::from(platform.cache().delete(key).await);
        }
        let mut purged_by_prefix: Option<u64> = Some(0);
        for prefix in prefixes {
            match platform.cache().purge_prefix(prefix).await {
                Ok(n) => purged_by_prefix = purged_by_prefix.zip(n).map(|(a, b)| a + b),
                Err(PurgeError::Unsupported) => {
                    return Err(error(
                        StatusCode::NOT_IMPLEMENTED,
                        "prefix_purge_unsupported",
                        "this edge cannot purge by prefix",
                    ));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "prefix purge failed");
                    return Err(unavailable());
                }
            }
        }
        Ok((purged_keys, purged_by_prefix))
    }

    /// Runs a purge handed out with a purge's response, once its delay has passed (the host
    /// waits; this does not). Failures are logged: there is no one left to answer.
    pub async fn purge_again<P: Platform>(&self, platform: &P, job: PurgeAgain) {
        match self.apply_purge(platform, &job.keys, &job.prefixes).await {
            Ok((purged_keys, _)) => tracing::info!(
                keys = job.keys.len(),
                prefixes = job.prefixes.len(),
                purged_keys,
                after_secs = job.after.as_secs(),
                "purged again"
            ),
            Err(response) => tracing::warn!(status = response.status().as_u16(), "repeated purge failed"),
        }
    }

    /// `GET /__edge/health`: the edge is up; which pools are.
    fn status(&self, now: SystemTime) -> Response<Bytes> {
        let up = self.health.snapshot(now);
        let pools: Vec<_> = self
            .config
            .steering
            .pools()
            .iter()
            .zip(up)
            .map(
                |(pool, up)| serde_json::json!({ "name": pool.name.as_str(), "up": up, "origins": pool.origins.len() }),
            )
            .collect();
        json(StatusCode::OK, serde_json::json!({ "status": "ok", "pools": pools }))
    }

    /// Active health, as one step: [`Self::probe_pools`], then [`Self::apply_probes`]. The
    /// native host runs this every `EDGE_HEALTH_PROBE_SECS`.
    pub async fn probe<P: Platform>(&self, platform: &P) {
        let report = self.probe_pools(platform).await;
        self.apply_probes(&report);
    }

    /// `GET` [`EdgeConfig::health_path`] on every origin of every pool: a pool with one
    /// origin answering 2xx is up. The Worker's Cron Trigger runs this and publishes the
    /// report for every isolate to apply.
    pub async fn probe_pools<P: Platform>(&self, platform: &P) -> ProbeReport {
        let timeout = self.config.origin_timeout.min(Duration::from_secs(5));
        let mut pools = Vec::with_capacity(self.config.steering.pools().len());
        for pool in self.config.steering.pools() {
            let mut up = false;
            for origin in &pool.origins {
                let Ok(uri) = origin.uri_for(&self.config.health_path) else { continue };
                let Ok(mut request) = Request::get(uri).body(Bytes::new()) else { continue };
                if let Some(value) = self.config.origin_secret.as_ref().and_then(secret_header) {
                    request.headers_mut().insert(X_EDGE_AUTH, value);
                }
                match platform.origin().send(origin, request, timeout).await {
                    Ok(response) if response.status().is_success() => up = true,
                    Ok(response) => {
                        tracing::info!(pool = %pool.name, %origin, status = response.status().as_u16(), "probe: not ready")
                    }
                    Err(e) => tracing::info!(pool = %pool.name, %origin, error = %e, "probe failed"),
                }
                if up {
                    break;
                }
            }
            pools.push(PoolProbe { pool: pool.name.as_str().to_owned(), up });
        }
        ProbeReport { probed_at_ms: crate::ratelimit::unix_ms(platform.clock().now()), pools }
    }

    /// Applies a probe report (this isolate's, or one the Cron Trigger published): a pool
    /// that answered is up now, whatever its record; one that did not is down for the
    /// cool-down, counted from the probe. Pools the report does not name (another
    /// configuration's) are left alone.
    pub fn apply_probes(&self, report: &ProbeReport) {
        let probed_at = std::time::UNIX_EPOCH + Duration::from_millis(report.probed_at_ms);
        for probe in &report.pools {
            let Some(id) = self.config.steering.find(&probe.pool) else { continue };
            if probe.up {
                self.health.mark_up(id);
            } else if self.health.mark_down(id, probed_at) == HealthChange::MarkedDown {
                tracing::warn!(pool = %probe.pool, "pool marked down by health probes");
            }
        }
    }
}

/// The result of one round of active probes. Serialisable: the Worker's Cron Trigger
/// stores it for the request path of every isolate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// When the round started (Unix ms).
    pub probed_at_ms: u64,
    pub pools: Vec<PoolProbe>,
}

/// One pool in a [`ProbeReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolProbe {
    pub pool: String,
    pub up: bool,
}

/// Headers that belong to one connection, never forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn secret_header(secret: &crate::config::SharedSecret) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose()).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The request an origin sees: same method, path, query, body and end-to-end headers,
/// plus who the client is and the edge's secret. The host, the local-mode country header and
/// whatever a visitor sent as `X-Edge-Auth` or `X-Client-IP` are not passed on.
fn origin_request(
    origin: &crate::routing::Origin,
    parts: &http::request::Parts,
    body: Bytes,
    client: &ClientInfo,
    secret: Option<&crate::config::SharedSecret>,
) -> Result<Request<Bytes>, http::Error> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri: Uri = origin.uri_for(path_and_query)?;
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    let host = headers.remove(HOST);
    // The body is buffered: the client library frames it (a client's Content-Length could
    // disagree with what was actually read, e.g. beside Transfer-Encoding).
    headers.remove(CONTENT_LENGTH);
    headers.remove(LOCAL_COUNTRY_HEADER);
    headers.remove(X_FORWARDED_FOR);
    headers.remove(X_FORWARDED_HOST);
    headers.remove(X_EDGE_AUTH);
    headers.remove(X_CLIENT_IP);
    if let Some(ip) = client.ip {
        if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
            headers.insert(X_FORWARDED_FOR, v.clone());
            headers.insert(X_CLIENT_IP, v);
        }
    }
    if let Some(value) = secret.and_then(secret_header) {
        headers.insert(X_EDGE_AUTH, value);
    }
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    }
    let mut request = Request::builder().method(parts.method.clone()).uri(uri).body(body)?;
    *request.headers_mut() = headers;
    Ok(request)
}

fn clean_origin_response(mut response: Response<Bytes>) -> Response<Bytes> {
    strip_hop_by_hop(response.headers_mut());
    response
}

/// The host sets `Content-Length` from the body it sends.
fn drop_length(mut response: Response<Bytes>) -> Response<Bytes> {
    response.headers_mut().remove(CONTENT_LENGTH);
    response
}

fn etag_of(response: &Response<Bytes>) -> Option<&str> {
    response.headers().get(ETAG).and_then(|v| v.to_str().ok())
}

fn etag_header_matches(if_none_match: &HeaderValue, etag: &str) -> bool {
    if_none_match.to_str().is_ok_and(|inm| assets::etag_matches(inm, etag))
}

/// A 304 for a 200 whose ETag the client already has: same headers, no body.
fn not_modified(response: Response<Bytes>) -> Response<Bytes> {
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::NOT_MODIFIED;
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(CONTENT_TYPE);
    Response::from_parts(parts, Bytes::new())
}

fn from_cache(entry: CachedResponse, age: Duration, method: &Method, request: &HeaderMap) -> Response<Bytes> {
    let client_has_it = entry.status == StatusCode::OK
        && request
            .get(IF_NONE_MATCH)
            .zip(entry.headers.get(ETAG).and_then(|v| v.to_str().ok()))
            .is_some_and(|(inm, etag)| etag_header_matches(inm, etag));
    let length = entry.body.len();
    let body = if method == Method::HEAD { Bytes::new() } else { entry.body };
    let mut response = Response::new(body);
    *response.status_mut() = entry.status;
    *response.headers_mut() = entry.headers;
    response.headers_mut().insert(AGE, HeaderValue::from(age.as_secs()));
    if client_has_it {
        return not_modified(response);
    }
    if method == Method::HEAD {
        response.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The API's error shape: `{"error": {"code": "...", "message": "..."}}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response<Bytes> {
    json(status, serde_json::json!({ "error": { "code": code, "message": message } }))
}

fn not_found() -> Response<Bytes> {
    error(StatusCode::NOT_FOUND, "not_found", "not found")
}

fn unavailable() -> Response<Bytes> {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "try again shortly");
    response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// Formats the client's country for the request span only if a subscriber records it.
struct CountryField(Option<crate::geo::Country>);

impl std::fmt::Display for CountryField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(country) => country.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// `again_after_secs`: absent or `null` (no second purge), or a whole number of seconds from
/// 1 to [`MAX_PURGE_AGAIN_AFTER_SECS`]. The message says what was wrong with anything else.
fn parse_again_after(raw: Option<&serde_json::Value>) -> Result<Option<Duration>, String> {
    let expected = format!("again_after_secs must be a whole number of seconds from 1 to {MAX_PURGE_AGAIN_AFTER_SECS}");
    let value = match raw {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(value) => value,
    };
    let shown = truncate_owned(&value.to_string(), 40);
    let Some(number) = value.as_number() else {
        return Err(format!("{expected}, got {shown} (not a number)"));
    };
    let too_long =
        || format!("{expected}, got {shown} (too long: a Worker keeps working at most 30 s after answering)");
    let negative = || format!("{expected}, got {shown} (negative)");
    match (number.as_u64(), number.as_i64(), number.as_f64()) {
        (Some(secs), _, _) if (1..=MAX_PURGE_AGAIN_AFTER_SECS).contains(&secs) => Ok(Some(Duration::from_secs(secs))),
        (Some(0), _, _) => Err(format!("{expected}, got 0 (leave it out for no second purge)")),
        (Some(_), _, _) => Err(too_long()),
        (None, Some(_), _) => Err(negative()),
        (None, None, Some(f)) if f < 0.0 => Err(negative()),
        (None, None, Some(f)) if f > MAX_PURGE_AGAIN_AFTER_SECS as f64 => Err(too_long()),
        _ => Err(format!("{expected}, got {shown} (not whole seconds)")),
    }
}

fn truncate_owned(s: &str, max: usize) -> String {
    let cut = truncate(s, max);
    if cut.len() < s.len() { format!("{cut}…") } else { cut.to_owned() }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
