//! Staff routes: `/api/admin/products` (admins) and `/api/admin/orders` (fulfilment staff and
//! admins). Roles come from the extractors (`Auth<Admin>`, `Auth<Staff>`), which re-read the
//! role from the database on each request.
//!
//! Product and variant writes take a fixed set of fields, parsed by `domain` (`RawProduct`,
//! `RawProductPatch`, `RawVariantPatch`: a key that is not in the whitelist is a 400 naming
//! it), never column names from the request. Deleting archives. After a catalog write
//! commits, this instance reads the new catalog version at once (its next read shows the
//! write) and the edge is asked to purge `/api/products` and the product's page, now and
//! again a few seconds later (`purge.rs`); other instances see the new version within
//! `CATALOG_VERSION_CHECK_MS`. The response carries `X-Catalog-Version`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use db::CatalogVersion;
use db::admin::{ProductWrite, VariantWrite};
use db::orders::{MoveOutcome, OrderFilter, StatusMove};
use domain::{
    DesignData, DesignId, NewProduct, OrderId, PaymentStatus, Product, ProductId, ProductPatch, ProductionStatus,
    RawProduct, RawProductPatch, RawVariantPatch, VariantId, VariantPatch,
};
use objects::ObjectKey;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::auth::{Admin, Auth, Staff};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::catalog::X_CATALOG_VERSION;
use crate::routes::no_store;
use crate::views::{self, CustomerView, DesignView, OrderItemView, OrderView, StatusChangeView};

const DESIGN_URL_TTL: Duration = Duration::from_secs(60 * 60);

/// What a committed catalog write leaves behind: the version that includes it, and whether
/// the edge accepted the purge (`None`: no edge configured).
struct AfterWrite {
    version: CatalogVersion,
    edge_purged: Option<bool>,
}

async fn after_catalog_write(state: &AppState, slug: &str) -> AfterWrite {
    let version = state.cache.catalog_changed().await;
    let edge_purged = match state.edge_purge.as_ref() {
        Some(purge) => {
            let keys = vec!["/api/products".to_owned(), format!("/api/products/{slug}")];
            Some(purge.purge(&keys, &[]).await)
        }
        None => None,
    };
    AfterWrite { version, edge_purged }
}

fn written(status: StatusCode, body: serde_json::Value, after: &AfterWrite) -> Response {
    let mut body = body;
    body["edge_purged"] = json!(after.edge_purged);
    let mut response = no_store((status, Json(body)));
    response.headers_mut().insert(X_CATALOG_VERSION, HeaderValue::from(after.version.get()));
    response
}

fn product_response(product: &Product, status: StatusCode, after: &AfterWrite) -> Response {
    written(status, json!({ "product": product }), after)
}

pub async fn create_product(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(body): ApiJson<RawProduct>,
) -> Result<Response, ApiError> {
    let product = NewProduct::parse(&body)?;
    match state.catalog_admin.create_product(&product).await? {
        ProductWrite::Done(p) => {
            tracing::info!(product = %p.id, by = %auth.user().id, "product created");
            let after = after_catalog_write(&state, p.slug.as_str()).await;
            Ok(product_response(&p, StatusCode::CREATED, &after))
        }
        ProductWrite::Conflict => {
            Err(ApiError::new(StatusCode::CONFLICT, "product_conflict", "the slug or a SKU is already taken"))
        }
        ProductWrite::NotFound => Err(ApiError::internal()),
    }
}

fn product_id(raw: &str) -> Result<ProductId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("product"))
}

pub async fn update_product(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<RawProductPatch>,
) -> Result<Response, ApiError> {
    let id = product_id(&raw)?;
    let patch = ProductPatch::parse(&body)?;
    write_result(&state, state.catalog_admin.update_product(id, &patch).await?, &auth, "product updated").await
}

pub async fn archive_product(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = product_id(&raw)?;
    write_result(&state, state.catalog_admin.archive_product(id).await?, &auth, "product archived").await
}

async fn write_result(
    state: &AppState,
    result: ProductWrite,
    auth: &Auth<Admin>,
    what: &'static str,
) -> Result<Response, ApiError> {
    match result {
        ProductWrite::Done(p) => {
            tracing::info!(product = %p.id, by = %auth.user().id, "{what}");
            let after = after_catalog_write(state, p.slug.as_str()).await;
            Ok(product_response(&p, StatusCode::OK, &after))
        }
        ProductWrite::NotFound => Err(ApiError::not_found("product")),
        ProductWrite::Conflict => Err(ApiError::new(StatusCode::CONFLICT, "product_conflict", "conflicting product")),
    }
}

/// `PATCH /api/admin/variants/{id}`: a price (or cost, or stock) change.
pub async fn update_variant(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<RawVariantPatch>,
) -> Result<Response, ApiError> {
    let id: VariantId = raw.parse().map_err(|_| ApiError::not_found("variant"))?;
    let patch = VariantPatch::parse(&body)?;
    match state.catalog_admin.update_variant(id, &patch).await? {
        VariantWrite::Done { variant, product_slug } => {
            tracing::info!(
                variant = %variant.id,
                price_cents = variant.price_cents.get(),
                by = %auth.user().id,
                "variant updated"
            );
            let after = after_catalog_write(&state, product_slug.as_str()).await;
            Ok(written(StatusCode::OK, json!({ "variant": variant, "product_slug": product_slug }), &after))
        }
        VariantWrite::NotFound => Err(ApiError::not_found("variant")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderListQuery {
    pub payment_status: Option<String>,
    pub production_status: Option<String>,
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub before: Option<String>,
}

fn cursor(order: &db::orders::Order) -> String {
    format!("{}.{}", order.created_at.unix_timestamp_nanos() / 1000, order.id)
}

fn parse_cursor(raw: &str) -> Option<(OffsetDateTime, OrderId)> {
    let (micros, id) = raw.split_once('.')?;
    let micros: i128 = micros.parse().ok()?;
    let at = OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1000)?).ok()?;
    Some((at, id.parse().ok()?))
}

pub async fn list_orders(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    query: Result<Query<OrderListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let payment_status = q
        .payment_status
        .as_deref()
        .map(|s| {
            PaymentStatus::parse(s).ok_or_else(|| {
                ApiError::unprocessable("invalid_filter", "payment_status", "pending, paid, failed or refunded")
            })
        })
        .transpose()?;
    let production_status = q
        .production_status
        .as_deref()
        .map(|s| {
            ProductionStatus::parse(s).ok_or_else(|| {
                ApiError::unprocessable(
                    "invalid_filter",
                    "production_status",
                    "pending, in_production, printed, shipped, delivered or cancelled",
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::unprocessable("invalid_filter", "limit", "between 1 and 200"));
    }
    let before = q
        .before
        .as_deref()
        .map(|c| {
            parse_cursor(c)
                .ok_or_else(|| ApiError::unprocessable("invalid_filter", "before", "not a cursor from this list"))
        })
        .transpose()?;
    let orders = state.orders.list(&OrderFilter { payment_status, production_status, before, limit }).await?;
    let next_cursor = (orders.len() as i64 == limit).then(|| orders.last().map(cursor)).flatten();
    let orders: Vec<OrderView> = views::all(&orders);
    Ok(no_store(Json(json!({ "orders": orders, "next_cursor": next_cursor }))))
}

fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("order"))
}

/// Design images for an item's `custom_spec.design_id`: the design and short-lived URLs of
/// its artwork.
async fn design_images(state: &AppState, spec: &Value) -> Result<Value, ApiError> {
    let Some(id) = spec.get("design_id").and_then(Value::as_str).and_then(|s| s.parse::<DesignId>().ok()) else {
        return Ok(Value::Null);
    };
    let Some(design) = state.designs.get_for_staff(id).await? else {
        return Ok(Value::Null);
    };
    let mut artwork = Vec::new();
    if let Ok(data) = DesignData::parse(design.design_data.clone()) {
        for asset_id in data.artwork_ids() {
            let Some(asset) = state.media.asset(asset_id).await? else { continue };
            let url = match ObjectKey::parse(&asset.object_key) {
                Ok(key) => state.objects.presign_get(&key, DESIGN_URL_TTL).await.ok().map(|p| p.url),
                Err(_) => None,
            };
            artwork.push(json!({ "asset_id": asset.id, "kind": asset.kind, "url": url }));
        }
    }
    Ok(json!({ "design": DesignView::from(&design), "artwork": artwork }))
}

pub async fn show_order(
    State(state): State<AppState>,
    _auth: Auth<Staff>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let order = state.orders.by_id(id).await?.ok_or_else(|| ApiError::not_found("order"))?;
    let customer = state.orders.customer(order.customer_id).await?;
    let items = state.orders.items(id).await?;
    let mut rendered = Vec::with_capacity(items.len());
    for item in &items {
        let design = design_images(&state, &item.custom_spec).await?;
        let mut v = serde_json::to_value(OrderItemView::from(item)).map_err(|_| ApiError::internal())?;
        v["design"] = design;
        rendered.push(v);
    }
    let history = state.orders.history(id).await?;
    Ok(no_store(Json(json!({
        "order": OrderView::from(&order),
        "payment_intent_id": order.payment_intent_id,
        "dispute_id": order.dispute.as_ref().map(|d| d.id.as_str()),
        "customer": customer.as_ref().map(CustomerView::from),
        "items": rendered,
        "history": views::all::<_, StatusChangeView>(&history),
    }))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    pub status: String,
    pub tracking_number: Option<String>,
    pub carrier: Option<String>,
    pub notes: Option<String>,
}

pub async fn move_order(
    State(state): State<AppState>,
    auth: Auth<Staff>,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<MoveBody>,
) -> Result<Response, ApiError> {
    let id = order_id(&raw)?;
    let to = ProductionStatus::parse(&body.status).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_status",
            "status",
            "pending, in_production, printed, shipped, delivered or cancelled",
        )
    })?;
    let opt = |raw: Option<&str>, field: &str, max: usize| -> Result<Option<String>, ApiError> {
        match raw.map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) => domain::parse_name(s, max)
                .map(Some)
                .ok_or_else(|| ApiError::unprocessable("invalid_status", field, format!("at most {max} characters"))),
        }
    };
    let mv = StatusMove {
        to,
        tracking_number: opt(body.tracking_number.as_deref(), "tracking_number", 100)?,
        carrier: opt(body.carrier.as_deref(), "carrier", 50)?,
        notes: opt(body.notes.as_deref(), "notes", 2000)?,
        changed_by: auth.user().id,
    };
    match state.orders.move_production(id, &mv).await? {
        MoveOutcome::Moved(order) => {
            tracing::info!(order = %order.id, to = to.as_str(), by = %auth.user().id, "order moved");
            Ok(no_store(Json(json!({ "order": OrderView::from(&*order) }))))
        }
        MoveOutcome::NotFound => Err(ApiError::not_found("order")),
        MoveOutcome::Refused(e) => {
            Err(ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string()).with_field("status"))
        }
    }
}
