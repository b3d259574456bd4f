//! Price changes and the caches in front of them: the catalog version in Postgres, the
//! instance caches keyed by it, a lagging replica, several instances, concurrent load, and
//! the edge in front of it all. The bound each test holds the API to is the one documented
//! in docs/ARCHITECTURE.md ("Caches").

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use db::testing::TestDb;
use serde_json::{Value, json};

use crate::helpers::{TestApp, cart, error_parts};

const SKU: &str = "ST-TEE-BLK-M";
const OLD_PRICE: i64 = 1299;

/// The price of `variant` in a `GET /api/products` body.
fn listed_price(body: &Value, variant: &str) -> i64 {
    body["products"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["variants"].as_array().into_iter().flatten())
        .find(|v| v["id"] == variant)
        .and_then(|v| v["price_cents"].as_i64())
        .unwrap_or_else(|| panic!("variant {variant} is not listed in {body}"))
}

fn version_of(response: &reqwest::Response) -> i64 {
    response.headers()["x-catalog-version"].to_str().unwrap().parse().expect("a version number")
}

async fn list_price(app: &TestApp, variant: &str) -> (i64, i64) {
    list_price_at(&app.http, &app.url(""), variant).await
}

/// (price, catalog version) of `variant` in `GET {base}/api/products`.
async fn list_price_at(http: &reqwest::Client, base: &str, variant: &str) -> (i64, i64) {
    let response = http.get(format!("{base}/api/products")).send().await.expect("request sent");
    assert_eq!(response.status(), 200);
    let version = version_of(&response);
    (listed_price(&response.json().await.unwrap(), variant), version)
}

fn quote_body(variant: &str) -> Value {
    json!({"variant_id": variant, "method": "screen_print",
           "placements": [{"location": "front", "colors": 2}], "quantity": 24})
}

/// The garment line's unit price in a quote for 24 of `variant` (the cart `helpers::cart` sends).
async fn quoted_unit(app: &TestApp, variant: &str) -> (i64, Value) {
    quoted_unit_at(&app.http, &app.url(""), variant).await
}

async fn quoted_unit_at(http: &reqwest::Client, base: &str, variant: &str) -> (i64, Value) {
    let response =
        http.post(format!("{base}/api/price/quote")).json(&quote_body(variant)).send().await.expect("request sent");
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-catalog-version"));
    let quote = response.json::<Value>().await.unwrap()["quote"].clone();
    (quote["lines"][0]["unit_cents"].as_i64().expect("a garment line"), quote)
}

async fn change_price(app: &TestApp, admin: &str, variant: &str, cents: i64) -> reqwest::Response {
    app.send_json_as(
        reqwest::Method::PATCH,
        &format!("/api/admin/variants/{variant}"),
        admin,
        &json!({"base_price_cents": cents}),
    )
    .await
}

/// A seeded primary and a frozen copy of it standing in for a replica that has stopped
/// replaying: it has the same ids and the same catalog version until the primary changes.
async fn primary_and_lagging_replica() -> (TestDb, TestDb) {
    let primary = TestDb::seeded().await;
    let replica = primary.frozen_copy().await;
    // A mark only the replica carries, written without firing triggers (as replay does), so
    // a test can tell which server a page came from.
    replica
        .client()
        .await
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE products SET title = 'Classic Tee (replica)' WHERE slug = 'classic-tee';",
        )
        .await
        .unwrap();
    (primary, replica)
}

#[tokio::test]
async fn every_catalog_statement_bumps_the_version_in_its_own_transaction() {
    let app = TestApp::spawn().await;
    let version = || app.scalar::<i64>("SELECT version FROM catalog_version");
    let before = version().await;
    for statement in [
        "UPDATE variants SET base_price_cents = 1399 WHERE sku = 'ST-TEE-BLK-M'",
        "UPDATE products SET title = 'Tee' WHERE slug = 'classic-tee'",
        "UPDATE decoration_methods SET display_name = 'Screen' WHERE name = 'screen_print'",
        "DELETE FROM decoration_method_products",
        "UPDATE price_rules SET active = false",
    ] {
        let was = version().await;
        app.sql(statement).await;
        assert_eq!(version().await, was + 1, "{statement}");
    }
    // A statement that changes no row, or a table outside the catalog: no bump.
    let was = version().await;
    app.sql("UPDATE variants SET base_price_cents = 1 WHERE sku = 'NO-SUCH-SKU'").await;
    app.sql("INSERT INTO users (email) VALUES ('x@example.com')").await;
    assert_eq!(version().await, was);
    // A transaction that rolls back leaves the version where it was.
    app.sql("BEGIN; UPDATE variants SET stock_level = 1; ROLLBACK;").await;
    assert_eq!(version().await, was);
    assert!(version().await > before);
    app.stop().await;
}

#[tokio::test]
async fn a_price_change_is_for_admins_with_checked_fields_only() {
    let app = TestApp::spawn().await;
    let variant = app.variant_id(SKU).await;
    let admin = app.staff("admin@example.com", "admin").await;
    let packer = app.staff("packer@example.com", "fulfillment").await;
    let version: i64 = app.scalar("SELECT version FROM catalog_version").await;

    assert_eq!(change_price(&app, &packer, &variant, 1).await.status(), 403);
    let unknown = uuid::Uuid::new_v4().to_string();
    for id in [unknown.as_str(), "not-a-uuid"] {
        let r = change_price(&app, &admin, id, 1599).await;
        assert_eq!((r.status(), error_parts(r).await.0.as_str()), (reqwest::StatusCode::NOT_FOUND, "not_found"));
    }
    let path = format!("/api/admin/variants/{variant}");
    for (body, status, code, field) in [
        (json!({"base_price_cents": -1}), 422, "invalid_product", Some("base_price_cents")),
        (json!({"base_price_cents": 10_000_001}), 422, "invalid_product", Some("base_price_cents")),
        (json!({"stock_level": -1}), 422, "invalid_product", Some("stock_level")),
        (json!({}), 422, "invalid_product", Some("base_price_cents")),
        (json!({"sku": "X"}), 400, "invalid_json", None),
        (json!({"base_price_cents": "1599"}), 400, "invalid_json", None),
    ] {
        let r = app.send_json_as(reqwest::Method::PATCH, &path, &admin, &body).await;
        assert_eq!(r.status(), status, "{body}");
        let (got_code, got_field) = error_parts(r).await;
        assert_eq!(got_code, code, "{body}");
        if field.is_some() {
            assert_eq!(got_field.as_deref(), field, "{body}");
        }
    }
    let unchanged: i64 = app.scalar("SELECT version FROM catalog_version").await;
    assert_eq!(unchanged, version, "refused writes change nothing");
    assert_eq!(list_price(&app, &variant).await.0, OLD_PRICE);
    app.stop().await;
}

#[tokio::test]
async fn an_edge_that_predates_again_after_is_still_purged_once() {
    use wiremock::matchers::{body_json, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    const SECRET: &str = "purge-secret-0123456789abcdef0123456789";
    // The previous Worker: refuses unknown fields, accepts the old body.
    let edge = MockServer::start().await;
    let keys = json!(["/api/products", "/api/products/classic-tee"]);
    Mock::given(method("POST"))
        .and(path("/__edge/purge"))
        .and(body_json(json!({"keys": keys, "prefixes": []})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"purged_keys": 2})))
        .with_priority(1)
        .expect(1)
        .mount(&edge)
        .await;
    Mock::given(method("POST"))
        .and(path("/__edge/purge"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"code": "invalid_body"}})))
        .expect(1)
        .mount(&edge)
        .await;
    let purge_url = format!("{}/__edge/purge", edge.uri());
    let app = TestApp::spawn_with(&[("EDGE_PURGE_URL", &purge_url), ("EDGE_PURGE_SECRET", SECRET)]).await;
    let variant = app.variant_id(SKU).await;
    let admin = app.staff("admin@example.com", "admin").await;
    let changed = change_price(&app, &admin, &variant, 1599).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.json::<Value>().await.unwrap()["edge_purged"], true);
    app.stop().await;
}

#[tokio::test]
async fn with_a_lagging_replica_a_price_change_shows_at_once_in_pages_quotes_and_checkout() {
    let (primary, replica) = primary_and_lagging_replica().await;
    // A long check interval: the instance that made the write must not need it.
    let app =
        TestApp::spawn_on(primary, &[("DATABASE_READ_URL", &replica.url), ("CATALOG_VERSION_CHECK_MS", "10000")]).await;
    let variant = app.variant_id(SKU).await;
    let admin = app.staff("admin@example.com", "admin").await;

    let page: Value = app.get("/api/products/classic-tee").await.json().await.unwrap();
    assert_eq!(page["product"]["title"], "Classic Tee (replica)", "reads go to the replica while it is current");
    let (price, before) = list_price(&app, &variant).await;
    assert_eq!(price, OLD_PRICE);
    assert_eq!(quoted_unit(&app, &variant).await.0, OLD_PRICE);

    let changed = change_price(&app, &admin, &variant, 1599).await;
    assert_eq!(changed.status(), 200);
    let written = version_of(&changed);
    assert!(written > before, "the write's version {written} is newer than {before}");
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["variant"]["price_cents"], 1599);
    assert_eq!(body["product_slug"], "classic-tee");

    // The replica never sees the write; every read below must come from the primary.
    let (price, version) = list_price(&app, &variant).await;
    assert_eq!((price, version), (1599, written));
    let page = app.get("/api/products/classic-tee").await;
    assert_eq!(version_of(&page), written);
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["product"]["title"], "Classic Tee", "the lagging replica was not read");
    let (unit, quote) = quoted_unit(&app, &variant).await;
    assert_eq!(unit, 1599);

    // Checkout prices from the primary: it charges what the quote said.
    let (status, order) = app.place_order(&cart(&variant, json!(24), "ann@example.com"), None).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["order"]["subtotal_cents"], quote["subtotal_cents"]);
    app.stop().await;
    replica.drop_db().await;
}

#[tokio::test]
async fn another_instance_serves_the_new_price_within_the_check_interval() {
    const CHECK_MS: u64 = 300;
    let check = CHECK_MS.to_string();
    let settings = [("CATALOG_VERSION_CHECK_MS", check.as_str()), ("CATALOG_CACHE_TTL_SECS", "3600")];
    let writer = TestApp::spawn_with(&settings).await;
    let other = TestApp::spawn_on(writer.db.clone(), &settings).await;
    let variant = writer.variant_id(SKU).await;
    let admin = writer.staff("admin@example.com", "admin").await;
    assert_eq!(list_price(&other, &variant).await.0, OLD_PRICE);
    assert_eq!(quoted_unit(&other, &variant).await.0, OLD_PRICE);

    assert_eq!(change_price(&writer, &admin, &variant, 1599).await.status(), 200);
    let written = Instant::now();
    assert_eq!(list_price(&writer, &variant).await.0, 1599, "the writer at once");
    // Any request that starts one interval after the write sees it, whatever the TTL.
    tokio::time::sleep(Duration::from_millis(CHECK_MS + 20).saturating_sub(written.elapsed())).await;
    assert_eq!(list_price(&other, &variant).await.0, 1599);
    assert_eq!(quoted_unit(&other, &variant).await.0, 1599);

    // A change made in SQL, by no instance at all, reaches both the same way.
    writer.sql(&format!("UPDATE variants SET base_price_cents = 1799 WHERE id = '{variant}'")).await;
    tokio::time::sleep(Duration::from_millis(CHECK_MS + 20)).await;
    for app in [&writer, &other] {
        assert_eq!(list_price(app, &variant).await.0, 1799);
        assert_eq!(quoted_unit(app, &variant).await.0, 1799);
    }
    writer.stop().await;
}

/// One read under load: when it was sent, which instance answered, the price it showed.
#[derive(Debug, Clone, Copy)]
struct Seen {
    sent: Instant,
    instance: usize,
    price: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_with_a_lagging_replica_no_read_shows_the_old_price_after_the_bound() {
    const CHECK_MS: u64 = 250;
    let (primary, replica) = primary_and_lagging_replica().await;
    let check = CHECK_MS.to_string();
    let settings = [("DATABASE_READ_URL", replica.url.as_str()), ("CATALOG_VERSION_CHECK_MS", check.as_str())];
    let writer = TestApp::spawn_on(primary, &settings).await;
    // The second instance behind a transaction pooler's rules (unnamed statements only).
    let mut behind_pooler = settings.to_vec();
    behind_pooler.push(("DB_POOL_MODE", "transaction"));
    let other = TestApp::spawn_on(writer.db.clone(), &behind_pooler).await;
    let variant = writer.variant_id(SKU).await;
    let admin = writer.staff("admin@example.com", "admin").await;

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for i in 0..8 {
        let instance = i % 2;
        let base = [&writer, &other][instance].url("");
        let (http, seen, stop, variant) = (writer.http.clone(), seen.clone(), stop.clone(), variant.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let price = if i % 4 < 2 {
                    list_price_at(&http, &base, &variant).await.0
                } else {
                    quoted_unit_at(&http, &base, &variant).await.0
                };
                seen.lock().unwrap().push(Seen { sent, instance, price });
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let write_sent = Instant::now();
    assert_eq!(change_price(&writer, &admin, &variant, 1599).await.status(), 200);
    let write_done = Instant::now();
    tokio::time::sleep(Duration::from_millis(3 * CHECK_MS)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }

    let seen = seen.lock().unwrap().clone();
    let bound = [write_done, write_done + Duration::from_millis(CHECK_MS)];
    let old_after_bound: Vec<&Seen> = seen.iter().filter(|s| s.sent >= bound[s.instance] && s.price != 1599).collect();
    assert!(old_after_bound.is_empty(), "old prices after the bound: {old_after_bound:?}");
    assert!(seen.iter().all(|s| s.price == OLD_PRICE || s.price == 1599), "only real prices");
    assert!(seen.iter().any(|s| s.sent < write_sent && s.price == OLD_PRICE), "the load ran before the write");
    let after = seen.iter().filter(|s| s.sent >= bound[s.instance]).count();
    assert!(after > 20, "enough reads after the bound to mean something: {after}");

    drop(other);
    writer.stop().await;
    replica.drop_db().await;
}

/// The drill, end to end: the native edge in front of an instance that has not read the
/// new catalog version yet, a lagging replica, readers through the edge. The first purge
/// lands, the edge refills from that instance with the old price — the race the second
/// purge exists for — and once `again_after` has passed every read shows the new price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_edge_a_price_change_under_load_converges_within_the_documented_bound() {
    // again_after = 3 s check + 1 s request limit + 1 s, rounded up: 5 s.
    const CHECK_MS: u64 = 3_000;
    let again_after = api::purge::again_after(Duration::from_millis(CHECK_MS), Duration::from_millis(1_000));
    assert_eq!(again_after, Duration::from_secs(5));
    const SECRET: &str = "purge-secret-0123456789abcdef0123456789";

    let (primary, replica) = primary_and_lagging_replica().await;
    let edge_addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let purge_url = format!("http://{edge_addr}/__edge/purge");
    let check = CHECK_MS.to_string();
    let settings = [
        ("DATABASE_READ_URL", replica.url.as_str()),
        ("CATALOG_VERSION_CHECK_MS", check.as_str()),
        ("REQUEST_TIMEOUT_MS", "1000"),
        ("EDGE_PURGE_URL", purge_url.as_str()),
        ("EDGE_PURGE_SECRET", SECRET),
    ];
    let writer = TestApp::spawn_on(primary, &settings).await;
    let origin = TestApp::spawn_on(writer.db.clone(), &settings).await;
    let variant = writer.variant_id(SKU).await;
    let admin = writer.staff("admin@example.com", "admin").await;

    // The edge's only origin is the instance that does not make the write.
    let vars: std::collections::HashMap<&str, String> = [
        ("EDGE_POOLS", format!("local=http://{}", origin.addr)),
        ("EDGE_PURGE_SECRET", SECRET.to_owned()),
        ("EDGE_CACHE_PREFIXES", "/api/products".to_owned()),
        ("EDGE_RATE_API", "1000000/15m".to_owned()),
        ("EDGE_ORIGIN_TIMEOUT_MS", "2000".to_owned()),
        // The secret the test API expects from its edge (`helpers::EDGE_SECRET`), where the
        // API authenticates its edge.
        ("EDGE_ORIGIN_SECRET", "test-edge-origin-secret-0123456789abcdef".to_owned()),
    ]
    .into_iter()
    .collect();
    let config = edge::EdgeConfig::from_lookup(|k| vars.get(k).cloned()).expect("edge configuration");
    let objects = std::env::temp_dir().join(format!("stolentee-drill-{}", uuid::Uuid::new_v4().simple()));
    let native = edge::native::NativeConfig { bind: edge_addr, objects_dir: objects, ..Default::default() };
    let edge = edge::native::start(config, native).await.expect("the edge starts");
    let edge_url = edge.url();

    let first = writer.http.get(format!("{edge_url}/api/products")).send().await.unwrap();
    assert_eq!(first.headers()["x-cache"], "MISS");
    assert_eq!(first.headers()["cache-control"], "public, max-age=30", "browsers get the short lifetime");
    assert!(first.headers().get("cdn-cache-control").is_none(), "the edge's own lifetime stops at the edge");
    assert_eq!(listed_price(&first.json().await.unwrap(), &variant), OLD_PRICE);
    // The origin instance reads the version now; it will not ask again for CHECK_MS.
    assert_eq!(list_price(&origin, &variant).await.0, OLD_PRICE);

    let seen: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (http, url, seen, stop, variant) =
            (writer.http.clone(), edge_url.clone(), seen.clone(), stop.clone(), variant.clone());
        readers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let price = list_price_at(&http, &url, &variant).await.0;
                seen.lock().unwrap().push((sent, price));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let changed = change_price(&writer, &admin, &variant, 1599).await;
    let write_done = Instant::now();
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.json::<Value>().await.unwrap()["edge_purged"], true);
    let bound = write_done + again_after + Duration::from_millis(300);
    tokio::time::sleep(bound.saturating_duration_since(Instant::now()) + Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }

    let seen = seen.lock().unwrap().clone();
    let refilled_old = seen.iter().filter(|(sent, price)| *sent > write_done && *price == OLD_PRICE).count();
    assert!(refilled_old > 0, "the edge refilled from the instance that had not seen the write (the race)");
    let late: Vec<_> = seen.iter().filter(|(sent, price)| *sent >= bound && *price != 1599).collect();
    assert!(late.is_empty(), "old prices after again_after: {late:?}");
    assert!(seen.iter().filter(|(sent, _)| *sent >= bound).count() > 5, "reads after the bound");

    edge.stop().await;
    drop(origin);
    writer.stop().await;
    replica.drop_db().await;
}
