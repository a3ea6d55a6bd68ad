//! The HTTP API (PROTOCOL.md §12): signed requests under `/apps/{app_id}`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hush_protocol::api::{ApiAuthError, QueryParams, string_to_sign, verify_request};
use hush_protocol::msgs::EventData;
use hush_protocol::{ChannelKind, ChannelName, EventName, SocketId, UserId, encrypted};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::app::{App, ServerState};
use crate::channels::ChannelInfo;
use crate::telemetry::{AuthFailure, Rejection};

/// An API refusal: a status and a message, sent as `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message for the caller.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

pub(crate) type ApiResult = Result<Json<Value>, ApiError>;

const AUTH_PARAMS: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "auth_signature",
    "body_md5",
];

/// The secret requests are checked against when their key and app id do not
/// name one app: random per process, never revealed, so nothing verifies.
fn decoy_secret() -> &'static [u8] {
    static DECOY: OnceLock<[u8; 32]> = OnceLock::new();
    DECOY.get_or_init(rand::random)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks the request's signature and returns its app and parameters.
pub(crate) fn authenticate(
    state: &ServerState,
    app_id: &str,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    allowed: &[&str],
) -> Result<(Arc<App>, QueryParams), ApiError> {
    let params = QueryParams::parse(uri.query().unwrap_or("")).map_err(|e| {
        ApiError::new(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            e.to_string(),
        )
    })?;
    let Some(key) = params.get("auth_key") else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Missing query parameter: auth_key",
        ));
    };
    // The app the path names, if the key is its key. Otherwise (unknown app
    // id, unknown key, another app's key) the request is checked against a
    // secret nobody knows, so it fails exactly like a bad signature on a
    // real app: same status, same message, same work. Nothing tells an app
    // id that exists from one that does not.
    let app = state.app_by_id(app_id).filter(|a| a.config.key == key);
    let secret: &[u8] = match &app {
        Some(a) => a.config.secret.as_bytes(),
        None => decoy_secret(),
    };
    let verified = verify_request(
        secret,
        method.as_str(),
        uri.path(),
        &params,
        body,
        now_secs(),
    );
    let app = match (app, verified) {
        (Some(app), Ok(())) => app,
        (app, result) => {
            let e = result.err().unwrap_or_else(|| {
                // Only a request signed with the decoy secret gets here.
                ApiAuthError::BadSignature(string_to_sign(method.as_str(), uri.path(), &params))
            });
            if let Some(app) = &app {
                tracing::info!(app = %app.config.id, error = %e, "API request refused");
                app.metrics.auth_failed(AuthFailure::Api);
            }
            return Err(ApiError::new(
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED),
                e.to_string(),
            ));
        }
    };
    if !app.config.enabled {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "Application disabled"));
    }
    // Counted after the signature check, so nobody without the secret can
    // use up an app's allowance.
    if !app.api_rate.try_take(std::time::Instant::now()) {
        app.metrics.rejected(Rejection::ApiRate);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many requests: at most {} API requests per second for this app",
                app.config.max_api_requests_per_second
            ),
        ));
    }
    split_rate(&app, method)?;
    if let Some(k) = params
        .keys()
        .find(|k| !AUTH_PARAMS.contains(k) && !allowed.contains(k))
    {
        return Err(ApiError::bad(format!("Unknown query parameter: {k}")));
    }
    Ok((app, params))
}

/// soketi's split: publishes (`POST`) and reads (`GET`) each have their own
/// per-app allowance, on top of `max_api_requests_per_second`.
fn split_rate(app: &App, method: &Method) -> Result<(), ApiError> {
    let (rate, limit, rejection, what) = if method == Method::GET {
        let l = app.config.max_read_requests_per_second;
        (&app.read_rate, l, Rejection::ReadRate, "read requests")
    } else {
        let l = app.config.max_publishes_per_second;
        (
            &app.publish_rate,
            l,
            Rejection::PublishRate,
            "publish requests",
        )
    };
    if rate.try_take(std::time::Instant::now()) {
        return Ok(());
    }
    app.metrics.rejected(rejection);
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("Too many requests: at most {limit} {what} per second for this app"),
    ))
}

pub(crate) fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        let status = r.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "Request body too large".to_owned()
        } else {
            r.body_text()
        };
        ApiError::new(status, message)
    })
}

/// Parses a JSON object (a body, or a batch item) into `T`; a JSON array,
/// which serde would read into `T` field by field, is refused.
pub(crate) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    if !hush_protocol::wire::is_json_object(body) {
        return Err(ApiError::bad("Invalid JSON body: expected a JSON object"));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("Invalid JSON body: {e}")))
}

fn parse_channel(app: &App, s: &str) -> Result<ChannelName, ApiError> {
    app.parse_channel(s)
        .map_err(|e| ApiError::bad(format!("{e}: {}", s.chars().take(64).collect::<String>())))
}

/// Which attributes an `info` parameter asks for.
#[derive(Debug, Default, Clone, Copy)]
struct InfoWanted {
    user_count: bool,
    subscription_count: bool,
    cache: bool,
}

impl InfoWanted {
    /// True when any count was asked for.
    fn any_count(self) -> bool {
        self.user_count || self.subscription_count
    }

    /// The requested counts of one channel; `user_count` only for presence.
    fn counts(self, name: &ChannelName, i: &ChannelInfo) -> Map<String, Value> {
        let mut attrs = Map::new();
        if self.user_count && name.kind() == ChannelKind::Presence {
            attrs.insert("user_count".into(), i.user_count.into());
        }
        if self.subscription_count {
            attrs.insert("subscription_count".into(), i.subscription_count.into());
        }
        attrs
    }
}

fn parse_info(info: Option<&str>, allowed: &[&str]) -> Result<InfoWanted, ApiError> {
    let mut w = InfoWanted::default();
    for item in info
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !allowed.contains(&item) {
            return Err(ApiError::bad(format!("Unsupported info attribute: {item}")));
        }
        match item {
            "user_count" => w.user_count = true,
            "subscription_count" => w.subscription_count = true,
            "cache" => w.cache = true,
            _ => {}
        }
    }
    Ok(w)
}

/// One event to publish, validated.
struct Publish {
    name: EventName,
    /// Escaped once, copied into the frame of every channel.
    data: EventData,
    channels: Vec<ChannelName>,
    socket_id: Option<SocketId>,
    info: InfoWanted,
}

/// Event fields common to `/events` and `/batch_events` items.
#[derive(Deserialize)]
struct EventBody {
    name: Option<String>,
    data: Option<Box<RawValue>>,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
    info: Option<String>,
}

fn validate_event(app: &App, e: EventBody, batch: bool) -> Result<Publish, ApiError> {
    let cfg = &app.config;
    let name = e.name.ok_or_else(|| ApiError::bad("Missing event name"))?;
    let name = EventName::parse_api(&name).map_err(|err| ApiError::bad(err.to_string()))?;
    let raw = e.data.ok_or_else(|| ApiError::bad("Missing data"))?;
    let data = if raw.get().starts_with('"') {
        // The string literal as received (validated JSON), kept as it is
        // unless it uses escapes hush writes differently.
        EventData::from_literal(&raw)
            .map_err(|err| ApiError::bad(format!("Invalid data: {err}")))?
    } else {
        // Lenient, like sockudo: a non-string data is sent as compact JSON.
        serde_json::from_str::<Value>(raw.get())
            .map(|v| EventData::from_text(&v.to_string()))
            .map_err(|err| ApiError::bad(format!("Invalid data: {err}")))?
    };
    let text = data.text();
    if text.len() > cfg.max_event_data_bytes {
        app.metrics.rejected(Rejection::EventSize);
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Event data is too large: {} bytes, the limit is {}",
                text.len(),
                cfg.max_event_data_bytes
            ),
        ));
    }
    let names: Vec<String> = match (e.channel, e.channels) {
        (Some(c), None) => vec![c],
        (None, Some(cs)) if !batch => cs,
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "Batch events take a single 'channel', not 'channels'",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad(
                "Give either 'channel' or 'channels', not both",
            ));
        }
        (None, None) => return Err(ApiError::bad("Missing channel")),
    };
    if names.is_empty() {
        return Err(ApiError::bad("At least one channel is required"));
    }
    if names.len() > cfg.max_channels_per_trigger {
        return Err(ApiError::bad(format!(
            "Too many channels: at most {} per trigger",
            cfg.max_channels_per_trigger
        )));
    }
    let channels = names
        .iter()
        .map(|n| parse_channel(app, n))
        .collect::<Result<Vec<_>, _>>()?;
    let encrypted = channels.iter().any(|c| c.kind() == ChannelKind::Encrypted);
    if encrypted && channels.len() > 1 {
        return Err(ApiError::bad(
            "Cannot trigger to multiple channels when one of them is an encrypted channel",
        ));
    }
    if encrypted && cfg.require_encrypted_payload && !encrypted::is_ciphertext_envelope(&text) {
        return Err(ApiError::bad(
            "Data for private-encrypted- channels must be {\"nonce\",\"ciphertext\"} produced by an SDK with an encryption master key",
        ));
    }
    let socket_id = e
        .socket_id
        .map(|s| SocketId::parse(&s).map_err(|err| ApiError::bad(err.to_string())))
        .transpose()?;
    let info = parse_info(e.info.as_deref(), &["user_count", "subscription_count"])?;
    Ok(Publish {
        name,
        data,
        channels,
        socket_id,
        info,
    })
}

async fn publish(app: &App, p: &Publish) {
    for c in &p.channels {
        app.publish(c, p.name.as_str(), &p.data, p.socket_id.as_ref())
            .await;
    }
}

/// `POST /apps/{app_id}/events`.
pub async fn events(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_bytes(body)?;
    let (app, _) = authenticate(&state, &app_id, &method, &uri, &body, &[])?;
    let event: EventBody = parse_json(&body)?;
    let p = validate_event(&app, event, false)?;
    publish(&app, &p).await;
    if !p.info.any_count() {
        return Ok(Json(json!({})));
    }
    app.settle().await;
    // Counts are taken after delivery, one entry per unique channel.
    let channels: Map<String, Value> = p
        .channels
        .iter()
        .map(|c| {
            (
                c.to_string(),
                Value::Object(p.info.counts(c, &app.channel_info(c))),
            )
        })
        .collect();
    Ok(Json(json!({ "channels": channels })))
}

#[derive(Deserialize)]
struct BatchBody {
    /// Each item is parsed with [`parse_json`] (objects only).
    batch: Vec<Box<RawValue>>,
}

/// `POST /apps/{app_id}/batch_events`: validates every item, then publishes all.
pub async fn batch_events(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_bytes(body)?;
    let (app, _) = authenticate(&state, &app_id, &method, &uri, &body, &[])?;
    let batch: BatchBody = parse_json(&body)?;
    if batch.batch.len() > app.config.max_batch_events {
        return Err(ApiError::bad(format!(
            "Batch too large: at most {} events",
            app.config.max_batch_events
        )));
    }
    let items = batch
        .batch
        .into_iter()
        .map(|raw| validate_event(&app, parse_json(raw.get().as_bytes())?, true))
        .collect::<Result<Vec<_>, _>>()?;
    let any_info = items.iter().any(|p| p.info.any_count());
    if any_info {
        app.settle().await;
    }
    let mut results = Vec::with_capacity(items.len());
    for p in &items {
        publish(&app, p).await;
        // One object per item (a batch item has exactly one channel).
        let attrs = p
            .channels
            .first()
            .map(|c| p.info.counts(c, &app.channel_info(c)))
            .unwrap_or_default();
        results.push(Value::Object(attrs));
    }
    Ok(Json(if any_info {
        json!({ "batch": results })
    } else {
        json!({})
    }))
}

/// `GET /apps/{app_id}/channels`.
pub async fn channels(
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
    method: Method,
    uri: Uri,
) -> ApiResult {
    let (app, params) = authenticate(
        &state,
        &app_id,
        &method,
        &uri,
        b"",
        &["filter_by_prefix", "info"],
    )?;
    let prefix = params.get("filter_by_prefix").unwrap_or("");
    let info = parse_info(params.get("info"), &["user_count", "subscription_count"])?;
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::bad(
            "info=user_count is only allowed with filter_by_prefix=presence-",
        ));
    }
    app.settle().await;
    let mut out = BTreeMap::new();
    for (name, i) in app.occupied_channels(prefix) {
        out.insert(name.to_string(), Value::Object(info.counts(&name, &i)));
    }
    Ok(Json(json!({ "channels": out })))
}

/// `GET /apps/{app_id}/channels/{channel_name}`.
pub async fn channel(
    State(state): State<Arc<ServerState>>,
    Path((app_id, channel)): Path<(String, String)>,
    method: Method,
    uri: Uri,
) -> ApiResult {
    let (app, params) = authenticate(&state, &app_id, &method, &uri, b"", &["info"])?;
    let name = parse_channel(&app, &channel)?;
    let info = parse_info(
        params.get("info"),
        &["user_count", "subscription_count", "cache"],
    )?;
    if info.user_count && name.kind() != ChannelKind::Presence {
        return Err(ApiError::bad(
            "info=user_count is only available for presence channels",
        ));
    }
    if info.cache && !name.is_cache() {
        return Err(ApiError::bad(
            "info=cache is only available for cache channels",
        ));
    }
    app.settle().await;
    let i = app.channel_info(&name);
    let mut out = Map::new();
    out.insert("occupied".into(), (i.subscription_count > 0).into());
    out.extend(info.counts(&name, &i));
    if info.cache {
        let cache = app.cached_event(&name).map_or(
            Value::Null,
            |(data, ttl)| json!({ "data": data, "ttl": ttl.as_secs() }),
        );
        out.insert("cache".into(), cache);
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /apps/{app_id}/channels/{channel_name}/users`.
pub async fn channel_users(
    State(state): State<Arc<ServerState>>,
    Path((app_id, channel)): Path<(String, String)>,
    method: Method,
    uri: Uri,
) -> ApiResult {
    let (app, _) = authenticate(&state, &app_id, &method, &uri, b"", &[])?;
    let name = parse_channel(&app, &channel)?;
    if name.kind() != ChannelKind::Presence {
        return Err(ApiError::bad(
            "Users are only available for presence channels",
        ));
    }
    app.settle().await;
    let users: Vec<Value> = app
        .presence_user_ids(&name)
        .into_iter()
        .map(|id| json!({ "id": id }))
        .collect();
    Ok(Json(json!({ "users": users })))
}

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`.
pub async fn terminate_connections(
    State(state): State<Arc<ServerState>>,
    Path((app_id, user_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let body = body_bytes(body)?;
    let (app, _) = authenticate(&state, &app_id, &method, &uri, &body, &[])?;
    let user = UserId::parse(&user_id).map_err(|e| ApiError::bad(e.to_string()))?;
    let n = app.terminate_user(&user);
    tracing::info!(app = %app.config.id, user = %user, connections = n, "terminated user connections");
    Ok(Json(json!({})))
}

/// Unknown paths: 404 with a JSON body.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Not found: {}", uri.path()))
}
