//! `/api/designs`: a signed-in user's saved designs (list, create, show, update, delete).
//!
//! Every query is scoped to the caller, so someone else's design is a 404, exactly like one
//! that does not exist. `design_data` is parsed into `domain::DesignData` (views front, back
//! and neck only; each placement inside the view's print area; at most 20 per view), and
//! every artwork id must be an asset the caller owns or a public one (no owner). The whole
//! body is bounded by `MAX_BODY_BYTES` (64 KiB by default).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use db::designs::{DesignFields, ReferenceProblem};
use domain::{DesignData, DesignId, ProductId, VariantId};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::no_store;
use crate::views::{self, DesignView};

/// Most designs listed at once.
const LIST_LIMIT: i64 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesignBody {
    pub name: String,
    pub product_id: String,
    pub variant_id: Option<String>,
    pub design_data: Value,
    pub thumbnail_url: Option<String>,
}

async fn fields(state: &AppState, auth: &Auth, body: DesignBody) -> Result<DesignFields, ApiError> {
    let name = domain::parse_name(&body.name, 200).ok_or_else(|| {
        ApiError::unprocessable("invalid_name", "name", "a name is 1 to 200 characters without control characters")
    })?;
    let product_id: ProductId = body
        .product_id
        .parse()
        .map_err(|_| ApiError::unprocessable("invalid_product_id", "product_id", "must be a UUID"))?;
    let variant_id: Option<VariantId> = body
        .variant_id
        .as_deref()
        .map(|v| v.parse().map_err(|_| ApiError::unprocessable("invalid_variant_id", "variant_id", "must be a UUID")))
        .transpose()?;
    let data = DesignData::parse(body.design_data)
        .map_err(|e| ApiError::unprocessable("invalid_design", e.field, e.message))?;
    let thumbnail_url = match body.thumbnail_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(url) => Some(
            domain::WebUrl::parse(url)
                .ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_thumbnail_url",
                        "thumbnail_url",
                        "an http(s) URL of at most 2048 characters",
                    )
                })?
                .into_string(),
        ),
    };
    let design_data = serde_json::to_value(&data).map_err(|_| ApiError::internal())?;
    let fields = DesignFields { name, product_id, variant_id, design_data, thumbnail_url };
    match state.designs.check_references(auth.user().id, &fields, &data.artwork_ids()).await? {
        None => Ok(fields),
        Some(ReferenceProblem::UnknownProduct) => {
            Err(ApiError::unprocessable("unknown_product", "product_id", "no product has this id"))
        }
        Some(ReferenceProblem::VariantNotOfProduct) => {
            Err(ApiError::unprocessable("unknown_variant", "variant_id", "this variant is not one of the product's"))
        }
        Some(ReferenceProblem::UnusableArtwork(ids)) => Err(ApiError::unprocessable(
            "unknown_artwork",
            "design_data",
            format!(
                "artwork {} does not exist or is not yours",
                ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn design_id(raw: &str) -> Result<DesignId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("design"))
}

pub async fn list(State(state): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    let designs = state.designs.list(auth.user().id, LIST_LIMIT).await?;
    let designs: Vec<DesignView> = views::all(&designs);
    Ok(no_store(Json(json!({ "designs": designs }))))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<DesignBody>,
) -> Result<Response, ApiError> {
    let fields = fields(&state, &auth, body).await?;
    let design = state.designs.create(auth.user().id, &fields).await?;
    tracing::info!(design = %design.id, "design saved");
    Ok(no_store((StatusCode::CREATED, Json(json!({ "design": DesignView::from(&design) })))))
}

pub async fn show(State(state): State<AppState>, auth: Auth, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let design =
        state.designs.get(auth.user().id, design_id(&raw)?).await?.ok_or_else(|| ApiError::not_found("design"))?;
    Ok(no_store(Json(json!({ "design": DesignView::from(&design) }))))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(raw): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let id = design_id(&raw)?;
    // Existence first, so someone else's design is a 404 even when the body is invalid.
    if state.designs.get(auth.user().id, id).await?.is_none() {
        return Err(ApiError::not_found("design"));
    }
    let body: DesignBody = crate::json::parse(&serde_json::to_vec(&body).map_err(|_| ApiError::internal())?)?;
    let fields = fields(&state, &auth, body).await?;
    let design =
        state.designs.update(auth.user().id, id, &fields).await?.ok_or_else(|| ApiError::not_found("design"))?;
    Ok(no_store(Json(json!({ "design": DesignView::from(&design) }))))
}

pub async fn delete(State(state): State<AppState>, auth: Auth, Path(raw): Path<String>) -> Result<Response, ApiError> {
    if !state.designs.delete(auth.user().id, design_id(&raw)?).await? {
        return Err(ApiError::not_found("design"));
    }
    Ok(no_store(StatusCode::NO_CONTENT))
}
