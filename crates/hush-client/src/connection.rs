//! The driver: one task per [`Client`](crate::Client). It owns the WebSocket
//! and feeds what happens on it, the handles' commands, the authorizers'
//! answers and the passing of time into the [`ClientCore`], then carries out
//! what the core asks: writing frames, opening and closing sockets, running
//! authorizers on their own tasks, delivering events through the bounded
//! [`Listeners`] (never waiting for the application) and answering callers.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use hush_protocol::{ChannelName, UserId};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::auth::{ChannelAuthorization, UserAuthentication};
use crate::client::{ChannelShared, ConnectionState};
use crate::config::Config;
use crate::error::{AuthError, Error};
use crate::listeners::Listeners;
use crate::request::DirectoryError;
use crate::sansio::{ChannelTicket, ClientCore, CoreConfig, Output, UserTicket};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Opening = Pin<Box<dyn Future<Output = Result<Ws, String>> + Send>>;
type WsItem = Option<Result<Message, tokio_tungstenite::tungstenite::Error>>;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Longest wait for an authorizer.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait to hand one frame to the socket.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a polite close on disconnect.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A request from a handle.
pub(crate) enum Command {
    Subscribe(Arc<ChannelShared>),
    Unsubscribe(ChannelName),
    ClientEvent {
        channel: ChannelName,
        event: String,
        data: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    SealedEvent {
        channel: ChannelName,
        event: String,
        data: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Signin(oneshot::Sender<Result<UserId, Error>>),
    /// A `hush:request` (already encoded) awaiting the response with `id`.
    Request {
        id: String,
        frame: String,
        reply: oneshot::Sender<Result<Value, DirectoryError>>,
    },
    Disconnect,
}

/// An answer from an authorization task.
enum Internal {
    ChannelAuth {
        ticket: ChannelTicket,
        result: Result<ChannelAuthorization, AuthError>,
    },
    UserAuth {
        ticket: UserTicket,
        result: Result<UserAuthentication, AuthError>,
    },
}

enum Step {
    Ws(WsItem),
    Opened(Result<Box<Ws>, String>),
    Cmd(Option<Command>),
    Int(Internal),
    Timer,
}

/// The connection task.
pub(crate) struct Task {
    core: ClientCore,
    config: Arc<Config>,
    listeners: Arc<Listeners>,
    state: watch::Sender<ConnectionState>,
    cmd_rx: mpsc::Receiver<Command>,
    int_tx: mpsc::Sender<Internal>,
    int_rx: mpsc::Receiver<Internal>,
    ws: Option<Ws>,
    opening: Option<Opening>,
    signin_waiters: Vec<oneshot::Sender<Result<UserId, Error>>>,
    requests: HashMap<String, oneshot::Sender<Result<Value, DirectoryError>>>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

async fn next_message(ws: &mut Option<Ws>) -> WsItem {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

async fn opened(opening: &mut Option<Opening>) -> Result<Ws, String> {
    match opening {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

impl Task {
    pub(crate) fn new(
        config: Arc<Config>,
        listeners: Arc<Listeners>,
        state: watch::Sender<ConnectionState>,
        cmd_rx: mpsc::Receiver<Command>,
        sealer: hush_crypto::sealed::Sender,
    ) -> Self {
        let (int_tx, int_rx) = mpsc::channel(64);
        let core = ClientCore::new(
            CoreConfig::from_config(&config),
            sealer,
            now(),
            SystemTime::now(),
        );
        Self {
            core,
            config,
            listeners,
            state,
            cmd_rx,
            int_tx,
            int_rx,
            ws: None,
            opening: None,
            signin_waiters: Vec::new(),
            requests: HashMap::new(),
        }
    }

    /// Runs until the core stops (disconnect, every handle dropped, or refused).
    pub(crate) async fn run(mut self) {
        loop {
            if self.carry_out().await {
                return;
            }
            let deadline = self.core.poll_timeout();
            let step = tokio::select! {
                m = next_message(&mut self.ws) => Step::Ws(m),
                r = opened(&mut self.opening) => Step::Opened(r.map(Box::new)),
                c = self.cmd_rx.recv() => Step::Cmd(c),
                Some(i) = self.int_rx.recv() => Step::Int(i),
                () = sleep_until_opt(deadline) => Step::Timer,
            };
            let now = now();
            self.core.sync_wall_clock(now, SystemTime::now());
            match step {
                Step::Ws(m) => self.on_message(m, now),
                Step::Opened(Ok(ws)) => {
                    self.opening = None;
                    self.ws = Some(*ws);
                }
                Step::Opened(Err(e)) => {
                    self.opening = None;
                    self.core.socket_lost(e, now);
                }
                Step::Cmd(c) => self.on_command(c, now).await,
                Step::Int(Internal::ChannelAuth { ticket, result }) => {
                    self.core.channel_authorized(ticket, result, now);
                }
                Step::Int(Internal::UserAuth { ticket, result }) => {
                    self.core.user_authenticated(ticket, result);
                }
                Step::Timer => self.core.handle_timeout(now),
            }
        }
    }

    /// Carries out the core's outputs and writes its frames, until both are
    /// drained; true once the core stopped.
    async fn carry_out(&mut self) -> bool {
        loop {
            while let Some(o) = self.core.poll_output() {
                self.output(o).await;
            }
            if let Err(reason) = self.flush().await {
                self.ws = None;
                self.core.socket_lost(reason, now());
                continue;
            }
            return self.core.is_stopped();
        }
    }

    /// Writes the queued frames.
    async fn flush(&mut self) -> Result<(), String> {
        while let Some(text) = self.core.poll_transmit() {
            let Some(ws) = self.ws.as_mut() else {
                continue;
            };
            match timeout(SEND_TIMEOUT, ws.send(Message::Text(text.into()))).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("send timed out".into()),
            }
        }
        Ok(())
    }

    async fn output(&mut self, o: Output) {
        match o {
            Output::Connect => {
                let url = format!(
                    "{}/app/{}?protocol=7&client=hush-rust&version={VERSION}&flash=false",
                    self.config.base_url, self.config.app_key
                );
                self.opening = Some(Box::pin(open_socket(self.config.clone(), url)));
            }
            Output::Close { graceful } => {
                self.opening = None;
                let ws = self.ws.take();
                if graceful && let Some(mut ws) = ws {
                    // Frames queued before the disconnect go out first.
                    while let Some(text) = self.core.poll_transmit() {
                        let send = ws.send(Message::Text(text.into()));
                        if !matches!(timeout(SEND_TIMEOUT, send).await, Ok(Ok(()))) {
                            break;
                        }
                    }
                    let _ = timeout(CLOSE_TIMEOUT, ws.close(None)).await;
                }
            }
            Output::State(s) => {
                self.state.send_replace(s);
            }
            Output::Event(e) => self.listeners.dispatch(&e),
            Output::AuthorizeChannel(ticket) => self.spawn_channel_auth(ticket),
            Output::AuthenticateUser(ticket) => self.spawn_user_auth(ticket),
            Output::Signin(result) => {
                for w in self.signin_waiters.drain(..) {
                    let _ = w.send(result.clone());
                }
            }
            Output::Response { id, result } => {
                if let Some(r) = self.requests.remove(&id) {
                    let _ = r.send(result);
                }
            }
            Output::Stopped => {
                self.opening = None;
                self.ws = None;
            }
        }
    }

    fn on_message(&mut self, m: WsItem, now: std::time::Instant) {
        match m {
            Some(Ok(Message::Text(t))) => self.core.handle_frame(t.as_str(), now),
            Some(Ok(Message::Close(frame))) => {
                self.ws = None;
                let (code, reason) = match frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                    None => (None, String::new()),
                };
                self.core.socket_closed(code, reason, now);
            }
            Some(Ok(_)) => self.core.handle_activity(now),
            Some(Err(e)) => {
                self.ws = None;
                self.core.socket_lost(e.to_string(), now);
            }
            None => {
                self.ws = None;
                self.core.socket_lost("connection closed".into(), now);
            }
        }
    }

    async fn on_command(&mut self, c: Option<Command>, now: std::time::Instant) {
        match c {
            None | Some(Command::Disconnect) => self.core.disconnect(now),
            Some(Command::Subscribe(shared)) => self.core.subscribe(shared, now),
            Some(Command::Unsubscribe(name)) => self.core.unsubscribe(&name),
            Some(Command::ClientEvent {
                channel,
                event,
                data,
                reply,
            }) => {
                let r = self.core.trigger(&channel, &event, &data);
                self.reply_after_flush(r, reply).await;
            }
            Some(Command::SealedEvent {
                channel,
                event,
                data,
                reply,
            }) => {
                let r = self.core.trigger_sealed(&channel, &event, &data, now);
                self.reply_after_flush(r, reply).await;
            }
            Some(Command::Request { id, frame, reply }) => {
                match self.core.request(id.clone(), frame, now) {
                    Ok(()) => {
                        self.requests.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Some(Command::Signin(tx)) => {
                if let Some(u) = self.core.signin_state().user() {
                    let _ = tx.send(Ok(u.clone()));
                    return;
                }
                // Callers that gave up (timed out) are not kept.
                self.signin_waiters.retain(|w| !w.is_closed());
                self.signin_waiters.push(tx);
                let _ = self.core.signin();
            }
        }
    }

    /// A client event was queued: write it, then answer (a failed write
    /// answers `NotConnected` and ends the connection).
    async fn reply_after_flush(
        &mut self,
        r: Result<(), Error>,
        reply: oneshot::Sender<Result<(), Error>>,
    ) {
        if let Err(e) = r {
            let _ = reply.send(Err(e));
            return;
        }
        match self.flush().await {
            Ok(()) => {
                let _ = reply.send(Ok(()));
            }
            Err(reason) => {
                let _ = reply.send(Err(Error::NotConnected));
                self.ws = None;
                self.core.socket_lost(reason, now());
            }
        }
    }

    fn spawn_channel_auth(&self, ticket: ChannelTicket) {
        let tx = self.int_tx.clone();
        let authorizer = self.config.authorizer.clone();
        let key = self.config.app_key.clone();
        tokio::spawn(async move {
            let channel = &ticket.channel;
            let result = match authorizer {
                Some(a) => {
                    match timeout(
                        AUTH_TIMEOUT,
                        a.authorize_channel(&ticket.socket_id, channel),
                    )
                    .await
                    {
                        Ok(Ok(body)) => ChannelAuthorization::parse(&body, &key, channel),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(AuthError::Timeout),
                    }
                }
                None => Err(AuthError::NoAuthorizer(channel.to_string())),
            };
            let _ = tx.send(Internal::ChannelAuth { ticket, result }).await;
        });
    }

    fn spawn_user_auth(&self, ticket: UserTicket) {
        let tx = self.int_tx.clone();
        let authorizer = self.config.authorizer.clone();
        let key = self.config.app_key.clone();
        tokio::spawn(async move {
            let result = match authorizer {
                Some(a) => {
                    match timeout(AUTH_TIMEOUT, a.authenticate_user(&ticket.socket_id)).await {
                        Ok(Ok(body)) => UserAuthentication::parse(&body, &key),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(AuthError::Timeout),
                    }
                }
                None => Err(AuthError::NoUserAuthentication),
            };
            let _ = tx.send(Internal::UserAuth { ticket, result }).await;
        });
    }
}

/// Opens the WebSocket: plain, or TLS for `wss://` (with the configured or
/// the system's roots).
async fn open_socket(config: Arc<Config>, url: String) -> Result<Ws, String> {
    let url = url.as_str();
    #[cfg(feature = "tls")]
    let opened = {
        let connector = if url.starts_with("wss://") {
            let tls = match &config.tls {
                Some(c) => c.clone(),
                None => crate::tls::default_config()?,
            };
            Some(tokio_tungstenite::Connector::Rustls(tls))
        } else {
            None
        };
        tokio_tungstenite::connect_async_tls_with_config(url, Some(ws_config()), true, connector)
            .await
    };
    #[cfg(not(feature = "tls"))]
    let opened = {
        let _ = &config;
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await
    };
    opened.map(|(ws, _)| ws).map_err(|e| e.to_string())
}

/// Largest message read from the server. The biggest legitimate ones are
/// presence rosters (100 members × 1 KiB of user info) and key-directory
/// answers (at most 50 users or 1000 log entries, with proofs), all well
/// under this; tungstenite's default would buffer 64 MiB.
const MAX_MESSAGE_BYTES: usize = 4 << 20;

fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}
