//! Checkout as a workflow: price a cart on the server, take tax from the payment provider,
//! record the order once per idempotency key, and make sure it has its PaymentIntent.
//!
//! **Every amount is computed here**, from the catalog read on the primary (not the cache)
//! and `domain::quote`, one quote per cart line (each line gets its own quantity break and
//! best discount rule). A cart carries variant ids, quantities and decoration specs only.
//!
//! An order request may carry an idempotency key, scoped to the sender (the account, or the
//! guest's e-mail): a retry — even one racing the first request — gets the same order, never
//! a second one; the same key with a different cart is [`CheckoutError::KeyReused`]. The
//! idempotency lookup comes before anything reaches the payment provider.
//!
//! **One PaymentIntent per order, however late the retry.** The intent is created after the
//! order commits, with the provider's idempotency key derived from the order id, and its id
//! is recorded on the order. From then on a retry *retrieves* the recorded intent and never
//! creates one: Stripe forgets idempotency keys after about a day, and a create with a
//! forgotten key makes a second intent, which the customer would then pay while the order
//! waited for the first. Only an order with no intent recorded creates one (and if two
//! requests race there, the first recorded wins and both hand out that one).
//!
//! Every call to the provider goes through the request's [`CallBudget`] (see
//! [`stripe_guard`](crate::services::stripe_guard)): limited per client IP and per order,
//! and tax answers reused per cart and address.
//!
//! Nothing here knows HTTP: handlers parse requests into these inputs and map the outcomes
//! (and [`CheckoutError`], in `crate::error`) to responses.

use db::StoreError;
use db::orders::{Checkout, NewOrder, NewOrderItem, Order, OrderItem};
use domain::{
    Cart, CartLine, Cents, MethodName, OrderNumber, OrderTotals, PaymentStatus, PricingContext, Quote, QuoteError,
    VariantId,
};
use payments::{CreateIntent, Currency, PaymentError, PaymentIntent, TaxAddress, TaxLineItem, TaxRequest};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::services::stripe_guard::CallBudget;

/// Why a checkout step did not complete. Each variant is one thing the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("an e-mail address is needed for the receipt")]
    EmailRequired,
    #[error("line {line} names a saved design that is not the caller's")]
    UnknownDesign { line: usize },
    #[error("line {line} cannot be priced: {error}")]
    Unpriceable { line: usize, error: QuoteError },
    #[error("the order total is out of range")]
    TotalOutOfRange,
    #[error("an order must cost something")]
    NothingToPay,
    #[error("this idempotency key was used for a different cart")]
    KeyReused,
    /// Too many calls to the payment provider from this client or for this order.
    #[error("too many payment requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u32 },
    /// The intent recorded on the order is not the order's (another order, amount or
    /// currency): the data disagree with Stripe, which is a bug or tampering, never the
    /// caller's doing.
    #[error("the order's payment intent does not match it: {0}")]
    IntentMismatch(String),
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A cart line with its server-side price.
#[derive(Debug, Clone)]
pub struct PricedLine {
    pub line: CartLine,
    pub quote: Quote,
    pub sku: String,
}

/// A cart priced with tax: what `calculate-tax` shows and what an order records.
#[derive(Debug, Clone)]
pub struct PricedCart {
    pub lines: Vec<PricedLine>,
    pub totals: OrderTotals,
    pub tax_calculation_id: String,
}

/// An order request, parsed: the cart, and the idempotency key with the hash of the exact
/// request it came with.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub cart: Cart,
    pub idempotency: Option<(String, String)>,
}

/// The client's handle on the order's payment.
#[derive(Debug, Clone)]
pub struct PaymentHandle {
    pub provider: &'static str,
    pub intent: PaymentIntent,
}

/// A placed (or re-found) order, ready to show.
#[derive(Debug)]
pub struct PlacedOrder {
    /// False when an idempotent retry found the order placed earlier.
    pub created: bool,
    pub order: Order,
    pub items: Vec<OrderItem>,
    /// `None` once the order is paid or refunded: nothing left to confirm.
    pub payment: Option<PaymentHandle>,
}

/// Prices every line from the primary.
pub async fn price(state: &AppState, cart: &Cart) -> Result<Vec<PricedLine>, CheckoutError> {
    let mut variant_ids: Vec<VariantId> = cart.lines.iter().map(|l| l.request.variant_id).collect();
    variant_ids.sort();
    variant_ids.dedup();
    let mut methods: Vec<MethodName> = Vec::new();
    for l in &cart.lines {
        if !methods.contains(&l.request.method) {
            methods.push(l.request.method.clone());
        }
    }
    let catalog = state.orders.pricing_context(&variant_ids, &methods).await?;
    let mut priced = Vec::with_capacity(cart.lines.len());
    for (line_index, line) in cart.lines.iter().enumerate() {
        let variant = catalog.variants.iter().find(|v| v.variant.id == line.request.variant_id);
        let method = catalog.methods.iter().find(|m| m.method.name == line.request.method);
        let ctx = PricingContext {
            method: method.map(|m| (m.method.clone(), variant.is_some_and(|v| m.allowed_for(v.variant.product_id)))),
            variant: variant.map(|v| (v.variant.clone(), v.product_status, v.product_title.clone())),
            price_rules: catalog.price_rules.clone(),
        };
        let quote = domain::quote(&line.request, &ctx)
            .map_err(|error| CheckoutError::Unpriceable { line: line_index, error })?;
        let sku = variant.map(|v| v.variant.sku.clone()).unwrap_or_default();
        priced.push(PricedLine { line: line.clone(), quote, sku });
    }
    Ok(priced)
}

/// Prices the cart and asks the payment provider for its tax (or reuses its answer for the
/// same cart and address), spending `budget` if the provider is called.
pub async fn price_with_tax(
    state: &AppState,
    cart: &Cart,
    budget: &mut CallBudget<'_>,
) -> Result<PricedCart, CheckoutError> {
    let lines = price(state, cart).await?;
    let tax = state.stripe_guard.tax(&state.payments, &tax_request(cart, &lines), budget).await?;
    let quotes: Vec<Quote> = lines.iter().map(|p| p.quote.clone()).collect();
    let totals =
        OrderTotals::from_quotes(&quotes, tax.tax_amount_exclusive).map_err(|_| CheckoutError::TotalOutOfRange)?;
    if tax.amount_total != totals.total_cents {
        tracing::warn!(
            provider_total = tax.amount_total.get(),
            ours = totals.total_cents.get(),
            "tax total differs from ours"
        );
    }
    Ok(PricedCart { lines, totals, tax_calculation_id: tax.id })
}

fn tax_request(cart: &Cart, priced: &[PricedLine]) -> TaxRequest {
    let a = &cart.shipping_address;
    TaxRequest {
        currency: Currency::usd(),
        line_items: priced
            .iter()
            .enumerate()
            .map(|(i, p)| TaxLineItem {
                amount: p.quote.total_cents,
                quantity: p.quote.quantity,
                reference: format!("{}-{}", i + 1, p.sku),
                tax_code: None,
            })
            .collect(),
        shipping: (domain::SHIPPING_CENTS > Cents::ZERO).then_some(domain::SHIPPING_CENTS),
        address: TaxAddress {
            line1: a.line1.clone(),
            line2: a.line2.clone(),
            city: a.city.clone(),
            state: a.state.clone(),
            postal_code: a.postal_code.clone(),
            country: a.country.clone(),
        },
    }
}

/// Places an order for `user` (or a guest), or finds the one an earlier request with the
/// same idempotency key placed, and makes sure it has its PaymentIntent. `client_ip` is the
/// caller's, for the call limits.
pub async fn place_order(
    state: &AppState,
    user: Option<&AuthUser>,
    request: OrderRequest,
    client_ip: &str,
) -> Result<PlacedOrder, CheckoutError> {
    let mut budget = state.stripe_guard.budget(client_ip);
    let OrderRequest { cart, idempotency } = request;
    let email = match (&cart.email, user) {
        (Some(e), _) => e.as_str().to_owned(),
        (None, Some(u)) => u.email.clone(),
        (None, None) => return Err(CheckoutError::EmailRequired),
    };
    // A line may name a saved design only of the caller's own (guests have none).
    for (line, item) in cart.lines.iter().enumerate() {
        if let Some(design) = item.design_id {
            let mine = match user {
                Some(u) => state.designs.get(u.id, design).await?.is_some(),
                None => false,
            };
            if !mine {
                return Err(CheckoutError::UnknownDesign { line });
            }
        }
    }
    let scope = match user {
        Some(u) => format!("user:{}", u.id),
        None => format!("guest:{email}"),
    };

    // Fast path for a plain retry, before anything reaches the provider: no pricing, no tax.
    if let Some((key, request_hash)) = &idempotency {
        if let Some(existing) = state.orders.by_idempotency_key(&scope, key).await? {
            if existing.request_hash.as_deref() != Some(request_hash.as_str()) {
                return Err(CheckoutError::KeyReused);
            }
            return finish(state, existing, false, &mut budget).await;
        }
    }

    let priced = price_with_tax(state, &cart, &mut budget).await?;
    if priced.totals.total_cents <= Cents::ZERO {
        return Err(CheckoutError::NothingToPay);
    }
    // The intent will be created once the order commits: a caller over the limit is refused
    // now, not left with an order and no intent.
    budget.spend().await?;
    let new = NewOrder {
        email,
        name: cart.name.clone().or_else(|| Some(cart.shipping_address.name.clone())),
        phone: cart.phone.clone(),
        user_id: user.map(|u| u.id),
        currency: "usd".into(),
        totals: priced.totals,
        shipping_address: serde_json::to_value(&cart.shipping_address).unwrap_or(Value::Null),
        notes: cart.notes.clone(),
        tax_calculation_id: Some(priced.tax_calculation_id.clone()),
        items: priced
            .lines
            .iter()
            .map(|p| NewOrderItem {
                variant_id: p.line.request.variant_id,
                quantity: p.quote.quantity,
                unit_price_cents: p.quote.unit_price_cents,
                total_price_cents: p.quote.total_cents,
                custom_spec: custom_spec(&p.line),
            })
            .collect(),
        idempotency: idempotency.map(|(key, request_hash)| db::orders::IdempotencyKey { scope, key, request_hash }),
    };
    match state.orders.checkout(&new, new_order_number).await? {
        Checkout::Created(order) => {
            tracing::info!(order = %order.id, number = %order.order_number, total_cents = order.total_cents.get(), "order placed");
            finish(state, order, true, &mut budget).await
        }
        Checkout::Existing(order) => finish(state, order, false, &mut budget).await,
        Checkout::KeyReused => Err(CheckoutError::KeyReused),
    }
}

/// Ensures an unpaid order has its PaymentIntent and loads its items: the recorded intent,
/// retrieved, or — only when none is recorded — a new one (see the module documentation).
async fn finish(
    state: &AppState,
    order: Order,
    created: bool,
    budget: &mut CallBudget<'_>,
) -> Result<PlacedOrder, CheckoutError> {
    let payment = if matches!(order.payment_status, PaymentStatus::Pending | PaymentStatus::Failed) {
        budget.for_order(order.id);
        budget.spend().await?;
        let intent = match &order.payment_intent_id {
            Some(recorded) => recorded_intent(state, &order, recorded).await?,
            None => {
                let request = CreateIntent {
                    order_id: order.id.as_uuid(),
                    order_number: order.order_number.to_string(),
                    amount: order.total_cents,
                    currency: order_currency(&order)?,
                    receipt_email: Some(order.email.clone()),
                    tax_calculation_id: order.tax_calculation_id.clone(),
                    idempotency_key: payments::StripeIdempotencyKey::for_order(order.id.as_uuid()),
                };
                let intent = state.payments.create_intent(&request).await?;
                let recorded = state.orders.set_payment_intent(order.id, &intent.id).await?;
                if recorded == intent.id {
                    tracing::info!(order = %order.id, intent = %intent.id, "payment intent created");
                    intent
                } else {
                    // A concurrent request recorded its intent first (possible only once Stripe
                    // has forgotten the key): hand out that one; ours is never shown to anyone.
                    tracing::warn!(order = %order.id, ours = %intent.id, recorded = %recorded, "another intent was recorded first");
                    recorded_intent(state, &order, &recorded).await?
                }
            }
        };
        Some(PaymentHandle { provider: state.payments.name(), intent })
    } else {
        None
    };
    let items = state.orders.items(order.id).await?;
    Ok(PlacedOrder { created, order, items, payment })
}

fn order_currency(order: &Order) -> Result<Currency, CheckoutError> {
    Currency::parse(&order.currency)
        .map_err(|e| StoreError::Corrupt(format!("order {} has currency {:?}: {e}", order.id, order.currency)).into())
}

/// The order's recorded intent as the provider has it now, checked against the order.
async fn recorded_intent(state: &AppState, order: &Order, intent_id: &str) -> Result<PaymentIntent, CheckoutError> {
    let intent = state.payments.retrieve_intent(intent_id).await?;
    let problem = if intent.order_id != Some(order.id.as_uuid()) {
        Some(format!("intent {intent_id} names order {:?}", intent.order_id))
    } else if intent.amount != order.total_cents {
        Some(format!(
            "intent {intent_id} is for {} cents, the order totals {}",
            intent.amount.get(),
            order.total_cents.get()
        ))
    } else if intent.currency != order_currency(order)? {
        Some(format!("intent {intent_id} is in {}, the order in {}", intent.currency, order.currency))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(CheckoutError::IntentMismatch(problem)),
        None => Ok(intent),
    }
}

/// The custom spec stored with a line: what staff print.
fn custom_spec(line: &CartLine) -> Value {
    let placements: Vec<Value> = line
        .request
        .placements
        .iter()
        .map(|p| {
            json!({
                "location": p.location,
                "colors": p.colors,
                "stitches": p.stitches,
                "width_in": p.size_hundredths_in.map(|(w, _)| f64::from(w) / 100.0),
                "height_in": p.size_hundredths_in.map(|(_, h)| f64::from(h) / 100.0),
            })
        })
        .collect();
    json!({ "method": line.request.method, "placements": placements, "design_id": line.design_id })
}

fn new_order_number() -> OrderNumber {
    let now = time::OffsetDateTime::now_utc();
    let mut random = [0u8; 5];
    if getrandom::fill(&mut random).is_err() {
        random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..5]);
    }
    OrderNumber::generate(now.year(), u8::from(now.month()), now.day(), random)
}
