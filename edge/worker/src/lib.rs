//! The Cloudflare Worker: binds the `edge` crate's traits to workers-rs and hands every
//! request to the same [`edge::Edge::handle`] the native host uses.
//!
//! | trait | binding |
//! |---|---|
//! | `EdgeCache` | [`CfCache`]: `worker::Cache` (the location's Cache API); purges also go to the zone purge API, so they reach every location |
//! | `Bucket` | [`R2Assets`]: the R2 bucket bound as `ASSETS` |
//! | `OriginClient` | [`FetchOrigin`]: `Fetch` with an `AbortController` deadline, redirects passed through, bodies bounded |
//! | `RateLimitStore` | [`DurableLimits`]: one [`RateLimiter`] Durable Object per client and route class |
//! | `ClientGeo` | [`CfGeo`]: `CF-Connecting-IP` and `req.cf()` (country, continent, colo) |
//! | `Clock` | [`DateClock`]: `Date.now()` (`SystemTime::now()` panics on wasm32) |
//!
//! Besides `fetch`, a `scheduled` handler (the Cron Trigger) probes every pool's readiness
//! and publishes the result on the [`HealthBoard`] Durable Object, which every isolate reads
//! after its responses (`health`).
//!
//! Why a Durable Object and not the rate-limiting binding: the binding's period is 10 s or
//! 60 s only, so "100 per 15 minutes" and "10 per hour" cannot be expressed, and its counts
//! are per-location approximations. A Durable Object per key is one strongly consistent
//! token bucket worldwide, holding the same `TokenBucket` the native host keeps in memory.
//!
//! The edge state (configuration, pool health, refreshes in flight) lives once per isolate.
//! The crate type-checks and unit-tests natively; its JS-backed types only work inside
//! workerd, where `make test` runs it (`tests/workerd.rs`). Build: `scripts/worker-build.sh`.

mod config;
mod convert;
mod health;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use edge::assets::{AssetKey, ByteRange, ObjectMeta};
use edge::cache::{CacheKey, CachedResponse, Lifetime};
use edge::geo::{ClientGeo, ClientInfo, Continent, Country};
use edge::platform::{BucketError, OriginError, PurgeError};
use edge::ratelimit::{Acquire, Decision, LimitKey, Rule, TokenBucket};
use edge::routing::Origin;
use edge::{Bucket, Clock, Edge, EdgeCache, EdgeConfig, OriginClient, Platform, RateLimitStore};
use futures_util::future::{Either, select};
use serde::{Deserialize, Serialize};
use worker::{
    AbortController, Cache, CacheDeletionOutcome, Context, Date, Delay, DurableObject, Env, Fetch, Headers, Method,
    ObjectNamespace, Request, RequestInit, RequestRedirect, Response, ScheduleContext, ScheduledEvent, State,
    durable_object, event,
};

pub use config::{PurgeScope, WorkerConfig, ZonePurge};
pub use convert::RequestError;
pub use health::HealthBoard;

/// Binding names (see `../wrangler.toml`).
const ASSETS_BINDING: &str = "ASSETS";
const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";

/// What one isolate keeps between requests: the edge (configuration, pool health,
/// refreshes in flight), the Worker's own configuration and when the health board was read.
struct Isolate {
    edge: Edge,
    config: WorkerConfig,
    board: health::BoardSync,
}

thread_local! {
    /// One per isolate: built from the environment on the first event.
    static ISOLATE: RefCell<Option<Rc<Isolate>>> = const { RefCell::new(None) };
}

/// A Worker var or secret (secrets win), empty treated as unset.
fn lookup(env: &Env, key: &str) -> Option<String> {
    env.secret(key).ok().map(|s| s.to_string()).or_else(|| env.var(key).ok().map(|v| v.to_string()))
}

fn isolate(env: &Env) -> Result<Rc<Isolate>, edge::ConfigError> {
    if let Some(isolate) = ISOLATE.with(|cell| cell.borrow().clone()) {
        return Ok(isolate);
    }
    let isolate = Rc::new(Isolate {
        edge: Edge::new(EdgeConfig::from_lookup(|k| lookup(env, k))?),
        config: WorkerConfig::from_lookup(|k| lookup(env, k))?,
        board: health::BoardSync::default(),
    });
    ISOLATE.with(|cell| *cell.borrow_mut() = Some(isolate.clone()));
    Ok(isolate)
}

fn configuration_error(e: &edge::ConfigError) -> worker::Result<Response> {
    worker::console_error!("edge configuration: {e}");
    from_http(edge::edge::error(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "edge_misconfigured",
        &format!("edge configuration: {e}"),
    ))
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let isolate = match isolate(&env) {
        Ok(isolate) => isolate,
        Err(e) => return configuration_error(&e),
    };
    let geo = CfGeo::from_request(&req);
    let request = match to_http(req, isolate.config.max_body_bytes).await {
        Ok(request) => request,
        Err(e) => {
            let mut refused = edge::edge::error(e.status(), e.code(), &e.to_string());
            edge::headers::apply_security(refused.headers_mut(), false);
            return from_http(refused);
        }
    };
    let (parts, body) = request.into_parts();
    let client = geo.locate(&parts);
    let platform = Rc::new(WorkerPlatform::new(&env, &isolate.config)?);
    let handled = isolate.edge.handle(platform.as_ref(), http::Request::from_parts(parts, body), client).await;
    let response = from_http(handled.response)?;
    if let Some(job) = handled.revalidate {
        // The refresh runs after the response is sent; the runtime keeps the isolate alive.
        let (isolate, platform) = (isolate.clone(), platform.clone());
        ctx.wait_until(async move { isolate.edge.revalidate(platform.as_ref(), job).await });
    }
    if let Some(job) = handled.purge_again {
        // The repeat of a purge (`again_after_secs` ≤ 25 s): the runtime keeps a Worker
        // working up to 30 s after its response, timers included.
        let (isolate, platform) = (isolate.clone(), platform.clone());
        ctx.wait_until(async move {
            Delay::from(job.after()).await;
            isolate.edge.purge_again(platform.as_ref(), job).await;
        });
    }
    let every_ms = isolate.config.health_board_every.as_millis() as u64;
    if isolate.board.due(Date::now().as_millis(), every_ms) {
        let namespace = env.durable_object(health::HEALTH_BOARD_BINDING)?;
        ctx.wait_until(async move { sync_health(&isolate, &namespace).await });
    }
    Ok(response)
}

/// Applies the board's report if it is newer than the last this isolate applied.
async fn sync_health(isolate: &Isolate, namespace: &ObjectNamespace) {
    match health::read(namespace).await {
        Ok(Some(report)) if isolate.board.is_new(&report) => isolate.edge.apply_probes(&report),
        Ok(_) => {}
        Err(e) => worker::console_warn!("reading the health board failed: {e}"),
    }
}

/// The Cron Trigger: probe every pool's readiness path, apply the result here and publish
/// it for every other isolate.
#[event(scheduled)]
pub async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let isolate = match isolate(&env) {
        Ok(isolate) => isolate,
        Err(e) => return worker::console_error!("edge configuration: {e}"),
    };
    let platform = match WorkerPlatform::new(&env, &isolate.config) {
        Ok(platform) => platform,
        Err(e) => return worker::console_error!("bindings: {e}"),
    };
    let report = isolate.edge.probe_pools(&platform).await;
    isolate.board.is_new(&report);
    isolate.edge.apply_probes(&report);
    let published = match env.durable_object(health::HEALTH_BOARD_BINDING) {
        Ok(namespace) => health::publish(&namespace, &report).await,
        Err(e) => Err(e),
    };
    match published {
        Ok(()) => worker::console_log!("health probes: {}", serde_json::to_string(&report).unwrap_or_default()),
        Err(e) => worker::console_error!("publishing the health probes failed: {e}"),
    }
}

/// The incoming request as the edge's `http::Request`, its body read whole up to `limit`.
async fn to_http(mut req: Request, limit: usize) -> Result<http::Request<Bytes>, RequestError> {
    let url = req.url().map_err(|e| RequestError::BadRequestLine(e.to_string()))?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let method = http::Method::from_bytes(req.method().as_ref().as_bytes())
        .map_err(|e| RequestError::BadRequestLine(e.to_string()))?;
    let mut headers = convert::headers_from_js(req.headers().entries())?;
    if let Some(host) = url.host_str().and_then(|h| http::HeaderValue::from_str(h).ok()) {
        headers.insert(http::header::HOST, host);
    }
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.parse::<u64>().ok()))
        .map(|n| n.ok_or_else(|| RequestError::BadHeader("content-length".into())))
        .transpose()?;
    // GET and HEAD have no body in JavaScript; asking for their stream is an error.
    let stream = if req.inner().body().is_some() {
        Some(req.stream().map_err(|e| RequestError::BodyUnreadable(e.to_string()))?)
    } else {
        None
    };
    let body = convert::read_capped(stream, declared, limit).await?;
    let mut request = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .body(body)
        .map_err(|e| RequestError::BadRequestLine(e.to_string()))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Headers for JavaScript, byte for byte.
fn headers_to_js(headers: &http::HeaderMap) -> worker::Result<Headers> {
    let out = Headers::new();
    for (name, value) in headers {
        out.append(name.as_str(), &convert::header_value_to_js(value))?;
    }
    Ok(out)
}

fn from_http(response: http::Response<Bytes>) -> worker::Result<Response> {
    let (parts, body) = response.into_parts();
    let headers = headers_to_js(&parts.headers)?;
    // 204/304 (and empty bodies) must be built without a body in JavaScript.
    let response = if body.is_empty() { Response::empty()? } else { Response::from_bytes(body.to_vec())? };
    Ok(response.with_status(parts.status.as_u16()).with_headers(headers))
}

/// The Worker's bindings.
pub struct WorkerPlatform {
    cache: CfCache,
    bucket: R2Assets,
    origin: FetchOrigin,
    limits: DurableLimits,
    clock: DateClock,
}

impl WorkerPlatform {
    pub fn new(env: &Env, config: &WorkerConfig) -> worker::Result<Self> {
        Ok(Self {
            cache: CfCache { host: config.public_host.clone(), purge: config.purge.clone() },
            bucket: R2Assets { bucket: env.bucket(ASSETS_BINDING)? },
            origin: FetchOrigin { max_body_bytes: config.max_origin_body_bytes },
            limits: DurableLimits { namespace: env.durable_object(RATE_LIMITER_BINDING)? },
            clock: DateClock,
        })
    }
}

impl Platform for WorkerPlatform {
    type Cache = CfCache;
    type Bucket = R2Assets;
    type Origin = FetchOrigin;
    type Limits = DurableLimits;
    type Clock = DateClock;

    fn cache(&self) -> &CfCache {
        &self.cache
    }
    fn bucket(&self) -> &R2Assets {
        &self.bucket
    }
    fn origin(&self) -> &FetchOrigin {
        &self.origin
    }
    fn limits(&self) -> &DurableLimits {
        &self.limits
    }
    fn clock(&self) -> &DateClock {
        &self.clock
    }
}

/// `Date.now()`.
pub struct DateClock;

impl Clock for DateClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(Date::now().as_millis())
    }
}

/// The client as Cloudflare sees it. Never reads `x-edge-country`: in production a visitor
/// cannot pick their pool.
pub struct CfGeo {
    country: Option<Country>,
    continent: Option<Continent>,
    colo: Option<String>,
}

impl CfGeo {
    pub fn from_request(req: &Request) -> Self {
        let cf = req.cf();
        Self {
            country: cf.and_then(|cf| cf.country()).and_then(|c| c.parse().ok()),
            continent: cf.and_then(|cf| cf.continent()).and_then(|c| c.parse().ok()),
            colo: cf.map(|cf| cf.colo()),
        }
    }
}

impl ClientGeo for CfGeo {
    fn locate(&self, head: &http::request::Parts) -> ClientInfo {
        let ip = head.headers.get("cf-connecting-ip").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let mut client = ClientInfo { ip, country: None, continent: self.continent, colo: self.colo.clone() };
        if let Some(country) = self.country {
            client = client.with_country(country);
        }
        client
    }
}

/// The Cache API. Entries are stored with our freshness metadata in `x-edge-*` headers and
/// a `Cache-Control` covering the fresh + stale window; the edge decides freshness itself.
pub struct CfCache {
    /// The zone's hostname: cache keys are `https://{host}{key}`, so the zone purge API
    /// can address them.
    host: String,
    /// How far purges reach (`None`: purging is off, and the edge answers 404 to it).
    purge: Option<PurgeScope>,
}

const STORED_AT: &str = "x-edge-stored-at";
const FRESH: &str = "x-edge-fresh";
const SWR: &str = "x-edge-swr";
const ORIGIN_CACHE_CONTROL: &str = "x-edge-origin-cache-control";

/// What Cloudflare's API answers: `{"success": bool, "errors": [...], ...}`.
#[derive(Deserialize)]
struct ApiAnswer {
    success: bool,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

impl CfCache {
    fn url(&self, key: &CacheKey) -> String {
        format!("https://{}{}", self.host, key)
    }

    /// `POST {api}/zones/{zone}/purge_cache` with `body`: every location. `Ok(false)` when
    /// the scope is this location only.
    async fn zone_purge(&self, body: serde_json::Value) -> Result<bool, PurgeError> {
        let Some(PurgeScope::Zone(zone)) = &self.purge else { return Ok(false) };
        let fail = |e: worker::Error| PurgeError::Failed(e.to_string());
        let headers = Headers::new();
        headers.set("authorization", &format!("Bearer {}", zone.token.as_str())).map_err(fail)?;
        headers.set("content-type", "application/json").map_err(fail)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.to_string().into()));
        let request = Request::new_with_init(&zone.url(), &init).map_err(fail)?;
        let mut response = Fetch::Request(request).send().await.map_err(fail)?;
        let status = response.status_code();
        let answer: Option<ApiAnswer> = response.json().await.ok();
        match answer {
            Some(answer) if (200..300).contains(&status) && answer.success => Ok(true),
            Some(answer) => Err(PurgeError::Failed(format!(
                "zone purge answered {status}: {}",
                serde_json::Value::from(answer.errors)
            ))),
            None => Err(PurgeError::Failed(format!("zone purge answered {status} without Cloudflare's JSON"))),
        }
    }
}

impl EdgeCache for CfCache {
    async fn get(&self, key: &CacheKey) -> Option<CachedResponse> {
        let mut response = Cache::default().get(self.url(key), false).await.ok()??;
        let header = |name: &str| response.headers().get(name).ok().flatten();
        let stored_at = UNIX_EPOCH + Duration::from_millis(header(STORED_AT)?.parse().ok()?);
        let fresh = Duration::from_secs(header(FRESH)?.parse().ok()?);
        let swr = Duration::from_secs(header(SWR)?.parse().ok()?);
        let origin_cc = header(ORIGIN_CACHE_CONTROL);
        let entries = response.headers().entries().filter(|(name, _)| {
            ![STORED_AT, FRESH, SWR, ORIGIN_CACHE_CONTROL, "cache-control", "cf-cache-status"].contains(&name.as_str())
        });
        // We stored these headers ourselves; one that does not convert back is a broken entry.
        let mut headers = convert::headers_from_js(entries).ok()?;
        if let Some(cc) = origin_cc.and_then(|cc| convert::js_header_value(&cc)) {
            headers.insert(http::header::CACHE_CONTROL, cc);
        }
        let status = http::StatusCode::from_u16(response.status_code()).ok()?;
        let body = response.bytes().await.ok()?;
        Some(CachedResponse {
            status,
            headers,
            body: Bytes::from(body),
            stored_at,
            lifetime: Lifetime { fresh, stale_while_revalidate: swr },
        })
    }

    async fn put(&self, key: &CacheKey, entry: CachedResponse) {
        let keep = entry.keep_for().as_secs();
        let stored_ms = entry.stored_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut headers = entry.headers.clone();
        let origin_cc = headers.remove(http::header::CACHE_CONTROL);
        let mut response = http::Response::new(entry.body.clone());
        *response.status_mut() = entry.status;
        *response.headers_mut() = headers;
        let Ok(response) = from_http(response) else { return };
        let h = response.headers();
        let set = [
            (STORED_AT.to_owned(), stored_ms.to_string()),
            (FRESH.to_owned(), entry.lifetime.fresh.as_secs().to_string()),
            (SWR.to_owned(), entry.lifetime.stale_while_revalidate.as_secs().to_string()),
            ("cache-control".to_owned(), format!("public, max-age={keep}")),
        ];
        for (name, value) in set {
            let _ = h.set(&name, &value);
        }
        if let Some(cc) = origin_cc {
            let _ = h.set(ORIGIN_CACHE_CONTROL, &convert::header_value_to_js(&cc));
        }
        if let Err(e) = Cache::default().put(self.url(key), response).await {
            worker::console_warn!("cache put failed for {key}: {e}");
        }
    }

    /// This location's copy first, then every location's through the zone purge API.
    async fn delete(&self, key: &CacheKey) -> bool {
        let url = self.url(key);
        let local = matches!(Cache::default().delete(url.clone(), false).await, Ok(CacheDeletionOutcome::Success));
        match self.zone_purge(serde_json::json!({ "files": [url] })).await {
            Ok(global) => local || global,
            Err(e) => {
                worker::console_error!("zone purge of {key} failed: {e}");
                local
            }
        }
    }

    async fn purge_prefix(&self, prefix: &str) -> Result<Option<u64>, PurgeError> {
        // The Cache API cannot enumerate keys; the zone purge API takes prefixes without
        // the scheme.
        let target = format!("{}{prefix}", self.host);
        if self.zone_purge(serde_json::json!({ "prefixes": [target] })).await? {
            Ok(None)
        } else {
            Err(PurgeError::Unsupported)
        }
    }
}

/// The R2 bucket with the site's assets and public media.
pub struct R2Assets {
    bucket: worker::Bucket,
}

impl Bucket for R2Assets {
    async fn head(&self, key: &AssetKey) -> Result<Option<ObjectMeta>, BucketError> {
        let object = self.bucket.head(key.as_str()).await.map_err(|e| BucketError(e.to_string()))?;
        Ok(object.map(|o| ObjectMeta {
            size: o.size(),
            etag: o.http_etag(),
            last_modified: UNIX_EPOCH + Duration::from_millis(o.uploaded().as_millis()),
            content_type: o.http_metadata().content_type,
        }))
    }

    async fn get(&self, key: &AssetKey, range: Option<ByteRange>) -> Result<Option<Bytes>, BucketError> {
        let mut get = self.bucket.get(key.as_str());
        if let Some(r) = range {
            get = get.range(worker::Range::OffsetWithLength { offset: r.start(), length: r.len() });
        }
        let Some(object) = get.execute().await.map_err(|e| BucketError(e.to_string()))? else { return Ok(None) };
        let Some(body) = object.body() else { return Ok(Some(Bytes::new())) };
        body.bytes().await.map(|b| Some(Bytes::from(b))).map_err(|e| BucketError(e.to_string()))
    }
}

/// `fetch()` to an origin, aborted at the deadline; redirects are passed to the client.
pub struct FetchOrigin {
    /// Larger answers are a failed exchange (and so retried elsewhere, for reads).
    max_body_bytes: usize,
}

impl OriginClient for FetchOrigin {
    async fn send(
        &self,
        _origin: &Origin,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, OriginError> {
        let exchange_error = |e: &dyn std::fmt::Display| OriginError::Exchange(e.to_string());
        let (parts, body) = request.into_parts();
        let headers = headers_to_js(&parts.headers).map_err(|e| exchange_error(&e))?;
        let mut init = RequestInit::new();
        init.with_method(Method::from(parts.method.as_str().to_owned()))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !body.is_empty() {
            init.with_body(Some(js_bytes(&body)));
        }
        let request = Request::new_with_init(&parts.uri.to_string(), &init).map_err(|e| exchange_error(&e))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let limit = self.max_body_bytes;
        let exchange = Box::pin(async move {
            let mut response = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(|e| OriginError::Connect(e.to_string()))?;
            let headers = convert::headers_from_js(response.headers().entries()).map_err(|e| exchange_error(&e))?;
            let declared = headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let stream = match response.body() {
                worker::ResponseBody::Stream(_) => Some(response.stream().map_err(|e| exchange_error(&e))?),
                _ => None,
            };
            // An origin that dies mid-body is a failed exchange, not a short answer.
            let body = convert::read_capped(stream, declared, limit).await.map_err(|e| exchange_error(&e))?;
            let mut answer = http::Response::new(body);
            *answer.status_mut() =
                http::StatusCode::from_u16(response.status_code()).map_err(|e| exchange_error(&e))?;
            *answer.headers_mut() = headers;
            Ok(answer)
        });
        match select(exchange, Delay::from(timeout)).await {
            Either::Left((result, _)) => result,
            Either::Right(((), _)) => {
                controller.abort();
                Err(OriginError::Timeout)
            }
        }
    }
}

fn js_bytes(body: &[u8]) -> wasm_bindgen::JsValue {
    worker::js_sys::Uint8Array::from(body).into()
}

/// Token buckets in [`RateLimiter`] Durable Objects, one per limit key. If the object
/// cannot be reached the request is allowed (fail open: a limiter outage must not take
/// the shop down) and the failure is logged.
pub struct DurableLimits {
    namespace: ObjectNamespace,
}

/// What the Worker asks a [`RateLimiter`].
#[derive(Serialize, Deserialize)]
struct AcquireRequest {
    rule: Rule,
    mode: Acquire,
    now_ms: u64,
}

impl RateLimitStore for DurableLimits {
    async fn acquire(&self, key: &LimitKey, rule: Rule, mode: Acquire, now: SystemTime) -> Decision {
        let ask = async {
            let stub = self.namespace.id_from_name(&key.to_string())?.get_stub()?;
            let body = serde_json::to_string(&AcquireRequest { rule, mode, now_ms: edge::ratelimit::unix_ms(now) })?;
            let mut init = RequestInit::new();
            init.with_method(Method::Post).with_body(Some(body.into()));
            let request = Request::new_with_init("https://rate-limiter/acquire", &init)?;
            let mut response = stub.fetch_with_request(request).await?;
            response.json::<Decision>().await
        };
        match ask.await {
            Ok(decision) => decision,
            Err(e) => {
                worker::console_error!("rate limiter unavailable for {key}: {e}; allowing");
                Decision::Allowed { remaining: 0 }
            }
        }
    }
}

/// One token bucket, persisted in the object's storage. Requests to one object are
/// serialised by the runtime, so read-modify-write is safe.
#[durable_object]
pub struct RateLimiter {
    state: State,
}

impl DurableObject for RateLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let ask: AcquireRequest = req.json().await?;
        let now = UNIX_EPOCH + Duration::from_millis(ask.now_ms);
        let storage = self.state.storage();
        let mut bucket: TokenBucket =
            storage.get("bucket").await.ok().flatten().unwrap_or_else(|| TokenBucket::full(ask.rule, now));
        let decision = bucket.acquire(ask.rule, ask.mode, now);
        storage.put("bucket", bucket).await?;
        Response::from_json(&decision)
    }
}
