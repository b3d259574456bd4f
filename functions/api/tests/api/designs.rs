//! Saved designs: owner-scoped CRUD with validated design data.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts};

/// Inserts an asset owned by `owner` (None: public) and returns its id.
async fn asset(app: &TestApp, owner: Option<&str>) -> String {
    let key = format!("uploads/{}.png", uuid::Uuid::new_v4());
    let owner = owner.map_or("NULL".to_owned(), |o| format!("'{o}'"));
    app.scalar(&format!(
        "INSERT INTO assets (owner_id, object_key, content_type, byte_size, kind) \
         VALUES ({owner}, '{key}', 'image/png', 100, 'upload') RETURNING id::text"
    ))
    .await
}

async fn tee(app: &TestApp) -> String {
    app.scalar("SELECT id::text FROM products WHERE slug = 'classic-tee'").await
}

fn design(product: &str, artwork: &str, name: &str) -> Value {
    json!({
        "name": name,
        "product_id": product,
        "design_data": {
            "front": [{"artwork_id": artwork, "x": 1.0, "y": 2.0, "width": 10.0, "height": 8.0, "rotation": 15}],
            "neck": [{"artwork_id": artwork, "x": 0, "y": 0, "width": 2, "height": 1}]
        }
    })
}

#[tokio::test]
async fn a_user_creates_lists_updates_and_deletes_their_design() {
    let app = TestApp::spawn().await;
    let (user, token) = app.register("designer@example.com").await;
    let product = tee(&app).await;
    let mine = asset(&app, Some(&user)).await;
    let public = asset(&app, None).await;

    let name = "Robert'); DROP TABLE saved_designs;-- 🎨 Zoë";
    let r = app.send_json_as(Method::POST, "/api/designs", &token, &design(&product, &mine, name)).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["design"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["design"]["name"], name, "stored verbatim");
    assert_eq!(created["design"]["design_data"]["front"][0]["rotation"], 15.0);
    assert!(created["design"]["design_data"].get("back").is_none());

    let list: Value = app.get_as("/api/designs", &token).await.json().await.unwrap();
    assert_eq!(list["designs"].as_array().unwrap().len(), 1);

    let r =
        app.send_json_as(Method::PUT, &format!("/api/designs/{id}"), &token, &design(&product, &public, "v2")).await;
    assert_eq!(r.status(), 200, "public artwork may be used");
    let shown: Value = app.get_as(&format!("/api/designs/{id}"), &token).await.json().await.unwrap();
    assert_eq!(shown["design"]["name"], "v2");

    let r = app.http.delete(app.url(&format!("/api/designs/{id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.get_as(&format!("/api/designs/{id}"), &token).await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn someone_elses_design_is_not_found() {
    let app = TestApp::spawn().await;
    let (owner, owner_token) = app.register("owner@example.com").await;
    let (_, thief) = app.register("thief@example.com").await;
    let product = tee(&app).await;
    let art = asset(&app, Some(&owner)).await;
    let created: Value = app
        .send_json_as(Method::POST, "/api/designs", &owner_token, &design(&product, &art, "mine"))
        .await
        .json()
        .await
        .unwrap();
    let id = created["design"]["id"].as_str().unwrap();
    let path = format!("/api/designs/{id}");

    let r = app.get_as(&path, &thief).await;
    assert_eq!(r.status(), 404);
    assert_eq!(error_parts(r).await.0, "not_found");
    assert_eq!(app.send_json_as(Method::PUT, &path, &thief, &json!({"nonsense": true})).await.status(), 404);
    assert_eq!(app.http.delete(app.url(&path)).bearer_auth(&thief).send().await.unwrap().status(), 404);
    let list: Value = app.get_as("/api/designs", &thief).await.json().await.unwrap();
    assert_eq!(list["designs"], json!([]));
    assert_eq!(app.get(&path).await.status(), 401, "and nobody signed out sees anything");
    let still: i64 = app.scalar("SELECT count(*) FROM saved_designs").await;
    assert_eq!(still, 1);
    app.stop().await;
}

#[tokio::test]
async fn design_data_is_validated_against_views_print_areas_and_artwork_ownership() {
    let app = TestApp::spawn().await;
    let (user, token) = app.register("v@example.com").await;
    let (other, _) = app.register("other@example.com").await;
    let product = tee(&app).await;
    let mine = asset(&app, Some(&user)).await;
    let theirs = asset(&app, Some(&other)).await;
    let missing = uuid::Uuid::new_v4().to_string();

    let mut sleeve = design(&product, &mine, "x");
    sleeve["design_data"] = json!({"sleeve": [{"artwork_id": mine, "x": 0, "y": 0, "width": 1, "height": 1}]});
    let mut outside = design(&product, &mine, "x");
    outside["design_data"]["front"][0]["x"] = json!(10.0);
    let mut unknown_product = design(&product, &mine, "x");
    unknown_product["product_id"] = json!(uuid::Uuid::new_v4().to_string());
    let mut priced = design(&product, &mine, "x");
    priced["price_cents"] = json!(1);
    let cases = [
        (sleeve, 422, "invalid_design"),
        (outside, 422, "invalid_design"),
        (design(&product, &theirs, "x"), 422, "unknown_artwork"),
        (design(&product, &missing, "x"), 422, "unknown_artwork"),
        (unknown_product, 422, "unknown_product"),
        (design(&product, &mine, ""), 422, "invalid_name"),
        (priced, 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let r = app.send_json_as(Method::POST, "/api/designs", &token, &body).await;
        assert_eq!(r.status(), status, "{code}: {body}");
        assert_eq!(error_parts(r).await.0, code);
    }
    let mut huge = design(&product, &mine, "x");
    huge["design_data"]["back"] = json!(vec![json!({"artwork_id": mine, "x": 0, "y": 0, "width": 1, "height": 1}); 21]);
    let r = app.send_json_as(Method::POST, "/api/designs", &token, &huge).await;
    assert_eq!((r.status().as_u16(), error_parts(r).await.1.as_deref()), (422, Some("design_data.back")));
    let saved: i64 = app.scalar("SELECT count(*) FROM saved_designs").await;
    assert_eq!(saved, 0);
    app.stop().await;
}
