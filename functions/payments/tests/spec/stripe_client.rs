//! The Stripe client against Stripe's API stubbed over real HTTP (wiremock).

use std::time::Duration;

use payments::{
    ApiKey, CreateIntent, Currency, IntentStatus, RetryPolicy, STRIPE_API_VERSION, StripeClient, StripeError,
    StripeIdempotencyKey, StripeSettings, TaxAddress, TaxLineItem, TaxRequest,
};
use payments::{Cents, PaymentError, Payments, WebhookSecret};
use serde_json::json;
use uuid::Uuid;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";

/// Generous timeouts (a loaded CI machine must not turn a fast stub into a "timeout"), tiny
/// back-offs (so retry tests take milliseconds).
fn settings(base: &str) -> StripeSettings {
    StripeSettings {
        api_base: base.to_owned(),
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        },
    }
}

fn client(server: &MockServer) -> StripeClient {
    StripeClient::new(ApiKey::parse(KEY).unwrap(), settings(&server.uri())).unwrap()
}

fn order_id() -> Uuid {
    Uuid::parse_str("6f1c0a52-2b7e-4f7e-9d0a-3f3b8f0d9a11").unwrap()
}

fn intent_request() -> CreateIntent {
    CreateIntent {
        order_id: order_id(),
        order_number: "ST-20261128-0042".into(),
        amount: Cents::new(2_598),
        currency: Currency::usd(),
        receipt_email: Some("ada@example.com".into()),
        tax_calculation_id: Some("taxcalc_123".into()),
        idempotency_key: StripeIdempotencyKey::for_order(order_id()),
    }
}

fn intent_body() -> serde_json::Value {
    json!({
        "id": "pi_3Abc",
        "object": "payment_intent",
        "amount": 2598,
        "amount_received": 0,
        "currency": "usd",
        "status": "requires_payment_method",
        "client_secret": "pi_3Abc_secret_xyz",
        "metadata": { "order_id": order_id().to_string(), "order_number": "ST-20261128-0042" },
    })
}

fn form(request: &Request) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(&request.body).expect("form-encoded body")
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn stripe_error(kind: &str, code: &str, message: &str) -> serde_json::Value {
    json!({ "error": { "type": kind, "code": code, "message": message } })
}

#[tokio::test]
async fn creating_an_intent_sends_a_form_with_cents_metadata_auth_version_and_idempotency_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("stripe-version", STRIPE_API_VERSION))
        .and(header("idempotency-key", StripeIdempotencyKey::for_order(order_id()).as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()))
        .expect(1)
        .mount(&server)
        .await;

    let intent = client(&server).create_payment_intent(&intent_request()).await.unwrap();

    assert_eq!(intent.id, "pi_3Abc");
    assert_eq!(intent.client_secret.expose(), "pi_3Abc_secret_xyz");
    assert_eq!(intent.amount, Cents::new(2598));
    assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(intent.order_id, Some(order_id()));

    let requests = server.received_requests().await.unwrap();
    let form = form(&requests[0]);
    assert_eq!(field(&form, "amount"), Some("2598"));
    assert_eq!(field(&form, "currency"), Some("usd"));
    assert_eq!(field(&form, "automatic_payment_methods[enabled]"), Some("true"));
    assert_eq!(field(&form, "metadata[order_id]"), Some(order_id().to_string().as_str()));
    assert_eq!(field(&form, "metadata[order_number]"), Some("ST-20261128-0042"));
    assert_eq!(field(&form, "metadata[tax_calculation]"), Some("taxcalc_123"));
    assert_eq!(field(&form, "receipt_email"), Some("ada@example.com"));
    // The raw body really is bracket-encoded form data, not JSON.
    let raw = String::from_utf8(requests[0].body.clone()).unwrap();
    assert!(raw.contains("metadata%5Border_id%5D="), "{raw}");
}

#[tokio::test]
async fn a_500_is_retried_once_with_the_same_idempotency_key_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(500).set_body_json(stripe_error("api_error", "", "boom")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()))
        .mount(&server)
        .await;

    let intent = client(&server).create_payment_intent(&intent_request()).await.unwrap();
    assert_eq!(intent.id, "pi_3Abc");

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2, "one retry");
    let keys: Vec<_> = requests.iter().map(|r| r.headers.get("idempotency-key").unwrap().clone()).collect();
    assert_eq!(keys[0], keys[1], "a retry reuses the idempotency key");
    assert_eq!(form(&requests[0]), form(&requests[1]), "and sends the same body");
}

#[tokio::test]
async fn a_card_error_is_final_and_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(402).insert_header("request-id", "req_123").set_body_json(json!({
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.",
            }
        })))
        .expect(1)
        .mount(&server)
        .await;

    let error = client(&server).create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(error.is_card_error());
    assert!(!error.is_unavailable());
    assert_eq!(error.code(), Some("card_declined"));
    match &error {
        StripeError::Api { status, error, request_id, attempts } => {
            assert_eq!(*status, 402);
            assert_eq!(error.decline_code.as_deref(), Some("insufficient_funds"));
            assert_eq!(error.message.as_deref(), Some("Your card has insufficient funds."));
            assert_eq!(request_id.as_deref(), Some("req_123"));
            assert_eq!(*attempts, 1);
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert_eq!(PaymentError::from(error).code(), "card_error");
}

#[tokio::test]
async fn a_400_invalid_request_is_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(stripe_error(
            "invalid_request_error",
            "amount_too_small",
            "Amount must be at least $0.50 usd",
        )))
        .expect(1)
        .mount(&server)
        .await;

    let error = client(&server).create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(&error, StripeError::Api { status: 400, attempts: 1, .. }), "{error:?}");
    assert_eq!(error.code(), Some("amount_too_small"));
    assert_eq!(PaymentError::from(error).code(), "payment_request_invalid");
}

#[tokio::test]
async fn a_429_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).set_body_json(stripe_error(
            "invalid_request_error",
            "rate_limit",
            "Too many requests",
        )))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()))
        .mount(&server)
        .await;

    let intent = client(&server).create_payment_intent(&intent_request()).await.unwrap();
    assert_eq!(intent.id, "pi_3Abc");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn stripe_should_retry_false_stops_retries_even_on_a_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(503).insert_header("stripe-should-retry", "false").set_body_json(stripe_error(
                "api_error",
                "",
                "no",
            )),
        )
        .expect(1)
        .mount(&server)
        .await;

    let error = client(&server).create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(error, StripeError::Api { status: 503, attempts: 1, .. }), "{error:?}");
}

#[tokio::test]
async fn a_409_is_retried_only_when_stripe_says_so() {
    // A concurrent request with the same idempotency key is still running at Stripe.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(409).insert_header("stripe-should-retry", "true").set_body_json(stripe_error(
                "idempotency_error",
                "",
                "in progress",
            )),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()))
        .mount(&server)
        .await;
    assert_eq!(client(&server).create_payment_intent(&intent_request()).await.unwrap().id, "pi_3Abc");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(stripe_error("idempotency_error", "", "conflict")))
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server).create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(error, StripeError::Api { status: 409, attempts: 1, .. }), "{error:?}");
}

#[tokio::test]
async fn a_4xx_is_not_retried_even_if_marked_retryable_unless_it_is_a_409() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400).insert_header("stripe-should-retry", "true").set_body_json(stripe_error(
                "invalid_request_error",
                "parameter_invalid",
                "bad",
            )),
        )
        .expect(1)
        .mount(&server)
        .await;
    let error = client(&server).create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(error, StripeError::Api { status: 400, attempts: 1, .. }), "{error:?}");
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_the_retry_budget_with_the_last_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .expect(3)
        .mount(&server)
        .await;

    let error = client(&server).create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(&error, StripeError::Api { status: 502, attempts: 3, .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert_eq!(PaymentError::from(error).code(), "payment_provider_unavailable");
}

#[tokio::test]
async fn a_timeout_is_retried_then_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let mut settings = settings(&server.uri());
    settings.timeout = Duration::from_millis(200);
    let client = StripeClient::new(ApiKey::parse(KEY).unwrap(), settings).unwrap();

    let error = client.create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(error, StripeError::Timeout { attempts: 3 }), "{error:?}");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "every attempt reached the server");
    assert!(requests.windows(2).all(|w| w[0].headers.get("idempotency-key") == w[1].headers.get("idempotency-key")));
}

#[tokio::test]
async fn a_slow_first_answer_then_a_fast_one_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()).set_delay(Duration::from_secs(30)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()))
        .mount(&server)
        .await;
    let mut settings = settings(&server.uri());
    settings.timeout = Duration::from_millis(1000);
    let client = StripeClient::new(ApiKey::parse(KEY).unwrap(), settings).unwrap();

    assert_eq!(client.create_payment_intent(&intent_request()).await.unwrap().id, "pi_3Abc");
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error_after_retries() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = StripeClient::new(ApiKey::parse(KEY).unwrap(), settings(&format!("http://127.0.0.1:{port}"))).unwrap();

    let error = client.create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(error, StripeError::Network { attempts: 3, .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert!(!error.to_string().contains(KEY));
}

#[tokio::test]
async fn invalid_requests_are_refused_before_sending() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).expect(0).mount(&server).await;
    let client = client(&server);

    for amount in [0, -1] {
        let request = CreateIntent { amount: Cents::new(amount), ..intent_request() };
        let error = client.create_payment_intent(&request).await.unwrap_err();
        assert!(matches!(error, StripeError::InvalidRequest(_)), "{error:?}");
    }
    let error = client.retrieve_payment_intent("pi_1/../../v1/charges").await.unwrap_err();
    assert!(matches!(error, StripeError::InvalidRequest(_)), "{error:?}");
}

#[tokio::test]
async fn retrieving_an_intent_reads_its_status_and_metadata() {
    let server = MockServer::start().await;
    let mut body = intent_body();
    body["status"] = json!("succeeded");
    body["amount_received"] = json!(2598);
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_3Abc"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(1)
        .mount(&server)
        .await;

    let intent = client(&server).retrieve_payment_intent("pi_3Abc").await.unwrap();
    assert_eq!(intent.status, IntentStatus::Succeeded);
    assert_eq!(intent.amount_received, Cents::new(2598));
    assert_eq!(intent.order_id, Some(order_id()));
}

#[tokio::test]
async fn an_unreadable_success_body_is_an_invalid_response() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "pi_1", "amount": "lots"})))
        .mount(&server)
        .await;

    let error = client(&server).create_payment_intent(&intent_request()).await.unwrap_err();
    assert!(matches!(error, StripeError::InvalidResponse { status: 200, .. }), "{error:?}");
}

fn tax_request() -> TaxRequest {
    TaxRequest {
        currency: Currency::usd(),
        line_items: vec![
            TaxLineItem { amount: Cents::new(2_598), quantity: 2, reference: "CT-BLK-M".into(), tax_code: None },
            TaxLineItem {
                amount: Cents::new(3_599),
                quantity: 1,
                reference: "CH-BLK-L".into(),
                tax_code: Some("txcd_99999999".into()),
            },
        ],
        shipping: Some(Cents::new(599)),
        address: TaxAddress {
            line1: "354 Oyster Point Blvd".into(),
            line2: None,
            city: "South San Francisco".into(),
            state: Some("CA".into()),
            postal_code: "94080".into(),
            country: "us".into(),
        },
    }
}

#[tokio::test]
async fn tax_calculation_sends_lines_shipping_and_the_shipping_address() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/tax/calculations"))
        .and(body_string_contains("customer_details%5Baddress_source%5D=shipping"))
        .and(header("stripe-version", STRIPE_API_VERSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "taxcalc_1NaS",
            "object": "tax.calculation",
            "amount_total": 7_379,
            "currency": "usd",
            "tax_amount_exclusive": 583,
            "tax_amount_inclusive": 0,
            "expires_at": 1_800_000_000,
        })))
        .expect(1)
        .mount(&server)
        .await;

    let calculation = client(&server).calculate_tax(&tax_request()).await.unwrap();
    assert_eq!(calculation.id, "taxcalc_1NaS");
    assert_eq!(calculation.amount_total, Cents::new(7_379));
    assert_eq!(calculation.tax_amount_exclusive, Cents::new(583));
    assert_eq!(calculation.tax_amount_inclusive, Cents::ZERO);
    assert_eq!(calculation.expires_at, Some(1_800_000_000));

    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("idempotency-key").is_some());
    let form = form(&requests[0]);
    let expect = [
        ("currency", "usd"),
        ("line_items[0][amount]", "2598"),
        ("line_items[0][quantity]", "2"),
        ("line_items[0][reference]", "CT-BLK-M"),
        ("line_items[0][tax_code]", payments::APPAREL_TAX_CODE),
        ("line_items[0][tax_behavior]", "exclusive"),
        ("line_items[1][amount]", "3599"),
        ("line_items[1][tax_code]", "txcd_99999999"),
        ("shipping_cost[amount]", "599"),
        ("shipping_cost[tax_code]", payments::SHIPPING_TAX_CODE),
        ("customer_details[address][line1]", "354 Oyster Point Blvd"),
        ("customer_details[address][city]", "South San Francisco"),
        ("customer_details[address][state]", "CA"),
        ("customer_details[address][postal_code]", "94080"),
        ("customer_details[address][country]", "US"),
        ("customer_details[address_source]", "shipping"),
    ];
    for (name, value) in expect {
        assert_eq!(field(&form, name), Some(value), "{name}");
    }
    assert_eq!(field(&form, "customer_details[address][line2]"), None);
}

#[tokio::test]
async fn tax_requests_are_validated_before_sending() {
    let server = MockServer::start().await;
    let client = client(&server);
    let mut empty = tax_request();
    empty.line_items.clear();
    let mut negative = tax_request();
    negative.line_items[0].amount = Cents::new(-1);
    let mut zero_quantity = tax_request();
    zero_quantity.line_items[0].quantity = 0;
    let mut duplicate = tax_request();
    duplicate.line_items[1].reference = "CT-BLK-M".into();
    let mut country = tax_request();
    country.address.country = "USA".into();
    for request in [empty, negative, zero_quantity, duplicate, country] {
        let error = client.calculate_tax(&request).await.unwrap_err();
        assert!(matches!(error, StripeError::InvalidRequest(_)), "{error:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_payments_handle_routes_to_stripe_and_exposes_its_webhook_secrets() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent_body()))
        .mount(&server)
        .await;
    let secret = WebhookSecret::parse("whsec_test").unwrap();
    let payments = Payments::Stripe { client: client(&server), webhook_secrets: vec![secret.clone()] };

    assert_eq!(payments.name(), "stripe");
    assert!(payments.local().is_none());
    assert_eq!(payments.webhook_secrets(), &[secret]);
    assert_eq!(payments.create_intent(&intent_request()).await.unwrap().id, "pi_3Abc");
}

#[test]
fn debug_output_of_the_client_masks_the_key() {
    let client = StripeClient::new(ApiKey::parse(KEY).unwrap(), StripeSettings::default()).unwrap();
    let debug = format!("{client:?}");
    assert!(!debug.contains("4eC39HqLyjWDarjtT1zdp7dc"), "{debug}");
    assert!(debug.contains("sk_test_****"), "{debug}");
}
