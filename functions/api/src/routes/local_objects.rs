//! `PUT`/`GET /_objects/{key}`: the HTTP face of the local object store, mounted only when
//! `OBJECT_STORE=local` (`make dev`, tests). It plays the part S3 or R2 play in production:
//! it honours only requests whose HMAC signature, expiry, operation, content type and
//! exact length match what the API signed, and reads at most the signed number of bytes.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, Limited};
use objects::{LocalStore, ObjectError, ObjectStore, SignedOp};

use crate::error::ApiError;

/// The routes, over the given store.
pub fn routes(store: Arc<LocalStore>) -> Router {
    Router::new().route("/_objects/{*key}", get(download).put(upload)).with_state(store)
}

fn forbidden(reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "signature_rejected", format!("the signed URL was refused: {reason}"))
}

async fn download(
    State(store): State<Arc<LocalStore>>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let verified =
        store.verify(SignedOp::Get, &key, query.as_deref().unwrap_or(""), SystemTime::now()).map_err(forbidden)?;
    let meta = store.head(&verified.key).await.map_err(storage)?.ok_or_else(|| ApiError::not_found("object"))?;
    let bytes = store.get(&verified.key, meta.size).await.map_err(storage)?;
    let content_type = meta.content_type.unwrap_or_else(|| "application/octet-stream".into());
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Ok(response)
}

async fn upload(
    State(store): State<Arc<LocalStore>>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let verified =
        store.verify(SignedOp::Put, &key, query.as_deref().unwrap_or(""), SystemTime::now()).map_err(forbidden)?;
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let declared_length =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    verified.check_upload(content_type.as_deref(), declared_length).map_err(forbidden)?;
    let limit = verified.content_length.unwrap_or(0);

    // Never read more than was signed, whatever the headers claim.
    let body = Limited::new(request.into_body(), usize::try_from(limit).unwrap_or(usize::MAX));
    let bytes = body.collect().await.map_err(|_| forbidden("the body is longer than signed"))?.to_bytes();
    verified.check_upload(content_type.as_deref(), Some(bytes.len() as u64)).map_err(forbidden)?;
    store
        .put(&verified.key, bytes, content_type.as_deref().unwrap_or("application/octet-stream"))
        .await
        .map_err(storage)?;
    Ok(StatusCode::OK.into_response())
}

fn storage(e: ObjectError) -> ApiError {
    match e {
        ObjectError::NotFound(_) => ApiError::not_found("object"),
        e => {
            tracing::error!(error = %e, "local object store");
            ApiError::internal()
        }
    }
}
