//! `POST /api/price/quote`: the server's price for a variant, a decoration and a quantity.
//!
//! Prices come from the same TTL-bound catalog cache as the product pages, so a quote never
//! disagrees with the page it was asked from by more than one TTL. Orders (a later route)
//! re-price from the primary inside their transaction; a quote is an offer, not a charge.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use domain::{PricingContext, QuoteRequest, RawQuoteRequest};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::no_store;

pub async fn quote(
    State(state): State<AppState>,
    ApiJson(raw): ApiJson<RawQuoteRequest>,
) -> Result<Response, ApiError> {
    let request = QuoteRequest::parse(raw).map_err(|e| ApiError::unprocessable(e.code, e.field, e.message))?;

    let cache = &state.cache;
    let (variant, method, rules) =
        tokio::try_join!(cache.variant(request.variant_id), cache.method(&request.method), cache.price_rules())?;
    let ctx = PricingContext {
        method: method.map(|m| {
            let allowed = variant.as_ref().is_some_and(|v| m.allowed_for(v.variant.product_id));
            (m.method.clone(), allowed)
        }),
        variant: variant.map(|v| (v.variant.clone(), v.product_status, v.product_title.clone())),
        price_rules: rules.as_ref().clone(),
    };

    let quote = domain::quote(&request, &ctx)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()).with_field(e.field()))?;
    tracing::debug!(total_cents = quote.total_cents.get(), "quoted");

    Ok(no_store(Json(json!({ "quote": quote }))))
}
