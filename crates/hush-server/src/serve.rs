//! The accept loop and the HTTP phase of every connection, with the limits
//! axum's own `serve` does not have: a header-read timeout (it is also the
//! keep-alive idle timeout and bounds a WebSocket handshake), a TLS
//! handshake timeout, a cap on request-head bytes, admission through the
//! [`Gate`] (pending sockets per node and per address, descriptor reserve,
//! capacity from accept on) and a shutdown that ends every HTTP connection
//! by a deadline, whatever its client does.
//!
//! A connection leaves this module when it upgrades to a WebSocket: hyper
//! hands the socket to the gateway's task and the connection's [`Slot`] is
//! released.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admission::{Gate, GateLimits, Slot};
use crate::app::ServerState;
use crate::net::{PeerConn, SharedTcp};
use crate::tls::Tls;

/// HTTP/2 streams (requests) one connection may have open at once.
const H2_MAX_STREAMS: u32 = 64;

/// Smallest request-head buffer hyper accepts.
const MIN_HEAD_BYTES: usize = 8192;

/// The limits of the HTTP phase, from `[server]`.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Request line and headers must arrive within this (also the idle
    /// time allowed between keep-alive requests).
    pub header_timeout: Duration,
    /// A TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// Largest request head (request line and headers), bytes.
    pub max_head_bytes: usize,
}

impl HttpLimits {
    /// The limits configured for `state`'s node.
    pub fn of(state: &ServerState) -> Self {
        Self {
            header_timeout: Duration::from_secs(state.server.http_header_timeout.max(1)),
            tls_handshake_timeout: Duration::from_secs(state.server.tls_handshake_timeout.max(1)),
            max_head_bytes: state.server.max_request_head_bytes.max(MIN_HEAD_BYTES),
        }
    }
}

/// Raises this process's soft descriptor limit to its hard limit (what
/// `hush serve` does at start, like nginx's `worker_rlimit_nofile`); returns
/// the soft limit in force afterwards.
pub fn raise_descriptor_limit() -> Option<u64> {
    let (soft, hard) = rlimit::Resource::NOFILE.get().ok()?;
    if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The soft limit on open descriptors of this process, if it can be read.
pub fn descriptor_limit() -> Option<u64> {
    rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft)
}

/// The gate for `state`'s node: `max_sockets` is the descriptor limit less
/// `server.descriptor_reserve`.
pub fn gate_for(state: &ServerState) -> Gate {
    let max_sockets = descriptor_limit()
        .and_then(|l| usize::try_from(l).ok())
        .map_or(usize::MAX, |l| {
            l.saturating_sub(state.server.descriptor_reserve).max(1)
        });
    let proxies = state.proxies.clone();
    Gate::new(
        GateLimits {
            max_pending: state.server.max_pending_connections,
            max_per_ip: state.server.max_pending_per_ip,
            max_sockets,
            max_connections: state.server.max_connections,
        },
        move |ip| proxies.trusts(ip),
    )
}

/// Where the server is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Serving.
    Serving,
    /// Not accepting; HTTP connections are asked to finish (no keep-alive).
    Closing,
}

/// Accepts and serves until `shutdown` completes; then stops accepting, asks
/// every HTTP connection to finish, and drops those still open at
/// `deadline` (measured from the end of `shutdown`). Returns when
/// `shutdown` completed.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    router: Router,
    state: Arc<ServerState>,
    gate: Arc<Gate>,
    shutdown: impl Future<Output = ()>,
    deadline: Duration,
) -> tokio::time::Instant {
    let limits = HttpLimits::of(&state);
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors (or a transient error): make room
                        // by dropping the oldest pending socket, and back off
                        // briefly so the loop does not spin.
                        tracing::debug!(error = %e, "accept failed");
                        gate.evict_oldest();
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let slot = match gate.admit(peer.ip(), state.connection_count()) {
                    Ok(slot) => slot,
                    Err(why) => {
                        tracing::debug!(%peer, reason = why.label(), "connection shed");
                        continue;
                    }
                };
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
                conns.spawn(connection(
                    tcp,
                    peer,
                    tls.clone(),
                    router.clone(),
                    slot,
                    limits,
                    phase_rx.clone(),
                ));
            }
        }
    }
    let stopped = tokio::time::Instant::now();
    drop(listener);
    let _ = phase_tx.send(Phase::Closing);
    let ended = tokio::time::timeout(deadline, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if ended.is_err() {
        tracing::info!(
            open = conns.len(),
            "HTTP connections still open at the shutdown deadline: closing them"
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    stopped
}

/// One accepted socket: the TLS handshake (if any), then HTTP/1.1 until it
/// closes, upgrades, is evicted, or the server closes.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<Tls>,
    router: Router,
    slot: Slot,
    limits: HttpLimits,
    phase: watch::Receiver<Phase>,
) {
    let slot = Arc::new(slot);
    match tls {
        None => {
            let tcp = Arc::new(tcp);
            let info = PeerConn {
                addr: peer,
                tcp: Some(tcp.clone()),
                over_capacity: slot.over_capacity(),
            };
            http(SharedTcp(tcp), info, router, &slot, limits, phase).await;
        }
        Some(tls) => {
            let handshake =
                tokio::time::timeout(limits.tls_handshake_timeout, tls.acceptor().accept(tcp));
            let stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                },
                () = slot.evicted() => return,
            };
            let info = PeerConn {
                addr: peer,
                tcp: None,
                over_capacity: slot.over_capacity(),
            };
            if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                h2(stream, info, router, &slot, limits, phase).await;
            } else {
                http(stream, info, router, &slot, limits, phase).await;
            }
        }
    }
}

/// The router as a hyper service, with the peer in each request's
/// extensions (axum's `ConnectInfo`).
fn service(
    info: PeerConn,
    router: Router,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Future<Output = Result<axum::response::Response, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static {
    hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(info.clone()));
        let mut router = router.clone();
        async move {
            Ok::<_, Infallible>(match tower_service::Service::call(&mut router, req).await {
                Ok(res) => res,
                Err(never) => match never {},
            })
        }
    })
}

/// Resolves once the server starts closing.
async fn closing(phase: &mut watch::Receiver<Phase>) {
    while *phase.borrow_and_update() == Phase::Serving {
        if phase.changed().await.is_err() {
            return;
        }
    }
}

/// Drives `conn` until it ends (false), the gate evicts its socket (false:
/// dropping it closes the socket), or the server starts closing (true: the
/// caller asks it to finish gracefully).
async fn until_closing<E: std::fmt::Display>(
    mut conn: std::pin::Pin<&mut impl Future<Output = Result<(), E>>>,
    slot: &Slot,
    phase: &mut watch::Receiver<Phase>,
) -> bool {
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
            false
        }
        () = slot.evicted() => false,
        () = closing(phase) => true,
    }
}

/// HTTP/2 (a TLS client chose `h2` by ALPN): the API only, WebSockets stay on
/// HTTP/1.1. A connection is bounded like an HTTP/1.1 one: header list size,
/// concurrent streams, keep-alive pings, the request deadline (in the
/// router) and the gate's eviction.
async fn h2<I>(
    io: I,
    info: PeerConn,
    router: Router,
    slot: &Slot,
    limits: HttpLimits,
    mut phase: watch::Receiver<Phase>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout)
        .serve_connection(TokioIo::new(io), service(info, router));
    tokio::pin!(conn);
    if until_closing(conn.as_mut(), slot, &mut phase).await {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

async fn http<I>(
    io: I,
    info: PeerConn,
    router: Router,
    slot: &Slot,
    limits: HttpLimits,
    mut phase: watch::Receiver<Phase>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_head_bytes)
        .serve_connection(TokioIo::new(io), service(info, router))
        .with_upgrades();
    tokio::pin!(conn);
    if until_closing(conn.as_mut(), slot, &mut phase).await {
        // Shutting down: finish the request in flight, then close. The
        // caller's deadline drops whatever is still open.
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}
