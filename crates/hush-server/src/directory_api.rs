//! The key directory on the HTTP API (docs/PROTOCOL-EXT.md §3), signed like
//! every Pusher API request: for app backends and auditors (`hush audit`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use hush_protocol::api::QueryParams;
use hush_protocol::msgs::hush::{Audit, LogHead, Lookup};

use crate::api::{ApiError, authenticate};
use crate::app::ServerState;
use crate::directory::DirError;

impl From<DirError> for ApiError {
    fn from(e: DirError) -> Self {
        if let DirError::Unavailable(source) = &e {
            tracing::warn!(error = %source, "key directory request failed");
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.to_string())
    }
}

fn number(params: &QueryParams, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad(format!("{name} must be a non-negative integer")))
        })
        .transpose()
}

/// `GET /apps/{app_id}/directory/users?ids=a,b`.
pub async fn users(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> Result<Json<Lookup>, ApiError> {
    let (app, params) = authenticate(&state, &app_id, &method, &uri, b"", &["ids"])?;
    let ids: Vec<String> = params
        .get("ids")
        .ok_or_else(|| ApiError::bad("Missing query parameter: ids"))?
        .split(',')
        .map(str::to_owned)
        .collect();
    Ok(Json(state.directory.lookup(&app.config.id, &ids).await?))
}

/// `GET /apps/{app_id}/directory/log/head[?epoch=N]`.
pub async fn head(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> Result<Json<LogHead>, ApiError> {
    let (app, params) = authenticate(&state, &app_id, &method, &uri, b"", &["epoch"])?;
    let epoch = number(&params, "epoch")?;
    Ok(Json(state.directory.head(&app.config.id, epoch).await?))
}

/// `GET /apps/{app_id}/directory/log/audit?from=&to=`: the append-only
/// proof between two epochs, for auditors (`hush audit`).
pub async fn audit(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> Result<Json<Audit>, ApiError> {
    let (app, params) = authenticate(&state, &app_id, &method, &uri, b"", &["from", "to"])?;
    let need = |name: &str| {
        number(&params, name)?
            .ok_or_else(|| ApiError::bad(format!("Missing query parameter: {name}")))
    };
    let (from, to) = (need("from")?, need("to")?);
    Ok(Json(state.directory.audit(&app.config.id, from, to).await?))
}
