//! The key directory on the HTTP API (docs/PROTOCOL-EXT.md §3), signed like
//! every Pusher API request: for app backends and auditors (`hush audit`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use hush_protocol::api::QueryParams;
use hush_protocol::msgs::hush::{Consistency, Entries, LogHead, Lookup};

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

/// `GET /apps/{app_id}/directory/users?ids=a,b[&since=N]`.
pub async fn users(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> Result<Json<Lookup>, ApiError> {
    let (app, params) = authenticate(&state, &app_id, &method, &uri, b"", &["ids", "since"])?;
    let ids: Vec<String> = params
        .get("ids")
        .ok_or_else(|| ApiError::bad("Missing query parameter: ids"))?
        .split(',')
        .map(str::to_owned)
        .collect();
    let since = number(&params, "since")?;
    Ok(Json(
        state.directory.lookup(&app.config.id, &ids, since).await?,
    ))
}

/// `GET /apps/{app_id}/directory/log/head`.
pub async fn head(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> Result<Json<LogHead>, ApiError> {
    let (app, _) = authenticate(&state, &app_id, &method, &uri, b"", &[])?;
    Ok(Json(state.directory.head(&app.config.id).await?))
}

/// `GET /apps/{app_id}/directory/log/consistency?from=&to=`.
pub async fn consistency(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> Result<Json<Consistency>, ApiError> {
    let (app, params) = authenticate(&state, &app_id, &method, &uri, b"", &["from", "to"])?;
    let from = number(&params, "from")?.unwrap_or(0);
    let to = number(&params, "to")?.ok_or_else(|| ApiError::bad("Missing query parameter: to"))?;
    Ok(Json(
        state
            .directory
            .consistency(&app.config.id, from, to)
            .await?,
    ))
}

/// `GET /apps/{app_id}/directory/log/entries?start=&end=`.
pub async fn entries(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> Result<Json<Entries>, ApiError> {
    let (app, params) = authenticate(&state, &app_id, &method, &uri, b"", &["start", "end"])?;
    let start = number(&params, "start")?.unwrap_or(0);
    let end =
        number(&params, "end")?.unwrap_or(start.saturating_add(crate::directory::MAX_ENTRIES));
    Ok(Json(
        state.directory.entries(&app.config.id, start, end).await?,
    ))
}
