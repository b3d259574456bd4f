//! Uploads and jobs through the API, with the local object store playing S3 (signed URLs
//! it verifies) and the in-process queue playing SQS. Who may use which upload, asset and
//! job is specified in `media_access.rs`; how jobs end, in `job_lifecycle.rs`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts};

/// A small, valid PNG (2×1 pixels), made by hand: signature, IHDR, IDAT, IEND.
pub fn tiny_png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &[0, 0, 0, 2, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
    // zlib stored block: one filter byte + 2 RGB pixels.
    let raw = [0u8, 255, 0, 0, 0, 0, 255];
    let mut idat = vec![0x78, 0x01, 0x01, raw.len() as u8, 0, !(raw.len() as u8), 0xFF];
    idat.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    idat.extend_from_slice(&((b << 16) | a).to_be_bytes());
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    png
}

async fn start_upload(app: &TestApp, content_type: &str, size: usize) -> reqwest::Response {
    app.post_json("/api/uploads", &json!({"content_type": content_type, "byte_size": size, "filename": "art.png"}))
        .await
}

/// The guest token an upload start returned.
pub fn guest_token(started: &Value) -> String {
    started["guest_token"]["token"].as_str().expect("a guest's upload start returns a guest token").to_owned()
}

/// POSTs to an API path as the guest with `token` (no body).
pub async fn post_as_guest(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http.post(app.url(path)).header("x-guest-token", token).send().await.unwrap()
}

/// Declares, PUTs and completes an upload as a new guest; returns the completed asset JSON
/// and the guest's token.
pub async fn upload(app: &TestApp, bytes: &[u8]) -> (Value, String) {
    let started: Value = start_upload(app, "image/png", bytes.len()).await.json().await.unwrap();
    let token = guest_token(&started);
    let upload = &started["upload"];
    let put = app
        .http
        .put(upload["put"]["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let done = post_as_guest(app, upload["complete_url"].as_str().unwrap(), &token).await;
    assert_eq!(done.status(), 201);
    (done.json::<Value>().await.unwrap()["asset"].clone(), token)
}

#[tokio::test]
async fn an_upload_goes_straight_to_storage_and_is_checked_on_completion() {
    let app = TestApp::spawn().await;
    let png = tiny_png();
    let response = start_upload(&app, "image/png", png.len()).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let token = guest_token(&body);
    let upload = &body["upload"];
    assert_eq!(upload["put"]["method"], "PUT");
    assert_eq!(upload["put"]["headers"]["content-type"], "image/png");
    assert_eq!(upload["put"]["headers"]["content-length"], png.len().to_string());
    let put_url = upload["put"]["url"].as_str().unwrap();
    assert!(put_url.contains("/incoming/"), "the browser uploads into incoming/, which expires: {put_url}");
    let upload_id = upload["id"].as_str().unwrap();
    assert!(!put_url.contains(upload_id), "the URL does not reveal the upload id: {put_url}");
    assert!(!put_url.contains(&upload_id.replace('-', "")), "nor in another spelling: {put_url}");
    let complete_url = upload["complete_url"].as_str().unwrap();

    // Completing before the bytes arrive is a conflict, not a crash.
    let early = post_as_guest(&app, complete_url, &token).await;
    assert_eq!(early.status(), 409);
    assert_eq!(error_parts(early).await.0, "upload_not_received");

    // The store refuses what was not signed: another type, another length.
    let wrong_type = app.http.put(put_url).header("content-type", "image/jpeg").body(png.clone()).send().await.unwrap();
    assert_eq!(wrong_type.status(), 403);
    let mut longer = png.clone();
    longer.push(0);
    let wrong_length = app.http.put(put_url).header("content-type", "image/png").body(longer).send().await.unwrap();
    assert_eq!(wrong_length.status(), 403);
    let tampered = app
        .http
        .put(put_url.replace("incoming/", "incoming/x"))
        .header("content-type", "image/png")
        .body(png.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 403);

    let put = app.http.put(put_url).header("content-type", "image/png").body(png.clone()).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let complete = post_as_guest(&app, complete_url, &token).await;
    assert_eq!(complete.status(), 201);
    let asset = complete.json::<Value>().await.unwrap()["asset"].clone();
    assert_eq!((asset["width"].as_i64(), asset["height"].as_i64()), (Some(2), Some(1)));
    assert_eq!(asset["kind"], "upload");
    assert_eq!(asset["content_hash"].as_str().map(str::len), Some(64));
    // The completed file is kept out of incoming/ (which the bucket expires) under a new
    // random key, and the worker reads the kept copy.
    let id = asset["id"].as_str().unwrap();
    let kept: String = app.scalar(&format!("SELECT object_key FROM assets WHERE id = '{id}'")).await;
    let name = kept.strip_prefix("uploads/").and_then(|k| k.strip_suffix(".png")).unwrap_or_default();
    assert!(name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()), "{kept}");
    assert!(!put_url.contains(name), "the kept key cannot be learnt from the PUT URL");
    let read = |key: String| {
        let app = &app;
        async move {
            let key = objects::ObjectKey::parse(&key).unwrap();
            let url = app.app_state.objects.presign_get(&key, Duration::from_secs(60)).await.unwrap().url;
            app.http.get(url).send().await.unwrap()
        }
    };
    assert_eq!(read(kept.clone()).await.bytes().await.unwrap().as_ref(), png.as_slice());

    // What was checked is immutable: the incoming object is gone, and bytes PUT to the still
    // valid URL afterwards change nothing the shop uses.
    let incoming: String = app.scalar(&format!("SELECT object_key FROM uploads WHERE id = '{upload_id}'")).await;
    assert_eq!(read(incoming.clone()).await.status(), 404, "the incoming object was deleted on completion");
    let mut swapped = png.clone();
    swapped[20] ^= 0xff;
    let late = app.http.put(put_url).header("content-type", "image/png").body(swapped).send().await.unwrap();
    assert_eq!(late.status(), 200, "the URL is valid until it expires");
    assert_eq!(read(kept.clone()).await.bytes().await.unwrap().as_ref(), png.as_slice(), "the kept copy is unchanged");

    // Completing again is idempotent: the same asset.
    let again = post_as_guest(&app, complete_url, &token).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["asset"]["id"], asset["id"]);
    app.stop().await;
}

#[tokio::test]
async fn uploads_of_the_wrong_kind_or_size_are_refused_up_front() {
    let app = TestApp::spawn().await;
    let cases = [
        (json!({"content_type": "image/svg+xml", "byte_size": 10}), "unsupported_file_type", "content_type"),
        (json!({"content_type": "text/html", "byte_size": 10}), "unsupported_file_type", "content_type"),
        (json!({"content_type": "image/png", "byte_size": 0}), "invalid_file_size", "byte_size"),
        (json!({"content_type": "image/png", "byte_size": -1}), "invalid_file_size", "byte_size"),
        (json!({"content_type": "image/png", "byte_size": 25 * 1024 * 1024 + 1}), "invalid_file_size", "byte_size"),
        (json!({"content_type": "image/png", "byte_size": 10, "filename": "a\u{0}b"}), "invalid_filename", "filename"),
    ];
    for (body, code, field) in cases {
        let response = app.post_json("/api/uploads", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(error_parts(response).await, (code.to_owned(), Some(field.to_owned())), "{body}");
    }
    let count: i64 = app.db.client().await.query_one("SELECT count(*) FROM uploads", &[]).await.unwrap().get(0);
    assert_eq!(count, 0, "refused uploads leave no rows");
    app.stop().await;
}

#[tokio::test]
async fn a_stored_file_that_is_not_the_declared_image_is_refused_on_completion() {
    let objects_dir = std::env::temp_dir().join(format!("stolentee-test-objects-{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::spawn_with(&[("LOCAL_OBJECTS_DIR", objects_dir.to_str().unwrap())]).await;
    // Right length, wrong bytes: HTML pretending to be a PNG.
    let fake = b"<html><script>alert(1)</script></html>".to_vec();
    let started: Value = start_upload(&app, "image/png", fake.len()).await.json().await.unwrap();
    let token = guest_token(&started);
    let upload = &started["upload"];
    let put = app
        .http
        .put(upload["put"]["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(fake)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "the store only checks what was signed");
    let complete = post_as_guest(&app, upload["complete_url"].as_str().unwrap(), &token).await;
    assert_eq!(complete.status(), 422);
    assert_eq!(error_parts(complete).await, ("invalid_image".into(), Some("file".into())));
    let assets: i64 = app.db.client().await.query_one("SELECT count(*) FROM assets", &[]).await.unwrap().get(0);
    assert_eq!(assets, 0);
    // The refused copy is not kept either.
    let kept_dir = objects_dir.join("data/uploads");
    let kept = std::fs::read_dir(&kept_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(kept, 0, "nothing left under uploads/ in {}", kept_dir.display());

    for bad in ["not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let response = post_as_guest(&app, &format!("/api/uploads/{bad}/complete"), &token).await;
        assert_eq!(response.status(), 404);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_job_is_queued_once_per_upload_and_polled_by_its_id() {
    let mut app = TestApp::spawn().await;
    let (asset, token) = upload(&app, &tiny_png()).await;
    let asset_id = asset["id"].as_str().unwrap();
    let start_job = || {
        app.http.post(app.url("/api/jobs")).header("x-guest-token", &token).json(&json!({"asset_id": asset_id})).send()
    };

    let created = start_job().await.unwrap();
    assert_eq!(created.status(), 202);
    let job = created.json::<Value>().await.unwrap()["job"].clone();
    assert_eq!(job["status"], "queued");
    let job_id = job["id"].as_str().unwrap().to_owned();

    // A double click finds the same job; only one message was sent.
    let again = start_job().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["job"]["id"], job_id.as_str());
    let queue = app.queue.take().unwrap();
    let messages = queue.receive(10, Duration::from_millis(200)).await;
    assert_eq!(messages.len(), 1);
    let message: Value = serde_json::from_str(&messages[0].body).unwrap();
    assert_eq!(message, json!({"job_id": job_id, "asset_id": asset_id}));

    let polled =
        app.http.get(app.url(&format!("/api/jobs/{job_id}"))).header("x-guest-token", &token).send().await.unwrap();
    assert_eq!(polled.status(), 200);
    assert_eq!(polled.headers()["cache-control"], "no-store");
    let polled = polled.json::<Value>().await.unwrap();
    assert_eq!(polled["job"]["status"], "queued");
    assert_eq!(polled["job"]["log"], "queued");
    assert_eq!(polled["job"]["result"], Value::Null);
    let deadline = polled["job"]["deadline_at"].as_i64().unwrap() - polled["job"]["created_at"].as_i64().unwrap();
    assert!((1379..=1381).contains(&deadline), "the default deadline is 23 minutes: {deadline} s");
    app.stop().await;
}

#[tokio::test]
async fn jobs_for_unknown_assets_and_unknown_job_ids_are_refused() {
    let app = TestApp::spawn().await;
    let (_, token) = upload(&app, &tiny_png()).await;
    // Unknown is not found, as someone else's is (media_access.rs): with or without a token.
    for body in [json!({"asset_id": "nope"}), json!({"asset_id": uuid::Uuid::new_v4().to_string()})] {
        let response = app.post_json("/api/jobs", &body).await;
        assert_eq!(response.status(), 404);
        assert_eq!(error_parts(response).await, ("not_found".into(), Some("asset_id".into())));
        let response =
            app.http.post(app.url("/api/jobs")).header("x-guest-token", &token).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 404);
    }
    let response = app.post_json("/api/jobs", &json!({"asset_id": 7})).await;
    assert_eq!(response.status(), 400);
    for id in ["nope", "00000000-0000-0000-0000-000000000000", "'%20OR%201=1"] {
        let response =
            app.http.get(app.url(&format!("/api/jobs/{id}"))).header("x-guest-token", &token).send().await.unwrap();
        assert_eq!(response.status(), 404, "{id}");
        assert_eq!(error_parts(response).await.0, "not_found");
    }
    let jobs: i64 = app.db.client().await.query_one("SELECT count(*) FROM jobs", &[]).await.unwrap().get(0);
    assert_eq!(jobs, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_signed_in_upload_and_its_cut_out_belong_to_the_uploader_for_saved_designs() {
    let app = TestApp::spawn().await;
    let (owner, owner_token) = app.register("artist@example.com").await;
    let (_, other_token) = app.register("copycat@example.com").await;
    let png = tiny_png();
    let started: Value = app
        .http
        .post(app.url("/api/uploads"))
        .bearer_auth(&owner_token)
        .json(&json!({"content_type": "image/png", "byte_size": png.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload = &started["upload"];
    let put = app
        .http
        .put(upload["put"]["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert!(started.get("guest_token").is_none(), "an account needs no guest token");
    let done: Value = app
        .http
        .post(app.url(upload["complete_url"].as_str().unwrap()))
        .bearer_auth(&owner_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let asset = done["asset"]["id"].as_str().unwrap().to_owned();
    let stored_owner: Option<uuid::Uuid> =
        app.scalar(&format!("SELECT owner_id FROM assets WHERE id = '{asset}'")).await;
    assert_eq!(stored_owner.map(|u| u.to_string()), Some(owner.clone()));

    // A cut-out the worker made from it (no owner of its own) belongs to the uploader too.
    let job: String = app
        .scalar(&format!("INSERT INTO jobs (upload_asset_id, status) VALUES ('{asset}', 'queued') RETURNING id::text"))
        .await;
    let cutout: String = app
        .scalar(&format!(
            "INSERT INTO assets (object_key, content_type, byte_size, kind, job_id) \
             VALUES ('cutouts/{job}/transparent.png', 'image/png', 10, 'transparent', '{job}') RETURNING id::text"
        ))
        .await;
    let product: String = app.scalar("SELECT id::text FROM products WHERE slug = 'classic-tee'").await;
    let design = |art: &str| {
        json!({"name": "d", "product_id": product,
               "design_data": {"front": [{"artwork_id": art, "x": 0, "y": 0, "width": 1, "height": 1}]}})
    };
    for art in [&asset, &cutout] {
        let theirs = app.send_json_as(reqwest::Method::POST, "/api/designs", &other_token, &design(art)).await;
        assert_eq!(theirs.status(), 422, "someone else's artwork");
        assert_eq!(error_parts(theirs).await.0, "unknown_artwork");
        let mine = app.send_json_as(reqwest::Method::POST, "/api/designs", &owner_token, &design(art)).await;
        assert_eq!(mine.status(), 201);
    }
    app.stop().await;
}
