//! `POST /api/price/quote`: the server's price for a variant, a decoration and a quantity.
//!
//! Prices come from the same versioned catalog cache as the product pages, read at (or
//! after) the catalog version this instance knows, so a quote never prices from before a
//! change the instance has seen; `X-Catalog-Version` says which version it reflects. Orders
//! re-price from the primary inside their transaction; a quote is an offer, not a charge.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use domain::{PricingContext, QuoteRequest, RawQuoteRequest};
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::catalog::X_CATALOG_VERSION;
use crate::routes::no_store;

pub async fn quote(
    State(state): State<AppState>,
    ApiJson(raw): ApiJson<RawQuoteRequest>,
) -> Result<Response, ApiError> {
    let request = QuoteRequest::parse(raw).map_err(|e| ApiError::unprocessable(e.code, e.field, e.message))?;

    let facts = state.cache.quote_facts(request.variant_id, &request.method).await?;
    let variant = facts.variant;
    let ctx = PricingContext {
        method: facts.method.map(|m| {
            let allowed = variant.as_ref().is_some_and(|v| m.allowed_for(v.variant.product_id));
            (m.method.clone(), allowed)
        }),
        variant: variant.map(|v| (v.variant.clone(), v.product_status, v.product_title.clone())),
        price_rules: facts.rules.as_ref().clone(),
    };

    let quote = domain::quote(&request, &ctx)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code(), e.to_string()).with_field(e.field()))?;
    tracing::debug!(total_cents = quote.total_cents.get(), "quoted");

    let mut response = no_store(Json(json!({ "quote": quote })));
    response.headers_mut().insert(X_CATALOG_VERSION, HeaderValue::from(facts.version.get()));
    Ok(response)
}
