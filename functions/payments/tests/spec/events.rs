//! Typed events: the ones the shop acts on (intent success and failure, refunds, disputes),
//! everything else as `Other`, and hostile JSON as an error rather than a panic.

use payments::{Cents, Currency, Event, EventKind, WebhookError};
use serde_json::{Value, json};
use uuid::Uuid;

const ORDER: &str = "6f1c0a52-2b7e-4f7e-9d0a-3f3b8f0d9a11";

fn event(event_type: &str, object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_3Q",
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_764_329_100,
        "livemode": true,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": event_type,
        "data": { "object": object, "previous_attributes": {} },
    }))
    .unwrap()
}

fn intent(extra: Value) -> Value {
    let mut object = json!({
        "id": "pi_3Q",
        "object": "payment_intent",
        "amount": 2598,
        "amount_received": 2598,
        "currency": "usd",
        "status": "succeeded",
        "metadata": { "order_id": ORDER, "order_number": "ST-20261128-0042", "unrelated": "x" },
        "payment_method_types": ["card"],
        "some_field_stripe_adds_later": { "deeply": ["nested", 1, null] },
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut object, extra) {
        base.extend(extra);
    }
    object
}

fn parse(body: &[u8]) -> Result<Event, WebhookError> {
    Event::parse(body)
}

#[test]
fn payment_intent_succeeded() {
    let event = parse(&event("payment_intent.succeeded", intent(json!({})))).unwrap();
    assert_eq!(event.id, "evt_3Q");
    assert_eq!(event.event_type, "payment_intent.succeeded");
    assert_eq!(event.created, 1_764_329_100);
    assert!(event.livemode);
    assert_eq!(
        event.kind,
        EventKind::PaymentIntentSucceeded {
            intent_id: "pi_3Q".into(),
            amount: Cents::new(2598),
            amount_received: Cents::new(2598),
            currency: Currency::usd(),
            order_id: Some(Uuid::parse_str(ORDER).unwrap()),
            order_number: Some("ST-20261128-0042".into()),
        }
    );
    assert_eq!(event.order_id(), Some(Uuid::parse_str(ORDER).unwrap()));
    assert_eq!(event.payment_intent_id(), Some("pi_3Q"));
}

#[test]
fn an_intent_without_our_metadata_has_no_order() {
    for metadata in [json!({}), json!({"order_id": "not-a-uuid"}), json!(null)] {
        let event = parse(&event("payment_intent.succeeded", intent(json!({ "metadata": metadata })))).unwrap();
        assert_eq!(event.order_id(), None);
    }
}

#[test]
fn payment_intent_payment_failed_carries_the_decline() {
    let object = intent(json!({
        "status": "requires_payment_method",
        "amount_received": 0,
        "last_payment_error": {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
        },
    }));
    let event = parse(&event("payment_intent.payment_failed", object)).unwrap();
    assert_eq!(
        event.kind,
        EventKind::PaymentIntentFailed {
            intent_id: "pi_3Q".into(),
            amount: Cents::new(2598),
            currency: Currency::usd(),
            order_id: Some(Uuid::parse_str(ORDER).unwrap()),
            order_number: Some("ST-20261128-0042".into()),
            failure_code: Some("card_declined".into()),
            decline_code: Some("insufficient_funds".into()),
            failure_message: Some("Your card has insufficient funds.".into()),
        }
    );
}

#[test]
fn payment_failed_without_an_error_object_still_parses() {
    let event = parse(&event("payment_intent.payment_failed", intent(json!({ "last_payment_error": null })))).unwrap();
    assert!(matches!(event.kind, EventKind::PaymentIntentFailed { failure_code: None, .. }));
}

#[test]
fn charge_refunded_full_and_partial() {
    let charge = |amount_refunded: i64, refunded: bool, payment_intent: Value| {
        json!({
            "id": "ch_3Q",
            "object": "charge",
            "amount": 2598,
            "amount_refunded": amount_refunded,
            "refunded": refunded,
            "currency": "usd",
            "payment_intent": payment_intent,
            "metadata": {},
        })
    };
    let full = parse(&event("charge.refunded", charge(2598, true, json!("pi_3Q")))).unwrap();
    assert_eq!(
        full.kind,
        EventKind::ChargeRefunded {
            charge_id: "ch_3Q".into(),
            payment_intent: Some("pi_3Q".into()),
            amount: Cents::new(2598),
            amount_refunded: Cents::new(2598),
            refunded: true,
            currency: Currency::usd(),
        }
    );
    assert_eq!(full.payment_intent_id(), Some("pi_3Q"));

    let partial = parse(&event("charge.refunded", charge(1000, false, json!({"id": "pi_3Q"})))).unwrap();
    assert!(matches!(
        partial.kind,
        EventKind::ChargeRefunded { refunded: false, amount_refunded, ref payment_intent, .. }
            if amount_refunded == Cents::new(1000) && payment_intent.as_deref() == Some("pi_3Q")
    ));

    let orphan = parse(&event("charge.refunded", charge(2598, true, Value::Null))).unwrap();
    assert_eq!(orphan.payment_intent_id(), None);
}

fn dispute(extra: Value) -> Value {
    let mut object = json!({
        "id": "dp_3Q",
        "object": "dispute",
        "amount": 2598,
        "charge": "ch_3Q",
        "currency": "usd",
        "payment_intent": "pi_3Q",
        "reason": "fraudulent",
        "status": "needs_response",
        "evidence": { "customer_name": null },
        "balance_transactions": [],
    });
    if let (Value::Object(base), Value::Object(extra)) = (&mut object, extra) {
        base.extend(extra);
    }
    object
}

#[test]
fn every_dispute_event_carries_the_dispute_and_its_intent() {
    for event_type in [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    ] {
        let event = parse(&event(event_type, dispute(json!({})))).unwrap();
        assert_eq!(
            event.kind,
            EventKind::ChargeDisputed {
                dispute_id: "dp_3Q".into(),
                charge_id: "ch_3Q".into(),
                payment_intent: Some("pi_3Q".into()),
                amount: Cents::new(2598),
                currency: Currency::usd(),
                status: "needs_response".into(),
                reason: Some("fraudulent".into()),
            },
            "{event_type}"
        );
        assert_eq!(event.payment_intent_id(), Some("pi_3Q"));
        assert_eq!(event.order_id(), None, "a dispute is found by its intent, not by metadata");
    }
    // Expanded objects, a partial amount, a status Stripe adds later, no reason.
    let expanded = dispute(json!({
        "charge": {"id": "ch_3Q", "object": "charge"},
        "payment_intent": {"id": "pi_3Q", "object": "payment_intent"},
        "amount": 1000,
        "status": "prevented",
        "reason": null,
    }));
    let closed = parse(&event("charge.dispute.closed", expanded)).unwrap();
    assert!(matches!(
        closed.kind,
        EventKind::ChargeDisputed { ref charge_id, ref status, reason: None, amount, .. }
            if charge_id == "ch_3Q" && status == "prevented" && amount == Cents::new(1000)
    ));
    let no_intent = parse(&event("charge.dispute.created", dispute(json!({"payment_intent": null})))).unwrap();
    assert_eq!(no_intent.payment_intent_id(), None);
}

#[test]
fn disputes_with_unusable_fields_are_malformed() {
    for extra in [
        json!({"status": "Needs Response"}),
        json!({"status": "x".repeat(65)}),
        json!({"status": 3}),
        json!({"reason": "<script>"}),
        json!({"amount": -1}),
        json!({"charge": null}),
        json!({"charge": {"object": "charge"}}),
        json!({"payment_intent": 7}),
    ] {
        let body = event("charge.dispute.created", dispute(extra.clone()));
        assert!(matches!(parse(&body), Err(WebhookError::MalformedPayload(_))), "{extra}");
    }
}

#[test]
fn unknown_types_are_other_and_their_objects_are_not_inspected() {
    for event_type in ["customer.created", "payment_intent.created", "charge.dispute_like", ""] {
        let parsed = parse(&event(event_type, json!({ "anything": [1, {"goes": true}] }))).unwrap();
        assert_eq!(parsed.kind, EventKind::Other(event_type.to_owned()));
    }
}

#[test]
fn wrong_types_in_fields_the_shop_uses_are_malformed() {
    let cases = [
        event("payment_intent.succeeded", intent(json!({ "amount": "2598" }))),
        event("payment_intent.succeeded", intent(json!({ "amount": 25.98 }))),
        event("payment_intent.succeeded", intent(json!({ "amount": -1 }))),
        event("payment_intent.succeeded", intent(json!({ "amount_received": -5 }))),
        event("payment_intent.succeeded", intent(json!({ "currency": "dollars" }))),
        event("payment_intent.succeeded", intent(json!({ "id": 7 }))),
        event("payment_intent.succeeded", intent(json!({ "metadata": { "order_id": 42 } }))),
        event("payment_intent.succeeded", json!("pi_3Q")),
        event("payment_intent.payment_failed", intent(json!({ "last_payment_error": "declined" }))),
        event("charge.refunded", json!({ "id": "ch_1", "amount": 1, "currency": "usd", "refunded": "yes" })),
        event("charge.refunded", json!({ "id": "ch_1", "amount": 1, "currency": "usd", "payment_intent": 5 })),
        br#"{"id":"evt_1","type":"payment_intent.succeeded","created":"yesterday","data":{"object":{}}}"#.to_vec(),
        br#"{"id":"","type":"x","created":1,"data":{"object":{}}}"#.to_vec(),
        br#"{"id":"evt_1","type":"x","created":1}"#.to_vec(),
    ];
    for body in cases {
        let error = parse(&body).unwrap_err();
        assert!(matches!(error, WebhookError::MalformedPayload(_)), "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn huge_numbers_are_malformed_not_wrapped() {
    for amount in ["9223372036854775808", "1e400", "-9223372036854775809", "99999999999999999999999999999"] {
        let body = format!(
            r#"{{"id":"evt_1","type":"payment_intent.succeeded","created":1,"livemode":false,
                "data":{{"object":{{"id":"pi_1","amount":{amount},"currency":"usd"}}}}}}"#
        );
        assert!(matches!(parse(body.as_bytes()), Err(WebhookError::MalformedPayload(_))), "{amount}");
    }
    let created = r#"{"id":"evt_1","type":"x","created":1e999,"data":{"object":{}}}"#;
    assert!(parse(created.as_bytes()).is_err());
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [200, 10_000, 100_000] {
        let object = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let body = format!(r#"{{"id":"evt_1","type":"customer.created","created":1,"data":{{"object":{object}}}}}"#);
        assert!(matches!(parse(body.as_bytes()), Err(WebhookError::MalformedPayload(_))), "{depth}");
        let nested_objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        assert!(parse(nested_objects.as_bytes()).is_err());
    }
}

#[test]
fn invalid_utf8_and_truncated_json_are_malformed() {
    let good = event("payment_intent.succeeded", intent(json!({})));
    for cut in [1, good.len() / 2, good.len() - 1] {
        assert!(matches!(parse(&good[..cut]), Err(WebhookError::MalformedPayload(_))));
    }
    let mut bad_utf8 = good.clone();
    let at = bad_utf8.iter().position(|&b| b == b'p').unwrap();
    bad_utf8[at] = 0xff;
    assert!(matches!(parse(&bad_utf8), Err(WebhookError::MalformedPayload(_))));
}
