//! `POST /api/uploads` and `POST /api/uploads/{id}/complete`: getting a customer's image
//! into object storage without it passing through the function.
//!
//! 1. The client declares the file (type, exact size, name). We reserve an upload id and a
//!    random key under `incoming/` and return a presigned PUT, valid 15 minutes, whose
//!    signature covers the content type and the exact length: the object store itself
//!    refuses anything else. The key is random, not the id: the URL gives nothing away.
//!    A signed-in caller owns the upload; a guest gets (or renews) a guest token, which
//!    `complete` and the job routes require (see `crate::guest`).
//! 2. The client PUTs the bytes straight to storage, then calls `complete` (as the owner:
//!    anyone else gets 404). We copy the object to a new random key under `uploads/` that no
//!    URL can write, then check *that copy* — size, magic bytes, dimensions from the header,
//!    SHA-256 — and record it as the `upload` asset. What was checked is what is kept: the
//!    PUT URL stays valid until it expires, but bytes PUT after the copy land in `incoming/`,
//!    which nothing reads again. The incoming object is deleted. Completing twice returns
//!    the same asset.
//!
//! Starting an upload also sweeps a few abandoned ones (`services::media`).

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use db::jobs::{Completion, MediaOwner, NewAsset, NewUpload, UploadState};
use domain::{AssetKind, ImageFormat, MAX_UPLOAD_BYTES, UploadId, inspect_image};
use objects::ObjectKey;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::guest::{GUEST_TOKEN_HEADER, GuestKey, MediaCaller, new_guest};
use crate::json::ApiJson;
use crate::services::media;
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

/// A signed-in caller becomes the upload's owner (and so its asset's and its cut-outs'). A
/// guest's upload belongs to the guest id of the token they sent, or of a new one; either
/// way the response carries the (renewed) token.
pub async fn start(
    State(state): State<AppState>,
    MediaCaller(caller): MediaCaller,
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

    let owner = match caller.user {
        Some(_) => caller,
        None => MediaOwner { user: None, guest: Some(caller.guest.unwrap_or_else(new_guest)) },
    };
    let id = UploadId::from_uuid(Uuid::new_v4());
    let key = opaque_key(INCOMING, format)?;
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
            owner,
        })
        .await?;
    media::sweep_abandoned_uploads(&state.media, &state.objects).await;

    let headers: serde_json::Map<String, serde_json::Value> =
        put.headers.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    let mut body = json!({
        "upload": {
            "id": id,
            "expires_at": expires_at.unix_timestamp(),
            "put": { "method": put.method, "url": put.url, "headers": headers },
            "complete_url": format!("/api/uploads/{id}/complete"),
        }
    });
    if let Some(guest) = owner.guest {
        let token = GuestKey::derive(&state.auth.order_token_secret).issue(guest, SystemTime::now());
        body["guest_token"] = json!({ "token": token, "header": GUEST_TOKEN_HEADER });
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Checks and keeps the uploaded file; see the module docs. Only the upload's owner (account
/// or guest token) may complete it; for anyone else it does not exist.
pub async fn complete(
    State(state): State<AppState>,
    MediaCaller(caller): MediaCaller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("upload");
    let id: UploadId = raw_id.parse().map_err(|_| not_found())?;
    let upload = state.media.upload_for(id, &caller).await?.ok_or_else(not_found)?;
    if let UploadState::Completed(asset_id) = upload.state {
        let asset = state.media.asset(asset_id).await?.ok_or_else(ApiError::internal)?;
        return Ok((StatusCode::OK, Json(json!({ "asset": AssetView::from(&asset) }))).into_response());
    }

    let incoming = ObjectKey::parse(&upload.object_key).map_err(|_| ApiError::internal())?;
    let declared = u64::try_from(upload.byte_size).map_err(|_| ApiError::internal())?;
    let meta = state.objects.head(&incoming).await?.ok_or_else(|| {
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
        return Err(size_mismatch(declared, meta.size));
    }
    let format = ImageFormat::from_mime(&upload.content_type).ok_or_else(ApiError::internal)?;

    // Freeze first, then check what was frozen: a new key per attempt, written once by this
    // copy and by nothing else, so nothing can change it after it is checked.
    let kept = opaque_key(KEPT, format)?;
    state.objects.copy(&incoming, &kept).await?;
    let checked = check_kept(&state, &kept, declared, format).await;
    let (hash, width, height) = match checked {
        Ok(facts) => facts,
        Err(e) => {
            discard(&state, &kept).await;
            return Err(e);
        }
    };

    let completion = state
        .media
        .complete_upload(
            id,
            &NewAsset {
                object_key: kept.as_str(),
                kind: AssetKind::Upload,
                content_type: format.mime(),
                byte_size: upload.byte_size,
                content_hash: &hash,
                width,
                height,
                dpi: None,
                original_name: upload.original_name.as_deref(),
                job_id: None,
            },
        )
        .await;
    let asset = match completion {
        Ok(Completion::Recorded(asset)) => asset,
        Ok(Completion::AlreadyCompleted(asset)) => {
            // A concurrent `complete` won; its copy is the one kept.
            discard(&state, &kept).await;
            return Ok((StatusCode::OK, Json(json!({ "asset": AssetView::from(&asset) }))).into_response());
        }
        Ok(Completion::Vanished) => {
            discard(&state, &kept).await;
            return Err(not_found());
        }
        Err(e) => {
            discard(&state, &kept).await;
            return Err(e.into());
        }
    };
    // Nothing reads incoming/ again; a failed delete is left to the bucket's lifecycle rule.
    if let Err(e) = state.objects.delete(&incoming).await {
        tracing::warn!(key = %incoming, error = %e, "could not delete a completed upload's incoming object");
    }
    tracing::info!(upload = %id, asset = %asset.id, bytes = upload.byte_size, "upload completed");
    Ok((StatusCode::CREATED, Json(json!({ "asset": AssetView::from(&asset) }))).into_response())
}

/// Reads the kept copy (at most the declared size) and checks it: its SHA-256 and
/// dimensions.
async fn check_kept(
    state: &AppState,
    kept: &ObjectKey,
    declared: u64,
    format: ImageFormat,
) -> Result<(String, i32, i32), ApiError> {
    let bytes = state.objects.get(kept, declared).await?;
    if bytes.len() as u64 != declared {
        return Err(size_mismatch(declared, bytes.len() as u64));
    }
    let facts =
        inspect_image(&bytes, format).map_err(|e| ApiError::unprocessable("invalid_image", "file", e.to_string()))?;
    let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let width = i32::try_from(facts.width).map_err(|_| ApiError::internal())?;
    let height = i32::try_from(facts.height).map_err(|_| ApiError::internal())?;
    Ok((hash, width, height))
}

fn size_mismatch(declared: u64, arrived: u64) -> ApiError {
    ApiError::unprocessable(
        "upload_size_mismatch",
        "byte_size",
        format!("{declared} bytes were declared but {arrived} arrived"),
    )
}

/// Deletes a kept copy that will not be recorded (best effort: logged when it fails).
async fn discard(state: &AppState, kept: &ObjectKey) {
    if let Err(e) = state.objects.delete(kept).await {
        tracing::warn!(key = %kept, error = %e, "could not delete an unused copy of an upload");
    }
}

/// Where browsers PUT new uploads; the bucket expires what stays here (two days), and the
/// API sweeps abandoned uploads (`services::media`).
const INCOMING: &str = "incoming";
/// Where a completed upload is kept. No presigned URL ever writes here.
const KEPT: &str = "uploads";

/// `<prefix>/<32 random hex digits>.<ext>`: a key no id can predict.
fn opaque_key(prefix: &str, format: ImageFormat) -> Result<ObjectKey, ApiError> {
    ObjectKey::parse(&format!("{prefix}/{}.{}", Uuid::new_v4().simple(), format.extension()))
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
    use super::*;

    #[test]
    fn filenames_are_kept_as_text_within_bounds() {
        assert_eq!(clean_filename("  cat.png "), Some("cat.png".into()));
        assert_eq!(clean_filename("../../etc/passwd"), Some("../../etc/passwd".into()));
        assert_eq!(clean_filename("'; DROP TABLE assets;--.png"), Some("'; DROP TABLE assets;--.png".into()));
        assert_eq!(clean_filename("bad\nname.png"), None);
        assert_eq!(clean_filename(&"x".repeat(256)), None);
    }

    #[test]
    fn keys_are_random_and_carry_only_the_prefix_and_extension() {
        let (a, b) = (opaque_key(INCOMING, ImageFormat::Png).unwrap(), opaque_key(INCOMING, ImageFormat::Png).unwrap());
        assert_ne!(a, b);
        let name = a.as_str().strip_prefix("incoming/").unwrap().strip_suffix(".png").unwrap();
        assert!(name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()), "{a}");
    }
}
