//! How cut-out jobs and uploads end, whatever happens to the queue and the client: a job
//! ends by its deadline and can be superseded; its message is sent after the job is
//! committed, with no row lock held across the queue call, and sent again if it never left;
//! abandoned uploads are swept with their objects; and the bytes `complete` checked are the
//! bytes kept, even when the file is swapped during the check.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use objects::{ObjectError, ObjectKey, ObjectMeta, ObjectStore, PresignedRequest};
use queue::{CutoutMessage, JobQueue, QueueError};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::helpers::{TestApp, error_parts};
use crate::uploads::{guest_token, post_as_guest, tiny_png, upload};

/// The same app (state, database, object store) served with some of its parts replaced, on
/// another port. Presigned URLs still point at `app`, which serves the same local store.
async fn serve_with(app: &TestApp, change: impl FnOnce(&mut api::AppState)) -> String {
    let mut state = app.app_state.clone();
    change(&mut state);
    let config = crate::helpers::config(&app.db.url, &[]);
    let router = api::router(state, &config, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    base
}

async fn start_job(app: &TestApp, base: &str, asset: &str, token: &str) -> reqwest::Response {
    app.http
        .post(format!("{base}/api/jobs"))
        .header("x-guest-token", token)
        .json(&json!({"asset_id": asset}))
        .send()
        .await
        .unwrap()
}

async fn poll(app: &TestApp, job: &str, token: &str) -> Value {
    let response =
        app.http.get(app.url(&format!("/api/jobs/{job}"))).header("x-guest-token", token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["job"].clone()
}

async fn job_row(app: &TestApp, job: &str) -> (String, Option<String>, bool) {
    let row = app
        .db
        .client()
        .await
        .query_one(&format!("SELECT status, error_message, enqueued_at IS NOT NULL FROM jobs WHERE id = '{job}'"), &[])
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// The job ids of the messages waiting in the in-process queue.
async fn queued_messages(app: &TestApp) -> Vec<String> {
    let queue = app.queue.as_ref().expect("the in-process queue");
    let batch = queue.receive(100, Duration::from_millis(200)).await;
    batch
        .iter()
        .map(|d| serde_json::from_str::<Value>(&d.body).unwrap()["job_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_job_past_its_deadline_reads_as_failed_and_asking_again_supersedes_it() {
    let app = TestApp::spawn().await;
    let (asset, token) = upload(&app, &tiny_png()).await;
    let asset = asset["id"].as_str().unwrap();
    let first = start_job(&app, &app.url(""), asset, &token).await.json::<Value>().await.unwrap()["job"].clone();
    let first = first["id"].as_str().unwrap().to_owned();

    // Its worker died and its messages with it: nothing will ever run it. Past the deadline,
    // the storefront's next poll ends it.
    app.sql(&format!(
        "UPDATE jobs SET status = 'running', deadline_at = now() - interval '1 second' WHERE id = '{first}'"
    ))
    .await;
    let polled = poll(&app, &first, &token).await;
    assert_eq!(polled["status"], "error");
    assert_eq!(polled["error"], "the cut-out did not finish in time; please try again");
    assert!(polled["completed_at"].is_i64());
    assert_eq!(job_row(&app, &first).await.0, "error", "failed in the database, not only in the answer");

    // Asking again makes a new job that can run.
    let again = start_job(&app, &app.url(""), asset, &token).await;
    assert_eq!(again.status(), 202);
    let second = again.json::<Value>().await.unwrap()["job"]["id"].as_str().unwrap().to_owned();
    assert_ne!(second, first);

    // A stale job nobody polled is superseded directly by asking again.
    app.sql(&format!("UPDATE jobs SET deadline_at = now() - interval '1 second' WHERE id = '{second}'")).await;
    let third = start_job(&app, &app.url(""), asset, &token).await;
    assert_eq!(third.status(), 202);
    let third = third.json::<Value>().await.unwrap()["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(job_row(&app, &second).await.0, "error");
    assert_eq!(queued_messages(&app).await, [first, second, third.clone()], "each job got its message");
    assert_eq!(poll(&app, &third, &token).await["status"], "queued");
    app.stop().await;
}

#[tokio::test]
async fn the_reaper_fails_overdue_jobs_that_nobody_polls_when_jobs_are_requested() {
    let app = TestApp::spawn().await;
    let (a, a_token) = upload(&app, &tiny_png()).await;
    let (b, b_token) = upload(&app, &tiny_png()).await;
    let abandoned = start_job(&app, &app.url(""), a["id"].as_str().unwrap(), &a_token).await;
    let abandoned = abandoned.json::<Value>().await.unwrap()["job"]["id"].as_str().unwrap().to_owned();
    app.sql(&format!("UPDATE jobs SET deadline_at = now() - interval '1 second' WHERE id = '{abandoned}'")).await;
    // Someone else's request does the chore.
    assert_eq!(start_job(&app, &app.url(""), b["id"].as_str().unwrap(), &b_token).await.status(), 202);
    let (status, error, _) = job_row(&app, &abandoned).await;
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("error", Some("the cut-out did not finish in time; please try again"))
    );
    app.stop().await;
}

/// A queue whose sends wait until released, and that can refuse them.
#[derive(Default)]
struct HeldQueue {
    hold: AtomicBool,
    refuse: AtomicBool,
    entered: Notify,
    released: Notify,
    sent: Mutex<Vec<CutoutMessage>>,
    attempts: AtomicUsize,
}

#[async_trait]
impl JobQueue for HeldQueue {
    async fn enqueue(&self, message: &CutoutMessage) -> Result<String, QueueError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.hold.load(Ordering::SeqCst) {
            let released = self.released.notified();
            self.entered.notify_one();
            released.await;
        }
        if self.refuse.load(Ordering::SeqCst) {
            return Err(QueueError::Unavailable { doing: "sending a message", reason: "injected outage".into() });
        }
        self.sent.lock().unwrap().push(message.clone());
        Ok(uuid::Uuid::new_v4().to_string())
    }
}

#[tokio::test]
async fn a_job_is_committed_before_its_message_is_sent_and_no_row_lock_is_held_across_the_queue_call() {
    let app = TestApp::spawn().await;
    let (asset, token) = upload(&app, &tiny_png()).await;
    let asset = asset["id"].as_str().unwrap().to_owned();
    let queue = Arc::new(HeldQueue { hold: AtomicBool::new(true), ..Default::default() });
    let held: Arc<dyn JobQueue> = queue.clone();
    let base = serve_with(&app, |s| s.queue = held).await;

    let entered = queue.entered.notified();
    let request = {
        let (http, base, asset, token) = (app.http.clone(), base.clone(), asset.clone(), token.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/api/jobs"))
                .header("x-guest-token", token)
                .json(&json!({"asset_id": asset}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::timeout(Duration::from_secs(10), entered).await.expect("the API reached the queue");

    // While the queue is answering, the job is already committed (unsent) and nothing is
    // locked: another request could lock the asset's and the job's rows at once.
    let client = app.db.client().await;
    let job: uuid::Uuid = client
        .query_one(
            &format!(
                "SELECT id FROM jobs WHERE upload_asset_id = '{asset}' AND status = 'queued' AND enqueued_at IS NULL"
            ),
            &[],
        )
        .await
        .expect("the job is committed before its message is sent")
        .get(0);
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!("SELECT 1 FROM assets WHERE id = '{asset}' FOR UPDATE NOWAIT"))
        .await
        .expect("the asset's row is not locked across the queue call");
    client
        .batch_execute(&format!("SELECT 1 FROM jobs WHERE id = '{job}' FOR UPDATE NOWAIT"))
        .await
        .expect("the job's row is not locked across the queue call");
    client.batch_execute("ROLLBACK").await.unwrap();

    queue.released.notify_one();
    let response = request.await.unwrap();
    assert_eq!(response.status(), 202);
    assert!(job_row(&app, &job.to_string()).await.2, "recorded as sent once the queue took it");
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn when_the_queue_is_down_the_job_waits_unsent_and_asking_again_sends_it() {
    let app = TestApp::spawn().await;
    let (asset, token) = upload(&app, &tiny_png()).await;
    let asset = asset["id"].as_str().unwrap().to_owned();
    let queue = Arc::new(HeldQueue { refuse: AtomicBool::new(true), ..Default::default() });
    let down: Arc<dyn JobQueue> = queue.clone();
    let base = serve_with(&app, |s| s.queue = down).await;

    let refused = start_job(&app, &base, &asset, &token).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "2");
    assert_eq!(error_parts(refused).await.0, "queue_unavailable");
    let job: String = app.scalar(&format!("SELECT id::text FROM jobs WHERE upload_asset_id = '{asset}'")).await;
    assert_eq!(job_row(&app, &job).await, ("queued".into(), None, false), "committed, waiting to be sent");

    // The queue is back: the client's retry finds the same job and sends it.
    queue.refuse.store(false, Ordering::SeqCst);
    let retried = start_job(&app, &base, &asset, &token).await;
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.json::<Value>().await.unwrap()["job"]["id"], job.as_str());
    assert!(job_row(&app, &job).await.2);
    let sent: Vec<String> = queue.sent.lock().unwrap().iter().map(|m| m.job_id.to_string()).collect();
    assert_eq!(sent, std::slice::from_ref(&job));
    // Sent once: later requests do not send it again.
    start_job(&app, &base, &asset, &token).await;
    assert_eq!(queue.sent.lock().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn the_relay_sends_a_job_whose_request_died_before_sending_it() {
    let app = TestApp::spawn().await;
    let (orphan_asset, _) = upload(&app, &tiny_png()).await;
    let (asset, token) = upload(&app, &tiny_png()).await;
    // A job committed by a request that died before sending (the instance was killed).
    let orphan: String = app
        .scalar(&format!(
            "INSERT INTO jobs (upload_asset_id, status, logs, created_at, deadline_at) \
             VALUES ('{}', 'queued', 'queued', now() - interval '1 minute', now() + interval '20 minutes') \
             RETURNING id::text",
            orphan_asset["id"].as_str().unwrap()
        ))
        .await;
    app.sql(&format!("UPDATE jobs SET enqueued_at = NULL WHERE id = '{orphan}'")).await;
    let job = start_job(&app, &app.url(""), asset["id"].as_str().unwrap(), &token).await;
    let job = job.json::<Value>().await.unwrap()["job"]["id"].as_str().unwrap().to_owned();
    let mut sent = queued_messages(&app).await;
    sent.sort();
    let mut expected = vec![job, orphan.clone()];
    expected.sort();
    assert_eq!(sent, expected, "the orphan's message was relayed");
    assert!(job_row(&app, &orphan).await.2);
    app.stop().await;
}

#[tokio::test]
async fn abandoned_uploads_are_swept_with_their_objects() {
    let app = TestApp::spawn().await;
    let png = tiny_png();
    let declare = json!({"content_type": "image/png", "byte_size": png.len()});
    let started: Value = app.post_json("/api/uploads", &declare).await.json().await.unwrap();
    let token = guest_token(&started);
    let abandoned = started["upload"]["id"].as_str().unwrap().to_owned();
    let put = app.http.put(started["upload"]["put"]["url"].as_str().unwrap()).header("content-type", "image/png");
    assert_eq!(put.body(png.clone()).send().await.unwrap().status(), 200);
    let key: String = app.scalar(&format!("SELECT object_key FROM uploads WHERE id = '{abandoned}'")).await;
    let (_, _) = upload(&app, &png).await; // completed: never swept
    let recent: Value = app.post_json("/api/uploads", &declare).await.json().await.unwrap(); // within its grace
    let recent = recent["upload"]["id"].as_str().unwrap().to_owned();

    // An hour and more past its URL's expiry, the next upload start sweeps it.
    app.sql(&format!("UPDATE uploads SET expires_at = now() - interval '61 minutes' WHERE id = '{abandoned}'")).await;
    app.sql(&format!("UPDATE uploads SET expires_at = now() - interval '59 minutes' WHERE id = '{recent}'")).await;
    app.post_json("/api/uploads", &declare).await;
    let left: Vec<String> = app
        .db
        .client()
        .await
        .query("SELECT id::text FROM uploads", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!left.contains(&abandoned), "the abandoned upload's row is gone");
    assert!(left.contains(&recent), "an upload within the grace period stays");
    assert_eq!(left.len(), 3, "the completed one, the recent one and the new one: {left:?}");
    let gone = app.app_state.objects.head(&ObjectKey::parse(&key).unwrap()).await.unwrap();
    assert_eq!(gone, None, "and its object");
    // Completing it now finds nothing.
    assert_eq!(post_as_guest(&app, &format!("/api/uploads/{abandoned}/complete"), &token).await.status(), 404);
    app.stop().await;
}

/// The local store, except that right after the first read of an `incoming/` object (a GET
/// or a COPY from it), that object is replaced: a client re-PUTting other bytes to its
/// still-valid URL in the middle of `complete`.
struct SwappingStore {
    inner: Arc<dyn ObjectStore>,
    evil: Bytes,
    swapped: AtomicBool,
}

impl SwappingStore {
    async fn after_read(&self, key: &ObjectKey) {
        if key.as_str().starts_with("incoming/") && !self.swapped.swap(true, Ordering::SeqCst) {
            self.inner.put(key, self.evil.clone(), "image/png").await.unwrap();
        }
    }
}

#[async_trait]
impl ObjectStore for SwappingStore {
    async fn put(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<(), ObjectError> {
        self.inner.put(key, bytes, content_type).await
    }
    async fn get(&self, key: &ObjectKey, max_bytes: u64) -> Result<Bytes, ObjectError> {
        let read = self.inner.get(key, max_bytes).await;
        self.after_read(key).await;
        read
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
        let copied = self.inner.copy(from, to).await;
        self.after_read(from).await;
        copied
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), ObjectError> {
        self.inner.delete(key).await
    }
}

#[tokio::test]
async fn the_bytes_complete_checked_are_the_bytes_kept_even_if_the_file_is_swapped_meanwhile() {
    let app = TestApp::spawn().await;
    let good = tiny_png();
    // Same length (the URL signs it), other bytes: not even an image.
    let evil = Bytes::from(vec![b'X'; good.len()]);
    let store: Arc<dyn ObjectStore> =
        Arc::new(SwappingStore { inner: app.app_state.objects.clone(), evil, swapped: AtomicBool::new(false) });
    let base = serve_with(&app, |s| s.objects = store.clone()).await;

    let started: Value = app
        .http
        .post(format!("{base}/api/uploads"))
        .json(&json!({"content_type": "image/png", "byte_size": good.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = guest_token(&started);
    let put = app.http.put(started["upload"]["put"]["url"].as_str().unwrap()).header("content-type", "image/png");
    assert_eq!(put.body(good.clone()).send().await.unwrap().status(), 200);
    let complete_url = format!("{base}{}", started["upload"]["complete_url"].as_str().unwrap());
    let done = app.http.post(complete_url).header("x-guest-token", &token).send().await.unwrap();
    assert_eq!(done.status(), 201);
    let asset = done.json::<Value>().await.unwrap()["asset"].clone();

    let id = asset["id"].as_str().unwrap();
    let kept: String = app.scalar(&format!("SELECT object_key FROM assets WHERE id = '{id}'")).await;
    let stored = app.app_state.objects.get(&ObjectKey::parse(&kept).unwrap(), 1 << 20).await.unwrap();
    let hash: String = Sha256::digest(&stored).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(asset["content_hash"], hash.as_str(), "the recorded hash is the kept object's");
    assert_eq!(stored.as_ref(), good.as_slice(), "and the kept object is what was PUT and checked");
    app.stop().await;
}
