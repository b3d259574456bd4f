//! The remove-bg handler against real Postgres, a real (local) object store and the real
//! model, driven with SQS event JSON as Lambda delivers it. Needs TEST_DATABASE_URL and the
//! model (`make test` provides both; `make model` fetches the model).

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use db::jobs::Media;
use db::testing::TestDb;
use objects::{LocalStore, LocalStoreConfig, ObjectError, ObjectKey, ObjectMeta, ObjectStore, PresignedRequest};
use remove_bg::Worker;
use runtime::metrics::{ManualClock, MemorySink, Service};
use runtime::{Metrics, MetricsConfig};
use uuid::Uuid;

fn engine() -> Arc<cutout::Engine> {
    static ENGINE: OnceLock<Arc<cutout::Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let settings = cutout::EngineSettings {
                models_dir: std::env::var_os("MODELS_DIR").map(Into::into),
                ..Default::default()
            };
            Arc::new(
                cutout::Engine::from_settings(&settings)
                    .expect("the u2netp model: run `make model` (or make test, which fetches it)"),
            )
        })
        .clone()
}

/// A photo-like test image: a warm disc on a cool gradient.
fn photo_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        let (dx, dy) = (x as i32 - 48, y as i32 - 32);
        if dx * dx + dy * dy < 20 * 20 { image::Rgb([220, 120, 40]) } else { image::Rgb([40, (y * 3) as u8, 200]) }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Fault injection around the real local store: keys listed fail as a flaky network would,
/// or panic, to prove that one bad message cannot take its batch down.
struct FaultyStore {
    inner: Arc<LocalStore>,
    unavailable: HashSet<String>,
    panics: HashSet<String>,
    /// Every key read, in order: the order the worker took its messages in.
    reads: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<(), ObjectError> {
        self.inner.put(key, bytes, content_type).await
    }
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Bytes, ObjectError> {
        self.reads.lock().unwrap().push(key.as_str().to_owned());
        if self.unavailable.contains(key.as_str()) {
            return Err(ObjectError::Unavailable { doing: "reading", reason: "injected network fault".into() });
        }
        if self.panics.contains(key.as_str()) {
            panic!("injected panic");
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

struct Fixture {
    db: TestDb,
    local: Arc<LocalStore>,
    unavailable: HashSet<String>,
    panics: HashSet<String>,
    reads: Arc<Mutex<Vec<String>>>,
}

impl Fixture {
    async fn new() -> Self {
        let root = std::env::temp_dir().join(format!("remove-bg-test-{}", Uuid::new_v4().simple()));
        let local = LocalStore::open(&LocalStoreConfig {
            root,
            public_base_url: "http://127.0.0.1:9".into(),
            secret: Some(vec![7; 32]),
        })
        .unwrap();
        Self {
            db: TestDb::migrated().await,
            local: Arc::new(local),
            unavailable: HashSet::new(),
            panics: HashSet::new(),
            reads: Arc::default(),
        }
    }

    fn worker(&self, max_attempts: i32) -> Arc<Worker> {
        self.worker_with_metrics(max_attempts, Metrics::off())
    }

    fn worker_with_metrics(&self, max_attempts: i32, metrics: Metrics) -> Arc<Worker> {
        let config = db::DbConfig::for_url(&self.db.url).unwrap();
        Arc::new(Worker {
            media: Media::new(db::Database::new(&config).unwrap()),
            objects: Arc::new(FaultyStore {
                inner: self.local.clone(),
                unavailable: self.unavailable.clone(),
                panics: self.panics.clone(),
                reads: self.reads.clone(),
            }),
            engine: engine(),
            max_attempts,
            stale_after: Duration::from_secs(900),
            metrics,
        })
    }

    /// An uploaded original (stored unless `bytes` is None) and a queued job for it.
    async fn queued_job(&self, bytes: Option<&[u8]>) -> (Uuid, Uuid, String) {
        let key = format!("uploads/{}/original.png", Uuid::new_v4().simple());
        if let Some(bytes) = bytes {
            self.local.put(&ObjectKey::parse(&key).unwrap(), Bytes::copy_from_slice(bytes), "image/png").await.unwrap();
        }
        let client = self.db.client().await;
        let asset: Uuid = client
            .query_one(
                "INSERT INTO assets (object_key, kind, content_type, byte_size) VALUES ($1, 'upload', 'image/png', 1) RETURNING id",
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
        (job, asset, key)
    }

    async fn job(&self, id: Uuid) -> (String, i32, Option<String>, Option<serde_json::Value>, Option<String>) {
        let row = self
            .db
            .client()
            .await
            .query_one("SELECT status, attempts, error_message, result, logs FROM jobs WHERE id = $1", &[&id])
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
    }
}

/// An SQS event as Lambda delivers it (shape of AWS's documented example).
fn sqs_event(messages: &[(&str, String, u32)]) -> SqsEvent {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|(id, body, receive_count)| {
            serde_json::json!({
                "messageId": id,
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": receive_count.to_string(),
                    "SentTimestamp": "1545082649183",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1545082649185"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stolentee-cutouts",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("a valid SQS event")
}

fn body(job: Uuid, asset: Uuid) -> String {
    serde_json::json!({"job_id": job, "asset_id": asset}).to_string()
}

fn failed_ids(response: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
}

#[tokio::test]
async fn a_queued_job_is_cut_out_stored_and_marked_done() {
    let fx = Fixture::new().await;
    let (job, asset, _) = fx.queued_job(Some(&photo_png())).await;
    let response = fx.worker(3).handle_batch(sqs_event(&[("m-1", body(job, asset), 1)])).await;
    assert!(failed_ids(&response).is_empty());

    let (status, attempts, error, result, logs) = fx.job(job).await;
    assert_eq!((status.as_str(), attempts, error, logs.as_deref()), ("done", 1, None, Some("done")));
    let result = result.unwrap();
    assert_eq!(
        (result["width"].as_i64(), result["height"].as_i64(), result["dpi"].as_i64()),
        (Some(96), Some(64), Some(300))
    );
    assert_eq!(result["original"], asset.to_string());

    for (role, kind) in [("transparent", "transparent"), ("mask", "mask")] {
        let id: Uuid = result[role].as_str().unwrap().parse().unwrap();
        let row = fx
            .db
            .client()
            .await
            .query_one("SELECT object_key, kind, dpi, job_id, content_hash FROM assets WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(1), kind);
        assert_eq!(row.get::<_, Option<i32>>(2), Some(300));
        assert_eq!(row.get::<_, Option<Uuid>>(3), Some(job));
        let key = ObjectKey::parse(&row.get::<_, String>(0)).unwrap();
        let stored = fx.local.get(&key, 10 << 20).await.unwrap();
        let decoded = image::load_from_memory(&stored).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (96, 64));
        if kind == "transparent" {
            assert!(decoded.color().has_alpha(), "the cut-out keeps an alpha channel");
        }
    }
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_redelivered_message_for_a_finished_job_is_acknowledged_without_work() {
    let fx = Fixture::new().await;
    let (job, asset, _) = fx.queued_job(Some(&photo_png())).await;
    let worker = fx.worker(3);
    worker.handle_batch(sqs_event(&[("m-1", body(job, asset), 1)])).await;
    let again = worker.handle_batch(sqs_event(&[("m-1", body(job, asset), 2)])).await;
    assert!(failed_ids(&again).is_empty());
    let (status, attempts, ..) = fx.job(job).await;
    assert_eq!((status.as_str(), attempts), ("done", 1), "no second attempt was made");
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_bad_image_fails_the_job_with_a_reason_and_is_not_retried() {
    let fx = Fixture::new().await;
    let (not_image, asset_a, _) = fx.queued_job(Some(b"this is not an image at all")).await;
    let (missing, asset_b, _) = fx.queued_job(None).await;
    let response = fx
        .worker(3)
        .handle_batch(sqs_event(&[("m-1", body(not_image, asset_a), 1), ("m-2", body(missing, asset_b), 1)]))
        .await;
    assert!(failed_ids(&response).is_empty(), "bad input is acknowledged: retrying cannot help");
    for job in [not_image, missing] {
        let (status, _, error, result, _) = fx.job(job).await;
        assert_eq!(status, "error");
        assert!(error.is_some_and(|e| !e.is_empty()));
        assert_eq!(result, None, "never the original passed off as a cut-out");
    }
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_transient_fault_retries_that_message_alone_then_gives_up_to_the_dlq() {
    let mut fx = Fixture::new().await;
    let (good, good_asset, _) = fx.queued_job(Some(&photo_png())).await;
    let (flaky, flaky_asset, flaky_key) = fx.queued_job(Some(&photo_png())).await;
    fx.unavailable.insert(flaky_key);
    let worker = fx.worker(2);

    let first = worker
        .handle_batch(sqs_event(&[("good", body(good, good_asset), 1), ("flaky", body(flaky, flaky_asset), 1)]))
        .await;
    assert_eq!(failed_ids(&first), ["flaky"]);
    assert_eq!(fx.job(good).await.0, "done");
    let (status, attempts, _, _, logs) = fx.job(flaky).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    assert!(logs.unwrap().starts_with("retrying"));

    // Second and last attempt: the job is given up, and the message fails once more so SQS
    // moves it to the dead-letter queue.
    let second = worker.handle_batch(sqs_event(&[("flaky", body(flaky, flaky_asset), 2)])).await;
    assert_eq!(failed_ids(&second), ["flaky"]);
    let (status, attempts, error, ..) = fx.job(flaky).await;
    assert_eq!((status.as_str(), attempts), ("error", 2));
    assert!(error.is_some());
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_panic_or_a_malformed_message_affects_only_its_own_message() {
    let mut fx = Fixture::new().await;
    let (good, good_asset, _) = fx.queued_job(Some(&photo_png())).await;
    let (boom, boom_asset, boom_key) = fx.queued_job(Some(&photo_png())).await;
    fx.panics.insert(boom_key);
    let response = fx
        .worker(3)
        .handle_batch(sqs_event(&[
            ("boom", body(boom, boom_asset), 1),
            ("garbage", "{not json".into(), 1),
            ("unknown", body(Uuid::new_v4(), Uuid::new_v4()), 1),
            ("good", body(good, good_asset), 1),
        ]))
        .await;
    assert_eq!(failed_ids(&response), ["boom"], "malformed and unknown messages are acknowledged");
    assert_eq!(fx.job(good).await.0, "done");
    let (status, attempts, ..) = fx.job(boom).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1), "a panicked job is handed back for the retry");
    fx.db.drop_db().await;
}

fn parsed(sink: &MemorySink) -> Vec<serde_json::Value> {
    sink.lines().iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

#[tokio::test]
async fn with_metrics_on_each_finished_job_writes_its_timings_and_the_pool_is_reported_once_a_minute() {
    let fx = Fixture::new().await;
    let (good, good_asset, _) = fx.queued_job(Some(&photo_png())).await;
    let (bad, bad_asset, _) = fx.queued_job(Some(b"not an image")).await;
    let (later, later_asset, _) = fx.queued_job(Some(&photo_png())).await;
    // The customer started waiting 90 s ago: the latency counts from then, not from the claim.
    fx.db.client().await.batch_execute("UPDATE jobs SET created_at = now() - interval '90 seconds'").await.unwrap();
    let sink = Arc::new(MemorySink::default());
    let clock = Arc::new(ManualClock::at(std::time::SystemTime::now()));
    let config = MetricsConfig::emf("test").unwrap();
    let worker =
        fx.worker_with_metrics(3, Metrics::with_output(&config, Service::RemoveBg, sink.clone(), clock.clone()));

    let response = worker
        .handle_batch(sqs_event(&[("m-good", body(good, good_asset), 1), ("m-bad", body(bad, bad_asset), 1)]))
        .await;
    assert!(failed_ids(&response).is_empty());
    // Redelivered: no work, so no job line (and the same minute: no pool line).
    worker.handle_batch(sqs_event(&[("m-good", body(good, good_asset), 2)])).await;

    let lines = parsed(&sink);
    let jobs: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("CutoutJobLatency").is_some()).collect();
    let pools: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("DbConnectionsOpen").is_some()).collect();
    assert_eq!((jobs.len(), pools.len(), lines.len()), (2, 1, 3), "{lines:?}");

    let outcomes: Vec<(&str, &str)> =
        jobs.iter().map(|l| (l["JobId"].as_str().unwrap(), l["Outcome"].as_str().unwrap())).collect();
    assert_eq!(outcomes, [(good.to_string().as_str(), "done"), (bad.to_string().as_str(), "failed")]);
    for line in &jobs {
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "StolenTee");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Service", "Stage"]]));
        assert_eq!((line["Service"].as_str(), line["Stage"].as_str()), (Some("remove-bg"), Some("test")));
        let latency = line["CutoutJobLatency"].as_u64().unwrap();
        let processing = line["CutoutProcessingTime"].as_u64().unwrap();
        assert!((90_000..150_000).contains(&latency), "latency {latency} ms counts from the job's creation");
        assert!(processing < 60_000 && processing < latency, "processing {processing} ms is this attempt's work");
    }
    assert_eq!((pools[0]["Service"].as_str(), pools[0]["Pool"].as_str()), (Some("remove-bg"), Some("primary")));
    assert!(pools[0]["DbConnectionsOpen"].as_u64().unwrap() >= 1, "the jobs used a pooled connection");

    clock.advance(Duration::from_secs(60));
    worker.handle_batch(sqs_event(&[("m-later", body(later, later_asset), 1)])).await;
    let lines = parsed(&sink);
    assert_eq!(lines.len(), 5, "the next minute's first job reports the pool again: {lines:?}");
    assert_eq!(lines[3]["JobId"], later.to_string());
    assert_eq!(lines[4]["Pool"], "primary");
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_job_given_up_after_its_attempts_is_reported_failed_once() {
    let mut fx = Fixture::new().await;
    let (flaky, flaky_asset, flaky_key) = fx.queued_job(Some(&photo_png())).await;
    fx.unavailable.insert(flaky_key);
    let sink = Arc::new(MemorySink::default());
    let config = MetricsConfig::emf("test").unwrap();
    let clock = Arc::new(ManualClock::at(std::time::SystemTime::now()));
    let worker = fx.worker_with_metrics(2, Metrics::with_output(&config, Service::RemoveBg, sink.clone(), clock));
    worker.handle_batch(sqs_event(&[("flaky", body(flaky, flaky_asset), 1)])).await;
    assert!(parsed(&sink).iter().all(|l| l.get("CutoutJobLatency").is_none()), "a retry is not a final status");
    worker.handle_batch(sqs_event(&[("flaky", body(flaky, flaky_asset), 2)])).await;
    let jobs: Vec<serde_json::Value> =
        parsed(&sink).into_iter().filter(|l| l.get("CutoutJobLatency").is_some()).collect();
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0]["JobId"].as_str(), jobs[0]["Outcome"].as_str()),
        (Some(flaky.to_string().as_str()), Some("failed"))
    );
    fx.db.drop_db().await;
}

impl Fixture {
    async fn sql(&self, statement: &str) {
        self.db.client().await.batch_execute(statement).await.unwrap();
    }

    /// Runs `statement` with triggers off, so it can set `updated_at` (the trigger would
    /// overwrite it with now()): how a job a worker stopped touching long ago looks.
    async fn sql_as_of_old(&self, statement: &str) {
        self.sql(&format!("SET session_replication_role = replica; {statement}")).await;
    }

    fn reads(&self) -> Vec<String> {
        self.reads.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn a_job_left_running_by_a_dead_worker_goes_after_the_fresh_ones_in_its_batch() {
    let fx = Fixture::new().await;
    let (suspect, suspect_asset, suspect_key) = fx.queued_job(Some(&photo_png())).await;
    // Its last worker died holding it (out of memory, a crash in native code): it may kill
    // this one too, so everything else in the batch goes first.
    fx.sql_as_of_old(&format!(
        "UPDATE jobs SET status = 'running', attempts = 1, updated_at = now() - interval '1 hour' WHERE id = '{suspect}'"
    ))
    .await;
    let mut batch = vec![("suspect".to_owned(), body(suspect, suspect_asset), 2)];
    let mut fresh_keys = Vec::new();
    for n in 0..3 {
        let (job, asset, key) = fx.queued_job(Some(&photo_png())).await;
        batch.push((format!("fresh-{n}"), body(job, asset), 1));
        fresh_keys.push(key);
    }
    let messages: Vec<(&str, String, u32)> = batch.iter().map(|(id, b, n)| (id.as_str(), b.clone(), *n)).collect();
    let response = fx.worker(3).handle_batch(sqs_event(&messages)).await;
    assert!(failed_ids(&response).is_empty());
    let mut expected = fresh_keys;
    expected.push(suspect_key);
    assert_eq!(fx.reads(), expected, "fresh jobs first, the suspect last");
    assert_eq!(fx.job(suspect).await.0, "done", "and the suspect still gets its attempt");
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_failed_job_stays_failed_when_its_message_comes_again() {
    let fx = Fixture::new().await;
    let (job, asset, _) = fx.queued_job(Some(&photo_png())).await;
    fx.sql(&format!("UPDATE jobs SET status = 'error', error_message = 'superseded', attempts = 1 WHERE id = '{job}'"))
        .await;
    let response = fx.worker(3).handle_batch(sqs_event(&[("late", body(job, asset), 1)])).await;
    assert!(failed_ids(&response).is_empty(), "acknowledged");
    let (status, attempts, error, ..) = fx.job(job).await;
    assert_eq!((status.as_str(), attempts, error.as_deref()), ("error", 1, Some("superseded")));
    assert!(fx.reads().is_empty(), "no work was done");
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_job_too_close_to_its_deadline_or_with_its_attempts_spent_is_failed_not_started() {
    let fx = Fixture::new().await;
    // The fixture's worker may hold a job 900 s before it counts as abandoned: a claim now
    // could outlive a deadline 60 s away.
    let (late, late_asset, _) = fx.queued_job(Some(&photo_png())).await;
    fx.sql(&format!("UPDATE jobs SET deadline_at = now() + interval '60 seconds' WHERE id = '{late}'")).await;
    // A duplicate message for a job that has had all its attempts.
    let (spent, spent_asset, _) = fx.queued_job(Some(&photo_png())).await;
    fx.sql(&format!("UPDATE jobs SET attempts = 3 WHERE id = '{spent}'")).await;
    let response = fx
        .worker(3)
        .handle_batch(sqs_event(&[("late", body(late, late_asset), 1), ("spent", body(spent, spent_asset), 1)]))
        .await;
    assert!(failed_ids(&response).is_empty(), "nothing to retry");
    let (status, attempts, error, ..) = fx.job(late).await;
    assert_eq!((status.as_str(), attempts), ("error", 0));
    assert_eq!(error.as_deref(), Some("the cut-out did not finish in time; please try again"));
    let (status, attempts, error, ..) = fx.job(spent).await;
    assert_eq!((status.as_str(), attempts), ("error", 3));
    assert!(error.is_some());
    assert!(fx.reads().is_empty(), "neither was started");
    fx.db.drop_db().await;
}

#[tokio::test]
async fn a_busy_job_is_retried_but_on_the_last_delivery_left_to_its_holder() {
    let fx = Fixture::new().await;
    let (job, asset, _) = fx.queued_job(Some(&photo_png())).await;
    fx.sql(&format!("UPDATE jobs SET status = 'running', attempts = 1 WHERE id = '{job}'")).await;
    let worker = fx.worker(3);
    let early = worker.handle_batch(sqs_event(&[("dup", body(job, asset), 1)])).await;
    assert_eq!(failed_ids(&early), ["dup"], "held by a live worker: try again later");
    // The last delivery of a duplicate must not fail a job another worker is running: it is
    // acknowledged, and the holder's own message (or the deadline) ends the job.
    let last = worker.handle_batch(sqs_event(&[("dup", body(job, asset), 3)])).await;
    assert!(failed_ids(&last).is_empty());
    assert_eq!(fx.job(job).await.0, "running");
    fx.db.drop_db().await;
}

#[tokio::test]
async fn on_its_last_delivery_a_job_is_failed_before_its_message_is_dead_lettered() {
    let mut fx = Fixture::new().await;
    let (boom, boom_asset, boom_key) = fx.queued_job(Some(&photo_png())).await;
    fx.panics.insert(boom_key);
    // Earlier attempts were spent elsewhere (the receive count says this is the last).
    let response = fx.worker(3).handle_batch(sqs_event(&[("boom", body(boom, boom_asset), 3)])).await;
    assert_eq!(failed_ids(&response), ["boom"], "the message goes on to the dead-letter queue");
    let (status, _, error, ..) = fx.job(boom).await;
    assert_eq!(status, "error", "but its job does not stay queued behind it");
    assert_eq!(error.as_deref(), Some("the cut-out could not be completed; please try again"));
    fx.db.drop_db().await;
}

#[tokio::test]
async fn every_batch_reaps_jobs_past_their_deadline() {
    let fx = Fixture::new().await;
    let (lost, _, _) = fx.queued_job(Some(&photo_png())).await;
    fx.sql(&format!(
        "UPDATE jobs SET status = 'running', attempts = 3, deadline_at = now() - interval '1 second' WHERE id = '{lost}'"
    ))
    .await;
    // Any batch will do, even one with nothing but a malformed message.
    fx.worker(3).handle_batch(sqs_event(&[("junk", "{".into(), 1)])).await;
    let (status, attempts, error, ..) = fx.job(lost).await;
    assert_eq!((status.as_str(), attempts), ("error", 3));
    assert_eq!(error.as_deref(), Some("the cut-out did not finish in time; please try again"));
    fx.db.drop_db().await;
}

#[tokio::test]
async fn results_go_under_the_jobs_random_prefix_and_a_repeated_attempt_overwrites_them() {
    let fx = Fixture::new().await;
    let (job, asset, _) = fx.queued_job(Some(&photo_png())).await;
    let worker = fx.worker(3);
    worker.handle_batch(sqs_event(&[("m-1", body(job, asset), 1)])).await;
    let keys = || async {
        let rows = fx
            .db
            .client()
            .await
            .query("SELECT object_key FROM assets WHERE job_id = $1 ORDER BY object_key", &[&job])
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
    };
    let prefix: String =
        fx.db.client().await.query_one("SELECT object_prefix FROM jobs WHERE id = $1", &[&job]).await.unwrap().get(0);
    let first = keys().await;
    assert_eq!(first, [format!("cutouts/{prefix}/mask.png"), format!("cutouts/{prefix}/transparent.png")]);
    assert!(!prefix.contains(&job.simple().to_string()), "the key says nothing about the job id");

    // A worker that stored the results and died before finishing: the next attempt stores the
    // same keys again and records no second set.
    fx.sql_as_of_old(&format!(
        "UPDATE jobs SET status = 'running', result = NULL, completed_at = NULL, \
                updated_at = now() - interval '1 hour' WHERE id = '{job}'"
    ))
    .await;
    worker.handle_batch(sqs_event(&[("m-1", body(job, asset), 2)])).await;
    let (status, attempts, ..) = fx.job(job).await;
    assert_eq!((status.as_str(), attempts), ("done", 2));
    assert_eq!(keys().await, first, "no duplicate results");
    fx.db.drop_db().await;
}
