//! One handle for "the payment provider", whichever it is: Stripe in production, the local
//! stand-in in `make dev`. The API keeps a [`Payments`] in its state and calls the same
//! methods either way.
//!
//! Why an enum and not a trait: there are exactly two providers and both live in this crate;
//! the API needs to reach the local one by name (the dev-only confirm/fail/refund endpoint,
//! [`Payments::local`]), which a trait object would only offer through a downcast; and the
//! async methods need no boxing. Tests do not need a fake either: the local provider is
//! in-memory and Stripe is stubbed over HTTP.

use std::time::SystemTime;

use crate::event::Event;
use crate::local::{LocalError, LocalPayments};
use crate::secret::WebhookSecret;
use crate::stripe::{StripeClient, StripeError};
use crate::types::{CreateIntent, PaymentIntent, TaxCalculation, TaxRequest};
use crate::webhook::{WebhookError, verify};

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
