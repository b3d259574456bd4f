//! What stands between a caller and Stripe. Checkout is open to guests, so without a guard
//! anyone could make the shop call Stripe as often as they liked — tax quotes, new orders,
//! replays of an order — spending its API rate limit (Stripe answers 429 to the whole
//! account) and dressing up card testing as checkouts.
//!
//! Two things guard it, both shared by every instance through Postgres:
//! - **A call budget per request** ([`CallBudget`]): a request that is about to call Stripe
//!   counts once, before its first call, against its client IP and, for a replay of an
//!   existing order, against that order (`PAYMENT_CALLS_PER_IP`, `PAYMENT_CALLS_PER_ORDER`
//!   per `PAYMENT_CALL_WINDOW_SECS`). Over either limit the request is refused with 429
//!   `payment_rate_limited` before anything reaches Stripe.
//! - **Tax answers by fingerprint** ([`StripeGuard::tax`]): the same cart shipped to the same
//!   address is asked once per `TAX_QUOTE_TTL_SECS`; a reused answer costs no budget.
//!
//! Requests that do not reach Stripe (a replay of a paid order, a cached tax answer, a
//! refused cart) cost nothing. With the local provider the guard stands aside: nothing leaves
//! the process, and `make dev` and the benchmarks measure the shop, not the guard.

use std::sync::Arc;

use db::Database;
use db::payment_calls::{Admission, Bucket, PaymentCalls};
use db::tax_quotes::{TaxQuote, TaxQuotes};
use domain::OrderId;
use payments::{Payments, TaxCalculation, TaxRequest};

use crate::checkout_config::CheckoutConfig;
use crate::services::checkout::CheckoutError;

/// The limits and the tax cache. Cheap to clone.
#[derive(Clone)]
pub struct StripeGuard {
    enabled: bool,
    calls: PaymentCalls,
    quotes: TaxQuotes,
    config: Arc<CheckoutConfig>,
}

impl StripeGuard {
    /// `enabled` when the provider calls out over the network (Stripe).
    pub fn new(db: Database, config: Arc<CheckoutConfig>, enabled: bool) -> Self {
        Self { enabled, calls: PaymentCalls::new(db.clone()), quotes: TaxQuotes::new(db), config }
    }

    /// The guard for a provider: on for Stripe, off for the local stand-in.
    pub fn for_provider(db: Database, config: Arc<CheckoutConfig>, payments: &Payments) -> Self {
        Self::new(db, config, payments.local().is_none())
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// A fresh budget for one request from `client_ip`.
    pub fn budget<'a>(&'a self, client_ip: &'a str) -> CallBudget<'a> {
        CallBudget { guard: self, client_ip, order: None, spent: false }
    }

    /// Tax for `request`: a reused answer for the same fingerprint when there is one, else
    /// Stripe's (spending the budget), kept for the next asker.
    pub async fn tax(
        &self,
        payments: &Payments,
        request: &TaxRequest,
        budget: &mut CallBudget<'_>,
    ) -> Result<TaxCalculation, CheckoutError> {
        let ttl = self.config.tax_quote_ttl;
        if !self.enabled || ttl.is_zero() {
            budget.spend().await?;
            return Ok(payments.calculate_tax(request).await?);
        }
        let fingerprint = request.fingerprint();
        if let Some(quote) = self.quotes.get(&fingerprint).await? {
            tracing::debug!(calculation = %quote.calculation_id, "tax answer reused");
            return Ok(TaxCalculation {
                id: quote.calculation_id,
                amount_total: quote.amount_total,
                tax_amount_exclusive: quote.tax_amount_exclusive,
                tax_amount_inclusive: quote.tax_amount_inclusive,
                expires_at: quote.calculation_expires_at,
            });
        }
        budget.spend().await?;
        let calculation = payments.calculate_tax(request).await?;
        let quote = TaxQuote {
            calculation_id: calculation.id.clone(),
            amount_total: calculation.amount_total,
            tax_amount_exclusive: calculation.tax_amount_exclusive,
            tax_amount_inclusive: calculation.tax_amount_inclusive,
            calculation_expires_at: calculation.expires_at,
        };
        // The answer stands whether or not it could be kept.
        if let Err(e) = self.quotes.put(&fingerprint, &quote, ttl).await {
            tracing::warn!(error = %e, "could not keep a tax answer");
        }
        Ok(calculation)
    }
}

/// One request's allowance: it counts once against its buckets, at its first call to Stripe.
pub struct CallBudget<'a> {
    guard: &'a StripeGuard,
    client_ip: &'a str,
    order: Option<OrderId>,
    spent: bool,
}

impl CallBudget<'_> {
    /// The request replays `order`: its calls count against the order too.
    pub fn for_order(&mut self, order: OrderId) {
        self.order = Some(order);
    }

    /// Call before calling Stripe. The first call counts against the buckets and may refuse
    /// the request; later ones in the same request are free.
    pub async fn spend(&mut self) -> Result<(), CheckoutError> {
        if self.spent || !self.guard.enabled {
            return Ok(());
        }
        let config = &self.guard.config;
        let mut buckets = vec![Bucket { key: format!("ip:{}", self.client_ip), limit: config.calls_per_ip }];
        if let Some(order) = self.order {
            buckets.push(Bucket { key: format!("order:{order}"), limit: config.calls_per_order });
        }
        match self.guard.calls.admit(&buckets, config.call_window).await? {
            Admission::Admitted => {
                self.spent = true;
                Ok(())
            }
            Admission::Limited { bucket, retry_after_secs } => {
                tracing::warn!(bucket, retry_after_secs, "payment calls limited");
                Err(CheckoutError::RateLimited { retry_after_secs })
            }
        }
    }
}
