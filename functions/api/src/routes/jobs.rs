//! `POST /api/jobs` and `GET /api/jobs/{id}`: background removal for an uploaded asset.
//!
//! Both answer only the asset's owner: the signed-in account that uploaded it, or the guest
//! whose token (`X-Guest-Token`) started the upload. Anyone else — another account, another
//! guest, nobody — gets the same 404 as for an id that does not exist, so ids are not even
//! confirmed. The storefront polls `GET` every 2 s; the response is small, uncached and
//! served from the primary so a job is visible the moment it is created.
//!
//! A job ends `done` or `error` by its `deadline_at` (`CUTOUT_JOB_DEADLINE_SECS` after it
//! was created): a poll past the deadline finds it failed, and asking again for the same
//! upload supersedes it with a new job. See `services::media` for how the message is sent
//! (after the job is committed) and for the chores that ride on these requests.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use db::jobs::{Job, JobRequest};
use domain::{AssetId, AssetKind, JobId, JobStatus};
use objects::ObjectKey;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;
use crate::guest::MediaCaller;
use crate::json::ApiJson;
use crate::routes::no_store;
use crate::services::media;
use crate::views::AssetView;

/// How long result URLs handed to the storefront stay valid.
const RESULT_URL_TTL: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartJob {
    pub asset_id: String,
}

pub async fn start(
    State(state): State<AppState>,
    MediaCaller(caller): MediaCaller,
    ApiJson(body): ApiJson<StartJob>,
) -> Result<Response, ApiError> {
    let unknown = || ApiError::not_found("asset").with_field("asset_id");
    let asset_id: AssetId = body.asset_id.parse().map_err(|_| unknown())?;
    let asset = state.media.asset_for(asset_id, &caller).await?.ok_or_else(unknown)?;
    if asset.kind != AssetKind::Upload {
        return Err(ApiError::unprocessable("asset_not_an_upload", "asset_id", "only uploaded images can be cut out"));
    }

    let outcome = media::request_cutout(&state.media, &state.queue, asset_id, state.media_config.job_deadline).await?;
    media::job_chores(&state.media, &state.queue).await;
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

pub async fn show(
    State(state): State<AppState>,
    MediaCaller(caller): MediaCaller,
    Path(raw_id): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("job");
    let id: JobId = raw_id.parse().map_err(|_| not_found())?;
    let job = state.media.job_for(id, &caller).await?.ok_or_else(not_found)?;
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
            "deadline_at": job.deadline_at.unix_timestamp(),
            "result": result,
        }
    }))
}

/// The job's result assets: the caller owns the job (checked before), so its results too.
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
