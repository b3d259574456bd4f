use serde_json::{Value, json};

use crate::helpers::{TestApp, error_parts};

fn quote_body(variant_id: &str, method: &str, placements: Value, quantity: Value) -> Value {
    json!({"variant_id": variant_id, "method": method, "placements": placements, "quantity": quantity})
}

#[tokio::test]
async fn twenty_four_black_tees_with_a_two_colour_front_print() {
    let app = TestApp::spawn().await;
    let variant = app.variant_id("ST-TEE-BLK-M").await;
    let response = app
        .post_json(
            "/api/price/quote",
            &quote_body(&variant, "screen_print", json!([{"location": "front", "colors": 2}]), json!(24)),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let quote = response.json::<Value>().await.unwrap()["quote"].clone();

    // By hand from the seed: tee 12.99 × 24 = 311.76; print (2.50 + 2 × 0.75) × 0.85 = 3.40
    // × 24 = 81.60; subtotal 393.36; "Bulk 24-49" 15 % = 59.004 → 59.00; total 334.36.
    assert_eq!(quote["lines"][0]["total_cents"], 31176);
    assert_eq!(quote["lines"][1]["unit_cents"], 340);
    assert_eq!(quote["subtotal_cents"], 39336);
    assert_eq!(quote["discount"]["name"], "Bulk 24-49");
    assert_eq!(quote["discount"]["amount_cents"], 5900);
    assert_eq!(quote["total_cents"], 33436);
    app.stop().await;
}

#[tokio::test]
async fn embroidery_on_a_hoodie_is_priced_by_stitches() {
    let app = TestApp::spawn().await;
    let variant = app.variant_id("ST-HOOD-BLK-2XL").await;
    let body = quote_body(&variant, "embroidery", json!([{"location": "front", "stitches": 7500}]), json!(1));
    let quote = app.post_json("/api/price/quote", &body).await.json::<Value>().await.unwrap()["quote"].clone();
    // 39.99 + 6.00 + 8 × 0.90 = 53.19
    assert_eq!(quote["total_cents"], 5319);
    app.stop().await;
}

#[tokio::test]
async fn impossible_quotes_are_422_with_the_offending_field() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-WHT-L").await;
    let front = json!([{"location": "front", "colors": 1}]);
    let cases = [
        (quote_body(&tee, "screen_print", front.clone(), json!(0)), "invalid_quantity", "quantity"),
        (quote_body(&tee, "screen_print", front.clone(), json!(-5)), "invalid_quantity", "quantity"),
        (quote_body(&tee, "screen_print", front.clone(), json!(1_000_000_000)), "invalid_quantity", "quantity"),
        (quote_body(&tee, "laser_etching", front.clone(), json!(1)), "unknown_method", "method"),
        (
            quote_body(&tee, "embroidery", json!([{"location": "front", "stitches": 5000}]), json!(1)),
            "method_unavailable",
            "method",
        ),
        (
            quote_body(&uuid::Uuid::new_v4().to_string(), "screen_print", front.clone(), json!(1)),
            "unknown_variant",
            "variant_id",
        ),
        (quote_body("not-a-uuid", "screen_print", front.clone(), json!(1)), "invalid_variant_id", "variant_id"),
        (quote_body(&tee, "screen_print", json!([]), json!(1)), "invalid_placement", "placements"),
        (
            quote_body(&tee, "screen_print", json!([{"location": "front", "colors": 9}]), json!(1)),
            "invalid_placement",
            "placements[0].colors",
        ),
        (
            quote_body(&tee, "screen_print", json!([{"location": "front"}]), json!(1)),
            "invalid_placement",
            "placements[0].colors",
        ),
        (
            quote_body(&tee, "dtg", json!([{"location": "back", "width_in": 20, "height_in": 20}]), json!(1)),
            "invalid_placement",
            "placements[0].width_in",
        ),
    ];
    for (body, code, field) in cases {
        let response = app.post_json("/api/price/quote", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(error_parts(response).await, (code.to_owned(), Some(field.to_owned())), "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_variant_of_an_archived_product_cannot_be_quoted() {
    let app = TestApp::spawn().await;
    let hoodie = app.variant_id("ST-HOOD-BLK-M").await;
    app.sql("UPDATE products SET status = 'archived' WHERE slug = 'classic-hoodie'").await;
    let body = quote_body(&hoodie, "screen_print", json!([{"location": "front", "colors": 1}]), json!(3));
    let response = app.post_json("/api/price/quote", &body).await;
    assert_eq!(response.status(), 422);
    assert_eq!(error_parts(response).await, ("variant_unavailable".into(), Some("variant_id".into())));
    app.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_and_name_the_field() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-S").await;
    let raw = |body: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/api/price/quote"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let cases = [
        ("{\"variant_id\": ".to_owned(), None),
        ("not json".to_owned(), None),
        (
            format!(r#"{{"variant_id": "{tee}", "method": "dtg", "placements": [], "quantity": "24"}}"#),
            Some("quantity"),
        ),
        (
            format!(r#"{{"variant_id": "{tee}", "method": "dtg", "placements": [{{"location": 1}}], "quantity": 2}}"#),
            Some("placements[0].location"),
        ),
        // Client-sent prices are refused, not trusted and not silently dropped.
        (
            format!(r#"{{"variant_id": "{tee}", "method": "dtg", "placements": [], "quantity": 2, "total_cents": 1}}"#),
            None,
        ),
        ("[".repeat(10_000), None),
    ];
    for (body, field) in cases {
        let response = raw(body.clone()).await;
        assert_eq!(response.status(), 400, "{body:.60}");
        let (code, got_field) = error_parts(response).await;
        assert_eq!(code, "invalid_json");
        if field.is_some() {
            assert_eq!(got_field.as_deref(), field);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_media_types_oversized_bodies_and_wrong_methods_are_refused() {
    let app = TestApp::spawn().await;
    let response = app.http.post(app.url("/api/price/quote")).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(error_parts(response).await.0, "unsupported_media_type");

    let huge = format!(r#"{{"method": "{}"}}"#, "x".repeat(200 * 1024));
    let response = app
        .http
        .post(app.url("/api/price/quote"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(error_parts(response).await.0, "payload_too_large");

    let response = app.get("/api/price/quote").await;
    assert_eq!(response.status(), 405);
    assert_eq!(error_parts(response).await.0, "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn sql_metacharacters_are_just_data() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-S").await;
    for hostile in ["'; DROP TABLE variants; --", "screen_print' OR '1'='1", "\\x00", "$1"] {
        let body = quote_body(&tee, hostile, json!([{"location": "front", "colors": 1}]), json!(1));
        let response = app.post_json("/api/price/quote", &body).await;
        assert_eq!(response.status(), 422);
    }
    let body = quote_body(
        &tee,
        "screen_print",
        json!([{"location": "front'; DROP TABLE products; --", "colors": 1}]),
        json!(1),
    );
    assert_eq!(app.post_json("/api/price/quote", &body).await.status(), 422);
    assert_eq!(app.get("/api/products").await.status(), 200, "the catalog is intact");
    let count: i64 = app.db.client().await.query_one("SELECT count(*) FROM variants", &[]).await.unwrap().get(0);
    assert_eq!(count, 15);
    app.stop().await;
}
