//! One handle for "the payment provider", whichever it is: Stripe in production, the local
//! stand-in in `make dev`. The API keeps a [`Payments`] in its state (or an
//! `Arc<dyn PaymentProvider>` if it wants to substitute its own fake) and calls the same
//! methods either way.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use crate::event::Event;
use crate::local::{LocalError, LocalPayments};
use crate::secret::WebhookSecret;
use crate::stripe::{StripeClient, StripeError};
use crate::types::{CreateIntent, PaymentIntent, TaxCalculation, TaxRequest};
use crate::webhook::{WebhookError, verify};

/// A boxed `Send` future, so [`PaymentProvider`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a payment operation failed, whichever provider ran it.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    Stripe(#[from] StripeError),
    #[error(transparent)]
    Local(#[from] LocalError),
}

impl PaymentError {
    /// A stable code for the API's error body:
    /// - `card_error`: Stripe declined the card (show `message` to the customer), 402;
    /// - `payment_provider_unavailable`: Stripe unreachable/slow/5xx/429 after retries, 503;
    /// - `payment_request_invalid`: our request was wrong (a bug, or a cart that cannot be
    ///   charged, e.g. below Stripe's minimum), 422;
    /// - `payment_provider_error`: anything else Stripe refused, 502.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Stripe(e) if e.is_card_error() => "card_error",
            Self::Stripe(e) if e.is_unavailable() => "payment_provider_unavailable",
            Self::Stripe(StripeError::InvalidRequest(_)) => "payment_request_invalid",
            Self::Stripe(StripeError::Api { error, .. }) if error.error_type == "invalid_request_error" => {
                "payment_request_invalid"
            }
            Self::Stripe(_) => "payment_provider_error",
            Self::Local(LocalError::UnknownIntent(_)) => "payment_intent_not_found",
            Self::Local(_) => "payment_request_invalid",
        }
    }
}

/// What the API needs from a payment provider. Object-safe (`Arc<dyn PaymentProvider>`);
/// implemented by [`Payments`] and [`LocalPayments`].
pub trait PaymentProvider: Send + Sync {
    /// `"stripe"` or `"local"`, for logs and the readiness report.
    fn name(&self) -> &'static str;
    /// See [`Payments::create_intent`].
    fn create_intent<'a>(&'a self, request: &'a CreateIntent) -> BoxFuture<'a, Result<PaymentIntent, PaymentError>>;
    /// See [`Payments::retrieve_intent`].
    fn retrieve_intent<'a>(&'a self, intent_id: &'a str) -> BoxFuture<'a, Result<PaymentIntent, PaymentError>>;
    /// See [`Payments::calculate_tax`].
    fn calculate_tax<'a>(&'a self, request: &'a TaxRequest) -> BoxFuture<'a, Result<TaxCalculation, PaymentError>>;
    /// The secrets webhooks must be signed with (several while a secret is being rotated).
    fn webhook_secrets(&self) -> &[WebhookSecret];
}

/// The configured provider. Cheap to clone: both variants share their state behind `Arc`s.
#[derive(Debug, Clone)]
pub enum Payments {
    /// Production: the HTTP client and the endpoint's signing secret(s).
    Stripe { client: StripeClient, webhook_secrets: Vec<WebhookSecret> },
    /// `make dev` and tests: in memory, no money moves.
    Local(LocalPayments),
}

impl Payments {
    /// `"stripe"` or `"local"`, for the start-up log and readiness output.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Stripe { .. } => "stripe",
            Self::Local(_) => "local",
        }
    }

    /// The local provider, for the dev-only confirm/fail/refund endpoint. `None` with
    /// Stripe: that endpoint must not exist in production.
    pub fn local(&self) -> Option<&LocalPayments> {
        match self {
            Self::Local(local) => Some(local),
            Self::Stripe { .. } => None,
        }
    }

    /// Creates (or, for a repeated idempotency key, returns) the order's PaymentIntent.
    pub async fn create_intent(&self, request: &CreateIntent) -> Result<PaymentIntent, PaymentError> {
        match self {
            Self::Stripe { client, .. } => Ok(client.create_payment_intent(request).await?),
            Self::Local(local) => Ok(local.create_intent(request)?),
        }
    }

    /// The intent's current state at the provider (e.g. to double-check a surprising event).
    pub async fn retrieve_intent(&self, intent_id: &str) -> Result<PaymentIntent, PaymentError> {
        match self {
            Self::Stripe { client, .. } => Ok(client.retrieve_payment_intent(intent_id).await?),
            Self::Local(local) => Ok(local.retrieve_intent(intent_id)?),
        }
    }

    /// Tax for a cart and a shipping address (Stripe Tax; a flat pretend rate locally).
    pub async fn calculate_tax(&self, request: &TaxRequest) -> Result<TaxCalculation, PaymentError> {
        match self {
            Self::Stripe { client, .. } => Ok(client.calculate_tax(request).await?),
            Self::Local(local) => Ok(local.calculate_tax(request)?),
        }
    }

    /// The secrets incoming webhooks must be signed with.
    pub fn webhook_secrets(&self) -> &[WebhookSecret] {
        match self {
            Self::Stripe { webhook_secrets, .. } => webhook_secrets,
            Self::Local(local) => local.webhook_secrets(),
        }
    }

    /// Verifies a webhook body against this provider's secrets at the current time (300 s
    /// tolerance) and parses the event: what the webhook route calls with the raw body and
    /// the `Stripe-Signature` header.
    pub fn verify_webhook(&self, payload: &[u8], signature_header: &str) -> Result<Event, WebhookError> {
        verify(payload, signature_header, self.webhook_secrets(), SystemTime::now())
    }
}

impl PaymentProvider for Payments {
    fn name(&self) -> &'static str {
        Payments::name(self)
    }

    fn create_intent<'a>(&'a self, request: &'a CreateIntent) -> BoxFuture<'a, Result<PaymentIntent, PaymentError>> {
        Box::pin(Payments::create_intent(self, request))
    }

    fn retrieve_intent<'a>(&'a self, intent_id: &'a str) -> BoxFuture<'a, Result<PaymentIntent, PaymentError>> {
        Box::pin(Payments::retrieve_intent(self, intent_id))
    }

    fn calculate_tax<'a>(&'a self, request: &'a TaxRequest) -> BoxFuture<'a, Result<TaxCalculation, PaymentError>> {
        Box::pin(Payments::calculate_tax(self, request))
    }

    fn webhook_secrets(&self) -> &[WebhookSecret] {
        Payments::webhook_secrets(self)
    }
}

impl PaymentProvider for LocalPayments {
    fn name(&self) -> &'static str {
        "local"
    }

    fn create_intent<'a>(&'a self, request: &'a CreateIntent) -> BoxFuture<'a, Result<PaymentIntent, PaymentError>> {
        let result = LocalPayments::create_intent(self, request).map_err(PaymentError::from);
        Box::pin(std::future::ready(result))
    }

    fn retrieve_intent<'a>(&'a self, intent_id: &'a str) -> BoxFuture<'a, Result<PaymentIntent, PaymentError>> {
        let result = LocalPayments::retrieve_intent(self, intent_id).map_err(PaymentError::from);
        Box::pin(std::future::ready(result))
    }

    fn calculate_tax<'a>(&'a self, request: &'a TaxRequest) -> BoxFuture<'a, Result<TaxCalculation, PaymentError>> {
        let result = LocalPayments::calculate_tax(self, request).map_err(PaymentError::from);
        Box::pin(std::future::ready(result))
    }

    fn webhook_secrets(&self) -> &[WebhookSecret] {
        LocalPayments::webhook_secrets(self)
    }
}
