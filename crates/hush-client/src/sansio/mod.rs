//! The client's protocol logic without I/O, in quinn-proto's shape.
//!
//! [`ClientCore`] never touches a socket, a task or the clock. The driver
//! ([`crate::connection`]) feeds it what happened — frames
//! ([`ClientCore::handle_frame`]), the passing of time
//! ([`ClientCore::handle_timeout`]), the socket closing, commands from the
//! handles, answers of the authorizer — always with `now`, and collects what
//! to do: frames to write ([`ClientCore::poll_transmit`]), outputs
//! ([`ClientCore::poll_output`]: events for the application, state changes,
//! sockets to open or close, authorizations to run, answers for waiting
//! callers) and the next deadline ([`ClientCore::poll_timeout`]).
//!
//! Reconnect classes, resubscription, keepalive (activity timeout → ping →
//! pong timeout → reconnect), channel and user authorization (answers of a
//! previous connection are ignored), decryption and request timeouts all live
//! here and are tested on a virtual clock (`tests.rs`).
//!
//! Files: this one holds the connection's life (time, socket, commands,
//! authorization); `session.rs` the frames of an established connection;
//! `channel.rs` one channel's keys and decryption; `signin.rs` the sign-in
//! state; `wire.rs` the adapter to hush-protocol's codec.

mod channel;
mod session;
mod signin;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use hush_crypto::sealed;
use hush_protocol::msgs::ServerMessage;
use hush_protocol::{ChannelKind, ChannelName, SocketId, UserId};
use serde_json::{Value, json};

use crate::auth::{ChannelAuthorization, UserAuthentication};
use crate::backoff::{Backoff, CloseAction, classify};
use crate::client::{ChannelShared, ConnectionState, Member};
use crate::config::Config;
use crate::error::{AuthError, Error};
use crate::event::{self, DecryptError, Event};
use crate::request::DirectoryError;

use channel::{ChannelState, decrypt, failure_event, millis};
use signin::Signin;

/// The settings the core uses (the rest of [`Config`] is the driver's).
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// Ping after this much silence (the server's value is used when smaller).
    pub activity_timeout: Duration,
    /// Reconnect when no pong arrives within this.
    pub pong_timeout: Duration,
    /// Longest wait from opening a socket to `pusher:connection_established`.
    pub connect_timeout: Duration,
    /// Reconnection backoff.
    pub backoff: Backoff,
    /// Encrypted channels: least time between two key re-fetches.
    pub refetch_interval: Duration,
    /// Encrypted channels: how long older epochs' keys are kept.
    pub epoch_grace: Duration,
    /// Sealed events: freshness window.
    pub sealed_max_age: Duration,
    /// `hush:request`s: how long to wait for the response.
    pub request_timeout: Duration,
    /// An authorizer is configured (else authorizations fail at once).
    pub has_authorizer: bool,
}

impl CoreConfig {
    /// The core's part of a client's settings.
    pub(crate) fn from_config(c: &Config) -> Self {
        Self {
            activity_timeout: c.activity_timeout,
            pong_timeout: c.pong_timeout,
            connect_timeout: c.connect_timeout,
            backoff: c.backoff,
            refetch_interval: c.refetch_interval,
            epoch_grace: c.epoch_grace,
            sealed_max_age: c.sealed_max_age,
            request_timeout: c.request_timeout,
            has_authorizer: c.authorizer.is_some(),
        }
    }
}

/// "Authorize `socket_id` for `channel`": the driver runs the authorizer and
/// hands the ticket back with the answer ([`ClientCore::channel_authorized`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChannelTicket {
    conn: u64,
    refetch: bool,
    /// The socket to authorize.
    pub socket_id: SocketId,
    /// The channel.
    pub channel: ChannelName,
}

/// "Authenticate the user of `socket_id`": the driver runs the authorizer and
/// hands the ticket back with the answer ([`ClientCore::user_authenticated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserTicket {
    conn: u64,
    /// The socket to authenticate.
    pub socket_id: SocketId,
}

/// What the core asks the driver to do (besides writing frames).
#[derive(Debug)]
pub(crate) enum Output {
    /// Open a WebSocket to the server (the connect timeout runs from now).
    Connect,
    /// Close the WebSocket (or abandon the attempt); `graceful`: send a close
    /// frame first (a requested disconnect).
    Close {
        /// Close politely instead of dropping.
        graceful: bool,
    },
    /// The connection state changed.
    State(ConnectionState),
    /// An event for the application.
    Event(Event),
    /// Run the channel authorizer.
    AuthorizeChannel(ChannelTicket),
    /// Run the user authentication.
    AuthenticateUser(UserTicket),
    /// The outcome for every caller waiting on `Client::signin`.
    Signin(Result<UserId, Error>),
    /// The outcome of the `hush:request` with this id.
    Response {
        /// The request id.
        id: String,
        /// The result, or why there is none.
        result: Result<Value, DirectoryError>,
    },
    /// Stopped for good: nothing more will come.
    Stopped,
}

/// Why a connection (or an attempt) ended.
#[derive(Debug)]
enum Ended {
    /// Disconnect requested, or every handle dropped.
    Stop,
    /// Closed by the server with this code (or refused with `pusher:error`).
    Close(Option<u16>, String),
    /// Network error, timeout, missing pong.
    Lost(String),
}

/// Where the connection stands.
#[derive(Debug)]
enum Phase {
    /// Waiting until `at` to reconnect.
    Waiting { at: Instant },
    /// A socket is being opened; `pusher:connection_established` is due by `deadline`.
    Connecting { deadline: Instant },
    /// Connected: pings after `activity` of silence.
    Connected {
        socket_id: SocketId,
        activity: Duration,
        last: Instant,
        ping_sent: Option<Instant>,
    },
    /// Stopped for good.
    Stopped,
}

/// The sans-I/O client connection (see the module docs).
pub(crate) struct ClientCore {
    config: CoreConfig,
    phase: Phase,
    /// Reconnection attempts since the last established connection.
    attempt: u32,
    /// Counts established connections; answers for an older one are stale.
    conn: u64,
    channels: HashMap<ChannelName, ChannelState>,
    signin: Signin,
    /// `hush:request`s in flight on this connection: id → deadline.
    requests: HashMap<String, Instant>,
    /// This client's sealed-event sender (one id and sequence per client).
    sealer: sealed::Sender,
    /// Wall clock: Unix milliseconds at the monotonic instant `anchor`.
    anchor: Instant,
    anchor_ms: u64,
    transmits: VecDeque<String>,
    outputs: VecDeque<Output>,
}

fn auth_error_data(e: &AuthError) -> Value {
    let status = match e {
        AuthError::Status { status } => *status,
        _ => 0,
    };
    json!({"type": "AuthError", "error": e.to_string(), "status": status})
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, millis)
}

impl ClientCore {
    /// A core that starts connecting at once (its first output is
    /// [`Output::Connect`]). `wall` is the wall-clock time at `now`, used for
    /// key grace periods and sealed-event freshness.
    pub(crate) fn new(
        config: CoreConfig,
        sealer: sealed::Sender,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let mut core = Self {
            config,
            phase: Phase::Stopped,
            attempt: 0,
            conn: 0,
            channels: HashMap::new(),
            signin: Signin::Off,
            requests: HashMap::new(),
            sealer,
            anchor: now,
            anchor_ms: unix_ms(wall),
            transmits: VecDeque::new(),
            outputs: VecDeque::new(),
        };
        core.start_connecting(now);
        core
    }

    // ---- polls ----

    /// The next frame to write to the socket.
    pub(crate) fn poll_transmit(&mut self) -> Option<String> {
        self.transmits.pop_front()
    }

    /// The next thing for the driver to do.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`ClientCore::handle_timeout`] must be called next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let phase = match &self.phase {
            Phase::Waiting { at } => Some(*at),
            Phase::Connecting { deadline } => Some(*deadline),
            Phase::Connected {
                activity,
                last,
                ping_sent,
                ..
            } => Some(match ping_sent {
                Some(t) => *t + self.config.pong_timeout,
                None => *last + *activity,
            }),
            Phase::Stopped => None,
        };
        let request = self.requests.values().min().copied();
        match (phase, request) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The socket id while connected.
    pub(crate) fn socket_id(&self) -> Option<&SocketId> {
        match &self.phase {
            Phase::Connected { socket_id, .. } => Some(socket_id),
            _ => None,
        }
    }

    /// The sign-in state.
    pub(crate) fn signin_state(&self) -> &Signin {
        &self.signin
    }

    /// True once stopped for good.
    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped)
    }

    // ---- time ----

    /// Re-anchors the wall clock (the monotonic clock does not count
    /// suspension; the driver calls this before feeding inputs).
    pub(crate) fn sync_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.anchor = now;
        self.anchor_ms = unix_ms(wall);
    }

    fn now_ms(&self, now: Instant) -> u64 {
        self.anchor_ms
            .saturating_add(millis(now.saturating_duration_since(self.anchor)))
    }

    /// Acts on every deadline that passed by `now`: reconnecting, the connect
    /// timeout, pinging, the pong timeout, request timeouts.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .requests
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.requests.remove(&id);
            self.outputs.push_back(Output::Response {
                id,
                result: Err(DirectoryError::Timeout),
            });
        }
        match &mut self.phase {
            Phase::Waiting { at } if *at <= now => self.start_connecting(now),
            Phase::Connecting { deadline } if *deadline <= now => {
                self.outputs.push_back(Output::Close { graceful: false });
                self.end(Ended::Lost("connection attempt timed out".into()), now);
            }
            Phase::Connected {
                activity,
                last,
                ping_sent,
                ..
            } => match ping_sent {
                Some(t) if *t + self.config.pong_timeout <= now => {
                    self.outputs.push_back(Output::Close { graceful: false });
                    self.end(Ended::Lost("no pong in time".into()), now);
                }
                None if *last + *activity <= now => {
                    *ping_sent = Some(now);
                    self.transmits.push_back(wire::ping());
                }
                _ => {}
            },
            _ => {}
        }
    }

    // ---- the socket ----

    fn start_connecting(&mut self, now: Instant) {
        self.phase = Phase::Connecting {
            deadline: now + self.config.connect_timeout,
        };
        self.set_state(ConnectionState::Connecting);
        self.outputs.push_back(Output::Connect);
    }

    /// The socket received something other than a text frame (a WebSocket
    /// ping, pong or binary message): the connection is alive.
    pub(crate) fn handle_activity(&mut self, now: Instant) {
        if let Phase::Connected {
            last, ping_sent, ..
        } = &mut self.phase
        {
            *last = now;
            *ping_sent = None;
        }
    }

    /// The server closed the socket (close frame with `code`, or none).
    pub(crate) fn socket_closed(&mut self, code: Option<u16>, reason: String, now: Instant) {
        if matches!(
            self.phase,
            Phase::Connecting { .. } | Phase::Connected { .. }
        ) {
            self.end(Ended::Close(code, reason), now);
        }
    }

    /// The socket failed (could not be opened, read or written).
    pub(crate) fn socket_lost(&mut self, reason: String, now: Instant) {
        if matches!(
            self.phase,
            Phase::Connecting { .. } | Phase::Connected { .. }
        ) {
            self.end(Ended::Lost(reason), now);
        }
    }

    /// A text frame from the server.
    pub(crate) fn handle_frame(&mut self, text: &str, now: Instant) {
        match self.phase {
            Phase::Connecting { .. } => self.handshake_frame(text, now),
            Phase::Connected { .. } => {
                self.handle_activity(now);
                self.session_frame(text, now);
            }
            Phase::Waiting { .. } | Phase::Stopped => {}
        }
    }

    /// Before `pusher:connection_established`.
    fn handshake_frame(&mut self, text: &str, now: Instant) {
        let m = match ServerMessage::decode(text) {
            Ok(m) => m,
            Err(e) => {
                self.outputs.push_back(Output::Close { graceful: false });
                return self.end(Ended::Lost(format!("invalid handshake frame: {e}")), now);
            }
        };
        match m {
            ServerMessage::ConnectionEstablished {
                socket_id,
                activity_timeout,
            } => match SocketId::parse(&socket_id) {
                Err(_) => {
                    self.outputs.push_back(Output::Close { graceful: false });
                    self.end(Ended::Lost("invalid socket_id".into()), now);
                }
                Ok(_) if activity_timeout == 0 => {
                    self.outputs.push_back(Output::Close { graceful: false });
                    self.end(Ended::Lost("no activity timeout in handshake".into()), now);
                }
                Ok(sid) => self.established(sid, Duration::from_secs(activity_timeout), now),
            },
            ServerMessage::Error { code, message } => {
                self.emit(Event::new(
                    None,
                    event::ERROR,
                    json!({"code": code, "message": message}),
                ));
                if code.is_some() {
                    self.outputs.push_back(Output::Close { graceful: false });
                    self.end(Ended::Close(code, message), now);
                }
            }
            _ => {}
        }
    }

    fn established(&mut self, sid: SocketId, server_activity: Duration, now: Instant) {
        self.attempt = 0;
        self.conn = self.conn.wrapping_add(1);
        self.phase = Phase::Connected {
            socket_id: sid.clone(),
            activity: server_activity.min(self.config.activity_timeout),
            last: now,
            ping_sent: None,
        };
        self.set_state(ConnectionState::Connected { socket_id: sid });
        let names: Vec<ChannelName> = self.channels.keys().cloned().collect();
        for n in names {
            self.start_subscribe(&n, now);
        }
        if self.signin == Signin::Wanted {
            self.start_signin();
        }
    }

    /// Ends the connection (the socket is already gone or being closed) and
    /// decides what comes next: stop, fail, or reconnect after a delay.
    fn end(&mut self, ended: Ended, now: Instant) {
        tracing::debug!(?ended, "hush-client connection ended");
        self.on_disconnected();
        let backoff = self.config.backoff;
        let attempt = self.attempt;
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
        self.attempt = attempt.saturating_add(1);
        self.emit(Event::new(
            None,
            event::CONNECTION_ERROR,
            json!({"reason": reason, "retry_in_ms": millis(delay)}),
        ));
        self.set_state(ConnectionState::Unavailable);
        self.phase = Phase::Waiting { at: now + delay };
    }

    /// Clears what belonged to the connection that ended.
    fn on_disconnected(&mut self) {
        self.phase = Phase::Stopped;
        self.transmits.clear();
        self.signin = self.signin.after_disconnect();
        for (id, _) in self.requests.drain() {
            self.outputs.push_back(Output::Response {
                id,
                result: Err(DirectoryError::ConnectionLost),
            });
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
        for e in failed {
            self.emit(e);
        }
    }

    fn finish(&mut self, state: ConnectionState) {
        let err = match &state {
            ConnectionState::Failed { code, reason } => {
                Error::Failed(format!("{reason} ({})", code.unwrap_or(0)))
            }
            _ => Error::Closed,
        };
        self.outputs.push_back(Output::Signin(Err(err)));
        for (id, _) in self.requests.drain() {
            self.outputs.push_back(Output::Response {
                id,
                result: Err(DirectoryError::Closed),
            });
        }
        self.phase = Phase::Stopped;
        self.set_state(state);
        self.outputs.push_back(Output::Stopped);
    }

    fn set_state(&mut self, s: ConnectionState) {
        tracing::debug!(state = ?s, "hush-client state");
        self.outputs.push_back(Output::State(s));
    }

    fn emit(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }

    // ---- commands ----

    /// Closes the connection and stops reconnecting.
    pub(crate) fn disconnect(&mut self, now: Instant) {
        match self.phase {
            Phase::Stopped => {}
            Phase::Connected { .. } => {
                // The frames already queued go out before the close frame.
                let queued = std::mem::take(&mut self.transmits);
                self.outputs.push_back(Output::Close { graceful: true });
                self.end(Ended::Stop, now);
                self.transmits = queued;
            }
            Phase::Connecting { .. } => {
                self.outputs.push_back(Output::Close { graceful: false });
                self.end(Ended::Stop, now);
            }
            Phase::Waiting { .. } => self.end(Ended::Stop, now),
        }
    }

    /// Adds a channel (and subscribes it at once when connected).
    pub(crate) fn subscribe(&mut self, shared: Arc<ChannelShared>, now: Instant) {
        let name = shared.name.clone();
        if self.channels.contains_key(&name) {
            return;
        }
        let st = ChannelState::new(
            shared,
            false,
            self.config.epoch_grace,
            self.config.sealed_max_age,
        );
        self.channels.insert(name.clone(), st);
        if self.socket_id().is_some() {
            self.start_subscribe(&name, now);
        }
    }

    /// Removes a channel (and unsubscribes it when connected).
    pub(crate) fn unsubscribe(&mut self, name: &ChannelName) {
        let Some(st) = self.channels.remove(name) else {
            return;
        };
        if self.socket_id().is_some() {
            st.shared.subscribed.store(false, Ordering::Release);
            st.shared.set_members(None);
            self.transmits.push_back(wire::unsubscribe(name.as_str()));
        }
    }

    fn subscribed(&self, channel: &ChannelName) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|s| s.shared.subscribed.load(Ordering::Acquire))
    }

    /// Queues a client event (`data` is JSON) on a subscribed channel.
    pub(crate) fn trigger(
        &mut self,
        channel: &ChannelName,
        event: &str,
        data: &str,
    ) -> Result<(), Error> {
        if self.socket_id().is_none() {
            return Err(Error::NotConnected);
        }
        if !self.subscribed(channel) {
            return Err(Error::NotSubscribed(channel.to_string()));
        }
        let frame = wire::client_event(event, channel.as_str(), data)?;
        self.transmits.push_back(frame);
        Ok(())
    }

    /// Seals a client event under the channel's newest key and queues it as
    /// `client-hush-sealed`.
    pub(crate) fn trigger_sealed(
        &mut self,
        channel: &ChannelName,
        event: &str,
        data: &str,
        now: Instant,
    ) -> Result<(), Error> {
        if self.socket_id().is_none() {
            return Err(Error::NotConnected);
        }
        let now_ms = self.now_ms(now);
        let st = self
            .channels
            .get_mut(channel)
            .filter(|s| s.shared.subscribed.load(Ordering::Acquire))
            .ok_or_else(|| Error::NotSubscribed(channel.to_string()))?;
        let epoch = st
            .keys
            .newest()
            .ok_or_else(|| Error::NotSubscribed(channel.to_string()))?;
        let key = st
            .keys
            .key(epoch, now_ms)
            .map_err(|e| Error::NotSubscribed(format!("{channel}: {e}")))?;
        let wire = self
            .sealer
            .seal(key, channel, epoch, event, data, now_ms)
            .map_err(|e| Error::Data(e.to_string()))?;
        let data_json = serde_json::to_string(&wire).map_err(|e| Error::Data(e.to_string()))?;
        let frame = wire::client_event(sealed::CLIENT_EVENT, channel.as_str(), &data_json)?;
        self.transmits.push_back(frame);
        Ok(())
    }

    /// Asks for sign-in (kept after reconnects). Returns the user at once
    /// when already signed in; otherwise the outcome comes as
    /// [`Output::Signin`].
    pub(crate) fn signin(&mut self) -> Option<UserId> {
        match &self.signin {
            Signin::SignedIn(u) => Some(u.clone()),
            Signin::Authenticating { .. } | Signin::Sent => None,
            Signin::Off | Signin::Wanted => {
                self.signin = Signin::Wanted;
                self.start_signin();
                None
            }
        }
    }

    /// Sends a `hush:request` with `id` (already encoded as `frame`); the
    /// answer, the timeout or the loss of the connection comes as
    /// [`Output::Response`].
    pub(crate) fn request(
        &mut self,
        id: String,
        frame: String,
        now: Instant,
    ) -> Result<(), DirectoryError> {
        if self.socket_id().is_none() {
            return Err(DirectoryError::NotConnected);
        }
        self.requests.insert(id, now + self.config.request_timeout);
        self.transmits.push_back(frame);
        Ok(())
    }

    // ---- authorization ----

    /// Subscribes a channel: at once when public, after authorization otherwise.
    fn start_subscribe(&mut self, name: &ChannelName, now: Instant) {
        match name.kind() {
            ChannelKind::Public | ChannelKind::ServerToUser => {
                self.transmits
                    .push_back(wire::subscribe(name.as_str(), "", None));
            }
            ChannelKind::Private | ChannelKind::Presence | ChannelKind::Encrypted => {
                self.request_channel_auth(name.clone(), false, now);
            }
        }
    }

    fn request_channel_auth(&mut self, channel: ChannelName, refetch: bool, now: Instant) {
        let Some(socket_id) = self.socket_id().cloned() else {
            return;
        };
        let ticket = ChannelTicket {
            conn: self.conn,
            refetch,
            socket_id,
            channel,
        };
        if self.config.has_authorizer {
            self.outputs.push_back(Output::AuthorizeChannel(ticket));
        } else {
            let e = AuthError::NoAuthorizer(ticket.channel.to_string());
            self.channel_authorized(ticket, Err(e), now);
        }
    }

    fn start_signin(&mut self) {
        if self.signin != Signin::Wanted {
            return;
        }
        let Some(socket_id) = self.socket_id().cloned() else {
            return;
        };
        self.signin = Signin::Authenticating { conn: self.conn };
        let ticket = UserTicket {
            conn: self.conn,
            socket_id,
        };
        if self.config.has_authorizer {
            self.outputs.push_back(Output::AuthenticateUser(ticket));
        } else {
            self.user_authenticated(ticket, Err(AuthError::NoUserAuthentication));
        }
    }

    /// The authorizer answered for `ticket`. Answers for an earlier
    /// connection are ignored.
    pub(crate) fn channel_authorized(
        &mut self,
        ticket: ChannelTicket,
        result: Result<ChannelAuthorization, AuthError>,
        now: Instant,
    ) {
        if ticket.conn != self.conn || self.socket_id().is_none() {
            return;
        }
        if ticket.refetch {
            self.on_refetched(&ticket.channel, result, now);
        } else {
            self.on_authorized(&ticket.channel, result, now);
        }
    }

    /// The user authentication answered for `ticket`. Answers for an
    /// earlier connection are ignored.
    pub(crate) fn user_authenticated(
        &mut self,
        ticket: UserTicket,
        result: Result<UserAuthentication, AuthError>,
    ) {
        if ticket.conn != self.conn
            || self.socket_id().is_none()
            || self.signin != (Signin::Authenticating { conn: ticket.conn })
        {
            return;
        }
        match result {
            Ok(ua) => {
                self.signin = Signin::Sent;
                self.transmits
                    .push_back(wire::signin(&ua.auth, &ua.user_data));
            }
            Err(e) => {
                tracing::warn!(error = %e, "hush-client: user authentication failed");
                self.signin = Signin::Wanted;
                self.emit(Event::new(None, event::SIGNIN_ERROR, auth_error_data(&e)));
                self.outputs.push_back(Output::Signin(Err(Error::Auth(e))));
            }
        }
    }

    fn on_authorized(
        &mut self,
        channel: &ChannelName,
        result: Result<ChannelAuthorization, AuthError>,
        now: Instant,
    ) {
        let user = self.signin.user().cloned();
        let now_ms = self.now_ms(now);
        let Some(st) = self.channels.get_mut(channel) else {
            return;
        };
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(channel = %channel, error = %e, "hush-client: authorization failed");
                return self.emit(Event::new(
                    Some(channel.as_str()),
                    event::SUBSCRIPTION_ERROR,
                    auth_error_data(&e),
                ));
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
                    return self.emit(Event::new(
                        Some(channel.as_str()),
                        event::SUBSCRIPTION_ERROR,
                        auth_error_data(&e),
                    ));
                }
            };
        }
        if let Some(k) = a.shared_secret.clone() {
            st.keys.install(a.epoch, k, now_ms);
        }
        self.transmits.push_back(wire::subscribe(
            channel.as_str(),
            &a.auth,
            a.channel_data.as_deref(),
        ));
    }

    fn on_refetched(
        &mut self,
        channel: &ChannelName,
        result: Result<ChannelAuthorization, AuthError>,
        now: Instant,
    ) {
        let now_ms = self.now_ms(now);
        let Some(st) = self.channels.get_mut(channel) else {
            return;
        };
        let pending = st.refetching.take().unwrap_or_default();
        let mut out = Vec::with_capacity(pending.len());
        match result {
            Ok(a) => {
                if let Some(k) = a.shared_secret {
                    st.keys.install(a.epoch, k, now_ms);
                }
                for p in pending {
                    out.push(
                        match decrypt(st, channel, &p.event, &p.data, p.user_id, now_ms) {
                            Ok(e) => e,
                            Err((err, _)) => failure_event(channel.as_str(), &p.event, err),
                        },
                    );
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
        for e in out {
            self.emit(e);
        }
    }
}
