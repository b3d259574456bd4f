//! Stripe webhooks: signed on the raw body, applied once, in the only order that makes sense.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use payments::fixtures::{IntentObject, dispute_object, event_payload, refunded_charge};
use payments::{Cents, Currency, WebhookSecret, sign};
use runtime::metrics::MemorySink;
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
    let r = app.http.post(app.url(&format!("/api/dev/payments/{intent}/dispute"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let dispute: Option<String> = app.scalar("SELECT dispute_status FROM orders").await;
    assert_eq!(dispute.as_deref(), Some("needs_response"));
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
    // An intent the shop did not make (no order in its metadata) pays nothing.
    let mut foreign = succeeded("pi_someone_else", &order, total);
    foreign["metadata"] = json!({});
    assert_eq!(deliver(&app, "evt_m3", "payment_intent.succeeded", foreign).await["outcome"], "unknown_order");
    assert_eq!(payment_status(&app).await, "pending");
    let rejected: i64 =
        app.scalar("SELECT count(*) FROM processed_events WHERE outcome = 'rejected' AND detail IS NOT NULL").await;
    assert_eq!(rejected, 2);
    let unmatched: i64 =
        app.scalar("SELECT count(*) FROM processed_events WHERE outcome = 'unmatched' AND detail IS NOT NULL").await;
    assert_eq!(unmatched, 1);
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

/// The EMF lines of `metric` an app wrote.
fn alerts(sink: &MemorySink, metric: &str) -> Vec<Value> {
    sink.lines().iter().map(|l| serde_json::from_str::<Value>(l).unwrap()).filter(|l| l.get(metric).is_some()).collect()
}

/// [`app_with_order`] with its metric lines captured.
async fn metered_app_with_order() -> (TestApp, Arc<MemorySink>, String, String, i64) {
    let sink = Arc::new(MemorySink::default());
    let app = TestApp::spawn_with_metrics(&[("LOCAL_WEBHOOK_SECRET", SECRET)], sink.clone()).await;
    let tee = app.variant_id("ST-TEE-BLK-M").await;
    let (status, placed) = app.place_order(&cart(&tee, json!(2), "buyer@example.com"), None).await;
    assert_eq!(status, 201);
    let order = placed["order"]["id"].as_str().unwrap().to_owned();
    let intent = placed["payment"]["intent_id"].as_str().unwrap().to_owned();
    (app, sink, order, intent, placed["order"]["total_cents"].as_i64().unwrap())
}

#[tokio::test]
async fn an_event_for_no_order_is_recorded_as_unmatched_and_alarmed() {
    let (app, sink, _, _, total) = metered_app_with_order().await;
    let nobody = uuid::Uuid::new_v4().to_string();
    let result = deliver(&app, "evt_u1", "payment_intent.succeeded", succeeded("pi_nobody", &nobody, total)).await;
    assert_eq!(result["outcome"], "unknown_order", "acknowledged: Stripe must not retry it for days");
    let (outcome, detail): (String, String) = {
        let row = app
            .db
            .client()
            .await
            .query_one("SELECT outcome, detail FROM processed_events WHERE event_id = 'evt_u1'", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(outcome, "unmatched");
    assert!(detail.contains("pi_nobody") && detail.contains(&nobody), "{detail}");
    let lines = alerts(&sink, "PaymentEventsUnmatched");
    assert_eq!(lines.len(), 1, "one alarm datapoint");
    assert_eq!((lines[0]["Reason"].as_str(), lines[0]["EventId"].as_str()), (Some("unknown_order"), Some("evt_u1")));
    assert_eq!(lines[0]["PaymentEventsUnmatched"], 1);
    // A redelivery is a duplicate: not counted twice.
    deliver(&app, "evt_u1", "payment_intent.succeeded", succeeded("pi_nobody", &nobody, total)).await;
    assert_eq!(alerts(&sink, "PaymentEventsUnmatched").len(), 1);
    assert_eq!(payment_status(&app).await, "pending");
    app.stop().await;
}

#[tokio::test]
async fn an_intent_the_order_never_recorded_is_found_by_its_metadata() {
    let (app, sink, order, intent, total) = metered_app_with_order().await;
    // The intent was created at Stripe, but recording it on the order failed.
    app.sql("UPDATE orders SET payment_intent_id = NULL").await;
    let result = deliver(&app, "evt_a1", "payment_intent.succeeded", succeeded(&intent, &order, total)).await;
    assert_eq!(result["outcome"], "applied");
    assert_eq!(payment_status(&app).await, "paid");
    let recorded: Option<String> = app.scalar("SELECT payment_intent_id FROM orders").await;
    assert_eq!(recorded.as_deref(), Some(intent.as_str()), "the intent is the order's now");
    assert!(alerts(&sink, "PaymentEventsUnmatched").is_empty(), "nothing to alarm about");
    app.stop().await;
}

#[tokio::test]
async fn a_payment_through_a_second_intent_pays_the_order_and_raises_the_alarm() {
    let (app, sink, order, intent, total) = metered_app_with_order().await;
    // A second intent for the order, as a create with a forgotten key made before this was fixed.
    let result = deliver(&app, "evt_s1", "payment_intent.succeeded", succeeded("pi_second", &order, total)).await;
    assert_eq!((result["outcome"].as_str(), result["payment_status"].as_str()), (Some("applied"), Some("paid")));
    assert_eq!(payment_status(&app).await, "paid", "the customer paid: the order is paid");
    let recorded: String = app.scalar("SELECT payment_intent_id FROM orders").await;
    assert_eq!(recorded, "pi_second", "refunds and disputes will name the paying intent");
    let lines = alerts(&sink, "PaymentEventsUnmatched");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["Reason"], "stray_intent");

    // If the first intent is paid as well, that is a double charge: alarmed, not applied.
    let result = deliver(&app, "evt_s2", "payment_intent.succeeded", succeeded(&intent, &order, total)).await;
    assert_eq!(result["outcome"], "ignored");
    assert_eq!(alerts(&sink, "PaymentEventsUnmatched").len(), 2);
    // A stray intent for the wrong amount still pays nothing.
    app.sql("UPDATE orders SET payment_status = 'pending'").await;
    let result = deliver(&app, "evt_s3", "payment_intent.succeeded", succeeded("pi_third", &order, total - 1)).await;
    assert_eq!(result["outcome"], "rejected");
    assert_eq!(payment_status(&app).await, "pending");
    app.stop().await;
}

/// Pays the order of [`app_with_order`] through its own intent.
async fn paid_order() -> (TestApp, Arc<MemorySink>, String, String, i64) {
    let (app, sink, order, intent, total) = metered_app_with_order().await;
    assert_eq!(
        deliver(&app, "evt_pay", "payment_intent.succeeded", succeeded(&intent, &order, total)).await["outcome"],
        "applied"
    );
    (app, sink, order, intent, total)
}

fn partly_refunded(intent: &str, amount: i64, refunded: i64) -> Value {
    refunded_charge("ch_test_1", intent, Cents::new(amount), Cents::new(refunded), &Currency::usd())
}

async fn order_json(app: &TestApp, order: &str, token: &str) -> Value {
    let r = app.http.get(app.url(&format!("/api/orders/{order}"))).header("x-order-token", token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()
}

async fn refund_state(app: &TestApp) -> (i64, String) {
    let row = app.db.client().await.query_one("SELECT refunded_cents, payment_status FROM orders", &[]).await.unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn partial_refunds_add_up_on_the_order_and_a_full_one_refunds_it() {
    let (app, _, _, intent, total) = paid_order().await;
    assert_eq!(
        deliver(&app, "evt_r1", "charge.refunded", partly_refunded(&intent, total, 1000)).await["outcome"],
        "applied"
    );
    assert_eq!(refund_state(&app).await, (1000, "paid".to_owned()), "a partial refund is on the order; it stays paid");
    assert_eq!(
        deliver(&app, "evt_r2", "charge.refunded", partly_refunded(&intent, total, 1500)).await["outcome"],
        "applied"
    );
    assert_eq!(refund_state(&app).await, (1500, "paid".to_owned()), "the charge's running total");
    // The first refund's event delivered again under another id, late: nothing goes backwards.
    assert_eq!(
        deliver(&app, "evt_r1b", "charge.refunded", partly_refunded(&intent, total, 1000)).await["outcome"],
        "ignored"
    );
    assert_eq!(refund_state(&app).await.0, 1500);
    assert_eq!(
        deliver(&app, "evt_r3", "charge.refunded", partly_refunded(&intent, total, total)).await["outcome"],
        "applied"
    );
    assert_eq!(refund_state(&app).await, (total, "refunded".to_owned()));
    let notes: Vec<String> = app
        .db
        .client()
        .await
        .query("SELECT notes FROM order_status_history WHERE kind = 'payment' ORDER BY created_at, id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(notes.len(), 5, "placed, paid, two partial refunds, the full refund: {notes:?}");
    assert!(notes[2].contains("partly refunded, 1000 of"), "{notes:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_dispute_is_recorded_on_the_order_alarmed_and_its_newest_state_wins() {
    let (app, sink, order, intent, total) = paid_order().await;
    let dispute = |status: &str| {
        dispute_object("dp_1", "ch_test_1", &intent, Cents::new(total), &Currency::usd(), status, "fraudulent")
    };
    let opened = deliver_at(&app, "evt_d1", "charge.dispute.created", dispute("needs_response"), now() - 60).await;
    assert_eq!(opened["outcome"], "applied");
    let alarms = alerts(&sink, "PaymentDisputes");
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0]["OrderId"], order.as_str());
    let closed = deliver_at(&app, "evt_d3", "charge.dispute.closed", dispute("won"), now() - 10).await;
    assert_eq!(closed["outcome"], "applied");
    // An update sent before the close, delivered after it, does not reopen it.
    let late = deliver_at(&app, "evt_d2", "charge.dispute.updated", dispute("under_review"), now() - 30).await;
    assert_eq!(late["outcome"], "ignored");

    let token = {
        let secret = app.app_state.auth.order_token_secret.clone();
        api::order_token::issue(&secret, order.parse().unwrap(), std::time::Duration::from_secs(600), SystemTime::now())
            .token
    };
    let shown = order_json(&app, &order, &token).await;
    assert_eq!(shown["order"]["dispute"]["status"], "won");
    assert_eq!(shown["order"]["dispute"]["amount_cents"], total);
    assert_eq!(shown["order"]["payment_status"], "paid", "a dispute does not rewrite the payment status");
    assert_eq!(alerts(&sink, "PaymentDisputes").len(), 1, "only an opened dispute pages");
    app.stop().await;
}

/// Delivers an event created at `created` (signed now).
async fn deliver_at(app: &TestApp, id: &str, kind: &str, object: Value, created: i64) -> Value {
    let payload = event_payload(id, kind, created, false, object);
    let header = sign(&payload, &WebhookSecret::parse(SECRET).unwrap(), now());
    let r = app
        .http
        .post(app.url("/api/webhooks/stripe"))
        .header("stripe-signature", header)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{id}");
    r.json::<Value>().await.unwrap()["result"].clone()
}
