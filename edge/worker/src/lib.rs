//! The Cloudflare Worker: binds the `edge` crate's traits to workers-rs and hands every
//! request to the same [`edge::Edge::handle`] the native host uses.
//!
//! | trait | binding |
//! |---|---|
//! | `EdgeCache` | [`CfCache`]: `worker::Cache` (the colo's Cache API); global purge through the zone's purge API when `CF_API_TOKEN` + `CF_ZONE_ID` are set |
//! | `Bucket` | [`R2Assets`]: the R2 bucket bound as `ASSETS` |
//! | `OriginClient` | [`FetchOrigin`]: `Fetch` with an `AbortController` deadline, redirects passed through |
//! | `RateLimitStore` | [`DurableLimits`]: one [`RateLimiter`] Durable Object per client and route class |
//! | `ClientGeo` | [`CfGeo`]: `CF-Connecting-IP` and `req.cf()` (country, continent, colo) |
//! | `Clock` | [`DateClock`]: `Date.now()` (`SystemTime::now()` panics on wasm32) |
//!
//! Why a Durable Object and not the rate-limiting binding: the binding's period is 10 s or
//! 60 s only, so "100 per 15 minutes" and "10 per hour" cannot be expressed, and its counts
//! are per-colo approximations. A Durable Object per key is one strongly consistent token
//! bucket worldwide, holding the same `TokenBucket` the native host keeps in memory.
//!
//! The edge state (configuration, pool health, refreshes in flight) lives once per isolate.
//! This crate type-checks natively (`cargo check -p stolentee-edge-worker`); its JS-backed
//! types only work inside workerd. Build with `worker-build --release` (see `../README.md`).

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
    ObjectNamespace, Request, RequestInit, RequestRedirect, Response, State, durable_object, event,
};

/// Binding names (see `../wrangler.toml`).
const ASSETS_BINDING: &str = "ASSETS";
const RATE_LIMITER_BINDING: &str = "RATE_LIMITER";

thread_local! {
    /// One edge per isolate: built from the environment on the first request.
    static EDGE: RefCell<Option<Rc<Edge>>> = const { RefCell::new(None) };
}

/// A Worker var or secret (secrets win), empty treated as unset.
fn lookup(env: &Env, key: &str) -> Option<String> {
    env.secret(key).ok().map(|s| s.to_string()).or_else(|| env.var(key).ok().map(|v| v.to_string()))
}

fn edge_for(env: &Env) -> Result<Rc<Edge>, edge::ConfigError> {
    if let Some(edge) = EDGE.with(|cell| cell.borrow().clone()) {
        return Ok(edge);
    }
    let edge = Rc::new(Edge::new(EdgeConfig::from_lookup(|k| lookup(env, k))?));
    EDGE.with(|cell| *cell.borrow_mut() = Some(edge.clone()));
    Ok(edge)
}

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let edge = match edge_for(&env) {
        Ok(edge) => edge,
        Err(e) => return Response::error(format!("edge configuration: {e}"), 500),
    };
    let geo = CfGeo::from_request(&req);
    let request = to_http(req).await?;
    let (parts, body) = request.into_parts();
    let client = geo.locate(&parts);
    let platform = WorkerPlatform::new(&env)?;
    let handled = edge.handle(&platform, http::Request::from_parts(parts, body), client).await;
    let response = from_http(handled.response)?;
    if let Some(job) = handled.revalidate {
        // The refresh runs after the response is sent; the runtime keeps the isolate alive.
        ctx.wait_until(async move { edge.revalidate(&platform, job).await });
    }
    Ok(response)
}

async fn to_http(mut req: Request) -> worker::Result<http::Request<Bytes>> {
    let url = req.url()?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let method = http::Method::from_bytes(req.method().as_ref().as_bytes())
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    let mut builder = http::Request::builder().method(method).uri(path_and_query);
    for (name, value) in req.headers().entries() {
        builder = builder.header(name, value);
    }
    if let Some(host) = url.host_str() {
        builder = builder.header(http::header::HOST, host);
    }
    let body = req.bytes().await.unwrap_or_default();
    builder.body(Bytes::from(body)).map_err(|e| worker::Error::RustError(e.to_string()))
}

fn from_http(response: http::Response<Bytes>) -> worker::Result<Response> {
    let (parts, body) = response.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            headers.append(name.as_str(), value)?;
        }
    }
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
    pub fn new(env: &Env) -> worker::Result<Self> {
        Ok(Self {
            cache: CfCache {
                host: lookup(env, "EDGE_PUBLIC_HOST").unwrap_or_else(|| "stolentee.com".into()),
                zone_api: lookup(env, "CF_ZONE_ID").zip(lookup(env, "CF_API_TOKEN")),
            },
            bucket: R2Assets { bucket: env.bucket(ASSETS_BINDING)? },
            origin: FetchOrigin,
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
    /// (zone id, API token) for global purges; without them purges are local to the colo.
    zone_api: Option<(String, String)>,
}

const STORED_AT: &str = "x-edge-stored-at";
const FRESH: &str = "x-edge-fresh";
const SWR: &str = "x-edge-swr";
const ORIGIN_CACHE_CONTROL: &str = "x-edge-origin-cache-control";

impl CfCache {
    fn url(&self, key: &CacheKey) -> String {
        format!("https://{}{}", self.host, key)
    }

    /// `POST /zones/{zone}/purge_cache` with `body`; `false` without credentials.
    async fn zone_purge(&self, body: serde_json::Value) -> Result<bool, PurgeError> {
        let Some((zone, token)) = &self.zone_api else { return Ok(false) };
        let headers = Headers::new();
        let fail = |e: worker::Error| PurgeError::Failed(e.to_string());
        headers.set("authorization", &format!("Bearer {token}")).map_err(fail)?;
        headers.set("content-type", "application/json").map_err(fail)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.to_string().into()));
        let url = format!("https://api.cloudflare.com/client/v4/zones/{zone}/purge_cache");
        let request = Request::new_with_init(&url, &init).map_err(fail)?;
        let response = Fetch::Request(request).send().await.map_err(fail)?;
        if (200..300).contains(&response.status_code()) {
            Ok(true)
        } else {
            Err(PurgeError::Failed(format!("zone purge answered {}", response.status_code())))
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
        let mut headers = http::HeaderMap::new();
        for (name, value) in response.headers().entries() {
            if [STORED_AT, FRESH, SWR, ORIGIN_CACHE_CONTROL, "cache-control", "cf-cache-status"]
                .contains(&name.as_str())
            {
                continue;
            }
            if let (Ok(n), Ok(v)) = (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_str(&value))
            {
                headers.append(n, v);
            }
        }
        if let Some(cc) = origin_cc.and_then(|cc| http::HeaderValue::from_str(&cc).ok()) {
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
        if let Some(cc) = origin_cc.and_then(|v| v.to_str().ok().map(str::to_owned)) {
            let _ = h.set(ORIGIN_CACHE_CONTROL, &cc);
        }
        if let Err(e) = Cache::default().put(self.url(key), response).await {
            worker::console_warn!("cache put failed for {key}: {e}");
        }
    }

    async fn delete(&self, key: &CacheKey) -> bool {
        let url = self.url(key);
        let local = matches!(Cache::default().delete(url.clone(), false).await, Ok(CacheDeletionOutcome::Success));
        match self.zone_purge(serde_json::json!({ "files": [url] })).await {
            Ok(global) => local || global,
            Err(e) => {
                worker::console_warn!("zone purge of {key} failed: {e}");
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
pub struct FetchOrigin;

impl OriginClient for FetchOrigin {
    async fn send(
        &self,
        _origin: &Origin,
        request: http::Request<Bytes>,
        timeout: Duration,
    ) -> Result<http::Response<Bytes>, OriginError> {
        let (parts, body) = request.into_parts();
        let headers = Headers::new();
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                headers.append(name.as_str(), value).map_err(|e| OriginError::Exchange(e.to_string()))?;
            }
        }
        let mut init = RequestInit::new();
        init.with_method(Method::from(parts.method.as_str().to_owned()))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !body.is_empty() {
            init.with_body(Some(js_bytes(&body)));
        }
        let request =
            Request::new_with_init(&parts.uri.to_string(), &init).map_err(|e| OriginError::Exchange(e.to_string()))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = Box::pin(async move {
            let mut response = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(|e| OriginError::Connect(e.to_string()))?;
            let mut builder = http::Response::builder().status(response.status_code());
            for (name, value) in response.headers().entries() {
                builder = builder.header(name, value);
            }
            let body = response.bytes().await.map_err(|e| OriginError::Exchange(e.to_string()))?;
            builder.body(Bytes::from(body)).map_err(|e| OriginError::Exchange(e.to_string()))
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
