//! Checkout as the storefront does it, and as an attacker would try it.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, cart, error_parts};

#[tokio::test]
async fn a_guest_order_is_priced_on_the_server_and_gets_a_payment_intent() {
    let app = TestApp::spawn_with(&[("LOCAL_TAX_RATE_BP", "825")]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let (status, body) = app.place_order(&cart(&tee, json!(24), "Guest@Example.COM"), None).await;
    assert_eq!(status, 201, "{body}");
    let order = &body["order"];
    // Same arithmetic as the quote test: 393.36 − 59.00 = 334.36, then 8.25 % tax = 27.58.
    assert_eq!(order["subtotal_cents"], 39336);
    assert_eq!(order["discount_cents"], 5900);
    assert_eq!(order["tax_cents"], 2758);
    assert_eq!(order["total_cents"], 33436 + 2758);
    assert_eq!(order["payment_status"], "pending");
    assert_eq!(order["email"], "guest@example.com");
    let number = order["order_number"].as_str().unwrap();
    assert!(number.len() == 15 && number.starts_with("ST-"), "{number}");
    assert_eq!(body["payment"]["provider"], "local");
    assert_eq!(body["payment"]["amount_cents"], 33436 + 2758);
    assert!(body["payment"]["client_secret"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(body["order_token"].as_str().is_some());

    let db = app.db.client().await;
    let row = db
        .query_one(
            "SELECT o.payment_intent_id, c.email, (SELECT count(*) FROM order_items i WHERE i.order_id = o.id), \
               (SELECT count(*) FROM order_status_history h WHERE h.order_id = o.id) \
             FROM orders o JOIN customers c ON c.id = o.customer_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), body["payment"]["intent_id"].as_str());
    assert_eq!(row.get::<_, String>(1), "guest@example.com");
    assert_eq!((row.get::<_, i64>(2), row.get::<_, i64>(3)), (1, 1));
    app.stop().await;
}

#[tokio::test]
async fn prices_in_the_body_are_refused_not_trusted() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let mut priced_line = cart(&tee, json!(1), "a@example.com");
    priced_line["items"][0]["unit_price_cents"] = json!(1);
    let mut priced_order = cart(&tee, json!(1), "a@example.com");
    priced_order["total_cents"] = json!(1);
    for (body, field) in [(priced_line, "items[0].unit_price_cents"), (priced_order, "total_cents")] {
        let r = app.http.post(app.url("/api/orders")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(error_parts(r).await, ("invalid_json".into(), Some(field.into())));
    }
    let orders: i64 = app.scalar("SELECT count(*) FROM orders").await;
    assert_eq!(orders, 0);
    app.stop().await;
}

#[tokio::test]
async fn impossible_carts_are_422_and_write_nothing() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases = [
        (cart(&tee, json!(0), "a@example.com"), "invalid_quantity", "items[0].quantity"),
        (cart(&tee, json!(-3), "a@example.com"), "invalid_quantity", "items[0].quantity"),
        (cart(&tee, json!(1_000_000), "a@example.com"), "invalid_quantity", "items[0].quantity"),
        (cart(&unknown, json!(1), "a@example.com"), "unknown_variant", "items[0].variant_id"),
        (cart("1; DROP TABLE orders", json!(1), "a@example.com"), "invalid_variant_id", "items[0].variant_id"),
        (cart(&tee, json!(1), "not an email"), "invalid_email", "email"),
    ];
    for (body, code, field) in cases {
        let r = app.http.post(app.url("/api/orders")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 422, "{code}");
        assert_eq!(error_parts(r).await, (code.into(), Some(field.into())));
    }
    let huge = json!(99999999999999999999u128.to_string().parse::<f64>().unwrap());
    let r = app.http.post(app.url("/api/orders")).json(&cart(&tee, huge, "a@example.com")).send().await.unwrap();
    assert_eq!(r.status(), 400, "a quantity beyond i64 is a type error");
    let orders: i64 = app.scalar("SELECT count(*) FROM orders").await;
    let customers: i64 = app.scalar("SELECT count(*) FROM customers").await;
    assert_eq!((orders, customers), (0, 0));
    app.stop().await;
}

#[tokio::test]
async fn concurrent_submissions_with_one_idempotency_key_make_one_order() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-WHT-L").await;
    let body = cart(&tee, json!(3), "racer@example.com");
    let key = uuid::Uuid::new_v4().to_string();
    // Sixteen submissions in flight at once, each on its own task (and connection).
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (http, url, body, key) = (app.http.clone(), app.url("/api/orders"), body.clone(), key.clone());
            tokio::spawn(async move {
                let r = http.post(url).header("idempotency-key", key).json(&body).send().await.unwrap();
                (r.status(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let replayed = results.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 15), "{results:?}");
    let ids: std::collections::HashSet<&str> =
        results.iter().map(|(_, b)| b["order"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1);
    let intents: std::collections::HashSet<&str> =
        results.iter().map(|(_, b)| b["payment"]["intent_id"].as_str().unwrap()).collect();
    assert_eq!(intents.len(), 1, "one PaymentIntent too");
    let orders: i64 = app.scalar("SELECT count(*) FROM orders").await;
    assert_eq!(orders, 1);

    // The same key with another cart is refused; without a key a second order is a new order.
    let (status, body2) = app.place_order(&cart(&tee, json!(4), "racer@example.com"), Some(&key)).await;
    assert_eq!((status.as_u16(), body2["error"]["code"].as_str()), (422, Some("idempotency_key_reused")));
    let (status, _) = app.place_order(&body, None).await;
    assert_eq!(status, 201);
    app.stop().await;
}

#[tokio::test]
async fn an_order_is_visible_to_its_owner_its_guest_token_and_staff_only() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-S").await;
    let (_, owner) = app.register("owner@example.com").await;
    let (_, stranger) = app.register("stranger@example.com").await;
    let staff = app.staff("packer@example.com", "fulfillment").await;

    let r = app
        .http
        .post(app.url("/api/orders"))
        .bearer_auth(&owner)
        .json(&cart(&tee, json!(1), "owner@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let placed: Value = r.json().await.unwrap();
    let id = placed["order"]["id"].as_str().unwrap();
    let number = placed["order"]["order_number"].as_str().unwrap();

    assert_eq!(app.get_as(&format!("/api/orders/{id}"), &owner).await.status(), 200);
    assert_eq!(app.get_as(&format!("/api/orders/{}", number.to_lowercase()), &owner).await.status(), 200);
    assert_eq!(app.get_as(&format!("/api/orders/{id}"), &staff).await.status(), 200);
    let r = app.get_as(&format!("/api/orders/{id}"), &stranger).await;
    assert_eq!(r.status(), 404, "someone else's order does not exist for them");
    assert_eq!(error_parts(r).await.0, "not_found");
    assert_eq!(app.get(&format!("/api/orders/{id}")).await.status(), 404);

    // A guest order: its token opens it, a token for another order does not.
    let (_, guest) = app.place_order(&cart(&tee, json!(2), "guest@example.com"), None).await;
    let guest_id = guest["order"]["id"].as_str().unwrap();
    let guest_token = guest["order_token"].as_str().unwrap();
    let r = app.get_with_order_token(&format!("/api/orders/{guest_id}"), guest_token).await;
    assert_eq!(r.status(), 200);
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["items"][0]["quantity"], 2);
    assert_eq!(shown["history"][0]["new_status"], "pending");
    let other_token = placed["order_token"].as_str().unwrap();
    assert_eq!(app.get_with_order_token(&format!("/api/orders/{guest_id}"), other_token).await.status(), 404);
    assert_eq!(app.get_with_order_token(&format!("/api/orders/{guest_id}"), "forged").await.status(), 404);
    assert_eq!(app.get("/api/orders/ST-000000-22222").await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn hostile_strings_are_stored_verbatim() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let evil = "Robert'); DROP TABLE orders;-- \" \\ % _ $1 ${x} 🐍 Zoë 漢字";
    let mut body = cart(&tee, json!(1), "o'brien+x@example.com");
    body["name"] = json!(evil);
    body["notes"] = json!(evil);
    for field in ["name", "line1", "city", "state"] {
        body["shipping_address"][field] = json!(format!("{field}: {evil}"));
    }
    body["shipping_address"]["postal_code"] = json!("7'; --%_🐍");
    body["shipping_address"]["line2"] = json!(evil);
    let (status, placed) = app.place_order(&body, Some("key with 'quotes'; --")).await;
    assert_eq!(status, 201, "{placed}");
    let db = app.db.client().await;
    let row = db
        .query_one("SELECT o.notes, o.shipping_address, c.name, c.email, o.idempotency_key FROM orders o JOIN customers c ON c.id = o.customer_id", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), evil);
    let address: Value = row.get(1);
    assert_eq!(address["line2"], evil);
    assert_eq!(address["city"], format!("city: {evil}"));
    assert_eq!(address["postal_code"], "7'; --%_🐍");
    assert_eq!(row.get::<_, String>(2), evil);
    assert_eq!(row.get::<_, String>(3), "o'brien+x@example.com");
    assert_eq!(row.get::<_, String>(4), "key with 'quotes'; --");
    let tables: i64 = app.scalar("SELECT count(*) FROM orders").await;
    assert_eq!(tables, 1);
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let mut body = cart(&tee, json!(1), "a@example.com");
    body["notes"] = json!("x".repeat(100 * 1024));
    let r = app.http.post(app.url("/api/orders")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_parts(r).await.0, "payload_too_large");
    let r = app
        .http
        .post(app.url("/api/webhooks/stripe"))
        .header("stripe-signature", "t=1,v1=00")
        .body(vec![b'{'; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_parts(r).await.0, "payload_too_large");
    app.stop().await;
}

#[tokio::test]
async fn tax_is_calculated_for_a_cart_without_an_order() {
    let app = TestApp::spawn_with(&[("LOCAL_TAX_RATE_BP", "1000")]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let r = app.post_json("/api/orders/calculate-tax", &cart(&tee, json!(24), "a@example.com")).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["totals"]["tax_cents"], 3344, "10 % of 334.36, rounded");
    assert_eq!(body["totals"]["total_cents"], 33436 + 3344);
    let orders: i64 = app.scalar("SELECT count(*) FROM orders").await;
    assert_eq!(orders, 0);
    app.stop().await;
}

#[tokio::test]
async fn with_stripe_configured_the_order_uses_stripe_tax_and_a_stripe_intent() {
    let stripe = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/tax/calculations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "taxcalc_test1", "object": "tax.calculation", "amount_total": 1499 + 500 + 124,
            "currency": "usd", "tax_amount_exclusive": 124, "tax_amount_inclusive": 0, "expires_at": 1_900_000_000
        })))
        .expect(1)
        .mount(&stripe)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(move |req: &wiremock::Request| {
            let form: Vec<(String, String)> = url_form(&req.body);
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
            ResponseTemplate::new(200).set_body_json(json!({
                "id": "pi_test_1", "object": "payment_intent", "amount": get("amount").parse::<i64>().unwrap(),
                "amount_received": 0, "currency": "usd", "status": "requires_payment_method",
                "client_secret": "pi_test_1_secret_abc",
                "metadata": {"order_id": get("metadata[order_id]"), "order_number": get("metadata[order_number]")}
            }))
        })
        .expect(1)
        .mount(&stripe)
        .await;
    let app = TestApp::spawn_with(&[
        ("STRIPE_SECRET_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_test_secret"),
        ("STRIPE_API_BASE", &stripe.uri()),
    ])
    .await;
    let hoodie = app.variant_id("ST-HOOD-BLK-2XL").await;
    let mut body = cart(&hoodie, json!(1), "s@example.com");
    body["items"][0]["decoration"] =
        json!({"method": "embroidery", "placements": [{"location": "front", "stitches": 7500}]});
    let (status, placed) = app.place_order(&body, None).await;
    assert_eq!(status, 201, "{placed}");
    // 39.99 + 6.00 + 8 × 0.90 = 53.19, plus Stripe's 1.24 tax.
    assert_eq!(placed["order"]["tax_cents"], 124);
    assert_eq!(placed["order"]["total_cents"], 5319 + 124);
    assert_eq!(placed["payment"]["provider"], "stripe");
    assert_eq!(placed["payment"]["client_secret"], "pi_test_1_secret_abc");
    let requests = stripe.received_requests().await.unwrap();
    let intent = requests.iter().find(|r| r.url.path() == "/v1/payment_intents").unwrap();
    let form = url_form(&intent.body);
    assert!(form.contains(&("amount".into(), (5319 + 124).to_string())));
    assert!(form.contains(&("metadata[order_id]".into(), placed["order"]["id"].as_str().unwrap().to_owned())));
    let key = intent.headers.get("idempotency-key").unwrap().to_str().unwrap();
    assert_eq!(key, format!("order-{}-intent", placed["order"]["id"].as_str().unwrap()));
    // No dev confirmation route with real Stripe.
    assert_eq!(app.http.post(app.url("/api/dev/payments/pi_test_1/confirm")).send().await.unwrap().status(), 404);

    // Stripe's webhook, signed with the endpoint secret, marks the order paid.
    let order_id: uuid::Uuid = placed["order"]["id"].as_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let object =
        payments::fixtures::IntentObject::succeeded("pi_test_1", order_id, payments::Cents::new(5319 + 124)).to_json();
    let payload = payments::fixtures::event_payload("evt_stripe_1", "payment_intent.succeeded", now, false, object);
    let signature = payments::sign(&payload, &payments::WebhookSecret::parse("whsec_test_secret").unwrap(), now);
    let r = app
        .http
        .post(app.url("/api/webhooks/stripe"))
        .header("stripe-signature", signature)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status: String = app.scalar("SELECT payment_status FROM orders").await;
    assert_eq!(status, "paid");
    app.stop().await;
}

/// Decodes `application/x-www-form-urlencoded` (enough for Stripe's bodies).
pub fn url_form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| percent_decode(&s.replace('+', " "));
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn idempotency_keys_belong_to_their_sender() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let (_, ann) = app.register("ann@example.com").await;
    let (_, bob) = app.register("bob@example.com").await;
    let key = "shared-key-1";
    let mut ids = Vec::new();
    for (token, email) in [(&ann, "ann@example.com"), (&bob, "bob@example.com")] {
        let r = app
            .http
            .post(app.url("/api/orders"))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&cart(&tee, json!(1), email))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{email}: a key another sender used is not theirs");
        ids.push(r.json::<Value>().await.unwrap()["order"]["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1]);
    // A guest using the same key and Ann's address is a different sender from Ann's account.
    let (status, _) = app.place_order(&cart(&tee, json!(1), "ann@example.com"), Some(key)).await;
    assert_eq!(status, 201);
    // A broken token is an error, not a guest checkout.
    let r = app
        .http
        .post(app.url("/api/orders"))
        .bearer_auth("forged")
        .json(&cart(&tee, json!(1), "x@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

impl TestApp {
    /// GET with a guest's order token in the `X-Order-Token` header.
    pub async fn get_with_order_token(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).header("x-order-token", token).send().await.expect("request sent")
    }
}

#[tokio::test]
async fn a_guest_order_token_travels_in_a_header_never_in_the_url() {
    let app = TestApp::spawn().await;
    let tee = app.variant_id("ST-TEE-BLK-S").await;
    let (_, placed) = app.place_order(&cart(&tee, json!(1), "guest@example.com"), None).await;
    let id = placed["order"]["id"].as_str().unwrap();
    let token = placed["order_token"].as_str().unwrap();
    let expires: time::OffsetDateTime = time::OffsetDateTime::parse(
        placed["order_token_expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_days = (expires - time::OffsetDateTime::now_utc()).whole_days();
    assert!((29..=30).contains(&in_days), "30 days by default, got {in_days}");

    assert_eq!(app.get_with_order_token(&format!("/api/orders/{id}"), token).await.status(), 200);
    // The same, valid token in the query string is refused: URLs end up in logs and Referers.
    let r = app.get(&format!("/api/orders/{id}?token={token}")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(error_parts(r).await, ("order_token_in_query".into(), Some("token".into())));
    let r = app.http.get(app.url(&format!("/api/orders/{id}?token=x"))).header("x-order-token", token).send().await;
    assert_eq!(r.unwrap().status(), 400, "even beside a good header");
    app.stop().await;
}

#[tokio::test]
async fn a_guest_order_token_expires_and_cannot_be_extended() {
    let secret = "order-token-secret-for-the-expiry-test-0123456789";
    let app = TestApp::spawn_with(&[("ORDER_TOKEN_SECRET", secret)]).await;
    let tee = app.variant_id("ST-TEE-BLK-S").await;
    let (_, placed) = app.place_order(&cart(&tee, json!(1), "guest@example.com"), Some("k-expiry")).await;
    let id = placed["order"]["id"].as_str().unwrap();
    let order: domain::OrderId = id.parse().unwrap();
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(31 * 86_400);
    let old = api::order_token::issue(secret.as_bytes(), order, std::time::Duration::from_secs(30 * 86_400), month_ago);

    let r = app.get_with_order_token(&format!("/api/orders/{id}"), &old.token).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_parts(r).await.0, "order_token_expired");
    // Its signature covers the expiry: moving it out makes a token for nothing.
    let tag = old.token.rsplit('.').next().unwrap();
    let stretched = format!("ot2.{}.{tag}", old.expires_at + 365 * 86_400);
    assert_eq!(app.get_with_order_token(&format!("/api/orders/{id}"), &stretched).await.status(), 404);
    // A token of the earlier, never-expiring form opens nothing.
    let bare = {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(b"stolentee-order-token:");
        mac.update(order.as_uuid().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    };
    assert_eq!(app.get_with_order_token(&format!("/api/orders/{id}"), &bare).await.status(), 404);
    // Placing the order again with its key hands out a fresh token for the same order.
    let (status, again) = app.place_order(&cart(&tee, json!(1), "guest@example.com"), Some("k-expiry")).await;
    assert_eq!((status.as_u16(), again["order"]["id"].as_str()), (200, Some(id)));
    let fresh = again["order_token"].as_str().unwrap();
    assert_eq!(app.get_with_order_token(&format!("/api/orders/{id}"), fresh).await.status(), 200);
    app.stop().await;
}
