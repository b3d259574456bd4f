//! Staff: catalog writes (admins) and fulfilment (fulfilment staff and admins).

use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, cart, error_parts};

const PURGE_SECRET: &str = "purge-secret-purge-secret-purge-secret";

fn new_product() -> Value {
    json!({
        "slug": "zip-hoodie",
        "title": "Zip Hoodie \"Deluxe\"; DROP TABLE products;--",
        "description": "Warm.\nVery warm.",
        "status": "draft",
        "variants": [{"color": "Navy", "size": "M", "sku": "ST-ZIP-NAV-M", "base_cost_cents": 1500, "base_price_cents": 4299}]
    })
}

#[tokio::test]
async fn only_the_right_roles_reach_staff_routes() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.register("c@example.com").await;
    let packer = app.staff("p@example.com", "fulfillment").await;
    let admin = app.staff("a@example.com", "admin").await;

    assert_eq!(app.get("/api/admin/orders").await.status(), 401);
    let r = app.get_as("/api/admin/orders", &customer).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_parts(r).await.0, "forbidden");
    assert_eq!(app.get_as("/api/admin/orders", &packer).await.status(), 200);
    assert_eq!(app.get_as("/api/admin/orders", &admin).await.status(), 200);
    assert_eq!(app.send_json_as(Method::POST, "/api/admin/products", &packer, &new_product()).await.status(), 403);
    assert_eq!(app.send_json_as(Method::POST, "/api/admin/products", &customer, &new_product()).await.status(), 403);

    // Demotion takes effect at once, although the admin's token is still unexpired.
    app.sql("UPDATE users SET role = 'customer' WHERE email = 'a@example.com'").await;
    assert_eq!(app.get_as("/api/admin/orders", &admin).await.status(), 403);
    app.stop().await;
}

#[tokio::test]
async fn admins_create_update_and_archive_products_and_the_caches_follow() {
    let edge = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/__edge/purge"))
        .and(header("authorization", format!("Bearer {PURGE_SECRET}").as_str()))
        // Purged now and again after the check interval + request limit + 1 s (1 + 10 + 1).
        .and(body_json(
            json!({"keys": ["/api/products", "/api/products/zip-hoodie"], "prefixes": [], "again_after_secs": 12}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"purged_keys": 1})))
        .expect(3)
        .mount(&edge)
        .await;
    let purge_url = format!("{}/__edge/purge", edge.uri());
    let app = TestApp::spawn_with(&[
        ("CATALOG_CACHE_TTL_SECS", "3600"),
        ("EDGE_PURGE_URL", &purge_url),
        ("EDGE_PURGE_SECRET", PURGE_SECRET),
    ])
    .await;
    let admin = app.staff("a@example.com", "admin").await;
    let listed = |body: Value| body["products"].as_array().unwrap().iter().any(|p| p["slug"] == "zip-hoodie");
    assert!(!listed(app.get("/api/products").await.json().await.unwrap()), "warm the cache first");

    let r = app.send_json_as(Method::POST, "/api/admin/products", &admin, &new_product()).await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["product"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["product"]["title"], new_product()["title"], "stored verbatim");
    assert_eq!(created["edge_purged"], true);
    assert_eq!(app.send_json_as(Method::POST, "/api/admin/products", &admin, &new_product()).await.status(), 409);

    // Only whitelisted fields may be named.
    for bad in
        [json!({"slug": "x"}), json!({"id": "x"}), json!({"base_cost_cents": 0}), json!({"status; DROP": "active"})]
    {
        let r = app.send_json_as(Method::PATCH, &format!("/api/admin/products/{id}"), &admin, &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(error_parts(r).await.0, "invalid_json");
    }
    let r = app
        .send_json_as(Method::PATCH, &format!("/api/admin/products/{id}"), &admin, &json!({"status": "active"}))
        .await;
    assert_eq!(r.status(), 200);
    assert!(listed(app.get("/api/products").await.json().await.unwrap()), "this instance's cache was cleared");

    let r = app.http.delete(app.url(&format!("/api/admin/products/{id}"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!listed(app.get("/api/products").await.json().await.unwrap()));
    let status: String = app.scalar("SELECT status FROM products WHERE slug = 'zip-hoodie'").await;
    assert_eq!(status, "archived", "archived, not deleted");
    let unknown = uuid::Uuid::new_v4();
    let r = app
        .send_json_as(Method::PATCH, &format!("/api/admin/products/{unknown}"), &admin, &json!({"title": "x"}))
        .await;
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn staff_list_filter_page_and_fulfil_orders() {
    let app = TestApp::spawn().await;
    let packer = app.staff("p@example.com", "fulfillment").await;
    let packer_id: String = app.scalar("SELECT id::text FROM users WHERE email = 'p@example.com'").await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, body) = app.place_order(&cart(&tee, json!(i + 1), &format!("b{i}@example.com")), None).await;
        assert_eq!(status, 201);
        ids.push(body["order"]["id"].as_str().unwrap().to_owned());
    }
    app.sql(&format!("UPDATE orders SET payment_status = 'paid' WHERE id = '{}'", ids[0])).await;

    let page1: Value = app.get_as("/api/admin/orders?limit=2", &packer).await.json().await.unwrap();
    assert_eq!(page1["orders"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value =
        app.get_as(&format!("/api/admin/orders?limit=2&before={cursor}"), &packer).await.json().await.unwrap();
    assert_eq!(page2["orders"].as_array().unwrap().len(), 1);
    assert_eq!(page2["orders"][0]["id"], ids[0].as_str(), "newest first, so the oldest is last");
    let paid: Value = app.get_as("/api/admin/orders?payment_status=paid", &packer).await.json().await.unwrap();
    assert_eq!(paid["orders"].as_array().unwrap().len(), 1);
    assert_eq!(app.get_as("/api/admin/orders?payment_status=lots", &packer).await.status(), 422);
    assert_eq!(app.get_as("/api/admin/orders?limit=100000", &packer).await.status(), 422);

    let detail: Value = app.get_as(&format!("/api/admin/orders/{}", ids[0]), &packer).await.json().await.unwrap();
    assert_eq!(detail["customer"]["email"], "b0@example.com");
    assert_eq!(detail["items"][0]["sku"], "ST-TEE-BLK-M");

    let status_path = |id: &str| format!("/api/admin/orders/{id}/status");
    // Unpaid orders do not go into production; shipping needs tracking.
    let r = app.send_json_as(Method::PATCH, &status_path(&ids[1]), &packer, &json!({"status": "in_production"})).await;
    assert_eq!((r.status().as_u16(), error_parts(r).await.0.as_str()), (409, "invalid_transition"));
    let r = app.send_json_as(Method::PATCH, &status_path(&ids[0]), &packer, &json!({"status": "shipped"})).await;
    assert_eq!(r.status(), 409);
    let r = app
        .send_json_as(
            Method::PATCH,
            &status_path(&ids[0]),
            &packer,
            &json!({"status": "in_production", "notes": "rush"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .send_json_as(
            Method::PATCH,
            &status_path(&ids[0]),
            &packer,
            &json!({"status": "shipped", "tracking_number": "1Z999'--", "carrier": "UPS"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let shipped: Value = r.json().await.unwrap();
    assert_eq!(shipped["order"]["tracking_number"], "1Z999'--");
    assert!(shipped["order"]["shipped_at"].is_string());
    let r = app.send_json_as(Method::PATCH, &status_path(&ids[0]), &packer, &json!({"status": "pending"})).await;
    assert_eq!(r.status(), 409, "no going back");
    let r = app.send_json_as(Method::PATCH, &status_path(&ids[0]), &packer, &json!({"status": "teleported"})).await;
    assert_eq!(r.status(), 422);

    let by: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM order_status_history WHERE kind = 'production' AND changed_by = '{packer_id}'"
        ))
        .await;
    assert_eq!(by, 2, "every move names who made it");
    app.stop().await;
}

#[tokio::test]
async fn the_order_detail_shows_the_design_and_its_artwork() {
    let app = TestApp::spawn().await;
    let packer = app.staff("p@example.com", "fulfillment").await;
    let (user, token) = app.register("d@example.com").await;
    let asset: String = app
        .scalar(&format!(
            "INSERT INTO assets (owner_id, object_key, content_type, byte_size, kind) \
             VALUES ('{user}', 'cutouts/x/transparent.png', 'image/png', 10, 'transparent') RETURNING id::text"
        ))
        .await;
    let product: String = app.scalar("SELECT id::text FROM products WHERE slug = 'classic-tee'").await;
    let design: Value = app
        .send_json_as(
            Method::POST,
            "/api/designs",
            &token,
            &json!({"name": "front logo", "product_id": product,
                    "design_data": {"front": [{"artwork_id": asset, "x": 1, "y": 1, "width": 5, "height": 5}]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let design_id = design["design"]["id"].as_str().unwrap();
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let mut body = cart(&tee, json!(1), "d@example.com");
    body["items"][0]["design_id"] = json!(design_id);
    let (status, refused) = app.place_order(&body, None).await;
    assert_eq!((status.as_u16(), refused["error"]["code"].as_str()), (422, Some("unknown_design")), "not a guest's");
    let r = app.http.post(app.url("/api/orders")).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    let id = order["order"]["id"].as_str().unwrap();

    let detail: Value = app.get_as(&format!("/api/admin/orders/{id}"), &packer).await.json().await.unwrap();
    let item = &detail["items"][0];
    assert_eq!(item["custom_spec"]["design_id"], design_id);
    assert_eq!(item["design"]["design"]["name"], "front logo");
    assert_eq!(item["design"]["artwork"][0]["asset_id"], asset.as_str());
    assert!(item["design"]["artwork"][0]["url"].as_str().is_some_and(|u| u.contains("transparent.png")), "{item}");
    assert_eq!(detail["customer"]["email"], "d@example.com");
    assert_eq!(detail["history"][0]["kind"], "payment");
    app.stop().await;
}
