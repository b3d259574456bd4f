//! Worker chaos drills: whatever happens to the worker, the database or a message, every
//! job ends `done` or `error`, no job gets a second set of results, and an upload whose job
//! failed can be cut out again.
//!
//! * **SIGKILL mid-job.** The real `remove-bg` binary runs against a local Lambda Runtime API,
//!   fed by a stand-in for Lambda's SQS poller over moto's SQS (batches of up to ten, batch
//!   item failures, messages reappearing after the visibility timeout, the redrive to the
//!   dead-letter queue). The drill kills the process with SIGKILL while it cuts out a job.
//! * **Postgres outage longer than attempts × visibility.** The same, against a throwaway
//!   Postgres cluster started here, stopped (`pg_ctl -m immediate`) until every delivery has
//!   failed and the messages are dead-lettered, then started again.
//! * **A poison message in a batch of ten.** A message whose job kills the process (as an
//!   out-of-memory kill or a crash in native code would) shares a batch with nine others; the
//!   batch is dropped unanswered each time it dies, as Lambda drops a crashed invocation.
//!   In-process, with the in-memory queue's SQS receive counts and dead-letter list.
//!
//! Uploads and jobs go through the real API (in-process) as the storefront makes them: a
//! guest uploads, completes and asks for the job, and polls it. Needs `TEST_DATABASE_URL`,
//! `MOTO_ENDPOINT`, the model (`MODELS_DIR`) and PostgreSQL's server programs (`make test`
//! provides all). These are shortened; `make drill-jobs` runs them at full size
//! (`DRILL_FULL=1`: more jobs, more kills, a 30-second outage).

use std::collections::{HashMap, VecDeque};
use std::io::Cursor;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws::AwsConnection;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use db::jobs::Media;
use db::testing::{ScratchCluster, TestDb};
use objects::{LocalStore, LocalStoreConfig, ObjectError, ObjectKey, ObjectMeta, ObjectStore, PresignedRequest};
use queue::sqs::{create_queue_with_dlq, sqs_client};
use queue::{MemoryQueue, SqsQueue};
use remove_bg::Worker;
use runtime::Metrics;
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

/// The drills measure time; run them one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn full() -> bool {
    std::env::var("DRILL_FULL").is_ok_and(|v| v.trim() == "1")
}

fn moto_endpoint() -> String {
    match std::env::var("MOTO_ENDPOINT") {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "MOTO_ENDPOINT is not set. Run the tests with `make test`, which starts moto, or start it yourself: \
             `export MOTO_ENDPOINT=$(scripts/moto.sh start)` (stop it with `scripts/moto.sh stop`)"
        ),
    }
}

fn models_dir() -> String {
    std::env::var("MODELS_DIR").unwrap_or_else(|_| format!("{}/../../models", env!("CARGO_MANIFEST_DIR")))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..16])
}

/// A photo-like PNG: a warm disc on a cool gradient, `width` × `height`, varied by `seed`.
fn photo_png(width: u32, height: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        let (dx, dy) = (x as i64 - i64::from(width / 2), y as i64 - i64::from(height / 2));
        let r = i64::from(width.min(height) / 3);
        if dx * dx + dy * dy < r * r { image::Rgb([220, 120, seed]) } else { image::Rgb([40, (y % 255) as u8, 200]) }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

// ---- a local Lambda: the Runtime API and the real binary ------------------------------------

/// One answer of the function to an invocation.
#[derive(Debug)]
enum Answer {
    Response(Bytes),
    Error(String),
}

/// The Runtime API of one function instance (one process): invocations wait in `pending`
/// until the process asks for the next one. A new instance gets a new one, so a request a
/// killed process left hanging can never take an invocation meant for its successor.
#[derive(Default)]
struct Runtime {
    pending: Mutex<VecDeque<(String, Bytes)>>,
    answers: Mutex<HashMap<String, Answer>>,
    init_error: Mutex<Option<String>>,
    arrived: Notify,
}

async fn next_invocation(State(rt): State<Arc<Runtime>>) -> impl IntoResponse {
    loop {
        let notified = rt.arrived.notified();
        if let Some((id, event)) = rt.pending.lock().unwrap().pop_front() {
            let deadline = std::time::SystemTime::now() + Duration::from_secs(120);
            let deadline_ms = deadline.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
            let mut headers = HeaderMap::new();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            headers.insert("lambda-runtime-aws-request-id", HeaderValue::from_str(&id).unwrap());
            headers.insert("lambda-runtime-deadline-ms", HeaderValue::from_str(&deadline_ms.to_string()).unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:remove-bg"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000001"),
            );
            return (StatusCode::OK, headers, event);
        }
        notified.await;
    }
}

async fn invocation_response(State(rt): State<Arc<Runtime>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    rt.answers.lock().unwrap().insert(id, Answer::Response(body));
    StatusCode::ACCEPTED
}

async fn invocation_error(State(rt): State<Arc<Runtime>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    rt.answers.lock().unwrap().insert(id, Answer::Error(String::from_utf8_lossy(&body).into_owned()));
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    *rt.init_error.lock().unwrap() = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// A running instance of the function.
struct Instance {
    child: Child,
    runtime: Arc<Runtime>,
    server: tokio::task::JoinHandle<()>,
}

impl Instance {
    fn kill(mut self) {
        // SIGKILL: no handler, no cleanup, no answer — what the platform does on a timeout or
        // an out-of-memory kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.server.abort();
    }
}

/// What became of an invocation.
#[derive(Debug)]
enum Invocation {
    Answered(Answer),
    /// The process died (or was killed) before answering.
    Died(String),
}

/// The function: started on demand, as Lambda starts an instance for an invocation.
struct Lambda {
    env: Vec<(String, String)>,
    instance: Option<Instance>,
    log: std::path::PathBuf,
    starts: u32,
}

impl Lambda {
    fn new(env: Vec<(String, String)>) -> Self {
        let log = std::env::temp_dir().join(format!("{}.log", unique("remove-bg-drill")));
        Self { env, instance: None, log, starts: 0 }
    }

    async fn instance(&mut self) -> &mut Instance {
        if self.instance.is_none() {
            let runtime = Arc::new(Runtime::default());
            let app = axum::Router::new()
                .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
                .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
                .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
                .route("/2018-06-01/runtime/init/error", post(init_error))
                .with_state(runtime.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_remove-bg"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", "remove-bg")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3538")
                .env("AWS_REGION", "us-east-1")
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .expect("starting the remove-bg binary");
            self.starts += 1;
            self.instance = Some(Instance { child, runtime, server });
        }
        self.instance.as_mut().unwrap()
    }

    /// Invokes the function with `event` and waits for its answer, its death, or `timeout`
    /// (then it is killed, as Lambda kills a function at its timeout). `chaos` is consulted
    /// while waiting and may ask for the process to be killed.
    async fn invoke(&mut self, event: Bytes, timeout: Duration, chaos: &mut dyn Chaos) -> Invocation {
        let id = Uuid::new_v4().to_string();
        {
            let instance = self.instance().await;
            instance.runtime.pending.lock().unwrap().push_back((id.clone(), event));
            instance.runtime.arrived.notify_waiters();
        }
        let started = Instant::now();
        loop {
            let instance = self.instance.as_mut().unwrap();
            if let Some(answer) = instance.runtime.answers.lock().unwrap().remove(&id) {
                return Invocation::Answered(answer);
            }
            if let Some(error) = instance.runtime.init_error.lock().unwrap().clone() {
                panic!("remove-bg failed to start: {error} (log: {})", self.log.display());
            }
            if let Ok(Some(status)) = instance.child.try_wait() {
                self.instance.take().unwrap().kill();
                return Invocation::Died(format!("exited: {status}"));
            }
            if chaos.kill_now().await {
                self.instance.take().unwrap().kill();
                return Invocation::Died("SIGKILL".into());
            }
            if started.elapsed() > timeout {
                self.instance.take().unwrap().kill();
                return Invocation::Died("timed out".into());
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
}

impl Drop for Lambda {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            instance.kill();
        }
    }
}

/// Decides, while an invocation runs, whether to kill the process.
#[async_trait]
trait Chaos: Send {
    async fn kill_now(&mut self) -> bool;
}

struct NoChaos;

#[async_trait]
impl Chaos for NoChaos {
    async fn kill_now(&mut self) -> bool {
        false
    }
}

/// Kills the worker once per victim, while it is cutting that job out (after the claim,
/// before the job is finished).
struct KillMidJob {
    db: tokio_postgres::Client,
    victims: Vec<Uuid>,
    killed: HashMap<Uuid, i32>,
}

#[async_trait]
impl Chaos for KillMidJob {
    async fn kill_now(&mut self) -> bool {
        let rows = self
            .db
            .query(
                "SELECT id, attempts FROM jobs WHERE id = ANY($1) AND status = 'running' \
                   AND (logs LIKE 'running: removing%' OR logs LIKE 'running: storing%')",
                &[&self.victims],
            )
            .await
            .unwrap();
        for row in rows {
            let (id, attempts): (Uuid, i32) = (row.get(0), row.get(1));
            if let std::collections::hash_map::Entry::Vacant(first) = self.killed.entry(id) {
                first.insert(attempts);
                return true;
            }
        }
        false
    }
}

// ---- Lambda's SQS poller, over moto -----------------------------------------------------------

struct Poller {
    queue: SqsQueue,
    dlq: SqsQueue,
    arn: String,
    /// The highest receive count each message was delivered with.
    receives: Mutex<HashMap<String, u32>>,
}

impl Poller {
    /// One poll: a batch of up to ten, handed to the function; what it acknowledged (all but
    /// its batch item failures, when it answered) is deleted; the rest reappears after the
    /// visibility timeout. Returns whether there was a batch.
    async fn poll(&self, lambda: &mut Lambda, chaos: &mut dyn Chaos) -> bool {
        let messages = self.queue.receive(10, Duration::from_secs(1)).await.expect("receiving from moto");
        if messages.is_empty() {
            return false;
        }
        {
            let mut receives = self.receives.lock().unwrap();
            for m in &messages {
                let seen = receives.entry(m.message_id.clone()).or_default();
                *seen = (*seen).max(m.receive_count);
            }
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": {
                        "ApproximateReceiveCount": m.receive_count.to_string(),
                        "SentTimestamp": "1767225600000",
                        "SenderId": "drill",
                        "ApproximateFirstReceiveTimestamp": "1767225600000"
                    },
                    "messageAttributes": {},
                    "md5OfBody": "0",
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        let event = Bytes::from(json!({ "Records": records }).to_string());
        match lambda.invoke(event, Duration::from_secs(120), chaos).await {
            Invocation::Answered(Answer::Response(body)) => {
                let response: SqsBatchResponse = serde_json::from_slice(&body).expect("an SqsBatchResponse");
                let failed: Vec<&str> =
                    response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
                for m in messages.iter().filter(|m| !failed.contains(&m.message_id.as_str())) {
                    self.queue.delete(&m.receipt_handle).await.expect("deleting an acknowledged message");
                }
            }
            Invocation::Answered(Answer::Error(e)) => eprintln!("the function reported an error: {e}"),
            Invocation::Died(why) => eprintln!("the function died during a batch of {}: {why}", messages.len()),
        }
        true
    }

    /// Whether every message seen so far has been delivered `times` times.
    fn all_received(&self, times: u32) -> bool {
        let receives = self.receives.lock().unwrap();
        !receives.is_empty() && receives.values().all(|n| *n >= times)
    }

    /// The bodies of the messages in the dead-letter queue (received, never deleted).
    async fn dead_letters(&self) -> Vec<Value> {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let batch = self.dlq.receive(10, Duration::from_secs(1)).await.expect("receiving from the DLQ");
            for m in batch {
                if !seen.iter().any(|(id, _): &(String, Value)| *id == m.message_id) {
                    seen.push((m.message_id.clone(), serde_json::from_str(&m.body).unwrap_or(Value::Null)));
                }
            }
        }
        seen.into_iter().map(|(_, body)| body).collect()
    }
}

// ---- the stack: API in-process, worker as a Lambda, moto for S3 and SQS ----------------------

struct Stack {
    api: String,
    http: reqwest::Client,
    poller: Poller,
    lambda: Lambda,
    db_url: String,
    server: tokio::task::JoinHandle<()>,
}

/// Queue and worker timings of a drill, in seconds: the visibility timeout, the stale-claim
/// time and the job deadline. Production's rule (deadline ≥ attempts × visibility + stale)
/// holds; on top of it the deadline leaves room for this machine's speed: a debug build
/// sharing its cores may take seconds per cut-out, where the deployed function takes less
/// than one, and a claim needs `stale` seconds before the deadline.
#[derive(Clone, Copy)]
struct Timings {
    visibility: u64,
    stale: u64,
    deadline: u64,
}

impl Timings {
    const ATTEMPTS: u64 = 3;
    /// Most seconds one cut-out may take here.
    const PER_JOB: u64 = 20;

    fn new(visibility: u64, stale: u64, jobs: u64) -> Self {
        let deadline = Self::ATTEMPTS * visibility + stale + jobs * Self::PER_JOB;
        Self { visibility, stale, deadline }
    }

    fn deadline(self) -> u64 {
        assert!(self.deadline >= Self::ATTEMPTS * self.visibility + self.stale);
        self.deadline
    }
}

impl Stack {
    async fn new(db_url: &str, timings: Timings) -> Self {
        let moto = AwsConnection::local(moto_endpoint(), "testing", "testing");
        let bucket = unique("drill");
        let store = objects::S3Store::new(&objects::S3StoreConfig {
            bucket: bucket.clone(),
            connection: moto.clone(),
            force_path_style: true,
        });
        store.ensure_bucket().await.expect("a bucket on moto");
        let client = sqs_client(&moto);
        let pair = create_queue_with_dlq(
            &client,
            &unique("drill-cutouts"),
            Timings::ATTEMPTS as u32,
            Duration::from_secs(timings.visibility),
        )
        .await
        .expect("a queue with a DLQ on moto");

        let endpoint = moto_endpoint();
        let shared = [
            ("DATABASE_URL", db_url.to_owned()),
            ("OBJECT_STORE", "s3".into()),
            ("S3_BUCKET", bucket),
            ("S3_ENDPOINT", endpoint.clone()),
            ("S3_REGION", "us-east-1".into()),
            ("S3_ACCESS_KEY_ID", "testing".into()),
            ("S3_SECRET_ACCESS_KEY", "testing".into()),
        ];
        let mut api_env: Vec<(&str, String)> = shared.to_vec();
        api_env.extend([
            ("API_BIND", "127.0.0.1:0".into()),
            ("QUEUE", "sqs".into()),
            ("SQS_QUEUE_URL", pair.queue_url.clone()),
            ("SQS_ENDPOINT", endpoint),
            ("SQS_REGION", "us-east-1".into()),
            ("SQS_ACCESS_KEY_ID", "testing".into()),
            ("SQS_SECRET_ACCESS_KEY", "testing".into()),
            ("CUTOUT_JOB_DEADLINE_SECS", timings.deadline().to_string()),
        ]);
        let config = api::ApiConfig::from_env(&config::Env::from_pairs(api_env)).expect("the API's configuration");
        let app = api::App::build(&config).await.expect("the API starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let service = app.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let server = tokio::spawn(async move {
            axum::serve(listener, service).await.unwrap();
        });

        let mut worker_env: Vec<(String, String)> = shared.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        worker_env.extend([
            ("MODELS_DIR".to_owned(), models_dir()),
            ("CUTOUT_MAX_ATTEMPTS".to_owned(), Timings::ATTEMPTS.to_string()),
            ("CUTOUT_STALE_AFTER_SECS".to_owned(), timings.stale.to_string()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
            ("METRICS".to_owned(), "off".to_owned()),
            // Inside Lambda a function is strict by default (TLS to the database, …); the
            // drill's databases are local, plain TCP: development mode, as every test runs.
            ("APP_ENV".to_owned(), "development".to_owned()),
        ]);
        let poller = Poller {
            queue: SqsQueue::with_client(client.clone(), &pair.queue_url),
            dlq: SqsQueue::with_client(client, &pair.dlq_url),
            arn: format!("arn:aws:sqs:us-east-1:123456789012:{}", pair.queue_url.rsplit('/').next().unwrap_or("q")),
            receives: Mutex::default(),
        };
        Self {
            api,
            http: reqwest::Client::new(),
            poller,
            lambda: Lambda::new(worker_env),
            db_url: db_url.to_owned(),
            server,
        }
    }

    /// A guest uploads `png`, completes it and asks for a cut-out. Returns the customer's
    /// handle on it.
    async fn customer(&self, png: &[u8]) -> Customer {
        let started: Value = self
            .http
            .post(format!("{}/api/uploads", self.api))
            .json(&json!({"content_type": "image/png", "byte_size": png.len()}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = started["guest_token"]["token"].as_str().expect("a guest token").to_owned();
        let put = self
            .http
            .put(started["upload"]["put"]["url"].as_str().unwrap())
            .header("content-type", "image/png")
            .body(png.to_vec())
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "PUT to moto: {}", put.status());
        let done = self
            .http
            .post(format!("{}{}", self.api, started["upload"]["complete_url"].as_str().unwrap()))
            .header("x-guest-token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 201);
        let asset = done.json::<Value>().await.unwrap()["asset"]["id"].as_str().unwrap().to_owned();
        let mut customer = Customer { token, asset, job: Uuid::nil() };
        customer.job = self.request_job(&customer).await;
        customer
    }

    /// Asks for a cut-out of the customer's upload (202: a new job); returns its id.
    async fn request_job(&self, customer: &Customer) -> Uuid {
        let response = self
            .http
            .post(format!("{}/api/jobs", self.api))
            .header("x-guest-token", &customer.token)
            .json(&json!({"asset_id": customer.asset}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "a new job");
        response.json::<Value>().await.unwrap()["job"]["id"].as_str().unwrap().parse().unwrap()
    }

    /// The job as the storefront polls it.
    async fn poll(&self, customer: &Customer, job: Uuid) -> Value {
        let response = self
            .http
            .get(format!("{}/api/jobs/{job}", self.api))
            .header("x-guest-token", &customer.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()["job"].clone()
    }

    async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.db_url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// Runs Lambda's poller until every job in `jobs` is `done` or `error`, or `limit` passes.
    async fn run_until_final(&mut self, jobs: &[Uuid], limit: Duration, chaos: &mut dyn Chaos) {
        let db = self.db().await;
        let started = Instant::now();
        loop {
            let unfinished: i64 = db
                .query_one("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status IN ('queued', 'running')", &[&jobs])
                .await
                .unwrap()
                .get(0);
            if unfinished == 0 {
                return;
            }
            assert!(started.elapsed() < limit, "{unfinished} jobs still unfinished after {limit:?}");
            self.poller.poll(&mut self.lambda, chaos).await;
        }
    }

    /// Runs the poller for `span`, whatever happens.
    async fn run_for(&mut self, span: Duration) {
        let started = Instant::now();
        while started.elapsed() < span {
            self.poller.poll(&mut self.lambda, &mut NoChaos).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Customer {
    token: String,
    asset: String,
    job: Uuid,
}

/// No job has two sets of results, and no upload two finished jobs.
async fn assert_no_duplicate_results(db: &tokio_postgres::Client) {
    let doubled: Vec<(Uuid, i64)> = db
        .query("SELECT job_id, count(*) FROM assets WHERE job_id IS NOT NULL GROUP BY job_id HAVING count(*) <> 2", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(doubled.is_empty(), "jobs with other than one mask and one cut-out: {doubled:?}");
    let twice: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT upload_asset_id FROM jobs WHERE status = 'done' \
               GROUP BY upload_asset_id HAVING count(*) > 1) t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(twice, 0, "an upload with two finished jobs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_job_loses_nothing_and_the_redelivery_finishes_the_job() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::migrated().await;
    // Waves of one job killed mid-way and its bystanders, in the same batch. (Several kills
    // in one batch would each cost the batch a delivery: the deployed trigger hands the
    // function one message at a time.)
    let (waves, bystanders) = if full() { (3, 4) } else { (1, 1) };
    let timings = Timings::new(4, 3, 2 * (1 + bystanders) as u64);
    let mut stack = Stack::new(&db.url, timings).await;
    let mut customers = Vec::new();
    let mut victims = Vec::new();
    for wave in 0..waves {
        let mut jobs = Vec::new();
        for n in 0..=bystanders {
            // The victim is larger, so the kill lands while it is being cut out.
            let png = if n == 0 { photo_png(1600, 1200, wave) } else { photo_png(160, 120, n) };
            let customer = stack.customer(&png).await;
            jobs.push(customer.job);
            customers.push(customer);
        }
        victims.push(jobs[0]);
        let mut chaos = KillMidJob { db: stack.db().await, victims: vec![jobs[0]], killed: HashMap::new() };
        stack.run_until_final(&jobs, Duration::from_secs(120), &mut chaos).await;
        assert_eq!(chaos.killed.len(), 1, "wave {wave}: the victim was killed mid-job: {:?}", chaos.killed);
    }

    let db_client = stack.db().await;
    for (n, customer) in customers.iter().enumerate() {
        let job = stack.poll(customer, customer.job).await;
        assert_eq!(job["status"], "done", "job {n}: {job}");
        let attempts: i32 =
            db_client.query_one("SELECT attempts FROM jobs WHERE id = $1", &[&customer.job]).await.unwrap().get(0);
        let expected = if victims.contains(&customer.job) { 2 } else { 1 };
        assert_eq!(attempts, expected, "job {n}: a victim's second attempt, after the kill, finished it");
        // The storefront downloads the cut-out.
        let url = job["result"]["transparent"]["url"].as_str().expect("a result URL");
        let png = stack.http.get(url).send().await.unwrap().bytes().await.unwrap();
        assert!(image::load_from_memory(&png).unwrap().color().has_alpha());
    }
    assert_no_duplicate_results(&db_client).await;
    assert!(stack.poller.dead_letters().await.is_empty(), "nothing was dead-lettered");
    assert!(stack.lambda.starts >= 2, "a new instance took over after the kill");
    drop(stack);
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_longer_than_every_delivery_ends_the_jobs_and_their_uploads_can_be_cut_out_again() {
    let _serial = SERIAL.lock().await;
    let cluster = ScratchCluster::start();
    {
        let (mut client, connection) = tokio_postgres::connect(&cluster.url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        db::migrate::migrate(&mut client).await.expect("migrating the scratch cluster");
    }
    let count = if full() { 6 } else { 2 };
    let timings = Timings::new(2, 1, count as u64);
    let mut stack = Stack::new(&cluster.url(), timings).await;
    let mut customers = Vec::new();
    for n in 0..count {
        customers.push(stack.customer(&photo_png(160, 120, n as u8)).await);
    }
    let first_jobs: Vec<Uuid> = customers.iter().map(|c| c.job).collect();

    // Down for longer than every delivery the messages get (attempts × visibility): each
    // claim fails, and SQS moves the messages to the dead-letter queue.
    let at_least = Duration::from_secs(if full() { 30 } else { Timings::ATTEMPTS * timings.visibility });
    cluster.stop();
    let down = Instant::now();
    while down.elapsed() < at_least || !stack.poller.all_received(Timings::ATTEMPTS as u32) {
        assert!(
            down.elapsed() < Duration::from_secs(180),
            "the messages were not delivered {} times",
            Timings::ATTEMPTS
        );
        stack.poller.poll(&mut stack.lambda, &mut NoChaos).await;
    }
    // The next receive, once their last delivery's visibility ends, moves them.
    stack.run_for(Duration::from_secs(timings.visibility + 2)).await;
    cluster.resume();
    let dead = stack.poller.dead_letters().await;
    assert_eq!(dead.len(), count, "every message was dead-lettered: {dead:?}");

    // Their jobs could not be failed while the database was down; past their deadline the
    // storefront's next poll finds them failed — not queued forever.
    let db = stack.db().await;
    let created_at: Vec<std::time::SystemTime> = db
        .query("SELECT created_at FROM jobs WHERE id = ANY($1)", &[&first_jobs])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let deadline = created_at.iter().max().unwrap().checked_add(Duration::from_secs(timings.deadline())).unwrap();
    if let Ok(wait) = deadline.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(500)).await;
    }
    for customer in &customers {
        let job = stack.poll(customer, customer.job).await;
        assert_eq!(job["status"], "error", "{job}");
        assert_eq!(job["error"], "the cut-out did not finish in time; please try again");
    }

    // Asking again works: a new job, which runs now that the database is back.
    let mut again = Vec::new();
    for customer in &mut customers {
        customer.job = stack.request_job(customer).await;
        again.push(customer.job);
    }
    stack.run_until_final(&again, Duration::from_secs(120), &mut NoChaos).await;
    for customer in &customers {
        assert_eq!(stack.poll(customer, customer.job).await["status"], "done");
    }
    let statuses: Vec<String> = db
        .query("SELECT status FROM jobs WHERE id = ANY($1)", &[&first_jobs])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(statuses.iter().all(|s| s == "error"), "{statuses:?}");
    assert_no_duplicate_results(&db).await;
    drop(stack);
}

// ---- a poison message in a batch of ten (in-process) ------------------------------------------

/// The local store, except that reading a poison original "kills the process": it says so,
/// then never returns (the harness drops the batch, as a dead Lambda answers nothing).
struct DeadlyStore {
    inner: Arc<LocalStore>,
    poison: Vec<String>,
    died: Arc<Notify>,
}

#[async_trait]
impl ObjectStore for DeadlyStore {
    async fn put(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<(), ObjectError> {
        self.inner.put(key, bytes, content_type).await
    }
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Bytes, ObjectError> {
        if self.poison.iter().any(|p| p == key.as_str()) {
            self.died.notify_one();
            std::future::pending::<()>().await;
        }
        self.inner.get(key, max_bytes).await
    }
    async fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, ObjectError> {
        self.inner.head(key).await
    }
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, ObjectError> {
        self.inner.presign_put(key, content_type, content_length, expires_in).await
    }
    async fn presign_get(&self, key: &ObjectKey, expires_in: Duration) -> Result<PresignedRequest, ObjectError> {
        self.inner.presign_get(key, expires_in).await
    }
    async fn copy(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), ObjectError> {
        self.inner.copy(from, to).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        self.inner.delete(key).await
    }
}

fn engine() -> Arc<cutout::Engine> {
    static ENGINE: OnceLock<Arc<cutout::Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let settings = cutout::EngineSettings { models_dir: Some(models_dir().into()), ..Default::default() };
            Arc::new(cutout::Engine::from_settings(&settings).expect("the u2netp model: run `make model`"))
        })
        .clone()
}

/// Ten messages, the first of which kills the worker whenever its job is cut out; Lambda's
/// handling of a dead invocation around it. Returns (the good jobs, the poison job, the
/// message ids dead-lettered, the poison's message id).
async fn poison_in_a_batch_of_ten(db: &TestDb, local: &Arc<LocalStore>) -> (Vec<Uuid>, Uuid, Vec<String>, String) {
    let client = db.client().await;
    let mut jobs = Vec::new();
    let mut poison_key = String::new();
    for n in 0..10u8 {
        let key = format!("uploads/{}.png", Uuid::new_v4().simple());
        local.put(&ObjectKey::parse(&key).unwrap(), Bytes::from(photo_png(96, 64, n)), "image/png").await.unwrap();
        let asset: Uuid = client
            .query_one(
                "INSERT INTO assets (object_key, kind, content_type, byte_size) VALUES ($1, 'upload', 'image/png', 1) \
                 RETURNING id",
                &[&key],
            )
            .await
            .unwrap()
            .get(0);
        let job: Uuid = client
            .query_one("INSERT INTO jobs (upload_asset_id, logs) VALUES ($1, 'queued') RETURNING id", &[&asset])
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            poison_key = key;
        }
        jobs.push((job, asset));
    }
    let died = Arc::new(Notify::new());
    let stale_after = Duration::from_secs(1);
    let worker = Arc::new(Worker {
        media: Media::new(db::Database::new(&db::DbConfig::for_url(&db.url).unwrap()).unwrap()),
        objects: Arc::new(DeadlyStore { inner: local.clone(), poison: vec![poison_key], died: died.clone() }),
        engine: engine(),
        max_attempts: 3,
        stale_after,
        metrics: Metrics::off(),
    });
    let (queue, receiver) = MemoryQueue::with_max_receive_count(3);
    let mut poison_message = String::new();
    for (n, (job, asset)) in jobs.iter().enumerate() {
        let id = queue.send_raw(json!({"job_id": job, "asset_id": asset}).to_string());
        if n == 0 {
            poison_message = id;
        }
    }

    for _round in 0..8 {
        let deliveries = receiver.receive(10, Duration::from_millis(200)).await;
        if deliveries.is_empty() {
            break;
        }
        let records: Vec<Value> = deliveries
            .iter()
            .map(|d| {
                json!({"messageId": d.message_id, "body": d.body, "eventSource": "aws:sqs",
                       "attributes": {"ApproximateReceiveCount": d.receive_count.to_string()}})
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
        let batch = {
            let worker = worker.clone();
            tokio::spawn(async move { worker.handle_batch(event).await })
        };
        let death = died.notified();
        tokio::pin!(batch);
        tokio::select! {
            answered = &mut batch => {
                let response = answered.expect("the batch handler");
                for failure in response.batch_item_failures {
                    let delivery = deliveries.iter().find(|d| d.message_id == failure.item_identifier).unwrap();
                    receiver.redeliver(delivery.clone());
                }
            }
            () = death => {
                // The process is gone: no answer, nothing acknowledged; every message of the
                // batch comes back, and the dead worker's job goes stale.
                batch.abort();
                for delivery in &deliveries {
                    receiver.redeliver(delivery.clone());
                }
                tokio::time::sleep(stale_after + Duration::from_millis(300)).await;
            }
        }
    }
    let dead = receiver.dead_letters().into_iter().map(|d| d.message_id).collect();
    let good = jobs[1..].iter().map(|(job, _)| *job).collect();
    (good, jobs[0].0, dead, poison_message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_kills_the_worker_costs_none_of_the_nine_others_in_its_batch() {
    let _serial = SERIAL.lock().await;
    let db = TestDb::migrated().await;
    let root = std::env::temp_dir().join(unique("drill-poison"));
    let local = Arc::new(
        LocalStore::open(&LocalStoreConfig {
            root,
            public_base_url: "http://127.0.0.1:9".into(),
            secret: Some(vec![7; 32]),
        })
        .unwrap(),
    );
    let client = db.client().await;
    for _ in 0..if full() { 3 } else { 1 } {
        let (good, poison, dead, poison_message) = poison_in_a_batch_of_ten(&db, &local).await;
        let statuses: Vec<(String, i32)> = client
            .query("SELECT status, attempts FROM jobs WHERE id = ANY($1)", &[&good])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(statuses, vec![("done".to_owned(), 1); 9], "the nine others were each cut out once");
        let row = client.query_one("SELECT status, error_message FROM jobs WHERE id = $1", &[&poison]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), "error", "the poison's job ended");
        assert!(row.get::<_, Option<String>>(1).is_some());
        assert_eq!(dead, [poison_message], "only the poison went to the dead-letter queue");
    }
    assert_no_duplicate_results(&client).await;
    db.drop_db().await;
}
