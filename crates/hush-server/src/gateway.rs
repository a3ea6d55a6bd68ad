//! The WebSocket gateway: `/app/{key}?protocol=7`, the handshake, and the one
//! task per connection that moves frames between the socket, the connection's
//! outgoing queue and its [`Session`].
//!
//! This is the thin I/O part of a connection: the protocol state lives in
//! the pure [`Session`] and [`Keepalive`], which are handed the time and say
//! what to do ([`Effect`], [`KeepaliveAction`]); the task here owns the
//! socket, the timers and the one clock (tokio's, so tests pause it), runs
//! the effects (frames, key directory requests, closes) and obeys the close
//! signals (the connection's [`crate::conn::Closer`], the node's drain, its
//! app's reload).

mod requests;

/// In a cluster, whether the answer to `msg` carries cluster state: a
/// subscription to a presence channel (its member list) or a cache channel
/// (its last event), or a sign-in with a watchlist (who of it is online).
/// Such a frame first waits for [`App::settle`], so that it sees every join,
/// sign-in and publish that anyone was told about before it.
fn settles_first(app: &App, msg: &ClientMessage) -> bool {
    match msg {
        ClientMessage::Subscribe(d) => app
            .parse_channel(&d.channel)
            .is_ok_and(|n| n.kind() == ChannelKind::Presence || n.is_cache()),
        // Parsed as the sign-in will parse it (its signature is checked
        // after the settle; a sign-in is one frame per connection).
        ClientMessage::Signin { user_data, .. } => hush_protocol::presence::parse_user_data(
            user_data,
            app.config.max_presence_user_info_bytes,
        )
        .is_ok_and(|u| !u.watchlist.is_empty()),
        _ => false,
    }
}

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{self as axum_ws, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hush_protocol::{CloseCode, SocketId, wire};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tracing::Instrument;

use crate::app::{App, ServerState};
use crate::conn::{CloseRequest, ConnHandle, Frame, Link};
use crate::keepalive::{Keepalive, KeepaliveAction};
use crate::net::PeerConn;
use crate::session::{Effect, Session};
use crate::signal::Signalled;
use crate::telemetry::Rejection;
use hush_protocol::ChannelKind;
use hush_protocol::msgs::ClientMessage;
use requests::Requests;
pub use requests::{AppInfo, answer};

/// What a refused origin is told (sockudo's wording).
const ORIGIN_NOT_ALLOWED: &str = "Origin not allowed";

/// A socket that cannot take a flush within this time is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per connection: small, so idle connections stay cheap, and
/// because tungstenite zero-fills it on every read attempt (which happens on
/// every wake-up of the connection task, also for outgoing frames).
const READ_BUFFER: usize = 1024;
/// Bytes buffered before tungstenite writes to the socket.
const WRITE_BUFFER: usize = 8 * 1024;

/// What a connection that did not sign in in time is told (4009).
const SIGNIN_TIMEOUT: &str = "Connection not authorized within timeout.";

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
///
/// The upgrade is done here rather than by axum's `WebSocketUpgrade` so the
/// connection owns its write path: every outgoing byte, tungstenite's own
/// control replies included, goes through the connection's [`crate::outbox::Outbox`].
pub async fn connect(
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<PeerConn>,
    req: Request,
) -> Response {
    let accept = match handshake::accept(req.headers()) {
        Ok(accept) => accept,
        Err(why) => return (axum::http::StatusCode::BAD_REQUEST, why).into_response(),
    };
    let headers = req.headers();
    let over_capacity = peer.over_capacity;
    let refusal = check_protocol(&query).and_then(|()| match state.app_by_key(&key) {
        None => Err((CloseCode::AppNotFound, CloseCode::AppNotFound.message())),
        Some(app) if !app.config.enabled => {
            Err((CloseCode::AppDisabled, CloseCode::AppDisabled.message()))
        }
        Some(app) => Ok(app.clone()),
    });
    let ip = state.proxies.client_ip(peer.addr, headers);
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
    // Accepted while the node was full (pending sockets count from accept on,
    // see `admission`): over capacity, like a WebSocket beyond max_connections.
    let refusal = refusal.and_then(|app| {
        if over_capacity {
            app.metrics.rejected(Rejection::NodeConnections);
            return Err((CloseCode::OverCapacity, CloseCode::OverCapacity.message()));
        }
        Ok(app)
    });
    let client = query.get("client").cloned().unwrap_or_default();
    let version = query.get("version").cloned().unwrap_or_default();
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, client = %ip, "upgrade failed"),
        };
        let socket = Socket::open(TokioIo::new(upgraded), peer.tcp, &state).await;
        match refusal {
            Err((code, message)) => socket.refuse(code, message).await,
            Ok(app) => run(socket, state, app, ip, &client, &version).await,
        }
    });
    handshake::switching_protocols(&accept)
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

/// Sends `pusher:error` and closes with the same code (paths that are not
/// `/app/{key}`, upgraded by axum).
async fn refuse(mut socket: WebSocket, code: CloseCode, message: &str) {
    let frame = wire::error(Some(code.code()), message);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        socket.send(axum_ws::Message::Text(frame.into())).await?;
        socket
            .send(axum_ws::Message::Close(Some(axum_ws::CloseFrame {
                code: code.code(),
                reason: message.into(),
            })))
            .await
    })
    .await;
}

fn new_socket_id() -> SocketId {
    SocketId::from_parts(rand::random::<u64>() >> 1, rand::random::<u64>() >> 1)
}

/// The connection's clock: tokio's, so that tests can pause and advance it.
/// The pure cores get it as a `std` instant.
fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// The I/O a connection runs over: the upgraded HTTP connection, or an
/// in-memory pipe in tests.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for S {}

async fn run<S: Io>(
    socket: Socket<S>,
    state: Arc<ServerState>,
    app: Arc<App>,
    ip: std::net::IpAddr,
    client: &str,
    version: &str,
) {
    let handle = socket.handle.clone();
    let admitted = match state.admit(&app) {
        Ok((mut guard, signalled)) => app
            .reserve_slot(&mut guard)
            .await
            .map(|()| (guard, signalled)),
        Err(code) => Err(code),
    };
    let (_guard, signalled) = match admitted {
        Ok(admitted) => admitted,
        Err(code) => {
            tracing::info!(app = %app.config.id, code = code.code(), client = %ip, "connection refused");
            return socket.refuse(code, code.message()).await;
        }
    };
    // A debug-level span: entered on every poll of the connection task, so at
    // the default `info` level it must cost nothing. Info-level events name
    // the socket id themselves.
    let span = tracing::debug_span!("conn", app = %app.config.id, socket_id = %handle.socket_id);
    let first =
        wire::connection_established(handle.socket_id.as_str(), state.server.activity_timeout);
    let mut session = Session::new(app.clone(), handle, now().into_std());
    session.limit_directory_writes(
        state.directory.limits().writes_per_connection_per_minute,
        now().into_std(),
    );
    session.limit_mailbox_sends(state.mailbox.config().sends_per_connection_per_minute);
    async {
        tracing::debug!(client, version, ip = %ip, "connected");
        let handle = socket.handle.clone();
        let reason = drive(socket, &state, &app, signalled, &mut session, first).await;
        // Whichever way the connection ended.
        forget_device(&state, &app, &session, &handle);
        tracing::debug!(reason, "disconnected");
    }
    .instrument(span)
    .await;
}

/// The connection loop. Returns why it ended.
async fn drive<S: Io>(
    mut socket: Socket<S>,
    state: &ServerState,
    app: &App,
    mut signalled: Signalled,
    session: &mut Session,
    first: String,
) -> &'static str {
    socket.handle.send(&Frame::from(first));
    let start = now();
    let idle = Duration::from_secs(state.server.activity_timeout + state.server.ping_grace);
    let mut keepalive = Keepalive::new(
        idle,
        Duration::from_secs(state.server.pong_timeout),
        start.into_std(),
    );
    let auth_deadline = app
        .config
        .user_authentication
        .then(|| start + Duration::from_secs(app.config.user_authentication_timeout));
    let timer = tokio::time::sleep_until(keepalive.deadline().into());
    tokio::pin!(timer);
    // Futures that live across iterations are created once: re-creating them
    // per wake-up (a Notify registration, a timer) would cost on every frame.
    let link = socket.link.clone();
    let close_wait = link.closer().wait();
    tokio::pin!(close_wait);
    let auth_timer = tokio::time::sleep_until(auth_deadline.unwrap_or(start));
    tokio::pin!(auth_timer);
    let outbox = link.outbox();
    let wanted = outbox.wanted();
    tokio::pin!(wanted);
    let mut requests = Requests::default();

    // What to send before closing.
    let close: CloseRequest = loop {
        tokio::select! {
            biased;
            request = &mut close_wait => {
                if request.code == CloseCode::OverCapacity {
                    app.metrics.slow_client_disconnects.increment(1);
                }
                break request;
            }
            code = &mut signalled => break CloseRequest { code, reason: code.message() },
            () = &mut wanted => {
                wanted.set(outbox.wanted());
                match tokio::time::timeout(WRITE_TIMEOUT, outbox.drain(&mut socket.writer)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return "write failed",
                    Err(_) => {
                        // A client that does not read at all: a slow client,
                        // like one whose queue filled up (4100).
                        app.metrics.slow_client_disconnects.increment(1);
                        return "write timed out";
                    }
                }
            }
            msg = socket.reader.next() => {
                let now = now().into_std();
                match msg {
                    None => return "closed by client",
                    Some(Err(e)) => match read_error_close(&e) {
                        Some(code) => {
                            if code == CloseCode::MessageTooBig {
                                app.metrics.rejected(Rejection::MessageSize);
                            }
                            break CloseRequest { code, reason: code.message() };
                        }
                        None => return "read error",
                    },
                    Some(Ok(m)) => {
                        keepalive.on_activity(now);
                        timer.as_mut().reset(keepalive.deadline().into());
                        match m {
                            Message::Text(t) => {
                                app.metrics.received(t.len());
                                // Parsed once, for the settle and the session.
                                let msg = wire::parse_client_frame(t.as_str());
                                if app.cluster().is_shared()
                                    && msg.as_ref().is_ok_and(|m| settles_first(app, m))
                                {
                                    app.settle().await;
                                }
                                session.handle_parsed(msg, now);
                            }
                            Message::Binary(_) => {
                                session.send_error("Binary frames are not supported");
                            }
                            Message::Close(_) => {
                                // RFC 6455 §5.5.1: answer with a Close (tungstenite
                                // has framed it, echoing the client's code), then
                                // close the TCP connection.
                                requests.abort_all();
                                session.close();
                                socket.answer_close().await;
                                return "closed by client";
                            }
                            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                        }
                        if let Some(close) = run_effects(session, &socket.handle, state, app, &mut requests) {
                            break close;
                        }
                    }
                }
            }
            () = &mut timer => {
                match keepalive.poll(now().into_std()) {
                    KeepaliveAction::Wait => {}
                    KeepaliveAction::SendPing => {
                        socket.handle.send(&Frame::text(wire::PING));
                    }
                    KeepaliveAction::PongTimeout => {
                        let code = CloseCode::PongNotReceived;
                        break CloseRequest { code, reason: code.message() };
                    }
                }
                timer.as_mut().reset(keepalive.deadline().into());
            }
            () = &mut auth_timer, if auth_deadline.is_some() && !session.is_authorized() => {
                break CloseRequest { code: CloseCode::Unauthorized, reason: SIGNIN_TIMEOUT };
            }
        }
    };
    requests.abort_all();
    session.close();
    socket.close(close.code, close.reason).await;
    close.reason
}

/// The mailbox stops pushing to a connection that ends.
fn forget_device(state: &ServerState, app: &App, session: &Session, handle: &ConnHandle) {
    if let Some(device) = session.device() {
        state.mailbox.disconnected(&app.config.id, handle, device);
    }
}

/// Carries out what the session asked for after a message, in order; stops
/// at a close and returns it.
fn run_effects(
    session: &mut Session,
    handle: &ConnHandle,
    state: &ServerState,
    app: &App,
    requests: &mut Requests,
) -> Option<CloseRequest> {
    while let Some(effect) = session.poll_effect() {
        match effect {
            Effect::Send(frame) => {
                handle.send(&frame);
            }
            Effect::Directory(request) => {
                requests.spawn(state, app, handle, request);
            }
            Effect::Close(code, reason) => return Some(CloseRequest { code, reason }),
        }
    }
    None
}

/// One upgraded connection: tungstenite reads frames; every write goes
/// through the outbox (directly to the TCP socket when it can).
struct Socket<S> {
    reader: WebSocketStream<ReadIo<S>>,
    writer: WriteHalf<S>,
    link: Arc<Link>,
    handle: ConnHandle,
}

impl<S: Io> Socket<S> {
    async fn open(io: S, tcp: Option<Arc<TcpStream>>, state: &ServerState) -> Self {
        let (handle, link) = ConnHandle::new(
            new_socket_id(),
            crate::outbox::QueueLimits {
                frames: state.server.outgoing_queue_frames,
                bytes: state.server.outgoing_queue_bytes,
            },
            tcp,
        );
        let (read, writer) = tokio::io::split(io);
        let max = state.server.max_message_bytes;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        let reader = WebSocketStream::from_raw_socket(
            ReadIo {
                read,
                link: link.clone(),
            },
            Role::Server,
            Some(config),
        )
        .await;
        Self {
            reader,
            writer,
            link,
            handle,
        }
    }

    /// Sends `pusher:error` (for Pusher codes) and a close frame with `code`,
    /// waits (bounded) until they are written, and shuts the socket down.
    async fn close(mut self, code: CloseCode, message: &str) {
        let close = Frame::close(code, message);
        let outbox = self.link.outbox();
        if code.is_pusher() {
            let error = Frame::text(&wire::error(Some(code.code()), message));
            outbox.finish(&[error, close]);
        } else {
            outbox.finish(&[close]);
        }
        let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
            outbox.drain(&mut self.writer).await?;
            self.writer.shutdown().await
        })
        .await;
    }

    /// After the client's Close: writes tungstenite's Close reply (queued in
    /// the outbox by a flush) and whatever else is queued, bounded in time,
    /// then shuts the socket down.
    async fn answer_close(mut self) {
        let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
            // The reply is written through `ReadIo` into the outbox.
            let _ = futures_util::SinkExt::flush(&mut self.reader).await;
            self.link.outbox().drain(&mut self.writer).await?;
            self.writer.shutdown().await
        })
        .await;
    }

    /// Refuses the connection: `pusher:error` and a close with the same code.
    async fn refuse(self, code: CloseCode, message: &str) {
        self.close(code, message).await;
    }
}

/// The read side tungstenite sees. Its writes (automatic pong and close
/// replies) are queued in the outbox, in order with every other frame.
struct ReadIo<S> {
    read: ReadHalf<S>,
    link: Arc<Link>,
}

impl<S: AsyncRead> AsyncRead for ReadIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl<S> AsyncWrite for ReadIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.link.send_raw(buf) {
            Poll::Ready(Ok(buf.len()))
        } else {
            Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The close a read error calls for (RFC 6455 §7.4.1): 1009 for a message
/// over the size limit, 1007 for text that is not UTF-8, 1002 for any other
/// protocol violation; `None` when the connection is simply gone.
fn read_error_close(e: &WsError) -> Option<CloseCode> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        WsError::Capacity(_) => Some(CloseCode::MessageTooBig),
        WsError::Utf8(_) => Some(CloseCode::InvalidPayload),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(CloseCode::ProtocolError),
        _ => None,
    }
}

/// The server side of the WebSocket opening handshake (RFC 6455 §4.2).
mod handshake {
    use axum::body::Body;
    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
    use axum::response::Response;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

    fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    }

    /// The `Sec-WebSocket-Accept` value for a valid upgrade request, or why
    /// it is not one (answered 400, as axum's `WebSocketUpgrade` does).
    pub(super) fn accept(headers: &HeaderMap) -> Result<String, &'static str> {
        let bad = Err;
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return bad("Connection header did not include 'upgrade'");
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return bad("`Upgrade` header did not include 'websocket'");
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return bad("`Sec-WebSocket-Version` header did not include '13'");
        }
        match headers.get(header::SEC_WEBSOCKET_KEY) {
            Some(key) => Ok(derive_accept_key(key.as_bytes())),
            None => bad("`Sec-WebSocket-Key` header missing"),
        }
    }

    /// `101 Switching Protocols` with the accept key.
    pub(super) fn switching_protocols(accept: &str) -> Response {
        let mut res = Response::new(Body::empty());
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        res
    }
}
