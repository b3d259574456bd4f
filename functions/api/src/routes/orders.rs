//! Checkout: `POST /api/orders/calculate-tax`, `POST /api/orders`, `GET /api/orders/{id or number}`.
//!
//! **Every amount is computed here**, from the catalog read on the primary (not the cache)
//! and `domain::quote`, one quote per cart line (each line gets its own quantity break and
//! best discount rule). A cart carries variant ids, quantities and decoration specs only; a
//! price or total in the body is an unknown field and the request is refused (400
//! `invalid_json` naming the field), so no client can believe its price was used.
//!
//! `POST /api/orders` honours `Idempotency-Key` (1–255 printable ASCII characters), scoped to
//! the sender (the account, or the guest's e-mail): a retry — even one racing the first
//! request — gets the same order (200 instead of 201), never a second one; the same key with
//! a different cart is 422 `idempotency_key_reused`. The PaymentIntent is created after the
//! order commits, with Stripe's own idempotency key derived from the order id, so retries
//! also get the same intent.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use domain::{
    Cart, CartLine, Cents, MethodName, OrderId, OrderNumber, OrderTotals, PaymentStatus, PricingContext, Quote,
    RawCart, VariantId,
};
use payments::{CreateIntent, Currency, PaymentError, StripeIdempotencyKey, TaxAddress, TaxLineItem, TaxRequest};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::orders::{Checkout, NewOrder, NewOrderItem, Order};

use crate::app::AppState;
use crate::auth::{AuthUser, MaybeAuth, tokens};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::no_store;

/// A cart line with its server-side price.
pub struct PricedLine {
    pub line: CartLine,
    pub quote: Quote,
    pub sku: String,
}

fn cart_error(e: domain::CartError) -> ApiError {
    ApiError::unprocessable(e.code, e.field, e.message)
}

pub fn payment_error(e: &PaymentError) -> ApiError {
    let code = e.code();
    let status = match code {
        "card_error" => StatusCode::PAYMENT_REQUIRED,
        "payment_provider_unavailable" => {
            return ApiError::unavailable(code, "the payment provider is unavailable; retry shortly", 2);
        }
        "payment_request_invalid" => StatusCode::UNPROCESSABLE_ENTITY,
        "payment_intent_not_found" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_GATEWAY,
    };
    tracing::warn!(error = %e, code, "payment provider error");
    ApiError::new(status, code, e.to_string())
}

/// Prices every line from the primary.
pub async fn price(state: &AppState, cart: &Cart) -> Result<Vec<PricedLine>, ApiError> {
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
    for (i, line) in cart.lines.iter().enumerate() {
        let variant = catalog.variants.iter().find(|v| v.variant.id == line.request.variant_id);
        let method = catalog.methods.iter().find(|m| m.method.name == line.request.method);
        let ctx = PricingContext {
            method: method.map(|m| (m.method.clone(), variant.is_some_and(|v| m.allowed_for(v.variant.product_id)))),
            variant: variant.map(|v| (v.variant.clone(), v.product_status, v.product_title.clone())),
            price_rules: catalog.price_rules.clone(),
        };
        let quote = domain::quote(&line.request, &ctx)
            .map_err(|e| ApiError::unprocessable(e.code(), Cart::quote_error_field(i, &e.field()), e.to_string()))?;
        let sku = variant.map(|v| v.variant.sku.clone()).unwrap_or_default();
        priced.push(PricedLine { line: line.clone(), quote, sku });
    }
    Ok(priced)
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

struct Priced {
    lines: Vec<PricedLine>,
    totals: OrderTotals,
    tax_calculation_id: String,
}

async fn price_with_tax(state: &AppState, cart: &Cart) -> Result<Priced, ApiError> {
    let lines = price(state, cart).await?;
    let tax = state.payments.calculate_tax(&tax_request(cart, &lines)).await.map_err(|e| payment_error(&e))?;
    let quotes: Vec<Quote> = lines.iter().map(|p| p.quote.clone()).collect();
    let totals = OrderTotals::from_quotes(&quotes, tax.tax_amount_exclusive)
        .map_err(|_| ApiError::unprocessable("quote_overflow", "items", "the order total is out of range"))?;
    if tax.amount_total != totals.total_cents {
        tracing::warn!(
            provider_total = tax.amount_total.get(),
            ours = totals.total_cents.get(),
            "tax total differs from ours"
        );
    }
    Ok(Priced { lines, totals, tax_calculation_id: tax.id })
}

fn lines_json(lines: &[PricedLine]) -> Vec<Value> {
    lines.iter().map(|p| json!({ "quote": p.quote, "design_id": p.line.design_id })).collect()
}

fn parse_cart(raw: RawCart) -> Result<Cart, ApiError> {
    Cart::parse(raw).map_err(cart_error)
}

pub async fn calculate_tax(
    State(state): State<AppState>,
    ApiJson(raw): ApiJson<RawCart>,
) -> Result<Response, ApiError> {
    let cart = parse_cart(raw)?;
    let priced = price_with_tax(&state, &cart).await?;
    Ok(no_store(Json(json!({
        "currency": "usd",
        "lines": lines_json(&priced.lines),
        "totals": priced.totals,
        "tax_calculation_id": priced.tax_calculation_id,
    }))))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            "Idempotency-Key is 1 to 255 printable ASCII characters (spaces allowed)",
        )
    };
    let key = value.to_str().map_err(|_| bad())?.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(bad());
    }
    Ok(Some(key.to_owned()))
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

pub async fn create(
    State(state): State<AppState>,
    MaybeAuth(user): MaybeAuth,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let canonical = serde_json::to_vec(&body).map_err(|_| ApiError::internal())?;
    let raw: RawCart = crate::json::parse(&canonical)?;
    let cart = parse_cart(raw)?;
    let email = match (&cart.email, &user) {
        (Some(e), _) => e.as_str().to_owned(),
        (None, Some(u)) => u.email.clone(),
        (None, None) => {
            return Err(ApiError::unprocessable(
                "email_required",
                "email",
                "an e-mail address is needed for the receipt",
            ));
        }
    };
    // A line may name a saved design only of the caller's own (guests have none).
    for (i, line) in cart.lines.iter().enumerate() {
        if let Some(design) = line.design_id {
            let mine = match &user {
                Some(u) => state.designs.get(u.id, design).await?.is_some(),
                None => false,
            };
            if !mine {
                return Err(ApiError::unprocessable(
                    "unknown_design",
                    format!("items[{i}].design_id"),
                    "no saved design of yours has this id",
                ));
            }
        }
    }
    let scope = match &user {
        Some(u) => format!("user:{}", u.id),
        None => format!("guest:{email}"),
    };
    let request_hash: String = Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect();

    // Fast path for a plain retry: no pricing, no tax call.
    if let Some(k) = &key {
        if let Some(existing) = state.orders.by_idempotency_key(&scope, k).await? {
            if existing.request_hash.as_deref() != Some(request_hash.as_str()) {
                return Err(key_reused());
            }
            return respond(&state, existing, StatusCode::OK).await;
        }
    }

    let priced = price_with_tax(&state, &cart).await?;
    if priced.totals.total_cents <= Cents::ZERO {
        return Err(ApiError::unprocessable("invalid_cart", "items", "an order must cost something"));
    }
    let address = serde_json::to_value(&cart.shipping_address).map_err(|_| ApiError::internal())?;
    let new = NewOrder {
        email,
        name: cart.name.clone().or_else(|| Some(cart.shipping_address.name.clone())),
        phone: cart.phone.clone(),
        user_id: user.as_ref().map(|u| u.id),
        currency: "usd".into(),
        totals: priced.totals,
        shipping_address: address,
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
        idempotency: key.map(|key| store::orders::IdempotencyKey { scope, key, request_hash }),
    };
    let (order, status) = match state.orders.checkout(&new, new_order_number).await? {
        Checkout::Created(order) => {
            tracing::info!(order = %order.id, number = %order.order_number, total_cents = order.total_cents, "order placed");
            (order, StatusCode::CREATED)
        }
        Checkout::Existing(order) => (order, StatusCode::OK),
        Checkout::KeyReused => return Err(key_reused()),
    };
    respond(&state, order, status).await
}

fn key_reused() -> ApiError {
    ApiError::unprocessable(
        "idempotency_key_reused",
        "Idempotency-Key",
        "this Idempotency-Key was used for a different cart; use a new key for a new order",
    )
}

/// Ensures the order has its PaymentIntent (same intent on every call: the provider's
/// idempotency key is derived from the order id) and renders the checkout response.
async fn respond(state: &AppState, order: Order, status: StatusCode) -> Result<Response, ApiError> {
    let payment = if matches!(order.payment_status, PaymentStatus::Pending | PaymentStatus::Failed) {
        let request = CreateIntent {
            order_id: order.id.as_uuid(),
            order_number: order.order_number.clone(),
            amount: Cents::new(order.total_cents),
            currency: Currency::parse(&order.currency).map_err(|_| ApiError::internal())?,
            receipt_email: Some(order.email.clone()),
            tax_calculation_id: order.tax_calculation_id.clone(),
            idempotency_key: StripeIdempotencyKey::for_order(order.id.as_uuid()),
        };
        let intent = state.payments.create_intent(&request).await.map_err(|e| payment_error(&e))?;
        if order.payment_intent_id.is_none() {
            state.orders.set_payment_intent(order.id, &intent.id).await?;
        }
        json!({
            "provider": state.payments.name(),
            "intent_id": intent.id,
            "client_secret": intent.client_secret.expose(),
            "amount_cents": intent.amount,
            "currency": intent.currency.as_str(),
        })
    } else {
        Value::Null
    };
    let items = state.orders.items(order.id).await?;
    let token = tokens::order_token(&state.auth.order_token_secret, order.id);
    Ok(no_store((status, Json(json!({ "order": order, "items": items, "payment": payment, "order_token": token })))))
}

#[derive(Deserialize)]
pub struct OrderQuery {
    pub token: Option<String>,
}

/// May this caller read this order? The owner, staff (role re-read from the database), or a
/// guest presenting the order's token. Anyone else gets the same 404 as for a missing order.
async fn may_read(
    state: &AppState,
    order: &Order,
    user: Option<&AuthUser>,
    token: Option<&str>,
) -> Result<bool, ApiError> {
    if let Some(token) = token {
        if tokens::check_order_token(&state.auth.order_token_secret, order.id, token) {
            return Ok(true);
        }
    }
    let Some(user) = user else {
        return Ok(false);
    };
    if order.user_id == Some(user.id) {
        return Ok(true);
    }
    if user.role.is_staff() {
        return Ok(state.accounts.user(user.id).await?.is_some_and(|u| u.role.is_staff()));
    }
    Ok(false)
}

pub async fn show(
    State(state): State<AppState>,
    MaybeAuth(user): MaybeAuth,
    Path(raw): Path<String>,
    Query(query): Query<OrderQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("order");
    let order = if let Ok(id) = raw.parse::<OrderId>() {
        state.orders.by_id(id).await?
    } else if let Some(number) = OrderNumber::parse(&raw) {
        state.orders.by_number(&number).await?
    } else {
        None
    };
    let order = order.ok_or_else(not_found)?;
    let token = query.token.as_deref().or_else(|| headers.get("x-order-token").and_then(|v| v.to_str().ok()));
    if !may_read(&state, &order, user.as_ref(), token).await? {
        return Err(not_found());
    }
    let items = state.orders.items(order.id).await?;
    let history = state.orders.history(order.id).await?;
    Ok(no_store(Json(json!({ "order": order, "items": items, "history": history }))))
}
