//! The local payment provider for `make dev` and tests without a Stripe key.
//!
//! It keeps intents in memory and never moves money. Confirming an intent does not flip any
//! order state itself: it returns a `payment_intent.succeeded` event signed with the local
//! webhook secret, which the API delivers to its own webhook route. Verification, event
//! parsing, de-duplication and the order update are therefore the production code path.
//!
//! **Tax is not real here**: a flat `tax_rate` (basis points, 0 by default) of items plus
//! shipping, rounded half away from zero to the cent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use domain::{BasisPoints, Cents};

use crate::clock::now_unix;
use crate::event_body::{IntentObject, dispute_object, event_payload, refunded_charge};
use crate::random;
use crate::secret::{ClientSecret, WebhookSecret};
use crate::types::{CreateIntent, IntentStatus, PaymentIntent, TaxCalculation, TaxRequest};
use crate::webhook::sign;

/// A webhook ready to be POSTed to the API's own `/api/webhooks/stripe` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWebhook {
    /// The raw JSON body.
    pub payload: Vec<u8>,
    /// The `Stripe-Signature` header value.
    pub signature_header: String,
    /// `evt_local_…`, unique per call.
    pub event_id: String,
}

/// Why a local operation was refused (mirroring what Stripe would refuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalError {
    #[error("no local PaymentIntent {0}")]
    UnknownIntent(String),
    #[error("PaymentIntent {intent_id} is {status}; cannot {action}")]
    InvalidState { intent_id: String, status: String, action: &'static str },
    /// Same idempotency key, different parameters: Stripe answers `idempotency_error`.
    #[error("idempotency key reused with different parameters")]
    IdempotencyConflict,
    #[error("invalid payment request: {0}")]
    InvalidRequest(String),
}

struct LocalIntent {
    intent: PaymentIntent,
    request: CreateIntent,
    charge_id: Option<String>,
    refunded: bool,
}

#[derive(Default)]
struct State {
    intents: HashMap<String, LocalIntent>,
    by_idempotency_key: HashMap<String, String>,
}

/// In-memory payments for development. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct LocalPayments {
    state: Arc<Mutex<State>>,
    secrets: Arc<[WebhookSecret]>,
    tax_rate: BasisPoints,
}

impl std::fmt::Debug for LocalPayments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPayments").field("tax_rate", &self.tax_rate).finish_non_exhaustive()
    }
}

impl LocalPayments {
    /// `webhook_secret` signs the events [`confirm`](Self::confirm) and friends produce; the API
    /// verifies with [`webhook_secrets`](Self::webhook_secrets). `tax_rate` is the flat,
    /// pretend tax rate (see the module documentation).
    pub fn new(webhook_secret: WebhookSecret, tax_rate: BasisPoints) -> Self {
        Self { state: Arc::default(), secrets: Arc::from(vec![webhook_secret]), tax_rate }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a dev stand-in; keep serving.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The secrets incoming webhooks are verified against (just the local one).
    pub fn webhook_secrets(&self) -> &[WebhookSecret] {
        &self.secrets
    }

    /// Creates an intent (`pi_local_…`, status `requires_payment_method`). The same
    /// idempotency key returns the same intent; the same key with a different order or
    /// amount is refused, as Stripe would.
    pub fn create_intent(&self, request: &CreateIntent) -> Result<PaymentIntent, LocalError> {
        request.validate().map_err(LocalError::InvalidRequest)?;
        let mut state = self.lock();
        let existing = state.by_idempotency_key.get(request.idempotency_key.as_str());
        if let Some(local) = existing.and_then(|id| state.intents.get(id)) {
            if local.request != *request {
                return Err(LocalError::IdempotencyConflict);
            }
            return Ok(local.intent.clone());
        }
        let id = format!("pi_local_{}", random::hex(12));
        let intent = PaymentIntent {
            client_secret: ClientSecret::new(format!("{id}_secret_{}", random::hex(12))),
            id: id.clone(),
            amount: request.amount,
            amount_received: Cents::ZERO,
            currency: request.currency.clone(),
            status: IntentStatus::RequiresPaymentMethod,
            order_id: Some(request.order_id),
        };
        state.by_idempotency_key.insert(request.idempotency_key.as_str().to_owned(), id.clone());
        state.intents.insert(
            id,
            LocalIntent { intent: intent.clone(), request: request.clone(), charge_id: None, refunded: false },
        );
        Ok(intent)
    }

    /// The intent as it is now (status moves with confirm/fail).
    pub fn retrieve_intent(&self, intent_id: &str) -> Result<PaymentIntent, LocalError> {
        self.lock()
            .intents
            .get(intent_id)
            .map(|local| local.intent.clone())
            .ok_or_else(|| LocalError::UnknownIntent(intent_id.to_owned()))
    }

    /// Pretend tax: `tax_rate` × (items + shipping), rounded to the cent. Not real tax.
    pub fn calculate_tax(&self, request: &TaxRequest) -> Result<TaxCalculation, LocalError> {
        request.validate().map_err(LocalError::InvalidRequest)?;
        let overflow = || LocalError::InvalidRequest("amounts overflow".into());
        let taxable = request.taxable_total().ok_or_else(overflow)?;
        let tax = taxable.checked_apply_bp(self.tax_rate).ok_or_else(overflow)?;
        Ok(TaxCalculation {
            id: format!("taxcalc_local_{}", random::hex(12)),
            amount_total: taxable.checked_add(tax).ok_or_else(overflow)?,
            tax_amount_exclusive: tax,
            tax_amount_inclusive: Cents::ZERO,
            expires_at: Some(now_unix() + 90 * 24 * 3600),
        })
    }

    /// The customer paid: the intent succeeds and a signed `payment_intent.succeeded` event is
    /// returned for the API to deliver to its webhook route. Allowed from
    /// `requires_payment_method` (new, or after a failed attempt).
    pub fn confirm(&self, intent_id: &str) -> Result<SignedWebhook, LocalError> {
        let object = {
            let mut state = self.lock();
            let local = state.intents.get_mut(intent_id).ok_or_else(|| LocalError::UnknownIntent(intent_id.into()))?;
            ensure_status(local, IntentStatus::RequiresPaymentMethod, "confirm")?;
            local.intent.status = IntentStatus::Succeeded;
            local.intent.amount_received = local.intent.amount;
            local.charge_id = Some(format!("ch_local_{}", random::hex(12)));
            intent_object(local)
        };
        Ok(self.signed_event("payment_intent.succeeded", object))
    }

    /// The card was declined: a signed `payment_intent.payment_failed` event. The intent
    /// returns to `requires_payment_method`, so it can still be confirmed later.
    pub fn fail(&self, intent_id: &str) -> Result<SignedWebhook, LocalError> {
        let object = {
            let mut state = self.lock();
            let local = state.intents.get_mut(intent_id).ok_or_else(|| LocalError::UnknownIntent(intent_id.into()))?;
            ensure_status(local, IntentStatus::RequiresPaymentMethod, "fail")?;
            intent_object(local)
        };
        Ok(self.signed_event("payment_intent.payment_failed", object))
    }

    /// Staff refunded the payment in full: a signed `charge.refunded` event. Allowed once,
    /// after the intent succeeded.
    pub fn refund(&self, intent_id: &str) -> Result<SignedWebhook, LocalError> {
        let object = {
            let mut state = self.lock();
            let local = state.intents.get_mut(intent_id).ok_or_else(|| LocalError::UnknownIntent(intent_id.into()))?;
            ensure_status(local, IntentStatus::Succeeded, "refund")?;
            if local.refunded {
                return Err(LocalError::InvalidState {
                    intent_id: intent_id.into(),
                    status: "refunded".into(),
                    action: "refund",
                });
            }
            local.refunded = true;
            let intent = &local.intent;
            let charge_id = local.charge_id.clone().unwrap_or_default();
            refunded_charge(&charge_id, &intent.id, intent.amount, intent.amount, &intent.currency)
        };
        Ok(self.signed_event("charge.refunded", object))
    }

    /// The customer's bank disputed the payment: a signed `charge.dispute.created` event
    /// (status `needs_response`, reason `fraudulent`) for the whole amount. Allowed after the
    /// intent succeeded.
    pub fn dispute(&self, intent_id: &str) -> Result<SignedWebhook, LocalError> {
        let object = {
            let state = self.lock();
            let local = state.intents.get(intent_id).ok_or_else(|| LocalError::UnknownIntent(intent_id.into()))?;
            ensure_status(local, IntentStatus::Succeeded, "dispute")?;
            let intent = &local.intent;
            let charge_id = local.charge_id.clone().unwrap_or_default();
            let dispute_id = format!("dp_local_{}", random::hex(12));
            dispute_object(
                &dispute_id,
                &charge_id,
                &intent.id,
                intent.amount,
                &intent.currency,
                "needs_response",
                "fraudulent",
            )
        };
        Ok(self.signed_event("charge.dispute.created", object))
    }

    /// Wraps `object` in an event envelope shaped like Stripe's and signs it now.
    fn signed_event(&self, event_type: &str, object: serde_json::Value) -> SignedWebhook {
        let event_id = format!("evt_local_{}", random::hex(12));
        let created = now_unix();
        let payload = event_payload(&event_id, event_type, created, false, object);
        let signature_header = sign(&payload, &self.secrets[0], created);
        SignedWebhook { payload, signature_header, event_id }
    }
}

fn ensure_status(local: &LocalIntent, wanted: IntentStatus, action: &'static str) -> Result<(), LocalError> {
    if local.intent.status == wanted {
        Ok(())
    } else {
        Err(LocalError::InvalidState {
            intent_id: local.intent.id.clone(),
            status: local.intent.status.as_str().to_owned(),
            action,
        })
    }
}

fn intent_object(local: &LocalIntent) -> serde_json::Value {
    let intent = &local.intent;
    IntentObject {
        intent_id: intent.id.clone(),
        amount: intent.amount,
        amount_received: intent.amount_received,
        currency: intent.currency.clone(),
        status: intent.status.clone(),
        order_id: Some(local.request.order_id),
        order_number: Some(local.request.order_number.clone()),
        latest_charge: local.charge_id.clone(),
    }
    .to_json()
}
