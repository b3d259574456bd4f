//! A small client over Stripe's HTTP API: just the calls the shop makes (PaymentIntents and
//! Tax calculations), form-encoded as Stripe expects, with timeouts and careful retries.
//!
//! Why not an SDK: the official Rust crates generate thousands of types and pull their own
//! HTTP/TLS stacks; three endpoints are easier to read, test and keep on the workspace's
//! rustls + ring stack.
//!
//! Retry rule: a request is retried only when repeating it cannot do harm and may succeed —
//! network errors and timeouts, HTTP 429 and 5xx — and never when Stripe says
//! `Stripe-Should-Retry: false`. Other 4xx answers (a declined card, a bad parameter) are
//! final, with one narrow exception: a 409 that Stripe marks `Stripe-Should-Retry: true`,
//! which means an earlier attempt under the same idempotency key is still being processed. Every POST carries an `Idempotency-Key`, identical on every attempt, so a retry
//! after a lost response returns the first result instead of creating a second intent.

use std::sync::Arc;
use std::time::Duration;

use domain::Cents;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::random;
use crate::secret::{ApiKey, ClientSecret};
use crate::types::{
    APPAREL_TAX_CODE, CreateIntent, Currency, IntentStatus, PaymentIntent, SHIPPING_TAX_CODE, StripeIdempotencyKey,
    TaxCalculation, TaxRequest,
};

/// The API version every request pins (`Stripe-Version`), so a dashboard upgrade of the
/// account's default version cannot change the shapes this client parses.
pub const STRIPE_API_VERSION: &str = "2024-06-20";

/// Where Stripe's API lives; tests point the client at a local stub instead.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// How many times, and how patiently, a failed request is repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first (0 = never retry).
    pub max_retries: u32,
    /// The first back-off; it doubles per retry up to `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 2, initial_backoff: Duration::from_millis(250), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (0-based): `initial × 2^retry`, capped, then
    /// "equal jitter" (a random point in its upper half) so many instances retrying at once
    /// do not hammer Stripe in lock-step.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(2u32.saturating_pow(retry.min(16)));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        let jitter_range = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        let jitter = random::up_to(jitter_range);
        half + Duration::from_micros(jitter)
    }
}

/// Connection settings for [`StripeClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeSettings {
    /// `https://api.stripe.com` in production; a stub's address in tests. No trailing slash.
    pub api_base: String,
    /// Limit on establishing a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Limit on one whole attempt (connect, send, and read the full response).
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl Default for StripeSettings {
    /// Worst case with defaults: 3 attempts × 3 s + back-offs ≈ 10 s, within the API's
    /// default 10 s request limit only just; lower `STRIPE_MAX_RETRIES` if that limit shrinks.
    fn default() -> Self {
        Self {
            api_base: DEFAULT_API_BASE.to_owned(),
            connect_timeout: Duration::from_millis(1500),
            timeout: Duration::from_millis(3000),
            retry: RetryPolicy::default(),
        }
    }
}

/// Stripe's error object (`{"error": {"type": …, "code": …, "message": …}}`), carried by
/// [`StripeError::Api`]. Named for Stripe so it is never mistaken for the API crate's own
/// `ApiError` (the error body *our* API answers with).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StripeApiError {
    /// `card_error`, `invalid_request_error`, `api_error`, `idempotency_error`, …
    #[serde(rename = "type", default = "unknown_error_type")]
    pub error_type: String,
    /// e.g. `card_declined`, `amount_too_small`, `rate_limit`.
    pub code: Option<String>,
    pub decline_code: Option<String>,
    /// Human-readable; for `card_error` it is safe to show the customer.
    pub message: Option<String>,
    /// The request parameter at fault, if any.
    pub param: Option<String>,
}

fn unknown_error_type() -> String {
    "unknown".to_owned()
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: StripeApiError,
}

/// Why a Stripe call failed. Carries Stripe's error and request id for support tickets, never
/// the API key (the client's key is not part of any error).
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe answered HTTP {status} ({}{}): {}", .error.error_type, .error.code.as_deref().map(|c| format!("/{c}")).unwrap_or_default(), .error.message.as_deref().unwrap_or("no message"))]
    Api {
        status: u16,
        /// Boxed: keeps every `Result<_, StripeError>` small.
        error: Box<StripeApiError>,
        /// Stripe's `Request-Id` header, for its support.
        request_id: Option<String>,
        attempts: u32,
    },
    #[error("Stripe did not answer in time ({attempts} attempts)")]
    Timeout { attempts: u32 },
    #[error("could not reach Stripe ({attempts} attempts): {source}")]
    Network {
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("Stripe's response (HTTP {status}) could not be read: {reason}")]
    InvalidResponse { status: u16, reason: String },
    /// Refused before sending: the request could never succeed.
    #[error("invalid payment request: {0}")]
    InvalidRequest(String),
    #[error("could not build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl StripeError {
    /// A declined or otherwise unusable card: the customer's problem, shown to them.
    pub fn is_card_error(&self) -> bool {
        matches!(self, Self::Api { error, .. } if error.error_type == "card_error")
    }

    /// Stripe was unreachable, slow or failing (after retries): a 502/503 for the API's
    /// caller, who may retry later with the same idempotency key.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Network { .. } | Self::InvalidResponse { .. } => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            Self::InvalidRequest(_) | Self::Client(_) => false,
        }
    }

    /// Stripe's error code (`card_declined`, …) when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { error, .. } => error.code.as_deref(),
            _ => None,
        }
    }
}

/// The HTTP client for Stripe. Cheap to clone (one connection pool, shared).
#[derive(Clone)]
pub struct StripeClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    key: ApiKey,
    settings: StripeSettings,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient").field("key", &self.inner.key).field("settings", &self.inner.settings).finish()
    }
}

/// A form body: Stripe's API takes `application/x-www-form-urlencoded` with bracketed keys
/// for nested fields (`metadata[order_id]=…`).
type Form = Vec<(String, String)>;

#[derive(Deserialize)]
struct IntentResponse {
    id: String,
    amount: i64,
    #[serde(default)]
    amount_received: i64,
    currency: Currency,
    status: String,
    client_secret: Option<String>,
    #[serde(default)]
    metadata: Option<IntentMetadata>,
}

#[derive(Deserialize)]
struct IntentMetadata {
    order_id: Option<String>,
}

#[derive(Deserialize)]
struct TaxResponse {
    id: String,
    amount_total: i64,
    tax_amount_exclusive: i64,
    #[serde(default)]
    tax_amount_inclusive: i64,
    expires_at: Option<i64>,
}

fn is_stripe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl StripeClient {
    /// Builds the client (and its connection pool) once, at start-up.
    pub fn new(key: ApiKey, settings: StripeSettings) -> Result<Self, StripeError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!("stolentee-payments/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(StripeError::Client)?;
        let settings = StripeSettings { api_base: settings.api_base.trim_end_matches('/').to_owned(), ..settings };
        Ok(Self { inner: Arc::new(Inner { http, key, settings }) })
    }

    /// The settings in force (for the start-up log line; there is no secret in them).
    pub fn settings(&self) -> &StripeSettings {
        &self.inner.settings
    }

    /// `POST /v1/payment_intents`. The caller's idempotency key (derived from the order) makes
    /// this safe to call again for the same order: Stripe returns the intent it made the
    /// first time.
    pub async fn create_payment_intent(&self, request: &CreateIntent) -> Result<PaymentIntent, StripeError> {
        request.validate().map_err(StripeError::InvalidRequest)?;
        let mut form: Form = vec![
            ("amount".into(), request.amount.get().to_string()),
            ("currency".into(), request.currency.as_str().into()),
            ("automatic_payment_methods[enabled]".into(), "true".into()),
            ("metadata[order_id]".into(), request.order_id.to_string()),
            ("metadata[order_number]".into(), request.order_number.clone()),
        ];
        if let Some(calculation) = &request.tax_calculation_id {
            form.push(("metadata[tax_calculation]".into(), calculation.clone()));
        }
        if let Some(email) = &request.receipt_email {
            form.push(("receipt_email".into(), email.clone()));
        }
        let (status, body) =
            self.send(Method::POST, "/v1/payment_intents", Some(&form), Some(&request.idempotency_key)).await?;
        let intent = parse_intent(status, &body)?;
        // A reused idempotency key with different parameters makes Stripe answer 400
        // idempotency_error, so a mismatch here would mean a broken stub or proxy.
        if intent.amount != request.amount {
            return Err(StripeError::InvalidResponse {
                status: status.as_u16(),
                reason: format!("intent amount {} differs from the requested {}", intent.amount, request.amount),
            });
        }
        Ok(intent)
    }

    /// `GET /v1/payment_intents/{id}`: the intent's current state, e.g. to double-check an
    /// event that arrived out of order.
    pub async fn retrieve_payment_intent(&self, intent_id: &str) -> Result<PaymentIntent, StripeError> {
        if !is_stripe_id(intent_id) {
            return Err(StripeError::InvalidRequest("not a PaymentIntent id".into()));
        }
        let path = format!("/v1/payment_intents/{intent_id}");
        let (status, body) = self.send(Method::GET, &path, None, None).await?;
        parse_intent(status, &body)
    }

    /// `POST /v1/tax/calculations`: tax for a cart shipped to an address. Nothing is recorded
    /// at Stripe (a calculation expires); each call gets its own random idempotency key,
    /// reused across its retries.
    pub async fn calculate_tax(&self, request: &TaxRequest) -> Result<TaxCalculation, StripeError> {
        request.validate().map_err(StripeError::InvalidRequest)?;
        let mut form: Form = vec![("currency".into(), request.currency.as_str().into())];
        for (i, item) in request.line_items.iter().enumerate() {
            form.push((format!("line_items[{i}][amount]"), item.amount.get().to_string()));
            form.push((format!("line_items[{i}][quantity]"), item.quantity.to_string()));
            form.push((format!("line_items[{i}][reference]"), item.reference.clone()));
            form.push((
                format!("line_items[{i}][tax_code]"),
                item.tax_code.clone().unwrap_or_else(|| APPAREL_TAX_CODE.into()),
            ));
            form.push((format!("line_items[{i}][tax_behavior]"), "exclusive".into()));
        }
        if let Some(shipping) = request.shipping {
            form.push(("shipping_cost[amount]".into(), shipping.get().to_string()));
            form.push(("shipping_cost[tax_code]".into(), SHIPPING_TAX_CODE.into()));
            form.push(("shipping_cost[tax_behavior]".into(), "exclusive".into()));
        }
        let address = &request.address;
        let mut field = |name: &str, value: &str| {
            form.push((format!("customer_details[address][{name}]"), value.to_owned()));
        };
        field("line1", &address.line1);
        if let Some(line2) = &address.line2 {
            field("line2", line2);
        }
        field("city", &address.city);
        if let Some(state) = &address.state {
            field("state", state);
        }
        field("postal_code", &address.postal_code);
        field("country", &address.country.to_ascii_uppercase());
        form.push(("customer_details[address_source]".into(), "shipping".into()));

        let key = StripeIdempotencyKey::new(format!("taxcalc-{}", Uuid::new_v4())).expect("a uuid key is valid");
        let (status, body) = self.send(Method::POST, "/v1/tax/calculations", Some(&form), Some(&key)).await?;
        let raw: TaxResponse = parse_body(status, &body)?;
        let non_negative = |name: &str, v: i64| {
            if v < 0 {
                Err(StripeError::InvalidResponse { status: status.as_u16(), reason: format!("{name} is negative") })
            } else {
                Ok(Cents::new(v))
            }
        };
        Ok(TaxCalculation {
            amount_total: non_negative("amount_total", raw.amount_total)?,
            tax_amount_exclusive: non_negative("tax_amount_exclusive", raw.tax_amount_exclusive)?,
            tax_amount_inclusive: non_negative("tax_amount_inclusive", raw.tax_amount_inclusive)?,
            id: raw.id,
            expires_at: raw.expires_at,
        })
    }

    /// Sends one logical request, retrying as the module documentation describes. Returns the
    /// status and body of a 2xx answer; anything else becomes a [`StripeError`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        form: Option<&Form>,
        idempotency_key: Option<&StripeIdempotencyKey>,
    ) -> Result<(StatusCode, Vec<u8>), StripeError> {
        let url = format!("{}{path}", self.inner.settings.api_base);
        let policy = self.inner.settings.retry;
        let mut retry = 0u32;
        loop {
            let attempts = retry + 1;
            let mut builder = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.inner.key.expose())
                .header("Stripe-Version", STRIPE_API_VERSION);
            if let Some(key) = idempotency_key {
                builder = builder.header("Idempotency-Key", key.as_str());
            }
            if let Some(form) = form {
                builder = builder.form(form);
            }
            let failure = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let header =
                        |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let should_retry = header("stripe-should-retry");
                    let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
                    let request_id = header("request-id");
                    match response.bytes().await {
                        Ok(body) if status.is_success() => return Ok((status, body.to_vec())),
                        Ok(body) => {
                            let retryable = match should_retry.as_deref() {
                                Some("false") => false,
                                // 409 + `true`: our own earlier attempt with this idempotency key
                                // is still in flight at Stripe (typically after a timeout).
                                Some("true") if status == StatusCode::CONFLICT => true,
                                _ => status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
                            };
                            let error = api_error(status, &body, request_id.clone(), attempts);
                            if !retryable || retry >= policy.max_retries {
                                return Err(error);
                            }
                            tracing::warn!(
                                path,
                                status = status.as_u16(),
                                request_id = request_id.as_deref().unwrap_or("-"),
                                attempt = attempts,
                                "stripe request failed; retrying"
                            );
                            let pause = policy.backoff(retry);
                            let pause = match retry_after {
                                Some(secs) => pause.max(Duration::from_secs(secs)).min(policy.max_backoff),
                                None => pause,
                            };
                            tokio::time::sleep(pause).await;
                            retry += 1;
                            continue;
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            // Transport failure: connection refused or reset, TLS failure, timeout, or a body cut
            // short. The request may or may not have reached Stripe; the idempotency key makes
            // repeating it safe.
            if retry >= policy.max_retries || failure.is_builder() {
                return Err(if failure.is_timeout() {
                    StripeError::Timeout { attempts }
                } else {
                    StripeError::Network { attempts, source: failure.without_url() }
                });
            }
            tracing::warn!(path, timeout = failure.is_timeout(), attempt = attempts, "stripe unreachable; retrying");
            tokio::time::sleep(policy.backoff(retry)).await;
            retry += 1;
        }
    }
}

fn api_error(status: StatusCode, body: &[u8], request_id: Option<String>, attempts: u32) -> StripeError {
    let error = match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => Box::new(envelope.error),
        // A proxy's HTML 502 or an empty body: keep the status, say what we know.
        Err(_) => Box::new(StripeApiError {
            error_type: if status.is_server_error() { "api_error".into() } else { unknown_error_type() },
            code: None,
            decline_code: None,
            message: None,
            param: None,
        }),
    };
    StripeError::Api { status: status.as_u16(), error, request_id, attempts }
}

fn parse_body<T: serde::de::DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T, StripeError> {
    serde_json::from_slice(body)
        .map_err(|e| StripeError::InvalidResponse { status: status.as_u16(), reason: e.to_string() })
}

fn parse_intent(status: StatusCode, body: &[u8]) -> Result<PaymentIntent, StripeError> {
    let raw: IntentResponse = parse_body(status, body)?;
    let invalid = |reason: &str| StripeError::InvalidResponse { status: status.as_u16(), reason: reason.to_owned() };
    if raw.amount < 0 || raw.amount_received < 0 {
        return Err(invalid("negative amount"));
    }
    let client_secret =
        raw.client_secret.ok_or_else(|| invalid("no client_secret (does the key have write access?)"))?;
    Ok(PaymentIntent {
        client_secret: ClientSecret::new(client_secret),
        amount: Cents::new(raw.amount),
        amount_received: Cents::new(raw.amount_received),
        currency: raw.currency,
        status: IntentStatus::parse(&raw.status),
        order_id: raw.metadata.and_then(|m| m.order_id).and_then(|s| Uuid::parse_str(&s).ok()),
        id: raw.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for _ in 0..100 {
            let first = policy.backoff(0);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
            let third = policy.backoff(2);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = policy.backoff(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_millis(1000), "{late:?}");
        }
    }

    #[test]
    fn ids_in_paths_are_restricted() {
        assert!(is_stripe_id("pi_3MtwBwLkdIwHu7ix28a3tqPa"));
        assert!(!is_stripe_id("pi_1/../../v1/charges"));
        assert!(!is_stripe_id(""));
        assert!(!is_stripe_id("pi_1?expand=x"));
    }
}
