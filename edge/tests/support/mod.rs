//! Shared test helpers: an in-process platform (scripted origins, a hand-wound clock, the
//! native cache/bucket/limits), a standard configuration with three regional pools, and
//! real HTTP origins on ephemeral ports for the socket tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use edge::geo::{ClientInfo, Country};
use edge::native::{LocalBucket, MemoryCache, MemoryRateLimits};
use edge::platform::{OriginClient, OriginError};
use edge::routing::Origin;
use edge::{Clock, Edge, EdgeConfig, Handled, Platform};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const SECRET: &str = "purge-secret-0123456789abcdef0123456789";
pub const STOREFRONT: &str = "https://stolentee.com";

/// The standard test edge: us-west (fallback, NA), eu-west (EU, and GB explicitly),
/// ap-southeast (AS, OC); catalog cached; purge on; CORS for the storefront.
pub fn config(overrides: &[(&str, &str)]) -> EdgeConfig {
    let mut vars: HashMap<String, String> = [
        ("EDGE_POOLS", "us-west=http://us.test;eu-west=http://eu.test;ap-southeast=http://ap.test"),
        ("EDGE_CONTINENT_POOLS", "NA=us-west,SA=us-west,EU=eu-west,AF=eu-west,AS=ap-southeast,OC=ap-southeast"),
        ("EDGE_COUNTRY_POOLS", "GB=eu-west"),
        ("EDGE_FALLBACK_POOL", "us-west"),
        ("EDGE_PURGE_SECRET", SECRET),
        ("EDGE_CORS_ORIGINS", STOREFRONT),
        ("EDGE_CACHE_PREFIXES", "/api/products"),
        ("EDGE_AFFINITY_COOKIE", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    EdgeConfig::from_lookup(|k| vars.get(k).cloned()).expect("test configuration is valid")
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<SystemTime>>);

impl ManualClock {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))))
    }

    pub fn now_for_tests(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap()
    }
}

pub type Script = Arc<dyn Fn(&Request<Bytes>) -> Result<Response<Bytes>, OriginError> + Send + Sync>;

/// One request an origin received.
#[derive(Debug, Clone)]
pub struct Call {
    pub origin: String,
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
}

/// Origins answered by closures, keyed by authority (`eu.test`); unknown ones refuse
/// connections. Every call is recorded.
#[derive(Clone, Default)]
pub struct ScriptedOrigins {
    scripts: Arc<Mutex<HashMap<String, Script>>>,
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl ScriptedOrigins {
    pub fn set(
        &self,
        authority: &str,
        script: impl Fn(&Request<Bytes>) -> Result<Response<Bytes>, OriginError> + Send + Sync + 'static,
    ) {
        self.scripts.lock().unwrap().insert(authority.to_owned(), Arc::new(script));
    }

    pub fn calls_to(&self, authority: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| c.origin == authority).count()
    }

    pub fn last_call(&self) -> Call {
        self.calls.lock().unwrap().last().cloned().expect("an origin was called")
    }

    pub fn total(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

impl OriginClient for ScriptedOrigins {
    async fn send(
        &self,
        origin: &Origin,
        request: Request<Bytes>,
        _timeout: Duration,
    ) -> Result<Response<Bytes>, OriginError> {
        let authority = origin.authority().to_string();
        self.calls.lock().unwrap().push(Call {
            origin: authority.clone(),
            method: request.method().clone(),
            uri: request.uri().to_string(),
            headers: request.headers().clone(),
        });
        let script = self.scripts.lock().unwrap().get(&authority).cloned();
        match script {
            Some(script) => script(&request),
            None => Err(OriginError::Connect(format!("{authority}: connection refused"))),
        }
    }
}

/// An origin answer: status, headers, body.
pub fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Result<Response<Bytes>, OriginError> {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    Ok(builder.body(Bytes::from(body.to_owned())).unwrap())
}

/// The in-process platform.
pub struct TestPlatform {
    pub cache: MemoryCache,
    pub bucket: LocalBucket,
    pub origins: ScriptedOrigins,
    pub limits: MemoryRateLimits,
    pub clock: ManualClock,
}

impl Platform for TestPlatform {
    type Cache = MemoryCache;
    type Bucket = LocalBucket;
    type Origin = ScriptedOrigins;
    type Limits = MemoryRateLimits;
    type Clock = ManualClock;

    fn cache(&self) -> &MemoryCache {
        &self.cache
    }
    fn bucket(&self) -> &LocalBucket {
        &self.bucket
    }
    fn origin(&self) -> &ScriptedOrigins {
        &self.origins
    }
    fn limits(&self) -> &MemoryRateLimits {
        &self.limits
    }
    fn clock(&self) -> &ManualClock {
        &self.clock
    }
}

/// An edge with the standard configuration (plus overrides) and a fresh platform whose
/// bucket is `objects` (or an empty temporary directory).
pub struct Harness {
    pub edge: Edge,
    pub platform: TestPlatform,
    _objects: Option<TempDir>,
}

impl Harness {
    pub fn new(overrides: &[(&str, &str)]) -> Self {
        let dir = TempDir::new();
        let mut h = Self::with_objects(overrides, dir.path());
        h._objects = Some(dir);
        h
    }

    pub fn with_objects(overrides: &[(&str, &str)], objects: &Path) -> Self {
        Self {
            edge: Edge::new(config(overrides)),
            platform: TestPlatform {
                cache: MemoryCache::new(16 << 20),
                bucket: LocalBucket::new(objects.to_path_buf()),
                origins: ScriptedOrigins::default(),
                limits: MemoryRateLimits::default(),
                clock: ManualClock::new(),
            },
            _objects: None,
        }
    }

    pub fn origins(&self) -> &ScriptedOrigins {
        &self.platform.origins
    }

    pub fn clock(&self) -> &ManualClock {
        &self.platform.clock
    }

    /// Sends a request as a client in `country` from 203.0.113.7.
    pub async fn send(&self, request: Request<Bytes>, country: Option<&str>) -> Handled {
        let mut client = ClientInfo::from_ip("203.0.113.7".parse().unwrap());
        if let Some(c) = country {
            client = client.with_country(c.parse::<Country>().unwrap());
        }
        self.edge.handle(&self.platform, request, client).await
    }

    pub async fn send_from(&self, request: Request<Bytes>, ip: IpAddr) -> Handled {
        self.edge.handle(&self.platform, request, ClientInfo::from_ip(ip)).await
    }

    pub async fn get(&self, uri: &str) -> Response<Bytes> {
        self.send(request(Method::GET, uri, &[]), None).await.response
    }
}

pub fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<Bytes> {
    request_with_body(method, uri, headers, "")
}

pub fn request_with_body(method: Method, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Bytes> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Bytes::from(body.to_owned())).unwrap()
}

pub fn header<'a>(response: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn x_cache(response: &Response<Bytes>) -> &str {
    header(response, "x-cache").expect("every response carries X-Cache")
}

pub fn body(response: &Response<Bytes>) -> &str {
    std::str::from_utf8(response.body()).unwrap()
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "stolentee-edge-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes an object the way the local object store lays it out: `data/<key>` and,
    /// with a content type, a `meta/<key>` sidecar.
    pub fn put_object(&self, key: &str, bytes: &[u8], content_type: Option<&str>) {
        let data = self.0.join("data").join(key);
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, bytes).unwrap();
        if let Some(ct) = content_type {
            let meta = self.0.join("meta").join(key);
            std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
            let sidecar = serde_json::json!({ "content_type": ct, "etag": format!("\"etag-{}\"", bytes.len()) });
            std::fs::write(meta, sidecar.to_string()).unwrap();
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// --- real sockets ---------------------------------------------------------------------

/// A tiny real HTTP origin on an ephemeral port: `GET /health` → 200, anything else → 200
/// with `{"served_by": NAME, "path": ...}`, `Cache-Control: no-store`. Counts requests.
/// [`RealOrigin::kill`] closes the listener and every open connection at once.
pub struct RealOrigin {
    pub addr: SocketAddr,
    pub name: &'static str,
    pub hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl RealOrigin {
    pub async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (h, c) = (hits.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let hits = h.clone();
                let conn = tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let hits = hits.clone();
                        async move {
                            hits.fetch_add(1, Ordering::SeqCst);
                            let body = serde_json::json!({ "served_by": name, "path": req.uri().path() }).to_string();
                            let response = Response::builder()
                                .status(StatusCode::OK)
                                .header("content-type", "application/json")
                                .header("cache-control", "no-store")
                                .body(Full::new(Bytes::from(body)))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                c.lock().unwrap().push(conn);
            }
        });
        Self { addr, name, hits, task, connections }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Like a crashed process: no more accepts, every connection cut.
    pub fn kill(&self) {
        self.task.abort();
        for conn in self.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

impl Drop for RealOrigin {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP client for the socket tests.
pub fn http_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

pub async fn fetch(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let response = client.request(builder.body(Full::new(Bytes::new())).unwrap()).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}
