//! Checkout against a Stripe stand-in that forgets idempotency keys, as Stripe does after a
//! day: a late replay must never make a second PaymentIntent, and whatever reaches Stripe on
//! a guest's behalf is limited and, for tax, reused.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, cart, error_parts};
use crate::stripe_stand_in::StripeStandIn;

/// An app on Stripe (the stand-in, 8.25 % tax) with `extra` settings.
async fn app_on_stand_in(extra: &[(&str, &str)]) -> (TestApp, StripeStandIn) {
    let stripe = StripeStandIn::start(825).await;
    let env = stripe.app_env();
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend_from_slice(extra);
    (TestApp::spawn_with(&pairs).await, stripe)
}

/// POST /api/orders with an idempotency key, from `ip`.
async fn place(app: &TestApp, body: &Value, key: &str, ip: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/orders"))
        .header("idempotency-key", key)
        .header("x-client-ip", ip)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn tax(app: &TestApp, body: &Value, ip: &str) -> reqwest::Response {
    app.http.post(app.url("/api/orders/calculate-tax")).header("x-client-ip", ip).json(body).send().await.unwrap()
}

async fn payment_status(app: &TestApp, order: &str) -> String {
    app.scalar(&format!("SELECT payment_status FROM orders WHERE id = '{order}'")).await
}

/// The drill: order, failed payment, Stripe forgets the keys, replay, pay — the order is
/// paid and exactly one intent is live.
#[tokio::test]
async fn stripe_time_travel_a_next_day_replay_reuses_the_intent_and_the_payment_lands() {
    let (app, stripe) = app_on_stand_in(&[]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let body = cart(&tee, json!(24), "traveller@example.com");
    let key = uuid::Uuid::new_v4().to_string();

    // Day one: the order, and a declined card.
    let first = place(&app, &body, &key, "198.51.100.10").await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let order = first["order"]["id"].as_str().unwrap().to_owned();
    let intent = first["payment"]["intent_id"].as_str().unwrap().to_owned();
    let declined = stripe.decline(first["payment"]["client_secret"].as_str().unwrap());
    assert_eq!(stripe.deliver(&app.http, &app.url(""), &declined).await["outcome"], "applied");
    assert_eq!(payment_status(&app, &order).await, "failed");

    // Day two: Stripe no longer knows the key; the customer comes back and retries.
    stripe.travel(Duration::from_secs(25 * 3600));
    let replay = place(&app, &body, &key, "198.51.100.10").await;
    assert_eq!(replay.status(), 200, "a replay, not a new order");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["order"]["id"], order.as_str());
    assert_eq!(replay["payment"]["intent_id"], intent.as_str(), "the recorded intent, retrieved");
    assert_eq!(replay["payment"]["status"], "requires_payment_method");
    assert_eq!(stripe.calls("POST /v1/payment_intents"), 1, "no second create with a forgotten key");
    assert_eq!(stripe.calls("GET /v1/payment_intents"), 1);

    // The customer pays with what the replay handed out.
    let paid = stripe.pay(replay["payment"]["client_secret"].as_str().unwrap());
    let result = stripe.deliver(&app.http, &app.url(""), &paid).await;
    assert_eq!((result["outcome"].as_str(), result["payment_status"].as_str()), (Some("applied"), Some("paid")));
    assert_eq!(payment_status(&app, &order).await, "paid");
    let live: Vec<String> = stripe.live_intents_for(&order).into_iter().map(|i| i.id).collect();
    assert_eq!(live, std::slice::from_ref(&intent), "one intent is live, and it is the paid one");

    // A replay of the paid order shows it without asking Stripe anything.
    let after = place(&app, &body, &key, "198.51.100.10").await;
    assert_eq!(after.status(), 200);
    assert_eq!(after.json::<Value>().await.unwrap()["payment"], Value::Null);
    assert_eq!(stripe.calls("GET /v1/payment_intents") + stripe.calls("POST /v1/payment_intents"), 2);
    app.stop().await;
    stripe.stop();
}

#[tokio::test]
async fn an_order_whose_intent_was_never_recorded_gets_one_and_keeps_it() {
    let (app, stripe) = app_on_stand_in(&[]).await;
    let tee = app.variant_id("ST-TEE-WHT-L").await;
    let body = cart(&tee, json!(3), "lost@example.com");
    let key = "lost-response-1";
    let first: Value = place(&app, &body, key, "198.51.100.11").await.json().await.unwrap();
    let order = first["order"]["id"].as_str().unwrap().to_owned();
    // As if the first request died between Stripe's answer and recording it, a day ago.
    app.sql(&format!("UPDATE orders SET payment_intent_id = NULL WHERE id = '{order}'")).await;
    stripe.travel(Duration::from_secs(30 * 3600));

    let replay: Value = place(&app, &body, key, "198.51.100.11").await.json().await.unwrap();
    let second = replay["payment"]["intent_id"].as_str().unwrap().to_owned();
    assert_ne!(second, first["payment"]["intent_id"].as_str().unwrap(), "the forgotten key made a new intent");
    let recorded: String = app.scalar(&format!("SELECT payment_intent_id FROM orders WHERE id = '{order}'")).await;
    assert_eq!(recorded, second, "and it is recorded at once");
    for _ in 0..2 {
        let again: Value = place(&app, &body, key, "198.51.100.11").await.json().await.unwrap();
        assert_eq!(again["payment"]["intent_id"], second.as_str(), "later replays retrieve it");
    }
    assert_eq!(stripe.calls("POST /v1/payment_intents"), 2);

    // The customer pays the one they were given last; the order is paid.
    let paid = stripe.pay(replay["payment"]["client_secret"].as_str().unwrap());
    assert_eq!(stripe.deliver(&app.http, &app.url(""), &paid).await["outcome"], "applied");
    assert_eq!(payment_status(&app, &order).await, "paid");
    app.stop().await;
    stripe.stop();
}

#[tokio::test]
async fn one_cart_to_one_address_is_one_tax_calculation() {
    let (app, stripe) = app_on_stand_in(&[]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let body = cart(&tee, json!(24), "quoter@example.com");
    let first: Value = tax(&app, &body, "198.51.100.20").await.json().await.unwrap();
    assert_eq!(first["totals"]["tax_cents"], 2758, "8.25 % of 334.36, rounded");
    // Another visitor, the same cart and address: the same answer, not another calculation.
    let second: Value = tax(&app, &body, "198.51.100.21").await.json().await.unwrap();
    assert_eq!(second["tax_calculation_id"], first["tax_calculation_id"]);
    assert_eq!(second["totals"], first["totals"]);
    assert_eq!(stripe.calls("POST /v1/tax/calculations"), 1);

    // Placing the order reuses it too; another address is another question.
    let placed: Value = place(&app, &body, "k-tax-1", "198.51.100.20").await.json().await.unwrap();
    assert_eq!(placed["order"]["tax_cents"], 2758);
    assert_eq!(stripe.calls("POST /v1/tax/calculations"), 1);
    let mut elsewhere = body.clone();
    elsewhere["shipping_address"]["postal_code"] = json!("78702");
    assert_eq!(tax(&app, &elsewhere, "198.51.100.20").await.status(), 200);
    assert_eq!(stripe.calls("POST /v1/tax/calculations"), 2);

    // Expired answers are asked again.
    app.sql("UPDATE tax_quotes SET expires_at = now() - interval '1 second'").await;
    assert_eq!(tax(&app, &body, "198.51.100.20").await.status(), 200);
    assert_eq!(stripe.calls("POST /v1/tax/calculations"), 3);
    app.stop().await;
    stripe.stop();
}

#[tokio::test]
async fn a_client_over_its_limit_is_refused_before_stripe_is_called() {
    let (app, stripe) = app_on_stand_in(&[("PAYMENT_CALLS_PER_IP", "3")]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let quantity_cart = |q: i64| cart(&tee, json!(q), "script@example.com");
    for q in 1..=3 {
        assert_eq!(tax(&app, &quantity_cart(q), "203.0.113.7").await.status(), 200, "call {q}");
    }
    let refused = tax(&app, &quantity_cart(4), "203.0.113.7").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    assert_eq!(error_parts(refused).await.0, "payment_rate_limited");
    let placing = place(&app, &quantity_cart(5), "k-script", "203.0.113.7").await;
    assert_eq!(placing.status(), 429, "an order is a Stripe call too");
    assert_eq!(stripe.calls("POST /v1/tax/calculations"), 3, "nothing past the limit reached Stripe");
    let orders: i64 = app.scalar("SELECT count(*) FROM orders").await;
    assert_eq!(orders, 0, "a refused order is not half-placed");

    // An answer already known costs nothing; another client has its own allowance.
    assert_eq!(tax(&app, &quantity_cart(2), "203.0.113.7").await.status(), 200);
    assert_eq!(tax(&app, &quantity_cart(4), "203.0.113.8").await.status(), 200);
    // The window is shared through Postgres: every instance sees the same count.
    let counted: i32 = app.scalar("SELECT calls FROM payment_call_counts WHERE bucket = 'ip:203.0.113.7'").await;
    assert_eq!(counted, 5, "refused calls count too");
    app.stop().await;
    stripe.stop();
}

#[tokio::test]
async fn replays_of_one_order_are_limited_from_any_address() {
    let (app, stripe) = app_on_stand_in(&[("PAYMENT_CALLS_PER_ORDER", "2")]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let body = cart(&tee, json!(2), "replayer@example.com");
    assert_eq!(place(&app, &body, "k-replay", "192.0.2.1").await.status(), 201);
    for ip in ["192.0.2.2", "192.0.2.3"] {
        assert_eq!(place(&app, &body, "k-replay", ip).await.status(), 200, "{ip}");
    }
    let refused = place(&app, &body, "k-replay", "192.0.2.4").await;
    assert_eq!(refused.status(), 429);
    assert_eq!(error_parts(refused).await.0, "payment_rate_limited");
    assert_eq!(stripe.calls("GET /v1/payment_intents"), 2);
    // Other orders are not held back by this one.
    let other = cart(&tee, json!(3), "replayer@example.com");
    assert_eq!(place(&app, &other, "k-other", "192.0.2.4").await.status(), 201);
    app.stop().await;
    stripe.stop();
}

#[tokio::test]
async fn refunds_and_disputes_from_stripe_land_on_the_order() {
    let (app, stripe) = app_on_stand_in(&[]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let placed: Value = place(&app, &cart(&tee, json!(2), "refunds@example.com"), "k-refund", "198.51.100.30")
        .await
        .json()
        .await
        .unwrap();
    let order = placed["order"]["id"].as_str().unwrap().to_owned();
    let intent = placed["payment"]["intent_id"].as_str().unwrap().to_owned();
    let total = placed["order"]["total_cents"].as_i64().unwrap();
    let paid = stripe.pay(placed["payment"]["client_secret"].as_str().unwrap());
    assert_eq!(stripe.deliver(&app.http, &app.url(""), &paid).await["outcome"], "applied");

    for (refund, running_total) in [(500, 500), (700, 1200)] {
        let refunded = stripe.refund(&intent, refund);
        assert_eq!(stripe.deliver(&app.http, &app.url(""), &refunded).await["outcome"], "applied");
        let on_order: i64 = app.scalar(&format!("SELECT refunded_cents FROM orders WHERE id = '{order}'")).await;
        assert_eq!(on_order, running_total);
    }
    assert_eq!(stripe.intents()[0].amount_refunded, 1200);
    assert_eq!(payment_status(&app, &order).await, "paid", "partly refunded is still paid");

    let opened = stripe.dispute(&intent, "created", "needs_response");
    assert_eq!(stripe.deliver(&app.http, &app.url(""), &opened).await["outcome"], "applied");
    let dispute: String = app.scalar(&format!("SELECT dispute_status FROM orders WHERE id = '{order}'")).await;
    assert_eq!(dispute, "needs_response");

    let rest = stripe.refund(&intent, total);
    assert_eq!(stripe.deliver(&app.http, &app.url(""), &rest).await["payment_status"], "refunded");
    let on_order: i64 = app.scalar(&format!("SELECT refunded_cents FROM orders WHERE id = '{order}'")).await;
    assert_eq!(on_order, total);
    app.stop().await;
    stripe.stop();
}
