//! The local provider: what `make dev` uses instead of Stripe. Its events go through the same
//! `verify` as Stripe's.

use std::time::SystemTime;

use payments::{
    BasisPoints, Cents, CreateIntent, Currency, EventKind, IntentStatus, LocalError, LocalPayments, Payments,
    StripeIdempotencyKey, TaxAddress, TaxLineItem, TaxRequest, WebhookError, WebhookSecret, verify,
};
use uuid::Uuid;

fn local() -> LocalPayments {
    LocalPayments::new(WebhookSecret::parse("whsec_local_test").unwrap(), BasisPoints::new(0))
}

fn request(order_id: Uuid, amount: i64) -> CreateIntent {
    CreateIntent {
        order_id,
        order_number: "ST-LOCAL-1".into(),
        amount: Cents::new(amount),
        currency: Currency::usd(),
        receipt_email: None,
        tax_calculation_id: None,
        idempotency_key: StripeIdempotencyKey::for_order(order_id),
    }
}

#[test]
fn creating_an_intent_is_idempotent_by_key() {
    let local = local();
    let order = Uuid::new_v4();
    let first = local.create_intent(&request(order, 2598)).unwrap();
    let again = local.create_intent(&request(order, 2598)).unwrap();
    assert_eq!(first, again);
    assert!(first.id.starts_with("pi_local_"), "{}", first.id);
    assert!(first.client_secret.expose().starts_with(&format!("{}_secret_", first.id)));
    assert_eq!(first.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(first.order_id, Some(order));

    let other = local.create_intent(&request(Uuid::new_v4(), 2598)).unwrap();
    assert_ne!(other.id, first.id, "another order gets another intent");
}

#[test]
fn reusing_a_key_with_different_parameters_is_refused() {
    let local = local();
    let order = Uuid::new_v4();
    local.create_intent(&request(order, 2598)).unwrap();
    assert_eq!(local.create_intent(&request(order, 1)), Err(LocalError::IdempotencyConflict));
}

#[test]
fn confirm_produces_a_signed_event_that_verify_accepts() {
    let local = local();
    let order = Uuid::new_v4();
    let intent = local.create_intent(&request(order, 2598)).unwrap();

    let webhook = local.confirm(&intent.id).unwrap();
    let event =
        verify(&webhook.payload, &webhook.signature_header, local.webhook_secrets(), SystemTime::now()).unwrap();

    assert_eq!(event.id, webhook.event_id);
    assert!(event.id.starts_with("evt_local_"));
    assert!(!event.livemode);
    assert_eq!(
        event.kind,
        EventKind::PaymentIntentSucceeded {
            intent_id: intent.id.clone(),
            amount: Cents::new(2598),
            amount_received: Cents::new(2598),
            currency: Currency::usd(),
            order_id: Some(order),
            order_number: Some("ST-LOCAL-1".into()),
        }
    );
    let after = local.retrieve_intent(&intent.id).unwrap();
    assert_eq!(after.status, IntentStatus::Succeeded);
    assert_eq!(after.amount_received, Cents::new(2598));
}

#[test]
fn the_local_event_is_refused_under_another_secret() {
    let local = local();
    let intent = local.create_intent(&request(Uuid::new_v4(), 100)).unwrap();
    let webhook = local.confirm(&intent.id).unwrap();
    let production = [WebhookSecret::parse("whsec_production").unwrap()];
    assert_eq!(
        verify(&webhook.payload, &webhook.signature_header, &production, SystemTime::now()),
        Err(WebhookError::SignatureMismatch)
    );
}

#[test]
fn each_event_has_a_unique_id() {
    let local = local();
    let intent = local.create_intent(&request(Uuid::new_v4(), 100)).unwrap();
    let failed = local.fail(&intent.id).unwrap();
    let paid = local.confirm(&intent.id).unwrap();
    let refunded = local.refund(&intent.id).unwrap();
    assert_ne!(failed.event_id, paid.event_id);
    assert_ne!(paid.event_id, refunded.event_id);
}

#[test]
fn fail_then_confirm_then_refund_tell_the_whole_story() {
    let local = local();
    let order = Uuid::new_v4();
    let intent = local.create_intent(&request(order, 4200)).unwrap();
    let secrets = local.webhook_secrets().to_vec();
    let open =
        |w: payments::SignedWebhook| verify(&w.payload, &w.signature_header, &secrets, SystemTime::now()).unwrap();

    let failed = open(local.fail(&intent.id).unwrap());
    assert!(matches!(
        failed.kind,
        EventKind::PaymentIntentFailed { ref failure_code, order_id, .. }
            if failure_code.as_deref() == Some("card_declined") && order_id == Some(order)
    ));
    assert_eq!(local.retrieve_intent(&intent.id).unwrap().status, IntentStatus::RequiresPaymentMethod);

    let paid = open(local.confirm(&intent.id).unwrap());
    assert!(matches!(paid.kind, EventKind::PaymentIntentSucceeded { .. }));

    let refunded = open(local.refund(&intent.id).unwrap());
    assert_eq!(refunded.payment_intent_id(), Some(intent.id.as_str()));
    assert!(matches!(
        refunded.kind,
        EventKind::ChargeRefunded { refunded: true, amount_refunded, .. } if amount_refunded == Cents::new(4200)
    ));
}

#[test]
fn a_paid_intent_can_be_disputed_an_unpaid_one_cannot() {
    let local = local();
    let intent = local.create_intent(&request(Uuid::new_v4(), 4200)).unwrap();
    assert!(matches!(local.dispute(&intent.id), Err(LocalError::InvalidState { action: "dispute", .. })));
    local.confirm(&intent.id).unwrap();
    let webhook = local.dispute(&intent.id).unwrap();
    let event =
        verify(&webhook.payload, &webhook.signature_header, local.webhook_secrets(), SystemTime::now()).unwrap();
    assert_eq!(event.event_type, "charge.dispute.created");
    assert_eq!(event.payment_intent_id(), Some(intent.id.as_str()));
    assert!(matches!(
        event.kind,
        EventKind::ChargeDisputed { ref status, amount, .. } if status == "needs_response" && amount == Cents::new(4200)
    ));
}

#[test]
fn impossible_transitions_are_refused() {
    let local = local();
    let intent = local.create_intent(&request(Uuid::new_v4(), 100)).unwrap();
    assert!(matches!(local.refund(&intent.id), Err(LocalError::InvalidState { action: "refund", .. })));
    local.confirm(&intent.id).unwrap();
    assert!(matches!(local.confirm(&intent.id), Err(LocalError::InvalidState { action: "confirm", .. })));
    assert!(matches!(local.fail(&intent.id), Err(LocalError::InvalidState { action: "fail", .. })));
    local.refund(&intent.id).unwrap();
    assert!(matches!(local.refund(&intent.id), Err(LocalError::InvalidState { .. })));
    assert_eq!(local.confirm("pi_local_nope"), Err(LocalError::UnknownIntent("pi_local_nope".into())));
}

fn tax_request(shipping: Option<i64>) -> TaxRequest {
    TaxRequest {
        currency: Currency::usd(),
        line_items: vec![
            TaxLineItem { amount: Cents::new(2598), quantity: 2, reference: "a".into(), tax_code: None },
            TaxLineItem { amount: Cents::new(1001), quantity: 1, reference: "b".into(), tax_code: None },
        ],
        shipping: shipping.map(Cents::new),
        address: TaxAddress {
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            state: Some("IL".into()),
            postal_code: "62701".into(),
            country: "US".into(),
        },
    }
}

#[test]
fn local_tax_is_zero_by_default() {
    let calculation = local().calculate_tax(&tax_request(Some(500))).unwrap();
    assert_eq!(calculation.tax_amount_exclusive, Cents::ZERO);
    assert_eq!(calculation.amount_total, Cents::new(2598 + 1001 + 500));
    assert!(calculation.id.starts_with("taxcalc_local_"));
}

#[test]
fn local_tax_is_a_flat_rate_on_items_and_shipping_rounded_to_the_cent() {
    let local = LocalPayments::new(WebhookSecret::random_local(), BasisPoints::new(725)); // 7.25 %
    let calculation = local.calculate_tax(&tax_request(Some(500))).unwrap();
    // (2598 + 1001 + 500) × 0.0725 = 297.1775 → 297
    assert_eq!(calculation.tax_amount_exclusive, Cents::new(297));
    assert_eq!(calculation.amount_total, Cents::new(4099 + 297));
    let no_shipping = local.calculate_tax(&tax_request(None)).unwrap();
    // 3599 × 0.0725 = 260.9275 → 261
    assert_eq!(no_shipping.tax_amount_exclusive, Cents::new(261));
}

#[test]
fn local_requests_are_validated_like_stripe_ones() {
    let local = local();
    assert!(matches!(local.create_intent(&request(Uuid::new_v4(), 0)), Err(LocalError::InvalidRequest(_))));
    let mut bad = tax_request(None);
    bad.line_items[0].quantity = 0;
    assert!(matches!(local.calculate_tax(&bad), Err(LocalError::InvalidRequest(_))));
}

#[tokio::test]
async fn the_payments_handle_dispatches_to_the_local_provider_and_its_clones_share_it() {
    let payments = Payments::Local(local());
    assert_eq!(payments.name(), "local");
    let order = Uuid::new_v4();
    let intent = payments.create_intent(&request(order, 999)).await.unwrap();

    // The API's dev-only endpoint: confirm through the handle, verify through the handle.
    let webhook = payments.local().unwrap().confirm(&intent.id).unwrap();
    let event = payments.verify_webhook(&webhook.payload, &webhook.signature_header).unwrap();
    assert_eq!(event.order_id(), Some(order));

    // Every request handler holds a clone: it sees the same intents and the same secret.
    let clone = payments.clone();
    assert_eq!(clone.name(), "local");
    let again = clone.create_intent(&request(order, 999)).await.unwrap();
    assert_eq!(again.id, intent.id, "clones share state");
    assert_eq!(clone.retrieve_intent(&intent.id).await.unwrap().status, IntentStatus::Succeeded);
    let tax = clone.calculate_tax(&tax_request(None)).await.unwrap();
    assert_eq!(tax.tax_amount_exclusive, Cents::ZERO);
    assert_eq!(clone.webhook_secrets(), payments.webhook_secrets());
    assert_eq!(payments.webhook_secrets(), payments.local().unwrap().webhook_secrets());

    // Local refusals reach the API as the same PaymentError codes Stripe's would.
    let missing = clone.retrieve_intent("pi_local_nope").await.unwrap_err();
    assert_eq!(missing.code(), "payment_intent_not_found");
    let invalid = clone.create_intent(&request(Uuid::new_v4(), 0)).await.unwrap_err();
    assert_eq!(invalid.code(), "payment_request_invalid");
}
