//! `POST /api/jobs` and `GET /api/jobs/{id}`: background removal for an uploaded asset.
//!
//! Job ids are random v4 UUIDs (122 random bits): knowing one is the capability to read it,
//! as for an unlisted link; owner checks join when accounts exist. The storefront polls
//! `GET` every 2 s; the response is small, uncached and served from the primary so a job is
//! visible the moment it is created.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use db::jobs::{Job, JobRequest};
use domain::{AssetId, AssetKind, JobId, JobStatus};
use objects::ObjectKey;
use queue::CutoutMessage;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::no_store;
use crate::views::AssetView;

/// How long result URLs handed to the storefront stay valid.
const RESULT_URL_TTL: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartJob {
    pub asset_id: String,
}

pub async fn start(State(state): State<AppState>, ApiJson(body): ApiJson<StartJob>) -> Result<Response, ApiError> {
    let unknown = || ApiError::unprocessable("unknown_asset", "asset_id", "no uploaded asset has this id");
    let asset_id: AssetId = body.asset_id.parse().map_err(|_| unknown())?;
    let asset = state.media.asset(asset_id).await?.ok_or_else(unknown)?;
    if asset.kind != AssetKind::Upload {
        return Err(ApiError::unprocessable("asset_not_an_upload", "asset_id", "only uploaded images can be cut out"));
    }

    let queue = state.queue.clone();
    let outcome = state
        .media
        .request_job(asset_id, |job_id| async move {
            let message = CutoutMessage { job_id: job_id.as_uuid(), asset_id: asset_id.as_uuid() };
            queue.enqueue(&message).await.map(drop)
        })
        .await?
        .map_err(|e| {
            tracing::warn!(error = %e, "could not queue a job");
            ApiError::unavailable("queue_unavailable", "the job queue is unavailable; retry shortly", 2)
        })?;
    let (status, job) = match outcome {
        JobRequest::Created(job) => {
            tracing::info!(job = %job.id, asset = %asset_id, "job queued");
            (StatusCode::ACCEPTED, job)
        }
        JobRequest::Existing(job) => (StatusCode::OK, job),
    };
    let body = render(&state, &job).await?;
    Ok(no_store((status, Json(body))))
}

pub async fn show(State(state): State<AppState>, Path(raw_id): Path<String>) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("job");
    let id: JobId = raw_id.parse().map_err(|_| not_found())?;
    let job = state.media.job(id).await?.ok_or_else(not_found)?;
    let body = render(&state, &job).await?;
    Ok(no_store(Json(body)))
}

/// The job as the storefront sees it; result assets come with short-lived URLs.
async fn render(state: &AppState, job: &Job) -> Result<Value, ApiError> {
    let result = match (job.status, &job.result) {
        (JobStatus::Done, Some(result)) => Some(render_result(state, result).await?),
        _ => None,
    };
    Ok(json!({
        "job": {
            "id": job.id,
            "status": job.status,
            "log": job.logs,
            "error": job.error_message,
            "attempts": job.attempts,
            "asset_id": job.upload_asset_id,
            "created_at": job.created_at.unix_timestamp(),
            "completed_at": job.completed_at.map(|t| t.unix_timestamp()),
            "result": result,
        }
    }))
}

async fn render_result(state: &AppState, result: &Value) -> Result<Value, ApiError> {
    let mut out = serde_json::Map::new();
    for role in ["original", "transparent", "mask"] {
        let Some(id) = result.get(role).and_then(Value::as_str).and_then(|s| s.parse::<AssetId>().ok()) else {
            continue;
        };
        let Some(asset) = state.media.asset(id).await? else {
            continue;
        };
        let key = ObjectKey::parse(&asset.object_key).map_err(|_| ApiError::internal())?;
        let url = state.objects.presign_get(&key, RESULT_URL_TTL).await?.url;
        out.insert(role.into(), json!({ "asset": AssetView::from(&asset), "url": url }));
    }
    for field in ["width", "height", "dpi"] {
        if let Some(v) = result.get(field) {
            out.insert(field.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}
