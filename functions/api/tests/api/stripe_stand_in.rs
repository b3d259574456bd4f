//! A Stripe stand-in: a small HTTP server on 127.0.0.1 that speaks the part of Stripe's API
//! the shop's client uses, so the real `StripeClient` — form bodies, headers, idempotency
//! keys, error parsing — runs against it in API tests.
//!
//! What it does as Stripe does:
//! - `POST /v1/payment_intents`, `GET /v1/payment_intents/{id}`, `POST /v1/tax/calculations`,
//!   with `Authorization: Bearer sk_…` and `Stripe-Version` required, form-encoded bodies and
//!   Stripe-shaped JSON and errors (`resource_missing`, `idempotency_error`, …).
//! - **Idempotency keys, and forgetting them.** A POST with a key it remembers gets the first
//!   answer again (`Idempotent-Replayed: true`); the same key with other parameters is a 400
//!   `idempotency_error`. Stripe forgets keys after about a day: [`StripeStandIn::travel`]
//!   moves the stand-in's clock, and a key older than 24 hours on it is forgotten — the next
//!   POST with it creates a new object.
//! - **The customer's side** (what Stripe.js and the card network do): [`StripeStandIn::pay`]
//!   and [`StripeStandIn::decline`] act on the intent whose client secret the storefront was
//!   given; [`StripeStandIn::refund`] and [`StripeStandIn::dispute`] are what staff or a bank
//!   do later. Each returns the signed webhook Stripe would send, for
//!   [`StripeStandIn::deliver`] to post to the API.
//!
//! Tax is a flat rate of items plus shipping, like the local provider: not real tax.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use payments::fixtures::{IntentObject, dispute_object, event_payload, refunded_charge};
use payments::{Cents, Currency, IntentStatus, WebhookSecret, sign};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::orders::url_form;

/// The endpoint secret the stand-in signs its webhooks with.
pub const WEBHOOK_SECRET: &str = "whsec_stand_in_endpoint_secret";
const API_KEY: &str = "sk_test_stand_in_0123456789abcdef";
/// How long Stripe keeps an idempotency key ("at least 24 hours").
const KEY_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// An intent as the stand-in holds it.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub client_secret: String,
    pub amount: i64,
    pub amount_received: i64,
    pub amount_refunded: i64,
    pub currency: String,
    pub status: IntentStatus,
    pub order_id: Option<Uuid>,
    pub order_number: Option<String>,
    pub charge: Option<String>,
}

impl Intent {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_received": self.amount_received,
            "currency": self.currency,
            "status": self.status.as_str(),
            "client_secret": self.client_secret,
            "latest_charge": self.charge,
            "livemode": false,
            "metadata": {
                "order_id": self.order_id.map(|o| o.to_string()),
                "order_number": self.order_number,
            },
        })
    }

    fn event_object(&self) -> Value {
        IntentObject {
            intent_id: self.id.clone(),
            amount: Cents::new(self.amount),
            amount_received: Cents::new(self.amount_received),
            currency: Currency::parse(&self.currency).expect("a stored currency"),
            status: self.status.clone(),
            order_id: self.order_id,
            order_number: self.order_number.clone(),
            latest_charge: self.charge.clone(),
        }
        .to_json()
    }

    /// Can still be paid or is paid: what "one live intent" counts.
    pub fn is_live(&self) -> bool {
        self.status != IntentStatus::Canceled
    }
}

/// A remembered idempotent request: what was asked, and the answer.
struct Remembered {
    /// The request's path and sorted form.
    request: String,
    status: StatusCode,
    body: Value,
    /// On the stand-in's clock.
    at: Duration,
}

#[derive(Default)]
struct Inner {
    intents: Vec<Intent>,
    keys: HashMap<String, Remembered>,
    /// How far the stand-in's clock is ahead of the wall clock.
    travelled: Duration,
    /// Every API request, as `METHOD /path`.
    calls: Vec<String>,
    tax_rate_bp: i64,
    counter: u64,
}

impl Inner {
    fn now(&self) -> Duration {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + self.travelled
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_standin{}{}", self.counter, &Uuid::new_v4().simple().to_string()[..8])
    }
}

type Shared = Arc<Mutex<Inner>>;

/// A signed webhook, as Stripe would POST it.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub payload: Vec<u8>,
    pub signature: String,
}

pub struct StripeStandIn {
    addr: SocketAddr,
    inner: Shared,
    server: tokio::task::JoinHandle<()>,
}

fn stripe_error(status: StatusCode, error_type: &str, code: Option<&str>, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"type": error_type, "code": code, "message": message}}))).into_response()
}

/// Stripe's checks on every request, a secret key and a pinned version: the refusal, if any.
fn refusal(headers: &HeaderMap) -> Option<Response> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(format!("Bearer {API_KEY}").as_str()) {
        return Some(stripe_error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, "Invalid API Key provided"));
    }
    if headers.get("stripe-version").is_none() {
        return Some(stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", None, "no Stripe-Version"));
    }
    None
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Runs `create` once per idempotency key (while remembered); a repeat gets the first answer.
fn idempotent(
    inner: &mut Inner,
    headers: &HeaderMap,
    path: &str,
    form: &[(String, String)],
    create: impl FnOnce(&mut Inner) -> (StatusCode, Value),
) -> Response {
    let mut sorted: Vec<String> = form.iter().map(|(k, v)| format!("{k}={v}")).collect();
    sorted.sort();
    let request = format!("{path}?{}", sorted.join("&"));
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let now = inner.now();
    if let Some(key) = &key {
        if let Some(seen) = inner.keys.get(key).filter(|seen| now.saturating_sub(seen.at) < KEY_MEMORY) {
            if seen.request != request {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    None,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                );
            }
            let mut response = (seen.status, axum::Json(seen.body.clone())).into_response();
            response.headers_mut().insert("idempotent-replayed", "true".parse().unwrap());
            return response;
        }
    }
    let (status, body) = create(inner);
    if let Some(key) = key {
        inner.keys.insert(key, Remembered { request, status, body: body.clone(), at: now });
    }
    (status, axum::Json(body)).into_response()
}

async fn create_intent(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    let form = url_form(&body);
    let mut inner = inner.lock().unwrap();
    inner.calls.push("POST /v1/payment_intents".into());
    idempotent(&mut inner, &headers, "/v1/payment_intents", &form, |inner| {
        let Some(amount) = field(&form, "amount").and_then(|a| a.parse::<i64>().ok()).filter(|a| *a > 0) else {
            return (
                StatusCode::BAD_REQUEST,
                json!({"error": {"type": "invalid_request_error", "param": "amount", "message": "Invalid integer"}}),
            );
        };
        let id = inner.next_id("pi");
        let intent = Intent {
            client_secret: format!("{id}_secret_{}", Uuid::new_v4().simple()),
            id,
            amount,
            amount_received: 0,
            amount_refunded: 0,
            currency: field(&form, "currency").unwrap_or("usd").to_owned(),
            status: IntentStatus::RequiresPaymentMethod,
            order_id: field(&form, "metadata[order_id]").and_then(|o| Uuid::parse_str(o).ok()),
            order_number: field(&form, "metadata[order_number]").map(str::to_owned),
            charge: None,
        };
        let body = intent.json();
        inner.intents.push(intent);
        (StatusCode::OK, body)
    })
}

async fn retrieve_intent(State(inner): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    let mut inner = inner.lock().unwrap();
    inner.calls.push("GET /v1/payment_intents".into());
    match inner.intents.iter().find(|i| i.id == id) {
        Some(intent) => axum::Json(intent.json()).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such payment_intent: '{id}'"),
        ),
    }
}

async fn calculate_tax(State(inner): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    let form = url_form(&body);
    let mut inner = inner.lock().unwrap();
    inner.calls.push("POST /v1/tax/calculations".into());
    idempotent(&mut inner, &headers, "/v1/tax/calculations", &form, |inner| {
        let taxable: i64 = form
            .iter()
            .filter(|(k, _)| (k.starts_with("line_items[") && k.ends_with("][amount]")) || k == "shipping_cost[amount]")
            .filter_map(|(_, v)| v.parse::<i64>().ok())
            .sum();
        let tax = (taxable * inner.tax_rate_bp + 5_000) / 10_000;
        let expires = inner.now().as_secs() + 90 * 86_400;
        (
            StatusCode::OK,
            json!({
                "id": inner.next_id("taxcalc"),
                "object": "tax.calculation",
                "amount_total": taxable + tax,
                "currency": field(&form, "currency").unwrap_or("usd"),
                "tax_amount_exclusive": tax,
                "tax_amount_inclusive": 0,
                "expires_at": expires,
            }),
        )
    })
}

async fn unknown(headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&headers) {
        return refused;
    }
    stripe_error(StatusCode::NOT_FOUND, "invalid_request_error", None, "Unrecognized request URL")
}

impl StripeStandIn {
    /// Starts the stand-in; `tax_rate_bp` is its flat tax rate in basis points.
    pub async fn start(tax_rate_bp: i64) -> Self {
        let inner: Shared = Arc::new(Mutex::new(Inner { tax_rate_bp, ..Inner::default() }));
        let router = Router::new()
            .route("/v1/payment_intents", post(create_intent))
            .route("/v1/payment_intents/{id}", get(retrieve_intent))
            .route("/v1/tax/calculations", post(calculate_tax))
            .fallback(unknown)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { addr, inner, server }
    }

    /// The settings that point the API at this stand-in (no retries: a test sees every call).
    pub fn app_env(&self) -> Vec<(String, String)> {
        vec![
            ("STRIPE_SECRET_KEY".into(), API_KEY.into()),
            ("STRIPE_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()),
            ("STRIPE_API_BASE".into(), format!("http://{}", self.addr)),
            ("STRIPE_MAX_RETRIES".into(), "0".into()),
        ]
    }

    /// Moves the stand-in's clock forward: keys older than a day on it are forgotten.
    pub fn travel(&self, by: Duration) {
        self.inner.lock().unwrap().travelled += by;
    }

    /// Every intent created so far, oldest first.
    pub fn intents(&self) -> Vec<Intent> {
        self.inner.lock().unwrap().intents.clone()
    }

    /// The intents whose metadata names `order` and that are not canceled.
    pub fn live_intents_for(&self, order: &str) -> Vec<Intent> {
        let order = Uuid::parse_str(order).unwrap();
        self.intents().into_iter().filter(|i| i.order_id == Some(order) && i.is_live()).collect()
    }

    /// How many API requests matched `call` (`"POST /v1/payment_intents"`, …).
    pub fn calls(&self, call: &str) -> usize {
        self.inner.lock().unwrap().calls.iter().filter(|c| *c == call).count()
    }

    fn with_intent<T>(&self, find: impl Fn(&Intent) -> bool, act: impl FnOnce(&mut Intent, &mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap();
        let at = inner.intents.iter().position(find).expect("the stand-in has that intent");
        let mut intent = inner.intents[at].clone();
        let out = act(&mut intent, &mut inner);
        inner.intents[at] = intent;
        out
    }

    fn signed(event_type: &str, object: Value) -> Webhook {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let id = format!("evt_standin_{}", Uuid::new_v4().simple());
        let payload = event_payload(&id, event_type, now, false, object);
        let signature = sign(&payload, &WebhookSecret::parse(WEBHOOK_SECRET).unwrap(), now);
        Webhook { payload, signature }
    }

    /// The customer pays with the intent whose client secret the storefront got, as Stripe.js
    /// would: the intent succeeds, and Stripe's `payment_intent.succeeded` is returned.
    pub fn pay(&self, client_secret: &str) -> Webhook {
        let object = self.with_intent(
            |i| i.client_secret == client_secret,
            |intent, inner| {
                assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod, "{} cannot be paid", intent.id);
                intent.status = IntentStatus::Succeeded;
                intent.amount_received = intent.amount;
                intent.charge = Some(inner.next_id("ch"));
                intent.event_object()
            },
        );
        Self::signed("payment_intent.succeeded", object)
    }

    /// The customer's card is declined: the intent stays payable, and Stripe's
    /// `payment_intent.payment_failed` is returned.
    pub fn decline(&self, client_secret: &str) -> Webhook {
        let object = self.with_intent(
            |i| i.client_secret == client_secret,
            |intent, _| {
                assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod, "{} cannot be declined", intent.id);
                intent.event_object()
            },
        );
        Self::signed("payment_intent.payment_failed", object)
    }

    /// Staff refund `amount` cents of the intent's charge: `charge.refunded`, with the
    /// charge's running total refunded.
    pub fn refund(&self, intent_id: &str, amount: i64) -> Webhook {
        let object = self.with_intent(
            |i| i.id == intent_id,
            |intent, _| {
                assert_eq!(intent.status, IntentStatus::Succeeded, "{} has no charge", intent.id);
                intent.amount_refunded = (intent.amount_refunded + amount).min(intent.amount);
                refunded_charge(
                    intent.charge.as_deref().unwrap(),
                    &intent.id,
                    Cents::new(intent.amount),
                    Cents::new(intent.amount_refunded),
                    &Currency::parse(&intent.currency).unwrap(),
                )
            },
        );
        Self::signed("charge.refunded", object)
    }

    /// The customer's bank disputes the charge: `charge.dispute.<event>` with `status`.
    pub fn dispute(&self, intent_id: &str, event: &str, status: &str) -> Webhook {
        let object = self.with_intent(
            |i| i.id == intent_id,
            |intent, _| {
                let charge = intent.charge.clone().expect("a paid intent");
                dispute_object(
                    &format!("dp_for_{charge}"),
                    &charge,
                    &intent.id,
                    Cents::new(intent.amount),
                    &Currency::parse(&intent.currency).unwrap(),
                    status,
                    "fraudulent",
                )
            },
        );
        Self::signed(&format!("charge.dispute.{event}"), object)
    }

    /// Posts `webhook` to the API at `base` as Stripe would; returns the `result` it answered.
    pub async fn deliver(&self, http: &reqwest::Client, base: &str, webhook: &Webhook) -> Value {
        let response = http
            .post(format!("{base}/api/webhooks/stripe"))
            .header("stripe-signature", &webhook.signature)
            .header("content-type", "application/json")
            .body(webhook.payload.clone())
            .send()
            .await
            .expect("webhook sent");
        assert_eq!(response.status(), 200, "the API acknowledges Stripe's webhook");
        response.json::<Value>().await.unwrap()["result"].clone()
    }

    pub fn stop(self) {
        self.server.abort();
    }
}
