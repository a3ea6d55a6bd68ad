//! The mailbox on the HTTP API (docs/PROTOCOL-EXT.md §4): a backend that
//! holds a device of its own (a service user) queues envelopes for users,
//! signed like every Pusher API request.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{Method, Uri};
use hush_protocol::msgs::hush::Sent;
use serde::Deserialize;

use crate::api::{ApiError, authenticate, body_bytes, parse_json};
use crate::app::ServerState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    users: Vec<String>,
    envelope: String,
}

/// `POST /apps/{app_id}/mailbox` with `{"users": [...], "envelope": "..."}`:
/// queues a suite 1 envelope whose sender device is an active device of its
/// sender user. Answers like `mailbox.send`.
pub async fn send(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Sent>, ApiError> {
    let body = body_bytes(body)?;
    let (app, _) = authenticate(&state, &app_id, &method, &uri, &body, &[])?;
    if !state.mailbox.config().enabled {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "the mailbox is disabled on this server",
        ));
    }
    let b: SendBody = parse_json(&body)?;
    let sent = state
        .mailbox
        .send(
            &app.config.id,
            app.config.mailbox_ttl_secs,
            None,
            &b.users,
            &b.envelope,
        )
        .await?;
    Ok(Json(sent))
}
