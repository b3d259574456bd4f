//! Properties over arbitrary input: verification never panics, and nothing unsigned passes.

use std::time::{Duration, UNIX_EPOCH};

use payments::{Event, WebhookSecret, sign, verify};
use proptest::prelude::*;

const T: i64 = 1_764_329_100;

fn secret() -> WebhookSecret {
    WebhookSecret::parse("whsec_property").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_headers_and_bodies_never_verify(payload in proptest::collection::vec(any::<u8>(), 0..512), header in ".{0,200}") {
        let now = UNIX_EPOCH + Duration::from_secs(T as u64);
        prop_assert!(verify(&payload, &header, &[secret()], now).is_err());
    }

    #[test]
    fn structured_but_forged_headers_never_verify(
        payload in proptest::collection::vec(any::<u8>(), 0..256),
        t in any::<i64>(),
        sigs in proptest::collection::vec("[0-9a-f]{64}", 0..4),
        junk in "[a-z0-9=,]{0,20}",
    ) {
        let mut header = format!("t={t}");
        for sig in &sigs {
            header.push_str(&format!(",v1={sig}"));
        }
        header.push(',');
        header.push_str(&junk);
        let now = UNIX_EPOCH + Duration::from_secs(T as u64);
        prop_assert!(verify(&payload, &header, &[secret()], now).is_err());
    }

    #[test]
    fn arbitrary_signed_bytes_parse_or_fail_without_panicking(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let header = sign(&payload, &secret(), T);
        let now = UNIX_EPOCH + Duration::from_secs(T as u64);
        // Signed garbage passes the signature check, then must fail (or parse) cleanly.
        let _ = verify(&payload, &header, &[secret()], now);
    }

    #[test]
    fn json_shaped_input_never_panics(json in arb_json(4)) {
        let event = serde_json::json!({
            "id": "evt_1", "type": "payment_intent.succeeded", "created": 1, "data": { "object": json.clone() }
        });
        let _ = Event::parse(&serde_json::to_vec(&event).unwrap());
        let refund = serde_json::json!({ "id": "evt_1", "type": "charge.refunded", "created": 1, "data": { "object": json } });
        let _ = Event::parse(&serde_json::to_vec(&refund).unwrap());
    }

    #[test]
    fn signing_then_verifying_round_trips(t in 0i64..4_000_000_000, body in "[ -~]{0,64}") {
        let payload = format!(r#"{{"id":"evt_1","type":"x.y","created":{t},"data":{{"object":{:?}}}}}"#, body);
        let header = sign(payload.as_bytes(), &secret(), t);
        let now = UNIX_EPOCH + Duration::from_secs(t as u64);
        let event = verify(payload.as_bytes(), &header, &[secret()], now).unwrap();
        prop_assert_eq!(event.created, t);
    }
}

/// Arbitrary JSON values, with the field names the parser looks for over-represented.
fn arb_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[a-z]{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 64, 8, |inner| {
        let key = prop_oneof![
            Just("id".to_owned()),
            Just("amount".to_owned()),
            Just("amount_received".to_owned()),
            Just("amount_refunded".to_owned()),
            Just("currency".to_owned()),
            Just("metadata".to_owned()),
            Just("order_id".to_owned()),
            Just("payment_intent".to_owned()),
            Just("refunded".to_owned()),
            Just("last_payment_error".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
