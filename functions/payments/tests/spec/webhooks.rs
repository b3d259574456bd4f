//! Webhook signatures: what is accepted, and the specific reason for everything that is not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use payments::{DEFAULT_TOLERANCE, EventKind, WebhookError, WebhookSecret, sign, verify, verify_signature};
use serde_json::json;

const T: i64 = 1_764_329_100;

fn at(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds as u64)
}

fn secret(raw: &str) -> WebhookSecret {
    WebhookSecret::parse(raw).unwrap()
}

fn payload() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "evt_1",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": T,
        "livemode": false,
        "data": { "object": {
            "id": "pi_1", "object": "payment_intent", "amount": 1299, "amount_received": 1299, "currency": "usd",
            "metadata": { "order_id": "6f1c0a52-2b7e-4f7e-9d0a-3f3b8f0d9a11" }
        }}
    }))
    .unwrap()
}

fn check(payload: &[u8], header: &str, secrets: &[WebhookSecret], now: i64) -> Result<(), WebhookError> {
    verify(payload, header, secrets, at(now)).map(|_| ())
}

#[test]
fn a_correctly_signed_event_is_accepted_and_parsed() {
    let s = secret("whsec_test_secret");
    let body = payload();
    let header = sign(&body, &s, T);
    let event = verify(&body, &header, &[s], at(T + 10)).unwrap();
    assert_eq!(event.id, "evt_1");
    assert!(matches!(event.kind, EventKind::PaymentIntentSucceeded { .. }));
}

#[test]
fn the_signature_matches_stripes_published_scheme() {
    // HMAC-SHA256("whsec_test_secret", "1764329100.{}") computed independently (openssl dgst).
    let s = secret("whsec_test_secret");
    assert_eq!(sign(b"{}", &s, T), "t=1764329100,v1=dc6886540d7dc50e4ef5969edc3c3e4e4c3255a6a4daf04d0d8069a978980886");
}

#[test]
fn any_matching_v1_among_several_is_enough() {
    let s = secret("whsec_current");
    let body = payload();
    let good = sign(&body, &s, T);
    let good_v1 = good.split("v1=").nth(1).unwrap();
    let other = "ab".repeat(32);
    for header in [
        format!("t={T},v1={other},v1={good_v1}"),
        format!("t={T},v1={good_v1},v1={other}"),
        format!("t={T},v0={other},v1={other},v1={good_v1}"),
    ] {
        assert_eq!(check(&body, &header, std::slice::from_ref(&s), T), Ok(()), "{header}");
    }
}

#[test]
fn any_configured_secret_is_enough_during_rotation() {
    let old = secret("whsec_old");
    let new = secret("whsec_new");
    let body = payload();
    let header = sign(&body, &old, T);
    assert_eq!(check(&body, &header, &[new.clone(), old], T), Ok(()));
    assert_eq!(check(&body, &header, &[new], T), Err(WebhookError::SignatureMismatch));
}

#[test]
fn a_tampered_payload_is_a_mismatch() {
    let s = secret("whsec_test_secret");
    let body = payload();
    let header = sign(&body, &s, T);
    let tampered = String::from_utf8(body).unwrap().replace("1299", "1");
    assert_eq!(check(tampered.as_bytes(), &header, &[s], T), Err(WebhookError::SignatureMismatch));
}

#[test]
fn a_changed_timestamp_is_a_mismatch() {
    let s = secret("whsec_test_secret");
    let body = payload();
    let header = sign(&body, &s, T).replace(&T.to_string(), &(T + 1).to_string());
    assert_eq!(check(&body, &header, &[s], T), Err(WebhookError::SignatureMismatch));
}

#[test]
fn the_wrong_secret_is_a_mismatch() {
    let body = payload();
    let header = sign(&body, &secret("whsec_attacker"), T);
    assert_eq!(check(&body, &header, &[secret("whsec_test_secret")], T), Err(WebhookError::SignatureMismatch));
}

#[test]
fn timestamps_more_than_300_seconds_away_are_refused_either_way() {
    let s = secret("whsec_test_secret");
    let body = payload();
    let header = sign(&body, &s, T);
    assert_eq!(DEFAULT_TOLERANCE, Duration::from_secs(300));
    assert_eq!(check(&body, &header, std::slice::from_ref(&s), T + 300), Ok(()));
    assert_eq!(check(&body, &header, std::slice::from_ref(&s), T - 300), Ok(()));
    let stale = check(&body, &header, std::slice::from_ref(&s), T + 301).unwrap_err();
    assert_eq!(stale, WebhookError::TimestampOutOfTolerance { timestamp: T, skew_secs: 301, tolerance_secs: 300 });
    assert_eq!(stale.code(), "timestamp_out_of_tolerance");
    let future = check(&body, &header, &[s], T - 301).unwrap_err();
    assert_eq!(future, WebhookError::TimestampOutOfTolerance { timestamp: T, skew_secs: -301, tolerance_secs: 300 });
}

#[test]
fn a_custom_tolerance_is_honoured() {
    let s = secret("whsec_test_secret");
    let body = payload();
    let header = sign(&body, &s, T);
    let tight = Duration::from_secs(5);
    assert_eq!(verify_signature(&body, &header, std::slice::from_ref(&s), at(T + 5), tight), Ok(T));
    assert!(verify_signature(&body, &header, &[s], at(T + 6), tight).is_err());
}

#[test]
fn a_missing_or_blank_header_is_missing_signature() {
    let s = secret("whsec_test_secret");
    for header in ["", "   "] {
        let error = check(&payload(), header, std::slice::from_ref(&s), T).unwrap_err();
        assert_eq!(error, WebhookError::MissingSignature);
        assert_eq!(error.code(), "missing_signature");
    }
}

#[test]
fn garbage_headers_are_malformed() {
    let s = secret("whsec_test_secret");
    let sig = "a".repeat(64);
    let cases = [
        "garbage".to_owned(),
        "t=,v1=".to_owned(),
        format!("v1={sig}"),                    // no timestamp
        format!("t={T}"),                       // no v1
        format!("t={T},v0={sig}"),              // only the test scheme
        format!("t=abc,v1={sig}"),              // timestamp not a number
        format!("t={T},t={T},v1={sig}"),        // two timestamps
        format!("t={T},v1=zz{}", &sig[2..]),    // non-hex
        format!("t={T},v1={}", &sig[..63]),     // odd length
        format!("t={T},v1={}", "a".repeat(62)), // wrong length
        format!("t={T},v1={sig}{}", ",v1=".repeat(2000)),
        format!("t={T},{}", format!("v1={sig},").repeat(20)), // too many signatures
    ];
    for header in cases {
        let error = check(&payload(), &header, std::slice::from_ref(&s), T).unwrap_err();
        assert!(matches!(error, WebhookError::MalformedSignature(_)), "{header:.80}: {error:?}");
        assert_eq!(error.code(), "malformed_signature");
    }
}

#[test]
fn a_signed_but_empty_or_non_event_payload_is_malformed_payload() {
    let s = secret("whsec_test_secret");
    for body in [&b""[..], b"not json", b"{}", b"[]", br#"{"id":"evt_1","type":"x"}"#] {
        let header = sign(body, &s, T);
        let error = check(body, &header, std::slice::from_ref(&s), T).unwrap_err();
        assert!(matches!(error, WebhookError::MalformedPayload(_)), "{body:?}: {error:?}");
        assert_eq!(error.code(), "malformed_payload");
    }
}

#[test]
fn no_configured_secret_accepts_nothing() {
    let body = payload();
    let header = sign(&body, &secret("whsec_x"), T);
    assert_eq!(check(&body, &header, &[], T), Err(WebhookError::NoSecretConfigured));
}

#[test]
fn errors_never_reveal_the_secret_or_the_expected_signature() {
    let s = secret("whsec_very_secret_value");
    let body = payload();
    let expected = sign(&body, &s, T);
    let expected_v1 = expected.split("v1=").nth(1).unwrap();
    let header = format!("t={T},v1={}", "0".repeat(64));
    let error = check(&body, &header, &[s], T).unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(!text.contains("very_secret") && !text.contains(expected_v1), "{text}");
}
