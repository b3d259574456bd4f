//! `GET /api/products` and `GET /api/products/{slug}`: cacheable catalog reads.
//!
//! Two lifetimes, one per kind of cache:
//!
//! * `CDN-Cache-Control: public, max-age=3600, stale-while-revalidate=7200` (RFC 9213) is for
//!   our edge only: it keeps catalog pages an hour and is purged on every catalog write
//!   (twice: see `purge.rs`). Cloudflare honours the field too; our edge strips it before
//!   answering, so no cache further down ever sees the long lifetime.
//! * `Cache-Control: public, max-age=30` is for everyone else — browsers and any shared
//!   cache we cannot purge — so a browser shows an old price at most 30 s after the edge
//!   has the new one. No `stale-while-revalidate` here: a browser would show the stale page
//!   once more while refreshing.
//!
//! A strong `ETag` makes a revalidation cost a 304 without a body, and `X-Catalog-Version`
//! says which catalog version the page shows.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Slug;

use crate::app::AppState;
use crate::cache::Rendered;
use crate::error::ApiError;

/// For browsers and caches we cannot purge.
pub const CATALOG_CACHE_CONTROL: &str = "public, max-age=30";
/// For the edge, which a catalog write purges.
pub const CATALOG_CDN_CACHE_CONTROL: &str = "public, max-age=3600, stale-while-revalidate=7200";
/// Unknown products may be created soon; remember their absence only briefly.
pub const NOT_FOUND_CACHE_CONTROL: &str = "public, max-age=60";
/// RFC 9213's targeted field: read by CDNs (our edge, Cloudflare), ignored by browsers.
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
/// The catalog version a response reflects (`catalog_version` in Postgres).
pub const X_CATALOG_VERSION: HeaderName = HeaderName::from_static("x-catalog-version");

pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let rendered = state.cache.product_list().await?;
    Ok(respond(rendered, &headers, "product"))
}

pub async fn show(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A string that cannot be a slug cannot name a product: 404 without a query.
    let slug = Slug::parse(&raw).map_err(|_| not_found())?;
    let rendered = state.cache.product(slug).await?;
    Ok(respond(rendered, &headers, "product"))
}

fn not_found() -> ApiError {
    ApiError::not_found("product")
}

fn respond(rendered: Rendered, request: &HeaderMap, what: &str) -> Response {
    let version = HeaderValue::from(rendered.version.get());
    let Some(body) = rendered.body else {
        let mut response = ApiError::not_found(what).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(NOT_FOUND_CACHE_CONTROL));
        response.headers_mut().insert(X_CATALOG_VERSION, version);
        return response;
    };
    let etag = HeaderValue::from_str(&rendered.etag).ok();
    let revalidated = etag.as_ref().is_some_and(|etag| if_none_match(request, etag));
    let mut response = if revalidated {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CATALOG_CACHE_CONTROL));
    headers.insert(CDN_CACHE_CONTROL, HeaderValue::from_static(CATALOG_CDN_CACHE_CONTROL));
    headers.insert(X_CATALOG_VERSION, version);
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag);
    }
    response
}

/// RFC 9110 §13.1.2: `*` or any listed tag (weak comparison) matches.
fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.as_bytes();
    request.get_all(header::IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|list| {
        list.split(',').map(str::trim).any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn if_none_match_follows_weak_comparison() {
        let etag = HeaderValue::from_static("\"abc\"");
        assert!(if_none_match(&headers("\"abc\""), &etag));
        assert!(if_none_match(&headers("W/\"abc\""), &etag));
        assert!(if_none_match(&headers("\"x\", \"abc\""), &etag));
        assert!(if_none_match(&headers("*"), &etag));
        assert!(!if_none_match(&headers("\"abcd\""), &etag));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
    }
}
