//! Stripe webhooks: signed on the raw body, applied once, in the only order that makes sense.

use std::time::{SystemTime, UNIX_EPOCH};

use payments::fixtures::{IntentObject, event_payload, refunded_charge};
use payments::{Cents, Currency, WebhookSecret, sign};
use serde_json::{Value, json};

use crate::helpers::{TestApp, cart, error_parts};

const SECRET: &str = "whsec_test_local_secret_for_webhook_tests";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An app with a known local signing secret and one placed order: (app, order id, intent id, total).
async fn app_with_order() -> (TestApp, String, String, i64) {
    let app = TestApp::spawn_with(&[("LOCAL_WEBHOOK_SECRET", SECRET)]).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let (status, placed) = app.place_order(&cart(&tee, json!(2), "buyer@example.com"), None).await;
    assert_eq!(status, 201);
    let order = placed["order"]["id"].as_str().unwrap().to_owned();
    let intent = placed["payment"]["intent_id"].as_str().unwrap().to_owned();
    let total = placed["order"]["total_cents"].as_i64().unwrap();
    (app, order, intent, total)
}

fn succeeded(intent: &str, order: &str, amount: i64) -> Value {
    IntentObject::succeeded(intent, order.parse().unwrap(), Cents::new(amount)).to_json()
}

fn failed(intent: &str, order: &str, amount: i64) -> Value {
    IntentObject::failed(intent, order.parse().unwrap(), Cents::new(amount)).to_json()
}

fn refunded(intent: &str, amount: i64) -> Value {
    refunded_charge("ch_test_1", intent, Cents::new(amount), Cents::new(amount), &Currency::usd())
}

/// Delivers an event signed with `secret` at `timestamp`.
async fn deliver_signed(
    app: &TestApp,
    id: &str,
    kind: &str,
    object: Value,
    secret: &str,
    timestamp: i64,
) -> reqwest::Response {
    let payload = event_payload(id, kind, timestamp, false, object);
    let header = sign(&payload, &WebhookSecret::parse(secret).unwrap(), timestamp);
    app.http
        .post(app.url("/api/webhooks/stripe"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap()
}

async fn deliver(app: &TestApp, id: &str, kind: &str, object: Value) -> Value {
    let r = deliver_signed(app, id, kind, object, SECRET, now()).await;
    assert_eq!(r.status(), 200, "{id}");
    r.json::<Value>().await.unwrap()["result"].clone()
}

async fn payment_status(app: &TestApp) -> String {
    app.scalar("SELECT payment_status FROM orders").await
}

#[tokio::test]
async fn make_dev_confirms_a_payment_through_the_real_webhook_path() {
    let app = TestApp::spawn().await; // random local secret: only the process itself can sign
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let (_, placed) = app.place_order(&cart(&tee, json!(1), "dev@example.com"), None).await;
    let intent = placed["payment"]["intent_id"].as_str().unwrap();
    let r = app.http.post(app.url(&format!("/api/dev/payments/{intent}/confirm"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["outcome"], "applied");
    assert_eq!(payment_status(&app).await, "paid");
    let recorded: i64 = app.scalar("SELECT count(*) FROM processed_events WHERE outcome = 'applied'").await;
    assert_eq!(recorded, 1);
    let r = app.http.post(app.url(&format!("/api/dev/payments/{intent}/refund"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(payment_status(&app).await, "refunded");
    assert_eq!(app.http.post(app.url("/api/dev/payments/pi_nope/confirm")).send().await.unwrap().status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_success_marks_the_order_paid_once() {
    let (app, order, intent, total) = app_with_order().await;
    let first = deliver(&app, "evt_1", "payment_intent.succeeded", succeeded(&intent, &order, total)).await;
    assert_eq!(first["outcome"], "applied");
    assert_eq!(payment_status(&app).await, "paid");
    let replay = deliver(&app, "evt_1", "payment_intent.succeeded", succeeded(&intent, &order, total)).await;
    assert_eq!(replay["outcome"], "duplicate", "a replayed event id changes nothing");
    let history: i64 = app.scalar("SELECT count(*) FROM order_status_history WHERE kind = 'payment'").await;
    assert_eq!(history, 2, "placed + paid, not paid twice");
    app.stop().await;
}

#[tokio::test]
async fn bad_signatures_stale_timestamps_and_garbage_change_nothing() {
    let (app, order, intent, total) = app_with_order().await;
    let cases = [
        (
            deliver_signed(
                &app,
                "evt_a",
                "payment_intent.succeeded",
                succeeded(&intent, &order, total),
                "whsec_attacker_guess",
                now(),
            )
            .await,
            "signature_mismatch",
        ),
        (
            deliver_signed(
                &app,
                "evt_b",
                "payment_intent.succeeded",
                succeeded(&intent, &order, total),
                SECRET,
                now() - 301,
            )
            .await,
            "timestamp_out_of_tolerance",
        ),
        (
            deliver_signed(
                &app,
                "evt_c",
                "payment_intent.succeeded",
                succeeded(&intent, &order, total),
                SECRET,
                now() + 600,
            )
            .await,
            "timestamp_out_of_tolerance",
        ),
    ];
    for (r, code) in cases {
        assert_eq!(r.status(), 400);
        assert_eq!(error_parts(r).await.0, code);
    }
    // A valid signature over one body does not cover another.
    let payload = event_payload("evt_d", "payment_intent.succeeded", now(), false, succeeded(&intent, &order, 1));
    let header = sign(&payload, &WebhookSecret::parse(SECRET).unwrap(), now());
    let tampered = event_payload("evt_d", "payment_intent.succeeded", now(), false, succeeded(&intent, &order, total));
    let r = app
        .http
        .post(app.url("/api/webhooks/stripe"))
        .header("stripe-signature", header)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app.http.post(app.url("/api/webhooks/stripe")).body("{}").send().await.unwrap();
    assert_eq!((r.status().as_u16(), error_parts(r).await.0.as_str()), (400, "missing_signature"));

    assert_eq!(payment_status(&app).await, "pending");
    let events: i64 = app.scalar("SELECT count(*) FROM processed_events").await;
    assert_eq!(events, 0);
    app.stop().await;
}

#[tokio::test]
async fn events_arriving_out_of_order_never_move_the_payment_backwards() {
    let (app, order, intent, total) = app_with_order().await;
    assert_eq!(
        deliver(&app, "evt_f1", "payment_intent.payment_failed", failed(&intent, &order, total)).await["outcome"],
        "applied"
    );
    assert_eq!(payment_status(&app).await, "failed");
    // The customer retried with another card.
    assert_eq!(
        deliver(&app, "evt_s1", "payment_intent.succeeded", succeeded(&intent, &order, total)).await["outcome"],
        "applied"
    );
    // A late failure (sent before the success, delivered after) does not un-pay.
    assert_eq!(
        deliver(&app, "evt_f0", "payment_intent.payment_failed", failed(&intent, &order, total)).await["outcome"],
        "ignored"
    );
    assert_eq!(payment_status(&app).await, "paid");
    assert_eq!(deliver(&app, "evt_r1", "charge.refunded", refunded(&intent, total)).await["outcome"], "applied");
    assert_eq!(
        deliver(&app, "evt_s2", "payment_intent.succeeded", succeeded(&intent, &order, total)).await["outcome"],
        "ignored"
    );
    assert_eq!(payment_status(&app).await, "refunded");
    let refunded_at: Option<time::OffsetDateTime> = app.scalar("SELECT refunded_at FROM orders").await;
    assert!(refunded_at.is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_success_that_does_not_match_the_order_is_recorded_not_applied() {
    let (app, order, intent, total) = app_with_order().await;
    let other_order = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        deliver(&app, "evt_m1", "payment_intent.succeeded", succeeded(&intent, &order, total - 1)).await["outcome"],
        "rejected"
    );
    assert_eq!(
        deliver(&app, "evt_m2", "payment_intent.succeeded", succeeded(&intent, &other_order, total)).await["outcome"],
        "rejected"
    );
    assert_eq!(
        deliver(&app, "evt_m3", "payment_intent.succeeded", succeeded("pi_someone_else", &order, total)).await["outcome"],
        "unknown_order"
    );
    assert_eq!(payment_status(&app).await, "pending");
    let rejected: i64 =
        app.scalar("SELECT count(*) FROM processed_events WHERE outcome = 'rejected' AND detail IS NOT NULL").await;
    assert_eq!(rejected, 3);
    // Unknown event types are acknowledged so Stripe stops retrying them.
    assert_eq!(
        deliver(&app, "evt_o1", "customer.created", json!({"id": "cus_1", "object": "customer"})).await["outcome"],
        "unhandled"
    );
    app.stop().await;
}

#[tokio::test]
async fn concurrent_duplicate_deliveries_apply_once() {
    let (app, order, intent, total) = app_with_order().await;
    let payload =
        event_payload("evt_race", "payment_intent.succeeded", now(), false, succeeded(&intent, &order, total));
    let header = sign(&payload, &WebhookSecret::parse(SECRET).unwrap(), now());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (http, url, payload, header) =
                (app.http.clone(), app.url("/api/webhooks/stripe"), payload.clone(), header.clone());
            tokio::spawn(async move {
                let r = http.post(url).header("stripe-signature", header).body(payload).send().await.unwrap();
                r.json::<Value>().await.unwrap()["result"]["outcome"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| *o == "applied").count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "duplicate").count(), 7, "{outcomes:?}");
    let history: i64 = app.scalar("SELECT count(*) FROM order_status_history WHERE new_status = 'paid'").await;
    assert_eq!(history, 1);
    app.stop().await;
}
