//! The connection task: one per [`Client`](crate::Client). It owns the
//! WebSocket, reconnects with backoff, keeps the channel states (keys,
//! presence members), runs authorizations on their own tasks, and delivers
//! events through the bounded [`Listeners`] without ever waiting for the
//! application.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_crypto::EncryptedData;
use hush_crypto::epoch::{EpochError, Keyring};
use hush_crypto::sealed::{self, ReplayGuard, SealedError};
use hush_protocol::{ChannelKind, ChannelName, SocketId, UserId};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::auth::{ChannelAuthorization, UserAuthentication};
use crate::backoff::{CloseAction, classify};
use crate::client::{ChannelShared, ConnectionState, Member, Members};
use crate::config::Config;
use crate::error::{AuthError, Error};
use crate::event::{self, DecryptError, Event, SealedInfo, decode_text};
use crate::frames::{self, ServerFrame};
use crate::listeners::Listeners;
use crate::request::{self, DirectoryError};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Longest wait for an authorizer.
const AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait to hand one frame to the socket.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Events of one channel held while its key is re-fetched.
const MAX_PENDING: usize = 256;

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

/// A result from an authorization task.
enum Internal {
    ChannelAuth {
        conn: u64,
        channel: ChannelName,
        refetch: bool,
        result: Result<ChannelAuthorization, AuthError>,
    },
    UserAuth {
        conn: u64,
        result: Result<UserAuthentication, AuthError>,
    },
}

/// Why a session (or an attempt) ended.
#[derive(Debug)]
enum Ended {
    /// Disconnect requested, or every handle dropped.
    Stop,
    /// Closed by the server with this code (or refused with `pusher:error`).
    Close(Option<u16>, String),
    /// Network error, timeout, missing pong.
    Lost(String),
}

struct Pending {
    event: String,
    data: String,
    user_id: Option<String>,
}

struct ChannelState {
    shared: Arc<ChannelShared>,
    /// `#server-to-user-…`, created by sign-in (not resubscribed on reconnect).
    internal: bool,
    /// Encrypted channels: current and recent epoch keys.
    keys: Keyring,
    /// Encrypted channels: sealed-event replay and freshness checks.
    guard: ReplayGuard,
    me: Option<Member>,
    /// Events waiting for a re-fetched key.
    refetching: Option<Vec<Pending>>,
    /// When the key was last re-fetched, and for which event epoch.
    last_refetch: Option<(Instant, u64)>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ChannelState {
    fn new(shared: Arc<ChannelShared>, internal: bool, config: &Config) -> Self {
        Self {
            shared,
            internal,
            keys: Keyring::new(millis(config.epoch_grace)),
            guard: ReplayGuard::new(millis(config.sealed_max_age), sealed::DEFAULT_MAX_SENDERS),
            me: None,
            refetching: None,
            last_refetch: None,
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}

/// Errors a re-fetched key may cure.
fn refetchable(e: &DecryptError) -> bool {
    matches!(
        e,
        DecryptError::NoKey(_) | DecryptError::Decrypt | DecryptError::UnknownEpoch { .. }
    )
}

/// Opens one event of an encrypted channel: the key is chosen by the
/// envelope's epoch; `hush-sealed` / `client-hush-sealed` events are opened as
/// sealed events and checked for replay and freshness. Returns the event, or
/// the error and the envelope's epoch.
fn decrypt(
    st: &mut ChannelState,
    channel: &ChannelName,
    event_name: &str,
    data: &str,
    user_id: Option<String>,
) -> Result<Event, (DecryptError, u64)> {
    let env = EncryptedData::from_json(data).map_err(|_| (DecryptError::Malformed, 0))?;
    let epoch = env.epoch();
    let now = now_ms();
    let key = st.keys.key(epoch, now).map_err(|e| {
        let e = match e {
            EpochError::NoKey => DecryptError::NoKey("no key received yet".into()),
            EpochError::Newer { epoch, newest } => DecryptError::UnknownEpoch { epoch, newest },
            EpochError::Stale { epoch, newest } => DecryptError::StaleEpoch { epoch, newest },
        };
        (e, epoch)
    })?;
    let mut out = if event_name == sealed::SERVER_EVENT || event_name == sealed::CLIENT_EVENT {
        let opened =
            sealed::open(key, channel, &env).map_err(|e: SealedError| (e.into(), epoch))?;
        st.guard
            .check(&opened, now)
            .map_err(|e: SealedError| (e.into(), epoch))?;
        let mut e = Event::new(
            Some(channel.as_str()),
            &opened.event,
            decode_text(&opened.data),
        );
        e.sealed = Some(SealedInfo {
            sender: opened.sender,
            seq: opened.seq,
            message_id: opened.message_id,
            timestamp_ms: opened.timestamp_ms,
            epoch: opened.epoch,
        });
        e
    } else {
        let plain = env.open(key).map_err(|_| (DecryptError::Decrypt, epoch))?;
        let text = String::from_utf8(plain).map_err(|_| (DecryptError::Malformed, epoch))?;
        Event::new(Some(channel.as_str()), event_name, decode_text(&text))
    };
    out.user_id = user_id;
    Ok(out)
}

enum Step {
    Ws(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Cmd(Option<Command>),
    Int(Internal),
    Timer,
}

pub(crate) struct Task {
    config: Arc<Config>,
    listeners: Arc<Listeners>,
    state: watch::Sender<ConnectionState>,
    cmd_rx: mpsc::Receiver<Command>,
    int_tx: mpsc::Sender<Internal>,
    int_rx: mpsc::Receiver<Internal>,
    channels: HashMap<ChannelName, ChannelState>,
    signin_wanted: bool,
    signin_in_flight: bool,
    /// A `pusher:signin` was sent and no answer came yet.
    signin_sent: bool,
    signin_waiters: Vec<oneshot::Sender<Result<UserId, Error>>>,
    user: Option<UserId>,
    conn: u64,
    socket_id: Option<SocketId>,
    /// This client's sealed-event sender (one id and sequence per client).
    sealer: sealed::Sender,
    /// `hush:request`s sent on this connection, by id.
    requests: HashMap<String, oneshot::Sender<Result<Value, DirectoryError>>>,
}

async fn send(ws: &mut Ws, text: String) -> Result<(), Ended> {
    match timeout(SEND_TIMEOUT, ws.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Ended::Lost(e.to_string())),
        Err(_) => Err(Ended::Lost("send timed out".into())),
    }
}

fn failure_event(channel: &str, outer: &str, error: DecryptError) -> Event {
    let mut e = Event::new(
        Some(channel),
        event::DECRYPTION_FAILED,
        json!({"event": outer, "reason": error.to_string()}),
    );
    e.failure = Some(error);
    e
}

fn auth_error_data(e: &AuthError) -> Value {
    let status = match e {
        AuthError::Status { status } => *status,
        _ => 0,
    };
    json!({"type": "AuthError", "error": e.to_string(), "status": status})
}

impl Task {
    pub(crate) fn new(
        config: Arc<Config>,
        listeners: Arc<Listeners>,
        state: watch::Sender<ConnectionState>,
        cmd_rx: mpsc::Receiver<Command>,
        sealer: sealed::Sender,
    ) -> Self {
        let (int_tx, int_rx) = mpsc::channel(64);
        Self {
            config,
            listeners,
            state,
            cmd_rx,
            int_tx,
            int_rx,
            channels: HashMap::new(),
            signin_wanted: false,
            signin_in_flight: false,
            signin_sent: false,
            signin_waiters: Vec::new(),
            user: None,
            conn: 0,
            socket_id: None,
            sealer,
            requests: HashMap::new(),
        }
    }

    fn set_state(&self, s: ConnectionState) {
        tracing::debug!(state = ?s, "hush-client state");
        self.state.send_replace(s);
    }

    fn emit(&self, e: &Event) {
        self.listeners.dispatch(e);
    }

    /// Connects, runs sessions and reconnects until stopped or refused.
    pub(crate) async fn run(mut self) {
        let mut attempt: u32 = 0;
        loop {
            self.set_state(ConnectionState::Connecting);
            let ended = match self.connect_serving_commands().await {
                Ok((ws, sid, activity)) => {
                    attempt = 0;
                    self.session(ws, sid, activity).await
                }
                Err(e) => e,
            };
            tracing::debug!(?ended, "hush-client connection ended");
            self.on_disconnected();
            let backoff = self.config.backoff;
            let (delay, reason) = match ended {
                Ended::Stop => return self.finish(ConnectionState::Disconnected),
                Ended::Close(code, reason) => {
                    let delay = match classify(code) {
                        CloseAction::Refused => {
                            return self.finish(ConnectionState::Failed { code, reason });
                        }
                        CloseAction::Backoff => backoff.delay(attempt).max(Duration::from_secs(1)),
                        CloseAction::RetryNow if attempt == 0 => Duration::ZERO,
                        CloseAction::RetryNow | CloseAction::Reconnect => backoff.delay(attempt),
                    };
                    let why = match code {
                        Some(c) => format!("closed by the server ({c}): {reason}"),
                        None => format!("closed by the server: {reason}"),
                    };
                    (delay, why)
                }
                Ended::Lost(reason) => {
                    tracing::info!(%reason, "hush-client: connection lost, reconnecting");
                    (backoff.delay(attempt), reason)
                }
            };
            attempt = attempt.saturating_add(1);
            self.emit(&Event::new(
                None,
                event::CONNECTION_ERROR,
                json!({"reason": reason, "retry_in_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)}),
            ));
            self.set_state(ConnectionState::Unavailable);
            if self.idle(delay).await {
                return self.finish(ConnectionState::Disconnected);
            }
        }
    }

    fn finish(&mut self, state: ConnectionState) {
        let err = match &state {
            ConnectionState::Failed { code, reason } => {
                Error::Failed(format!("{reason} ({})", code.unwrap_or(0)))
            }
            _ => Error::Closed,
        };
        for w in self.signin_waiters.drain(..) {
            let _ = w.send(Err(err.clone()));
        }
        for (_, r) in self.requests.drain() {
            let _ = r.send(Err(DirectoryError::Closed));
        }
        self.set_state(state);
    }

    /// Waits `delay` while serving commands; true if asked to stop.
    async fn idle(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            tokio::select! {
                () = sleep_until(deadline) => return false,
                c = self.cmd_rx.recv() => match c {
                    None | Some(Command::Disconnect) => return true,
                    Some(c) => self.command_offline(c),
                },
                Some(_) = self.int_rx.recv() => {}
            }
        }
    }

    fn command_offline(&mut self, c: Command) {
        match c {
            Command::Subscribe(shared) => {
                self.channels
                    .entry(shared.name.clone())
                    .or_insert_with(|| ChannelState::new(shared, false, &self.config));
            }
            Command::Unsubscribe(name) => {
                self.channels.remove(&name);
            }
            Command::ClientEvent { reply, .. } | Command::SealedEvent { reply, .. } => {
                let _ = reply.send(Err(Error::NotConnected));
            }
            Command::Signin(tx) => {
                self.signin_wanted = true;
                // Callers that gave up (timed out) are not kept.
                self.signin_waiters.retain(|w| !w.is_closed());
                self.signin_waiters.push(tx);
            }
            Command::Request { reply, .. } => {
                let _ = reply.send(Err(DirectoryError::NotConnected));
            }
            Command::Disconnect => {}
        }
    }

    fn on_disconnected(&mut self) {
        self.socket_id = None;
        self.user = None;
        self.signin_in_flight = false;
        self.signin_sent = false;
        for (_, r) in self.requests.drain() {
            let _ = r.send(Err(DirectoryError::ConnectionLost));
        }
        self.channels.retain(|_, s| !s.internal);
        let mut failed = Vec::new();
        for (name, st) in &mut self.channels {
            st.shared.subscribed.store(false, Ordering::Release);
            st.shared.set_members(None);
            if let Some(pending) = st.refetching.take() {
                for p in pending {
                    failed.push(failure_event(
                        name.as_str(),
                        &p.event,
                        DecryptError::NoKey("connection lost while re-fetching the key".into()),
                    ));
                }
            }
        }
        for e in &failed {
            self.emit(e);
        }
    }

    /// [`connect`], while still serving commands (a disconnect stops the attempt).
    async fn connect_serving_commands(&mut self) -> Result<(Ws, SocketId, Duration), Ended> {
        let attempt = connect(self.config.clone(), self.listeners.clone());
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                r = &mut attempt => return r,
                c = self.cmd_rx.recv() => match c {
                    None | Some(Command::Disconnect) => return Err(Ended::Stop),
                    Some(c) => self.command_offline(c),
                },
            }
        }
    }

    async fn session(&mut self, mut ws: Ws, sid: SocketId, server_activity: Duration) -> Ended {
        self.conn = self.conn.wrapping_add(1);
        self.socket_id = Some(sid.clone());
        self.set_state(ConnectionState::Connected { socket_id: sid });
        let ended = self.session_loop(&mut ws, server_activity).await;
        if matches!(ended, Ended::Stop) {
            let _ = timeout(Duration::from_secs(2), ws.close(None)).await;
        }
        ended
    }

    async fn session_loop(&mut self, ws: &mut Ws, server_activity: Duration) -> Ended {
        let activity = server_activity.min(self.config.activity_timeout);
        let names: Vec<ChannelName> = self.channels.keys().cloned().collect();
        for n in names {
            if let Err(e) = self.start_subscribe(ws, &n).await {
                return e;
            }
        }
        if self.signin_wanted {
            self.start_signin();
        }
        let mut last = Instant::now();
        let mut ping_sent: Option<Instant> = None;
        loop {
            let deadline = match ping_sent {
                Some(t) => t + self.config.pong_timeout,
                None => last + activity,
            };
            let step = tokio::select! {
                m = ws.next() => Step::Ws(m),
                c = self.cmd_rx.recv() => Step::Cmd(c),
                Some(i) = self.int_rx.recv() => Step::Int(i),
                () = sleep_until(deadline) => Step::Timer,
            };
            let result = match step {
                Step::Ws(m) => {
                    last = Instant::now();
                    ping_sent = None;
                    self.on_message(ws, m).await
                }
                Step::Cmd(c) => self.on_command(ws, c).await,
                Step::Int(i) => self.on_internal(ws, i).await,
                Step::Timer if ping_sent.is_some() => Err(Ended::Lost("no pong in time".into())),
                Step::Timer => {
                    ping_sent = Some(Instant::now());
                    send(ws, frames::PING.to_owned()).await
                }
            };
            if let Err(e) = result {
                return e;
            }
        }
    }

    async fn on_message(
        &mut self,
        ws: &mut Ws,
        m: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), Ended> {
        match m {
            Some(Ok(Message::Text(t))) => self.on_frame(ws, t.as_str()).await,
            Some(Ok(Message::Close(frame))) => Err(match frame {
                Some(f) => Ended::Close(Some(u16::from(f.code)), f.reason.to_string()),
                None => Ended::Close(None, String::new()),
            }),
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(Ended::Lost(e.to_string())),
            None => Err(Ended::Lost("connection closed".into())),
        }
    }

    async fn on_command(&mut self, ws: &mut Ws, c: Option<Command>) -> Result<(), Ended> {
        match c {
            None | Some(Command::Disconnect) => Err(Ended::Stop),
            Some(Command::Subscribe(shared)) => {
                let name = shared.name.clone();
                if self.channels.contains_key(&name) {
                    return Ok(());
                }
                self.channels
                    .insert(name.clone(), ChannelState::new(shared, false, &self.config));
                self.start_subscribe(ws, &name).await
            }
            Some(Command::Unsubscribe(name)) => {
                if let Some(st) = self.channels.remove(&name) {
                    st.shared.subscribed.store(false, Ordering::Release);
                    st.shared.set_members(None);
                    send(ws, frames::unsubscribe(name.as_str())).await?;
                }
                Ok(())
            }
            Some(Command::ClientEvent {
                channel,
                event,
                data,
                reply,
            }) => {
                let subscribed = self
                    .channels
                    .get(&channel)
                    .is_some_and(|s| s.shared.subscribed.load(Ordering::Acquire));
                if !subscribed {
                    let _ = reply.send(Err(Error::NotSubscribed(channel.to_string())));
                    return Ok(());
                }
                let r = send(ws, frames::client_event(&event, channel.as_str(), &data)).await;
                let _ = reply.send(r.as_ref().map(|_| ()).map_err(|_| Error::NotConnected));
                r
            }
            Some(Command::SealedEvent {
                channel,
                event,
                data,
                reply,
            }) => {
                let frame = match self.seal_client_event(&channel, &event, &data) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return Ok(());
                    }
                };
                let r = send(ws, frame).await;
                let _ = reply.send(r.as_ref().map(|_| ()).map_err(|_| Error::NotConnected));
                r
            }
            Some(Command::Request { id, frame, reply }) => {
                // Callers that timed out dropped their receiver.
                self.requests.retain(|_, r| !r.is_closed());
                self.requests.insert(id, reply);
                send(ws, frame).await
            }
            Some(Command::Signin(tx)) => {
                if let Some(u) = &self.user {
                    let _ = tx.send(Ok(u.clone()));
                } else {
                    self.signin_wanted = true;
                    self.signin_waiters.retain(|w| !w.is_closed());
                    self.signin_waiters.push(tx);
                    self.start_signin();
                }
                Ok(())
            }
        }
    }

    /// Seals a `client-hush-sealed` frame under the channel's newest key.
    fn seal_client_event(
        &mut self,
        channel: &ChannelName,
        event: &str,
        data: &str,
    ) -> Result<String, Error> {
        let st = self
            .channels
            .get_mut(channel)
            .filter(|s| s.shared.subscribed.load(Ordering::Acquire))
            .ok_or_else(|| Error::NotSubscribed(channel.to_string()))?;
        let now = now_ms();
        let epoch = st
            .keys
            .newest()
            .ok_or_else(|| Error::NotSubscribed(channel.to_string()))?;
        let key = st
            .keys
            .key(epoch, now)
            .map_err(|e| Error::NotSubscribed(format!("{channel}: {e}")))?;
        let wire = self
            .sealer
            .seal(key, channel, epoch, event, data, now)
            .map_err(|e| Error::Data(e.to_string()))?;
        let data_json = serde_json::to_string(&wire).map_err(|e| Error::Data(e.to_string()))?;
        Ok(frames::client_event(
            sealed::CLIENT_EVENT,
            channel.as_str(),
            &data_json,
        ))
    }

    /// Subscribes a channel: at once when public, after authorization otherwise.
    async fn start_subscribe(&mut self, ws: &mut Ws, name: &ChannelName) -> Result<(), Ended> {
        match name.kind() {
            ChannelKind::Public | ChannelKind::ServerToUser => {
                send(ws, frames::subscribe(name.as_str(), "", None)).await
            }
            ChannelKind::Private | ChannelKind::Presence | ChannelKind::Encrypted => {
                self.spawn_channel_auth(name.clone(), false);
                Ok(())
            }
        }
    }

    fn spawn_channel_auth(&self, channel: ChannelName, refetch: bool) {
        let tx = self.int_tx.clone();
        let conn = self.conn;
        let authorizer = self.config.authorizer.clone();
        let sid = self.socket_id.clone();
        let key = self.config.app_key.clone();
        tokio::spawn(async move {
            let result = match (authorizer, sid) {
                (Some(a), Some(sid)) => {
                    match timeout(AUTH_TIMEOUT, a.authorize_channel(&sid, &channel)).await {
                        Ok(Ok(body)) => ChannelAuthorization::parse(&body, &key, &channel),
                        Ok(Err(e)) => Err(e),
                        Err(_) => Err(AuthError::Timeout),
                    }
                }
                (None, _) => Err(AuthError::NoAuthorizer(channel.to_string())),
                (_, None) => return,
            };
            let _ = tx
                .send(Internal::ChannelAuth {
                    conn,
                    channel,
                    refetch,
                    result,
                })
                .await;
        });
    }

    fn start_signin(&mut self) {
        if self.signin_in_flight || self.user.is_some() {
            return;
        }
        let Some(sid) = self.socket_id.clone() else {
            return;
        };
        self.signin_in_flight = true;
        let tx = self.int_tx.clone();
        let conn = self.conn;
        let authorizer = self.config.authorizer.clone();
        let key = self.config.app_key.clone();
        tokio::spawn(async move {
            let result = match authorizer {
                Some(a) => match timeout(AUTH_TIMEOUT, a.authenticate_user(&sid)).await {
                    Ok(Ok(body)) => UserAuthentication::parse(&body, &key),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(AuthError::Timeout),
                },
                None => Err(AuthError::NoUserAuthentication),
            };
            let _ = tx.send(Internal::UserAuth { conn, result }).await;
        });
    }

    async fn on_internal(&mut self, ws: &mut Ws, i: Internal) -> Result<(), Ended> {
        match i {
            Internal::ChannelAuth { conn, .. } | Internal::UserAuth { conn, .. }
                if conn != self.conn =>
            {
                Ok(())
            }
            Internal::UserAuth { result, .. } => {
                self.signin_in_flight = false;
                match result {
                    Ok(ua) => {
                        self.signin_sent = true;
                        send(ws, frames::signin(&ua.auth, &ua.user_data)).await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "hush-client: user authentication failed");
                        self.emit(&Event::new(None, event::SIGNIN_ERROR, auth_error_data(&e)));
                        for w in self.signin_waiters.drain(..) {
                            let _ = w.send(Err(Error::Auth(e.clone())));
                        }
                        Ok(())
                    }
                }
            }
            Internal::ChannelAuth {
                channel,
                refetch: true,
                result,
                ..
            } => {
                self.on_refetched(&channel, result);
                Ok(())
            }
            Internal::ChannelAuth {
                channel, result, ..
            } => self.on_authorized(ws, &channel, result).await,
        }
    }

    async fn on_authorized(
        &mut self,
        ws: &mut Ws,
        channel: &ChannelName,
        result: Result<ChannelAuthorization, AuthError>,
    ) -> Result<(), Ended> {
        let user = self.user.clone();
        let Some(st) = self.channels.get_mut(channel) else {
            return Ok(());
        };
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, "hush-client: authorization failed");
                let ev = Event::new(
                    Some(channel.as_str()),
                    event::SUBSCRIPTION_ERROR,
                    auth_error_data(&e),
                );
                self.emit(&ev);
                return Ok(());
            }
        };
        if channel.kind() == ChannelKind::Presence {
            st.me = match (&a.user_id, user) {
                (Some(id), _) => Some(Member {
                    id: id.clone(),
                    info: a.user_info.clone(),
                }),
                (None, Some(u)) => Some(Member {
                    id: u.to_string(),
                    info: Value::Null,
                }),
                (None, None) => {
                    let e = AuthError::BadMemberData(
                        "presence authorization without channel_data needs a signed-in user".into(),
                    );
                    let ev = Event::new(
                        Some(channel.as_str()),
                        event::SUBSCRIPTION_ERROR,
                        auth_error_data(&e),
                    );
                    self.emit(&ev);
                    return Ok(());
                }
            };
        }
        if let Some(k) = a.shared_secret.clone() {
            st.keys.install(a.epoch, k, now_ms());
        }
        send(
            ws,
            frames::subscribe(channel.as_str(), &a.auth, a.channel_data.as_deref()),
        )
        .await
    }

    fn on_refetched(
        &mut self,
        channel: &ChannelName,
        result: Result<ChannelAuthorization, AuthError>,
    ) {
        let Some(st) = self.channels.get_mut(channel) else {
            return;
        };
        let pending = st.refetching.take().unwrap_or_default();
        let mut out = Vec::with_capacity(pending.len());
        match result {
            Ok(a) => {
                if let Some(k) = a.shared_secret {
                    st.keys.install(a.epoch, k, now_ms());
                }
                for p in pending {
                    out.push(match decrypt(st, channel, &p.event, &p.data, p.user_id) {
                        Ok(e) => e,
                        Err((err, _)) => failure_event(channel.as_str(), &p.event, err),
                    });
                }
            }
            Err(e) => {
                for p in pending {
                    out.push(failure_event(
                        channel.as_str(),
                        &p.event,
                        DecryptError::NoKey(e.to_string()),
                    ));
                }
            }
        }
        for e in &out {
            self.emit(e);
        }
    }

    async fn on_frame(&mut self, ws: &mut Ws, text: &str) -> Result<(), Ended> {
        let Some(f) = ServerFrame::parse(text) else {
            tracing::debug!("hush-client: ignoring a frame that is not a JSON event");
            return Ok(());
        };
        match f.event.as_str() {
            "pusher:ping" => send(ws, frames::PONG.to_owned()).await,
            "pusher:pong" | "pusher:connection_established" => Ok(()),
            "pusher:error" => {
                let d = f.data_json();
                tracing::warn!(error = %d, "hush-client: pusher:error from the server");
                // The server answers a refused sign-in with pusher:error
                // (there is no signin_error frame): attribute an error that
                // arrives while a sign-in is outstanding to it.
                if self.signin_sent && self.user.is_none() {
                    self.signin_sent = false;
                    let msg = d["message"].as_str().unwrap_or("refused by the server");
                    for w in self.signin_waiters.drain(..) {
                        let _ = w.send(Err(Error::Signin(msg.to_owned())));
                    }
                }
                self.emit(&Event::new(None, event::ERROR, d));
                Ok(())
            }
            "pusher:signin_success" => self.on_signin_success(ws, &f).await,
            "hush:response" => {
                match request::parse_response(&f.data_json()) {
                    Some((id, outcome)) => {
                        if let Some(r) = self.requests.remove(&id) {
                            let _ = r.send(outcome);
                        }
                    }
                    None => tracing::debug!("hush-client: ignoring a hush:response without id"),
                }
                Ok(())
            }
            "pusher_internal:subscription_succeeded" => {
                self.on_subscribed(&f);
                Ok(())
            }
            "pusher:subscription_error" => {
                if let Some(st) = f
                    .channel
                    .as_deref()
                    .and_then(|c| ChannelName::parse(c).ok())
                    .and_then(|c| self.channels.get(&c))
                {
                    st.shared.subscribed.store(false, Ordering::Release);
                }
                self.emit(&Event::new(
                    f.channel.as_deref(),
                    event::SUBSCRIPTION_ERROR,
                    f.data_json(),
                ));
                Ok(())
            }
            "pusher_internal:member_added" => {
                self.on_member(&f, true);
                Ok(())
            }
            "pusher_internal:member_removed" => {
                self.on_member(&f, false);
                Ok(())
            }
            "pusher_internal:subscription_count" => {
                self.emit(&Event::new(
                    f.channel.as_deref(),
                    event::SUBSCRIPTION_COUNT,
                    f.data_json(),
                ));
                Ok(())
            }
            e if e.starts_with("pusher_internal:") => Ok(()),
            _ => {
                self.on_event(f);
                Ok(())
            }
        }
    }

    async fn on_signin_success(&mut self, ws: &mut Ws, f: &ServerFrame) -> Result<(), Ended> {
        let d = f.data_json();
        let Some(user_data) = d["user_data"].as_str() else {
            return Ok(());
        };
        let Ok(parsed) = hush_protocol::presence::parse_user_data(
            user_data,
            hush_protocol::limits::MAX_PRESENCE_USER_INFO_BYTES,
        ) else {
            tracing::warn!("hush-client: signin_success with invalid user_data");
            return Ok(());
        };
        let id = parsed.id;
        self.signin_sent = false;
        self.user = Some(id.clone());
        for w in self.signin_waiters.drain(..) {
            let _ = w.send(Ok(id.clone()));
        }
        self.emit(&Event::new(None, event::SIGNIN_SUCCESS, d.clone()));
        let name = ChannelName::server_to_user(&id);
        if !self.channels.contains_key(&name) {
            let shared = Arc::new(ChannelShared {
                name: name.clone(),
                subscribed: false.into(),
                members: std::sync::Mutex::new(None),
            });
            self.channels
                .insert(name.clone(), ChannelState::new(shared, true, &self.config));
            return send(ws, frames::subscribe(name.as_str(), "", None)).await;
        }
        Ok(())
    }

    fn on_subscribed(&mut self, f: &ServerFrame) {
        let Some(name) = f
            .channel
            .as_deref()
            .and_then(|c| ChannelName::parse(c).ok())
        else {
            return;
        };
        let Some(st) = self.channels.get(&name) else {
            return;
        };
        st.shared.subscribed.store(true, Ordering::Release);
        let data = if name.kind() == ChannelKind::Presence {
            let d = f.data_json();
            let members: std::collections::BTreeMap<String, Value> = d["presence"]["hash"]
                .as_object()
                .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let m = Members {
                me: st.me.clone(),
                members,
            };
            let data = json!({"count": m.count(), "members": m.members, "me": m.me});
            st.shared.set_members(Some(m));
            data
        } else {
            json!({})
        };
        self.emit(&Event::new(
            Some(name.as_str()),
            event::SUBSCRIPTION_SUCCEEDED,
            data,
        ));
    }

    fn on_member(&mut self, f: &ServerFrame, added: bool) {
        let Some(name) = f
            .channel
            .as_deref()
            .and_then(|c| ChannelName::parse(c).ok())
        else {
            return;
        };
        let Some(st) = self.channels.get(&name) else {
            return;
        };
        let d = f.data_json();
        let id = match &d["user_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        let mut info = d.get("user_info").cloned().unwrap_or(Value::Null);
        st.shared.update_members(|m| {
            if added {
                m.members.insert(id.clone(), info.clone());
            } else if let Some(old) = m.members.remove(&id) {
                info = old;
            }
        });
        let name_ev = if added {
            event::MEMBER_ADDED
        } else {
            event::MEMBER_REMOVED
        };
        self.emit(&Event::new(
            Some(name.as_str()),
            name_ev,
            json!({"id": id, "info": info}),
        ));
    }

    /// An application event (or a `pusher:` event other than those above).
    fn on_event(&mut self, f: ServerFrame) {
        let Some(ch) = f.channel.as_deref() else {
            let mut e = Event::new(None, &f.event, f.data_json());
            e.user_id = f.user_id;
            self.emit(&e);
            return;
        };
        let Ok(name) = ChannelName::parse(ch) else {
            return;
        };
        if !self.channels.contains_key(&name) {
            return;
        }
        if name.kind() == ChannelKind::Encrypted && !f.event.starts_with("pusher:") {
            let data = f.data_text();
            self.on_encrypted(&name, f.event, data, f.user_id);
            return;
        }
        let mut e = Event::new(Some(ch), &f.event, f.data_json());
        e.user_id = f.user_id;
        self.emit(&e);
    }

    /// Encrypted channels: open with the key of the envelope's epoch; on a
    /// failure a new key may cure (wrong key, newer epoch), re-fetch the key
    /// once — at most every `refetch_interval`, unless the event names a newer
    /// epoch than the last re-fetch — and retry; otherwise report.
    fn on_encrypted(
        &mut self,
        name: &ChannelName,
        event_name: String,
        data: String,
        user_id: Option<String>,
    ) {
        let can_auth = self.config.authorizer.is_some() && self.socket_id.is_some();
        let interval = self.config.refetch_interval;
        let Some(st) = self.channels.get_mut(name) else {
            return;
        };
        if let Some(pending) = st.refetching.as_mut() {
            if pending.len() < MAX_PENDING {
                pending.push(Pending {
                    event: event_name,
                    data,
                    user_id,
                });
            } else {
                let e = failure_event(
                    name.as_str(),
                    &event_name,
                    DecryptError::NoKey("too many events waiting for the key".into()),
                );
                self.emit(&e);
            }
            return;
        }
        let out = match decrypt(st, name, &event_name, &data, user_id.clone()) {
            Ok(e) => e,
            Err((err, epoch)) => {
                // A rotation (the epoch right after the newest key held)
                // may re-fetch at once; anything else waits for the
                // interval. The epoch is the sender's claim: a member
                // counting epochs upwards must not turn every event into
                // a call to the app's authorizer.
                let next_epoch = st.keys.newest().map_or(0, |n| n.saturating_add(1));
                let allowed = st.last_refetch.is_none_or(|(t, e)| {
                    t.elapsed() >= interval || (epoch == next_epoch && epoch > e)
                });
                if can_auth && allowed && refetchable(&err) {
                    st.last_refetch = Some((Instant::now(), epoch));
                    st.refetching = Some(vec![Pending {
                        event: event_name,
                        data,
                        user_id,
                    }]);
                    self.spawn_channel_auth(name.clone(), true);
                    return;
                }
                failure_event(name.as_str(), &event_name, err)
            }
        };
        self.emit(&out);
    }
}

/// Opens the WebSocket: plain, or TLS for `wss://` (with the configured or
/// the system's roots).
async fn open_socket(
    config: &Config,
    url: &str,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    Ended,
> {
    #[cfg(feature = "tls")]
    let opened = {
        let connector = if url.starts_with("wss://") {
            let tls = match &config.tls {
                Some(c) => c.clone(),
                None => crate::tls::default_config().map_err(Ended::Lost)?,
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
        let _ = config;
        tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true).await
    };
    opened.map_err(|e| Ended::Lost(e.to_string()))
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

/// Opens the WebSocket and reads `pusher:connection_established` (or the
/// refusal), within the connect timeout.
async fn connect(
    config: Arc<Config>,
    listeners: Arc<Listeners>,
) -> Result<(Ws, SocketId, Duration), Ended> {
    let url = format!(
        "{}/app/{}?protocol=7&client=hush-rust&version={VERSION}&flash=false",
        config.base_url, config.app_key
    );
    let connect_timeout = config.connect_timeout;
    let attempt = async move {
        let (mut ws, _) = open_socket(&config, &url).await?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let Some(f) = ServerFrame::parse(t.as_str()) else {
                        return Err(Ended::Lost("handshake frame is not JSON".into()));
                    };
                    match f.event.as_str() {
                        "pusher:connection_established" => {
                            let d = f.data_json();
                            let sid = d["socket_id"]
                                .as_str()
                                .and_then(|s| SocketId::parse(s).ok())
                                .ok_or_else(|| Ended::Lost("invalid socket_id".into()))?;
                            let at = d["activity_timeout"]
                                .as_u64()
                                .filter(|&n| n > 0)
                                .ok_or_else(|| {
                                    Ended::Lost("no activity timeout in handshake".into())
                                })?;
                            return Ok((ws, sid, Duration::from_secs(at)));
                        }
                        "pusher:error" => {
                            let d = f.data_json();
                            listeners.dispatch(&Event::new(None, event::ERROR, d.clone()));
                            let code = d["code"].as_u64().and_then(|c| u16::try_from(c).ok());
                            let msg = d["message"].as_str().unwrap_or("").to_owned();
                            if code.is_some() {
                                return Err(Ended::Close(code, msg));
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(f) => Ended::Close(Some(u16::from(f.code)), f.reason.to_string()),
                        None => Ended::Close(None, String::new()),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Ended::Lost(e.to_string())),
                None => return Err(Ended::Lost("closed during handshake".into())),
            }
        }
    };
    timeout(connect_timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(Ended::Lost("connection attempt timed out".into())))
}
