//! Checkout routes: `POST /api/orders/calculate-tax`, `POST /api/orders`,
//! `GET /api/orders/{id or number}`. The workflow lives in [`crate::services::checkout`];
//! these handlers parse the request, call it and render the outcome.
//!
//! A cart carries variant ids, quantities and decoration specs only; a price or total in the
//! body is an unknown field and the request is refused (400 `invalid_json` naming the field),
//! so no client can believe its price was used. `POST /api/orders` honours `Idempotency-Key`
//! (1–255 printable ASCII characters): a retry gets the same order (200 instead of 201).
//!
//! A guest reads their order with the `order_token` checkout returned, sent in the
//! `X-Order-Token` header; the token expires (`ORDER_TOKEN_TTL_SECS`) and a token in the query
//! string is refused (400 `order_token_in_query`) rather than logged by every proxy on the way.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use db::orders::Order;
use domain::{Cart, OrderId, OrderNumber, RawCart};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::auth::{AuthUser, ClientIp, MaybeAuth};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::order_token::{self, OrderTokenCheck};
use crate::routes::no_store;
use crate::services::checkout::{self, OrderRequest, PlacedOrder, PricedLine};
use crate::views::{self, OrderItemView, OrderView, StatusChangeView};

fn lines_json(lines: &[PricedLine]) -> Vec<Value> {
    lines.iter().map(|p| json!({ "quote": p.quote, "design_id": p.line.design_id })).collect()
}

pub async fn calculate_tax(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    ApiJson(raw): ApiJson<RawCart>,
) -> Result<Response, ApiError> {
    let cart = Cart::parse(raw)?;
    let mut budget = state.stripe_guard.budget(&client_ip);
    let priced = checkout::price_with_tax(&state, &cart, &mut budget).await?;
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

pub async fn create(
    State(state): State<AppState>,
    MaybeAuth(user): MaybeAuth,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    // The key is bound to the request as sent, re-serialised canonically.
    let canonical = serde_json::to_vec(&body).map_err(|_| ApiError::internal())?;
    let raw: RawCart = crate::json::parse(&canonical)?;
    let cart = Cart::parse(raw)?;
    let request_hash: String = Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect();
    let request = OrderRequest { cart, idempotency: key.map(|k| (k, request_hash)) };
    let placed = checkout::place_order(&state, user.as_ref(), request, &client_ip).await?;
    Ok(render_placed(&state, placed))
}

fn render_placed(state: &AppState, placed: PlacedOrder) -> Response {
    let PlacedOrder { created, order, items, payment } = placed;
    let payment = payment.map_or(Value::Null, |p| {
        json!({
            "provider": p.provider,
            "intent_id": p.intent.id,
            "client_secret": p.intent.client_secret.expose(),
            "amount_cents": p.intent.amount,
            "currency": p.intent.currency.as_str(),
            "status": p.intent.status.as_str(),
        })
    });
    let token = order_token::issue(
        &state.auth.order_token_secret,
        order.id,
        state.checkout.order_token_ttl,
        std::time::SystemTime::now(),
    );
    let expires_at = i64::try_from(token.expires_at)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let (order, items) = (OrderView::from(&order), views::all::<_, OrderItemView>(&items));
    no_store((
        status,
        Json(json!({
            "order": order,
            "items": items,
            "payment": payment,
            "order_token": token.token,
            "order_token_expires_at": expires_at,
        })),
    ))
}

/// The query string of `GET /api/orders/{id}`: only to refuse a token sent in it.
#[derive(Deserialize)]
pub struct OrderQuery {
    pub token: Option<String>,
}

/// Whether this caller may read this order.
enum Access {
    Allowed,
    /// Only an expired token of this order's was presented.
    TokenExpired,
    Denied,
}

/// May this caller read this order? The owner, staff (role re-read from the database), or a
/// guest presenting the order's unexpired token. Anyone else gets the same 404 as for a
/// missing order.
async fn may_read(
    state: &AppState,
    order: &Order,
    user: Option<&AuthUser>,
    token: Option<&str>,
) -> Result<Access, ApiError> {
    let token_check = token
        .map(|token| order_token::check(&state.auth.order_token_secret, order.id, token, std::time::SystemTime::now()));
    if token_check == Some(OrderTokenCheck::Valid) {
        return Ok(Access::Allowed);
    }
    let signed_in = match user {
        None => false,
        Some(user) if order.user_id == Some(user.id) => true,
        Some(user) if user.role.is_staff() => state.accounts.user(user.id).await?.is_some_and(|u| u.role.is_staff()),
        Some(_) => false,
    };
    Ok(match (signed_in, token_check) {
        (true, _) => Access::Allowed,
        (false, Some(OrderTokenCheck::Expired)) => Access::TokenExpired,
        (false, _) => Access::Denied,
    })
}

pub async fn show(
    State(state): State<AppState>,
    MaybeAuth(user): MaybeAuth,
    Path(raw): Path<String>,
    Query(query): Query<OrderQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if query.token.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "order_token_in_query",
            "send the order token in the X-Order-Token header, not in the URL",
        )
        .with_field("token"));
    }
    let not_found = || ApiError::not_found("order");
    let order = if let Ok(id) = raw.parse::<OrderId>() {
        state.orders.by_id(id).await?
    } else if let Some(number) = OrderNumber::parse(&raw) {
        state.orders.by_number(&number).await?
    } else {
        None
    };
    let order = order.ok_or_else(not_found)?;
    let token = headers.get(order_token::HEADER).and_then(|v| v.to_str().ok());
    match may_read(&state, &order, user.as_ref(), token).await? {
        Access::Allowed => {}
        Access::TokenExpired => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "order_token_expired",
                "this order token has expired: sign in, or place the order again with the same Idempotency-Key for a new token",
            ));
        }
        Access::Denied => return Err(not_found()),
    }
    let items = state.orders.items(order.id).await?;
    let history = state.orders.history(order.id).await?;
    let items: Vec<OrderItemView> = views::all(&items);
    let history: Vec<StatusChangeView> = views::all(&history);
    Ok(no_store(Json(json!({ "order": OrderView::from(&order), "items": items, "history": history }))))
}
