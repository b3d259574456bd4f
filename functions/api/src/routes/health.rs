//! `GET /health`, `/health/live`: the process is up. `GET /health/ready`: it can serve,
//! i.e. the database answers (within the pool's bounds: a dead database yields a 503 in
//! about a second, never a hang).

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;
use crate::routes::no_store;

pub async fn live(State(state): State<AppState>) -> Response {
    no_store(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "instance": state.instance_id,
    })))
}

pub async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    let db = &state.db;
    let (primary, replica) =
        tokio::join!(db.primary.ping(), async { if db.has_replica() { Some(db.read.ping().await) } else { None } });
    for result in [Some(primary), replica].into_iter().flatten() {
        result.map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::unavailable("database_unavailable", "the database is not answering", 5)
        })?;
    }
    Ok(no_store(Json(json!({
        "status": "ready",
        "pools": {
            "primary": db.primary.stats(),
            "read": if db.has_replica() { Some(db.read.stats()) } else { None },
        },
    }))))
}
