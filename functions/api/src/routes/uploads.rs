//! `POST /api/uploads` and `POST /api/uploads/{id}/complete`: getting a customer's image
//! into object storage without it passing through the function.
//!
//! 1. The client declares the file (type, exact size, name). We reserve an upload id and a
//!    key and return a presigned PUT, valid 15 minutes, whose signature covers the
//!    content type and the exact length: the object store itself refuses anything else.
//! 2. The client PUTs the bytes straight to storage, then calls `complete`. We check the
//!    stored object — size, magic bytes, dimensions from the header — and record the
//!    `upload` asset with its SHA-256. Completing twice returns the same asset.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use db::jobs::{NewAsset, NewUpload, UploadState};
use domain::{AssetKind, ImageFormat, MAX_UPLOAD_BYTES, UploadId, inspect_image};
use objects::ObjectKey;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::MaybeAuth;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::views::AssetView;

/// How long a presigned upload URL stays valid.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartUpload {
    pub content_type: String,
    pub byte_size: i64,
    pub filename: Option<String>,
}

/// A signed-in caller becomes the upload's owner (and so its asset's and its cut-outs'):
/// saved designs may use only their own or public (guest) artwork.
pub async fn start(
    State(state): State<AppState>,
    MaybeAuth(user): MaybeAuth,
    ApiJson(body): ApiJson<StartUpload>,
) -> Result<Response, ApiError> {
    let format = ImageFormat::from_mime(&body.content_type).ok_or_else(|| {
        ApiError::unprocessable("unsupported_file_type", "content_type", "upload a PNG, JPEG or WebP image")
    })?;
    let size = u64::try_from(body.byte_size).ok().filter(|s| (1..=MAX_UPLOAD_BYTES).contains(s)).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_file_size",
            "byte_size",
            format!("the file must be between 1 byte and {} MiB", MAX_UPLOAD_BYTES / (1024 * 1024)),
        )
    })?;
    let original_name = match body.filename {
        None => None,
        Some(name) => Some(clean_filename(&name).ok_or_else(|| {
            ApiError::unprocessable("invalid_filename", "filename", "at most 255 characters, no control characters")
        })?),
    };

    let id = UploadId::from_uuid(Uuid::new_v4());
    let key = upload_key(INCOMING, id, format)?;
    let put = state.objects.presign_put(&key, format.mime(), size, UPLOAD_URL_TTL).await?;
    let expires_at = OffsetDateTime::now_utc() + UPLOAD_URL_TTL;
    state
        .media
        .create_upload(&NewUpload {
            id,
            object_key: key.to_string(),
            content_type: format.mime().to_owned(),
            byte_size: body.byte_size,
            original_name,
            expires_at,
        })
        .await?;
    if let Some(user) = &user {
        state.designs.claim_upload(id, user.id).await?;
    }

    let headers: serde_json::Map<String, serde_json::Value> =
        put.headers.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    let body = json!({
        "upload": {
            "id": id,
            "expires_at": expires_at.unix_timestamp(),
            "put": { "method": put.method, "url": put.url, "headers": headers },
            "complete_url": format!("/api/uploads/{id}/complete"),
        }
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn complete(State(state): State<AppState>, Path(raw_id): Path<String>) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("upload");
    let id: UploadId = raw_id.parse().map_err(|_| not_found())?;
    let upload = state.media.upload(id).await?.ok_or_else(not_found)?;
    if let UploadState::Completed(asset_id) = upload.state {
        state.designs.inherit_upload_owner(id, asset_id).await?;
        let asset = state.media.asset(asset_id).await?.ok_or_else(ApiError::internal)?;
        return Ok((StatusCode::OK, Json(json!({ "asset": AssetView::from(&asset) }))).into_response());
    }

    let key = ObjectKey::parse(&upload.object_key).map_err(|_| ApiError::internal())?;
    let declared = u64::try_from(upload.byte_size).map_err(|_| ApiError::internal())?;
    let meta = state.objects.head(&key).await?.ok_or_else(|| {
        if OffsetDateTime::now_utc() > upload.expires_at {
            ApiError::new(
                StatusCode::GONE,
                "upload_expired",
                "the upload URL expired before a file arrived; start again",
            )
        } else {
            ApiError::new(StatusCode::CONFLICT, "upload_not_received", "PUT the file to the upload URL first")
        }
    })?;
    if meta.size != declared {
        return Err(ApiError::unprocessable(
            "upload_size_mismatch",
            "byte_size",
            format!("{} bytes were declared but {} arrived", declared, meta.size),
        ));
    }
    let bytes = state.objects.get(&key, declared).await?;
    let format = ImageFormat::from_mime(&upload.content_type).ok_or_else(ApiError::internal)?;
    let facts =
        inspect_image(&bytes, format).map_err(|e| ApiError::unprocessable("invalid_image", "file", e.to_string()))?;
    let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    // Keep the file: out of `incoming/` (expired by the bucket's lifecycle rule when never
    // completed) into `uploads/`. Uploads started before keys had the prefix are kept in place.
    let kept = upload_key(KEPT, id, format)?;
    if kept != key {
        state.objects.copy(&key, &kept).await?;
    }

    let asset = state
        .media
        .complete_upload(
            id,
            &NewAsset {
                object_key: kept.as_str(),
                kind: AssetKind::Upload,
                content_type: format.mime(),
                byte_size: upload.byte_size,
                content_hash: &hash,
                width: i32::try_from(facts.width).map_err(|_| ApiError::internal())?,
                height: i32::try_from(facts.height).map_err(|_| ApiError::internal())?,
                dpi: None,
                original_name: upload.original_name.as_deref(),
                job_id: None,
            },
        )
        .await?;
    state.designs.inherit_upload_owner(id, asset.id).await?;
    tracing::info!(upload = %id, asset = %asset.id, bytes = upload.byte_size, "upload completed");
    Ok((StatusCode::CREATED, Json(json!({ "asset": AssetView::from(&asset) }))).into_response())
}

/// Where browsers PUT new uploads; the bucket expires what stays here (two days).
const INCOMING: &str = "incoming";
/// Where a completed upload is kept.
const KEPT: &str = "uploads";

fn upload_key(prefix: &str, id: UploadId, format: ImageFormat) -> Result<ObjectKey, ApiError> {
    ObjectKey::parse(&format!("{prefix}/{}/original.{}", id.as_uuid().simple(), format.extension()))
        .map_err(|_| ApiError::internal())
}

/// A display name for the file: trimmed, at most 255 characters, no control characters.
/// Path separators are kept as text (the name is never used as a path).
fn clean_filename(raw: &str) -> Option<String> {
    let name = raw.trim();
    (name.chars().count() <= 255 && !name.chars().any(char::is_control)).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::clean_filename;

    #[test]
    fn filenames_are_kept_as_text_within_bounds() {
        assert_eq!(clean_filename("  cat.png "), Some("cat.png".into()));
        assert_eq!(clean_filename("../../etc/passwd"), Some("../../etc/passwd".into()));
        assert_eq!(clean_filename("'; DROP TABLE assets;--.png"), Some("'; DROP TABLE assets;--.png".into()));
        assert_eq!(clean_filename("bad\nname.png"), None);
        assert_eq!(clean_filename(&"x".repeat(256)), None);
    }
}
