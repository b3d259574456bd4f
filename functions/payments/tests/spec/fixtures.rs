//! `payments::fixtures` (feature `test-support`): the event bodies other crates' tests sign
//! and deliver must parse back to the events they describe.

use payments::fixtures::{IntentObject, dispute_object, event_payload, refunded_charge};
use payments::{Cents, Currency, Event, EventKind};
use uuid::Uuid;

#[test]
fn fixtures_parse_back_to_the_typed_events() {
    let order = Uuid::nil();
    let paid = IntentObject::succeeded("pi_1", order, Cents::new(500)).to_json();
    let event = Event::parse(&event_payload("evt_1", "payment_intent.succeeded", 7, false, paid)).unwrap();
    assert_eq!(event.order_id(), Some(order));
    let failed = IntentObject::failed("pi_1", order, Cents::new(500)).to_json();
    let event = Event::parse(&event_payload("evt_2", "payment_intent.payment_failed", 8, false, failed)).unwrap();
    assert!(matches!(event.kind, EventKind::PaymentIntentFailed { .. }));
    let charge = refunded_charge("ch_1", "pi_1", Cents::new(500), Cents::new(200), &Currency::usd());
    let event = Event::parse(&event_payload("evt_3", "charge.refunded", 9, false, charge)).unwrap();
    assert!(matches!(event.kind, EventKind::ChargeRefunded { refunded: false, .. }));
    let dispute = dispute_object("dp_1", "ch_1", "pi_1", Cents::new(500), &Currency::usd(), "won", "fraudulent");
    let event = Event::parse(&event_payload("evt_4", "charge.dispute.closed", 10, false, dispute)).unwrap();
    assert!(matches!(event.kind, EventKind::ChargeDisputed { ref status, .. } if status == "won"));
    assert_eq!(event.payment_intent_id(), Some("pi_1"));
}
