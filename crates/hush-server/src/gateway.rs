//! The WebSocket gateway: `/app/{key}?protocol=7`, the handshake, and the one
//! task per connection that moves frames between the socket, the connection's
//! outgoing queue and its [`Session`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hush_protocol::{CloseCode, SocketId, wire};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::app::{App, ServerState};
use crate::conn::{Closer, ConnHandle, Frame};
use crate::keepalive::{Keepalive, KeepaliveAction};
use crate::session::{Outcome, Session};
use crate::telemetry::Rejection;

/// What a refused origin is told (sockudo's wording).
const ORIGIN_NOT_ALLOWED: &str = "Origin not allowed";

/// Frames written to the socket before one flush.
const MAX_BATCH: usize = 64;
/// A socket that cannot take a flush within this time is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per connection: small, so idle connections stay cheap, and
/// because tungstenite zero-fills it on every read attempt (which happens on
/// every wake-up of the connection task, also for outgoing frames).
const READ_BUFFER: usize = 1024;
/// Bytes buffered before tungstenite writes to the socket.
const WRITE_BUFFER: usize = 8 * 1024;

/// Protocol versions accepted (PROTOCOL.md §1.2).
const SUPPORTED_PROTOCOLS: std::ops::RangeInclusive<u32> = 5..=7;

/// Decides whether a handshake is acceptable before any state is created.
fn check_protocol(query: &HashMap<String, String>) -> Result<(), (CloseCode, &'static str)> {
    let with_message = |c: CloseCode| (c, c.message());
    let Some(p) = query.get("protocol") else {
        return Err(with_message(CloseCode::NoVersion));
    };
    let v: u32 = p
        .trim()
        .parse()
        .map_err(|_| with_message(CloseCode::InvalidVersion))?;
    if SUPPORTED_PROTOCOLS.contains(&v) {
        Ok(())
    } else {
        Err(with_message(CloseCode::UnsupportedVersion))
    }
}

fn configure(ws: WebSocketUpgrade, state: &ServerState) -> WebSocketUpgrade {
    let max = state.server.max_message_bytes;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER.max(max) * 4)
        .max_message_size(max)
        .max_frame_size(max)
}

/// `GET /app/{key}`: upgrade, then run the connection.
pub async fn connect(
    ws: WebSocketUpgrade,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ws = configure(ws, &state);
    let refusal = check_protocol(&query).and_then(|()| match state.app_by_key(&key) {
        None => Err((CloseCode::AppNotFound, CloseCode::AppNotFound.message())),
        Some(app) if !app.config.enabled => {
            Err((CloseCode::AppDisabled, CloseCode::AppDisabled.message()))
        }
        Some(app) => Ok(app.clone()),
    });
    let ip = state.proxies.client_ip(peer, &headers);
    let refusal = refusal.and_then(|app| {
        let origin = headers
            .get(axum::http::header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        if app.origins.allows(origin) {
            return Ok(app);
        }
        app.metrics.rejected(Rejection::Origin);
        let shown: String = origin.unwrap_or("(none)").chars().take(200).collect();
        tracing::info!(app = %app.config.id, origin = %shown, client = %ip, "connection refused: origin not allowed");
        Err((CloseCode::Unauthorized, ORIGIN_NOT_ALLOWED))
    });
    let client = query.get("client").cloned().unwrap_or_default();
    let version = query.get("version").cloned().unwrap_or_default();
    ws.on_upgrade(move |socket| async move {
        match refusal {
            Err((code, message)) => refuse(socket, code, message).await,
            Ok(app) => run(socket, state, app, ip, &client, &version).await,
        }
    })
    .into_response()
}

/// Any other path that asks for a WebSocket: upgrade and close 4005.
pub async fn bad_path(ws: WebSocketUpgrade, State(state): State<Arc<ServerState>>) -> Response {
    configure(ws, &state)
        .on_upgrade(|socket| {
            refuse(
                socket,
                CloseCode::PathNotFound,
                CloseCode::PathNotFound.message(),
            )
        })
        .into_response()
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

/// Sends `pusher:error` and closes with the same code.
async fn refuse(mut socket: WebSocket, code: CloseCode, message: &str) {
    let frame = wire::error(Some(code.code()), message);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        socket.send(Message::Text(frame.into())).await?;
        socket.send(close_message(code.code(), message)).await
    })
    .await;
}

fn new_socket_id() -> SocketId {
    SocketId::from_parts(rand::random::<u64>() >> 1, rand::random::<u64>() >> 1)
}

fn closer_message(code: u16) -> &'static str {
    match code {
        4009 => "You got disconnected by the app.",
        4100 => "Client too slow: outgoing queue full",
        c => known_message(c),
    }
}

fn known_message(code: u16) -> &'static str {
    [
        CloseCode::Reconnect,
        CloseCode::OverCapacity,
        CloseCode::Unauthorized,
        CloseCode::PongNotReceived,
    ]
    .into_iter()
    .find(|c| c.code() == code)
    .map_or("Closing", CloseCode::message)
}

async fn run(
    socket: WebSocket,
    state: Arc<ServerState>,
    app: Arc<App>,
    ip: std::net::IpAddr,
    client: &str,
    version: &str,
) {
    let (handle, rx, closer) = ConnHandle::new(new_socket_id(), state.server.outgoing_queue_frames);
    let _guard = match state.admit(&app, &handle) {
        Ok(g) => g,
        Err(code) => {
            tracing::info!(app = %app.config.id, code = code.code(), client = %ip, "connection refused");
            return refuse(socket, code, code.message()).await;
        }
    };
    // A debug-level span: entered on every poll of the connection task, so at
    // the default `info` level it must cost nothing. Info-level events name
    // the socket id themselves.
    let span = tracing::debug_span!("conn", app = %app.config.id, socket_id = %handle.socket_id);
    let first =
        wire::connection_established(handle.socket_id.as_str(), state.server.activity_timeout);
    let session = Session::new(app.clone(), handle, state.directory.clone(), Instant::now());
    async {
        tracing::debug!(client, version, ip = %ip, "connected");
        let reason = drive(socket, &state, &app, session, first, rx, closer).await;
        tracing::debug!(reason, "disconnected");
    }
    .instrument(span)
    .await;
}

/// The connection loop. Returns why it ended.
async fn drive(
    socket: WebSocket,
    state: &ServerState,
    app: &App,
    mut session: Session,
    first: String,
    mut rx: mpsc::Receiver<Frame>,
    closer: Arc<Closer>,
) -> &'static str {
    let (mut sink, mut stream) = socket.split();
    if sink.send(Message::Text(first.into())).await.is_err() {
        return "handshake write failed";
    }
    let idle = Duration::from_secs(state.server.activity_timeout + state.server.ping_grace);
    let mut keepalive = Keepalive::new(
        idle,
        Duration::from_secs(state.server.pong_timeout),
        Instant::now(),
    );
    let auth_deadline = app.config.user_authentication.then(|| {
        tokio::time::Instant::now() + Duration::from_secs(app.config.user_authentication_timeout)
    });
    let timer = tokio::time::sleep_until(keepalive.deadline().into());
    tokio::pin!(timer);
    // Futures that live across iterations are created once: re-creating them
    // per wake-up (a Notify registration, a timer) would cost on every frame.
    let close_wait = closer.wait();
    tokio::pin!(close_wait);
    let auth_timer =
        tokio::time::sleep_until(auth_deadline.unwrap_or_else(tokio::time::Instant::now));
    tokio::pin!(auth_timer);

    // What to send before closing, if anything.
    let close: Option<(u16, &'static str)> = loop {
        tokio::select! {
            biased;
            () = &mut close_wait => {
                let code = closer.requested().unwrap_or(CloseCode::Reconnect.code());
                if code == CloseCode::OverCapacity.code() {
                    app.metrics.slow_client_disconnects.increment(1);
                }
                break Some((code, closer_message(code)));
            }
            frame = rx.recv() => {
                let Some(frame) = frame else { break None };
                let ok = tokio::time::timeout(WRITE_TIMEOUT, async {
                    sink.feed(Message::Text(frame)).await?;
                    let mut n = 1;
                    while n < MAX_BATCH {
                        let Ok(f) = rx.try_recv() else { break };
                        sink.feed(Message::Text(f)).await?;
                        n += 1;
                    }
                    sink.flush().await
                }).await;
                if !matches!(ok, Ok(Ok(()))) {
                    return "write failed or timed out";
                }
            }
            msg = stream.next() => {
                let now = Instant::now();
                match msg {
                    None => return "closed by client",
                    Some(Err(e)) => {
                        if is_too_big(&e) {
                            app.metrics.rejected(Rejection::MessageSize);
                            break Some((1009, "Message too big"));
                        }
                        return "read error";
                    }
                    Some(Ok(m)) => {
                        keepalive.on_activity(now);
                        timer.as_mut().reset(keepalive.deadline().into());
                        match m {
                            Message::Text(t) => {
                                app.metrics.received(t.len());
                                if let Outcome::Close(code, msg) = session.handle_text(t.as_str(), now) {
                                    break Some((code.code(), msg));
                                }
                            }
                            Message::Binary(_) => {
                                session.send_error("Binary frames are not supported");
                            }
                            Message::Close(_) => return "closed by client",
                            Message::Ping(_) | Message::Pong(_) => {}
                        }
                    }
                }
            }
            () = &mut timer => {
                match keepalive.poll(Instant::now()) {
                    KeepaliveAction::Wait => {}
                    KeepaliveAction::SendPing => {
                        if sink.send(Message::Text(wire::PING.into())).await.is_err() {
                            return "write failed";
                        }
                    }
                    KeepaliveAction::PongTimeout => {
                        break Some((CloseCode::PongNotReceived.code(), CloseCode::PongNotReceived.message()));
                    }
                }
                timer.as_mut().reset(keepalive.deadline().into());
            }
            () = &mut auth_timer, if auth_deadline.is_some() && !session.is_authorized() => {
                break Some((CloseCode::Unauthorized.code(), "Connection not authorized within timeout."));
            }
        }
    };
    session.close();
    if let Some((code, message)) = close {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
            if code >= 4000 {
                sink.feed(Message::Text(wire::error(Some(code), message).into()))
                    .await?;
            }
            sink.send(close_message(code, message)).await
        })
        .await;
        return message;
    }
    "queue closed"
}

fn is_too_big(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("too long") || text.contains("too big") || text.contains("Space limit")
}
