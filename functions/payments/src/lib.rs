//! Taking money for Stolen Tee: a small Stripe client, webhook verification, typed webhook
//! events, and a local stand-in for `make dev`.
//!
//! **Architecture invariants** (see `docs/ARCHITECTURE.md`, "Payments"):
//! - No web framework and no database. The API crate owns routes, orders and the
//!   `processed_events` table; this crate only talks to Stripe and checks signatures.
//! - Money is [`Cents`], never a float: amounts go to Stripe as integer
//!   cents and come back the same way.
//! - Secrets ([`ApiKey`], [`WebhookSecret`], [`ClientSecret`]) never appear in `Debug` or
//!   `Display` output, so a logged config or error cannot leak them.
//! - Production and development share one code path: the [`LocalPayments`] provider
//!   confirms a payment by producing a *signed* webhook that the API feeds to the same route
//!   and the same [`verify`] call as a real Stripe event.
//!
//! The API holds a [`Payments`] (cheap to clone) built once from [`PaymentsConfig::from_env`] (the workspace's `config::Env`).

mod clock;
mod config;
mod event;
mod event_body;
#[cfg(feature = "test-support")]
pub mod fixtures;
mod local;
mod provider;
mod random;
mod secret;
mod stripe;
mod types;
mod webhook;

pub use config::{LocalConfig, PaymentsConfig, PaymentsSettings, StripeConfig};
pub use event::{Event, EventKind};
pub use local::{LocalError, LocalPayments, SignedWebhook};
pub use provider::{PaymentError, Payments};
pub use secret::{ApiKey, ClientSecret, SecretError, WebhookSecret};
pub use stripe::{
    DEFAULT_API_BASE, RetryPolicy, STRIPE_API_VERSION, StripeApiError, StripeClient, StripeError, StripeSettings,
};
pub use types::{
    APPAREL_TAX_CODE, CreateIntent, Currency, CurrencyError, IntentStatus, PaymentIntent, SHIPPING_TAX_CODE,
    StripeIdempotencyKey, StripeIdempotencyKeyError, TaxAddress, TaxCalculation, TaxLineItem, TaxRequest,
};
pub use webhook::{DEFAULT_TOLERANCE, WebhookError, sign, verify, verify_signature, verify_with_tolerance};

/// Re-exported so callers name amounts with the same type this crate uses.
pub use domain::{BasisPoints, Cents};
