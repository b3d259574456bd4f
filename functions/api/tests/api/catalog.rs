use std::time::Duration;

use crate::helpers::{TestApp, error_parts};

#[tokio::test]
async fn the_catalog_lists_active_products_with_their_variants_in_cents() {
    let app = TestApp::spawn().await;
    let response = app.get("/api/products").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let products = body["products"].as_array().unwrap();
    let slugs: Vec<&str> = products.iter().map(|p| p["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["classic-tee", "classic-hoodie"]);

    let tee = &products[0];
    assert_eq!(tee["variants"].as_array().unwrap().len(), 10);
    let prices: Vec<i64> =
        tee["variants"].as_array().unwrap().iter().map(|v| v["price_cents"].as_i64().unwrap()).collect();
    assert_eq!(prices.iter().min(), Some(&1299));
    assert_eq!(prices.iter().max(), Some(&1499));
    assert!(tee["variants"][0].get("base_cost_cents").is_none(), "costs never leave the back office");
    app.stop().await;
}

#[tokio::test]
async fn drafts_and_archived_products_are_not_for_sale() {
    let app = TestApp::spawn().await;
    app.sql(
        "UPDATE products SET status = 'archived' WHERE slug = 'classic-hoodie';
             INSERT INTO products (slug, title, status) VALUES ('secret-drop', 'Secret', 'draft');",
    )
    .await;
    let body: serde_json::Value = app.get("/api/products").await.json().await.unwrap();
    assert_eq!(body["products"].as_array().unwrap().len(), 1);
    for slug in ["classic-hoodie", "secret-drop"] {
        let response = app.get(&format!("/api/products/{slug}")).await;
        assert_eq!(response.status(), 404, "{slug}");
        assert_eq!(error_parts(response).await.0, "not_found");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_product_page_has_its_variants_and_the_methods_allowed_on_it() {
    let app = TestApp::spawn().await;
    let method_names = |body: &serde_json::Value| -> Vec<String> {
        body["decoration_methods"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()).collect()
    };
    let tee: serde_json::Value = app.get("/api/products/classic-tee").await.json().await.unwrap();
    assert_eq!(tee["product"]["title"], "Classic Tee");
    assert_eq!(tee["product"]["variants"].as_array().unwrap().len(), 10);
    assert_eq!(method_names(&tee), ["screen_print", "dtg"]);

    let hoodie: serde_json::Value = app.get("/api/products/classic-hoodie").await.json().await.unwrap();
    assert_eq!(method_names(&hoodie), ["screen_print", "embroidery", "dtg"]);
    assert_eq!(hoodie["decoration_methods"][1]["pricing"]["charge"]["per"], "thousand_stitches");

    app.sql("UPDATE decoration_methods SET status = 'inactive' WHERE name = 'dtg'").await;
    app.app_state.cache.invalidate_all();
    let tee: serde_json::Value = app.get("/api/products/classic-tee").await.json().await.unwrap();
    assert_eq!(method_names(&tee), ["screen_print"]);
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_slugs_are_json_404s() {
    let app = TestApp::spawn().await;
    let long = "a".repeat(5000);
    for slug in ["no-such-tee", "Classic-Tee", "..%2F..%2Fetc%2Fpasswd", "%00", "tee'%20OR%20'1'='1", long.as_str()] {
        let response = app.get(&format!("/api/products/{slug}")).await;
        assert_eq!(response.status(), 404, "{slug}");
        assert_eq!(error_parts(response).await.0, "not_found");
    }
    app.stop().await;
}

#[tokio::test]
async fn catalog_responses_are_cacheable_and_revalidate_with_etags() {
    let app = TestApp::spawn().await;
    for path in ["/api/products", "/api/products/classic-tee"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        // Browsers keep it 30 s; the edge (which catalog writes purge) an hour.
        assert_eq!(response.headers()["cache-control"], "public, max-age=30");
        assert_eq!(response.headers()["cdn-cache-control"], "public, max-age=3600, stale-while-revalidate=7200");
        assert!(response.headers().contains_key("x-catalog-version"));
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();

        let revalidated = app.http.get(app.url(path)).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(revalidated.status(), 304, "{path}");
        assert_eq!(revalidated.headers()["etag"].to_str().unwrap(), etag);
        assert!(revalidated.bytes().await.unwrap().is_empty());

        let changed = app.http.get(app.url(path)).header("if-none-match", "\"stale\"").send().await.unwrap();
        assert_eq!(changed.status(), 200);
    }
    let missing = app.get("/api/products/nope").await;
    assert_eq!(missing.headers()["cache-control"], "public, max-age=60");
    app.stop().await;
}

#[tokio::test]
async fn head_requests_get_headers_without_a_body() {
    let app = TestApp::spawn().await;
    let response = app.http.head(app.url("/api/products")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("etag"));
    assert!(response.bytes().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_catalog_write_in_sql_is_served_after_the_version_check_interval_whatever_the_ttl() {
    let app = TestApp::spawn_with(&[("CATALOG_CACHE_TTL_SECS", "3600"), ("CATALOG_VERSION_CHECK_MS", "1000")]).await;
    let title = |body: serde_json::Value| body["product"]["title"].as_str().unwrap().to_owned();
    assert_eq!(title(app.get("/api/products/classic-tee").await.json().await.unwrap()), "Classic Tee");

    app.sql("UPDATE products SET title = 'Classic Tee v2' WHERE slug = 'classic-tee'").await;
    assert_eq!(
        title(app.get("/api/products/classic-tee").await.json().await.unwrap()),
        "Classic Tee",
        "within the check interval the cached page is served"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(title(app.get("/api/products/classic-tee").await.json().await.unwrap()), "Classic Tee v2");
    app.stop().await;
}

#[tokio::test]
async fn a_warm_catalog_keeps_serving_while_the_database_is_down() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/api/products").await.status(), 200);
    // Forbid new connections to this test database and kill the pool's open ones.
    let admin = db::testing::admin_url();
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let name = &app.db.name;
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
        ))
        .await
        .unwrap();
    assert_eq!(app.get("/api/products").await.status(), 200, "cached within the TTL");
    assert_eq!(app.get("/health/ready").await.status(), 503);
    client.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await.unwrap();
    app.stop().await;
}
