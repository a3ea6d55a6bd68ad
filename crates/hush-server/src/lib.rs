//! The hush server as a library: a Pusher Channels protocol 7 server.
//!
//! `hush serve` is a thin wrapper around [`Server`]; tests start the same server
//! in-process on an ephemeral loopback port:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let config = hush_server::Config::from_toml("[server]\nport = 0").expect("valid config");
//! let server = hush_server::Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! Data flow: the [`gateway`] accepts WebSocket connections and runs one task per
//! connection around a [`session::Session`]; the [`api`] verifies signed HTTP
//! requests; both publish through the per-app, sharded [`channels::Channels`]
//! registry, which encodes each event once and hands clones of the same bytes to
//! every subscriber's bounded queue ([`conn::ConnHandle`]). Channel and
//! presence changes and client events feed the [`webhooks`] (bounded queue →
//! durable outbox in the [`hush_store::Store`] → signed, retried delivery).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod api;
pub mod app;
pub mod channels;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod data_lock;
pub mod directory;
mod directory_api;
pub mod fanout;
pub mod frame;
pub mod gateway;
pub mod keepalive;
mod lock;
pub mod mailbox;
mod mailbox_api;
pub mod net;
pub mod occupancy;
pub mod origin;
pub mod outbox;
pub mod proxy;
pub mod ratelimit;
pub mod serve;
pub mod session;
pub mod signal;
pub mod telemetry;
pub mod tls;
pub mod users;
pub mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, Request, State, WebSocketUpgrade};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tokio::net::TcpListener;

pub use app::ServerState;
pub use config::{AppConfig, Config, ServerConfig};

/// How often expired cache-channel events are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// How often held-back `subscription_count` changes are checked.
const COUNT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How long `/ready` waits for the store to answer.
const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound, not yet running server.
pub struct Server {
    state: Arc<ServerState>,
    listener: TcpListener,
    tls: Option<tls::Tls>,
    metrics: Option<(TcpListener, PrometheusHandle)>,
    webhooks: webhooks::Webhooks,
    /// Held while the server exists: one server per SQLite database.
    data_lock: Option<data_lock::DataLock>,
}

impl Server {
    /// Locks the SQLite store ([`data_lock`]: a second server on it is
    /// refused with an error naming its data directory and the process that
    /// holds it), opens the store (creating the data directory and the
    /// SQLite file on first start, applying migrations), binds the listener named in
    /// `config.server` (port 0 picks a free port), loads the TLS certificate
    /// if `server.tls` is set, and binds the `/metrics` listener if
    /// `metrics.enabled`.
    pub async fn bind(config: Config) -> std::io::Result<Self> {
        // First, so every metric handle created from here on is recorded.
        let handle = if config.metrics.enabled {
            Some(telemetry::install().ok_or_else(|| {
                std::io::Error::other("another metrics recorder is installed in this process")
            })?)
        } else {
            None
        };
        let tls = match &config.server.tls {
            Some(files) => Some(tls::Tls::new(files).map_err(std::io::Error::other)?),
            None => None,
        };
        let options = hush_store::StoreOptions {
            max_connections: config.store.max_connections,
            ..Default::default()
        };
        let store_url = config.store_url();
        let data_lock = match data_lock::sqlite_file(&store_url) {
            Some(db) => Some(data_lock::DataLock::acquire(&db).map_err(std::io::Error::other)?),
            None => None,
        };
        let store = hush_store::Store::open(&store_url, &options)
            .await
            .map_err(std::io::Error::other)?;
        tracing::info!(store = %hush_store::redact_url(&store_url), "store ready");
        let listener = TcpListener::bind((config.server.host.as_str(), config.server.port)).await?;
        let directory = directory::Directory::open(store.clone())
            .await
            .map_err(std::io::Error::other)?
            .with_limits(config.directory.clone());
        let (webhooks, sink) = webhooks::Webhooks::new(&config, store.clone())?;
        let node = match config.cluster.url() {
            Some(url) => Some(
                cluster::redis::RedisNode::connect(&config.cluster, url)
                    .await
                    .map_err(std::io::Error::other)?,
            ),
            None => None,
        };
        let state = ServerState::with_cluster(&config, store, Arc::new(directory), &sink, node);
        let metrics = match handle {
            Some(handle) => {
                let (host, port) = (config.metrics.host.as_str(), config.metrics.port);
                let l = TcpListener::bind((host, port)).await.map_err(|e| {
                    std::io::Error::new(e.kind(), format!("metrics listener {host}:{port}: {e}"))
                })?;
                Some((l, handle))
            }
            None => None,
        };
        Ok(Self {
            state,
            listener,
            tls,
            metrics,
            webhooks,
            data_lock,
        })
    }

    /// The address of the `/metrics` listener, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The TLS setup, if TLS is on: call [`tls::Tls::reload`] on it to re-read
    /// the certificate (what `hush serve` does on SIGHUP).
    pub fn tls(&self) -> Option<tls::Tls> {
        self.tls.clone()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Shared state (for embedding and tests).
    pub fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then drains: every client is asked to
    /// reconnect (4200), and the call returns once they are gone or
    /// `shutdown_timeout` has passed.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let data_lock = self.data_lock;
        let hooks = self.webhooks.spawn();
        if let Some(node) = state.cluster_node() {
            node.start(&state).await.map_err(std::io::Error::other)?;
            tracing::info!(node = %node.node(), "cluster: joined");
        }
        let sweeper = tokio::spawn(sweep(state.clone()));
        let mailbox = tokio::spawn(state.mailbox.clone().run_maintenance());
        let metrics = self
            .metrics
            .map(|(listener, handle)| tokio::spawn(serve_metrics(listener, handle, state.clone())));
        let drain_state = state.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!(
                connections = drain_state.connection_count(),
                "shutting down: asking clients to reconnect (4200)"
            );
            drain_state.drain();
            // Keep listening (with /ready answering 503 and new connections
            // refused with 4200) so load balancers notice before the port closes.
            let delay = Duration::from_secs(drain_state.server.drain_delay);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        };
        let grace = Duration::from_secs(state.server.shutdown_timeout);
        let gate = Arc::new(serve::gate_for(&state));
        // Returns once HTTP connections are closed: at the latest `grace`
        // after the drain delay, whatever their clients do.
        let stopped = serve::serve(
            self.listener,
            self.tls.clone(),
            router(state.clone()),
            state.clone(),
            gate,
            shutdown,
            grace,
        )
        .await;
        sweeper.abort();
        mailbox.abort();
        // WebSockets were asked to leave when draining began; the HTTP side
        // has used part of the grace period already.
        let deadline = stopped + grace;
        while state.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Connections are gone: their changes are on the bus. Saying goodbye
        // waits for them to come back (their webhooks are then queued).
        if let Some(node) = state.cluster_node() {
            node.leave(&state).await;
        }
        // Connections are gone: their vacated/removed events are queued.
        hooks.shutdown().await;
        state.store.close().await;
        // The next server on this directory may start now.
        drop(data_lock);
        tracing::info!(remaining = state.connection_count(), "stopped");
        if let Some(m) = metrics {
            m.abort();
        }
        Ok(())
    }
}

/// A server running on its own task: for embedding hush in another program and
/// for tests. Dropping it (or calling [`RunningServer::stop`]) drains it.
pub struct RunningServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Runs the server on a new task until [`RunningServer::stop`] or drop.
    pub fn spawn(self) -> RunningServer {
        let addr = self.local_addr();
        let state = self.state.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let join = tokio::spawn(self.run(async move {
            // A dropped sender also means stop.
            let _ = rx.await;
        }));
        RunningServer {
            addr,
            state,
            stop: Some(tx),
            join: Some(join),
        }
    }
}

impl RunningServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shared state (for tests: the cluster node's crash hook).
    pub fn state(&self) -> Arc<ServerState> {
        self.state.clone()
    }

    /// Drains (clients get 4200) and waits for the server task to end.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.join.take() {
            Some(j) => j.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            None => Ok(()),
        }
    }
}

/// Serves `GET /metrics` (Prometheus text format) until aborted.
async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle, state: Arc<ServerState>) {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let text = telemetry::render(&state, &handle);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "metrics listener stopped");
    }
}

async fn sweep(state: Arc<ServerState>) {
    let mut counts = tokio::time::interval(COUNT_FLUSH_INTERVAL);
    let mut cache = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = counts.tick() => {
                for app in state.apps() {
                    app.flush_counts();
                }
            }
            _ = cache.tick() => {
                for app in state.apps() {
                    app.sweep();
                }
            }
        }
    }
}

/// The routes: WebSocket gateway, HTTP API, health.
pub fn router(state: Arc<ServerState>) -> Router {
    let body_limit = state.server.max_body_bytes;
    let api = Router::new()
        .route("/apps/{app_id}/events", post(api::events))
        .route("/apps/{app_id}/batch_events", post(api::batch_events))
        .route("/apps/{app_id}/channels", get(api::channels))
        .route("/apps/{app_id}/mailbox", post(mailbox_api::send))
        .route("/apps/{app_id}/directory/users", get(directory_api::users))
        .route(
            "/apps/{app_id}/directory/log/head",
            get(directory_api::head),
        )
        .route(
            "/apps/{app_id}/directory/log/audit",
            get(directory_api::audit),
        )
        .route("/apps/{app_id}/channels/{channel_name}", get(api::channel))
        .route(
            "/apps/{app_id}/channels/{channel_name}/users",
            get(api::channel_users),
        )
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(api::terminate_connections),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_api_request,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_deadline,
        ));
    Router::new()
        .route("/app/{key}", get(gateway::connect))
        .merge(api)
        .route("/up", get(up))
        .route("/ready", get(ready))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// Answers 408 when an HTTP API request (its body included) takes longer
/// than `server.http_request_timeout`: a body sent a byte at a time cannot
/// hold a connection and a runtime task for ever.
async fn request_deadline(
    State(state): State<Arc<ServerState>>,
    req: Request,
    next: Next,
) -> Response {
    let limit = Duration::from_secs(state.server.http_request_timeout.max(1));
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut res = (
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "Request timed out: the request and its body must arrive within the time limit",
            )
                .into_response();
            // The rest of the body is not read: the connection cannot be reused.
            res.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            res
        }
    }
}

/// Counts each HTTP API response by app and status.
async fn count_api_request(
    State(state): State<Arc<ServerState>>,
    req: Request,
    next: Next,
) -> Response {
    let app = req
        .uri()
        .path()
        .strip_prefix("/apps/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| state.app_by_id(id));
    let res = next.run(req).await;
    let status = res.status().as_u16();
    match app {
        Some(app) => app.metrics.http_response(status),
        None => telemetry::http_request_unknown_app(status),
    }
    res
}

async fn up() -> Response {
    axum::Json(json!({ "status": "up", "version": env!("CARGO_PKG_VERSION") })).into_response()
}

/// 200 when serving; 503 while draining or when the store does not answer.
async fn ready(State(state): State<Arc<ServerState>>) -> Response {
    let unavailable = |status: &str| {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": status })),
        )
            .into_response()
    };
    if state.is_draining() {
        return unavailable("draining");
    }
    if let (Some(node), Some(grace)) = (state.cluster_node(), state.cluster_ready_grace()) {
        if node.down_for().is_some_and(|d| d >= grace) {
            tracing::warn!("not ready: cluster bus (Redis) unreachable");
            return unavailable("cluster bus unavailable");
        }
    }
    match tokio::time::timeout(STORE_PING_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => axum::Json(json!({ "status": "ready" })).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: store unavailable");
            unavailable("store unavailable")
        }
        Err(_) => {
            tracing::warn!("not ready: store did not answer in time");
            unavailable("store unavailable")
        }
    }
}

async fn fallback(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    state: State<Arc<ServerState>>,
    uri: Uri,
) -> Response {
    match ws {
        Ok(ws) => gateway::bad_path(ws, state).await,
        Err(_) => api::not_found(uri).await.into_response(),
    }
}
