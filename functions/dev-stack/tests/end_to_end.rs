//! The newcomer's path, as a test: upload a photo through the API, PUT it to the signed URL,
//! complete, start a job, let the worker (fed by the in-process queue, as in `make dev`)
//! cut it out, poll, and download the transparent PNG. Real Postgres, real model.

use std::io::Cursor;
use std::time::{Duration, Instant};

use db::testing::TestDb;
use serde_json::{Value, json};

fn photo_jpeg_like_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        let (dx, dy) = (x as i32 - 80, y as i32 - 60);
        if dx * dx / 2 + dy * dy < 35 * 35 {
            image::Rgb([200, 60, 50])
        } else {
            image::Rgb([230, 230, (x % 255) as u8])
        }
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn a_photo_uploaded_through_the_api_comes_back_as_a_cut_out() {
    let db = TestDb::seeded().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let objects = std::env::temp_dir().join(format!("dev-stack-e2e-{}", std::process::id()));
    let mut env = config::Env::from_pairs([
        ("DATABASE_URL", db.url.clone()),
        ("LOCAL_OBJECTS_DIR", objects.display().to_string()),
        ("LOCAL_OBJECTS_PUBLIC_URL", format!("http://{addr}")),
    ]);
    if let Ok(dir) = std::env::var("MODELS_DIR") {
        env = env.with("MODELS_DIR", dir);
    }
    // Wired as `stolentee-dev` wires it: both halves from the same environment.
    let config = api::ApiConfig::from_env(&env).unwrap();
    let worker_config = remove_bg::WorkerConfig::from_env(&env).unwrap();
    let mut app = api::App::build(&config).await.unwrap();
    let receiver = app.memory_queue.take().expect("the in-process queue");
    let worker = std::sync::Arc::new(
        remove_bg::Worker::build(&worker_config).await.expect("the u2netp model: run `make model`"),
    );
    tokio::spawn(dev_stack::run_worker(worker, receiver, 1, Duration::from_millis(200)));
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });

    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let photo = photo_jpeg_like_png();

    let started: Value = http
        .post(format!("{base}/api/uploads"))
        .json(&json!({"content_type": "image/png", "byte_size": photo.len(), "filename": "shirt.png"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload = &started["upload"];
    // A guest: the upload, its asset and its jobs answer only to this token.
    let guest = started["guest_token"]["token"].as_str().expect("a guest gets a token").to_owned();
    assert_eq!(started["guest_token"]["header"], "x-guest-token");
    let put = http
        .put(upload["put"]["url"].as_str().unwrap())
        .header("content-type", "image/png")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let asset: Value = http
        .post(format!("{base}{}", upload["complete_url"].as_str().unwrap()))
        .header("x-guest-token", &guest)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let asset_id = asset["asset"]["id"].as_str().unwrap();

    let job: Value = http
        .post(format!("{base}/api/jobs"))
        .header("x-guest-token", &guest)
        .json(&json!({"asset_id": asset_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = job["job"]["id"].as_str().unwrap().to_owned();

    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let polled: Value = http
            .get(format!("{base}/api/jobs/{job_id}"))
            .header("x-guest-token", &guest)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match polled["job"]["status"].as_str().unwrap() {
            "done" => break polled,
            "error" => panic!("the job failed: {polled}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "the job did not finish within 60 s: {polled}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let result = &done["job"]["result"];
    assert_eq!(
        (result["width"].as_i64(), result["height"].as_i64(), result["dpi"].as_i64()),
        (Some(160), Some(120), Some(300))
    );
    assert_eq!(result["original"]["asset"]["id"], asset_id);

    let png = http.get(result["transparent"]["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let cut = image::load_from_memory(&png.bytes().await.unwrap()).unwrap().to_rgba8();
    assert_eq!(cut.dimensions(), (160, 120));
    let alphas: Vec<u8> = cut.pixels().map(|p| p[3]).collect();
    assert!(alphas.iter().any(|&a| a < 255), "some background was removed");

    let mask = http.get(result["mask"]["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(mask.status(), 200);
    let tampered = http.get(result["mask"]["url"].as_str().unwrap().replace("sig=", "sig=0")).send().await.unwrap();
    assert_eq!(tampered.status(), 403, "result URLs are signed");
    db.drop_db().await;
}
