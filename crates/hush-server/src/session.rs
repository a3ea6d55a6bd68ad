//! What one connection has done (subscriptions, sign-in, client-event budget)
//! and how each client message changes it. The socket loop lives in
//! [`crate::gateway`]; this module never touches the socket, spawns no task
//! and reads no clock: it is handed `now`, and what the connection must do
//! in answer comes out of [`Session::poll_effect`] (frames to send, key
//! directory requests to run, a close). Frames whose order matters relative
//! to registry state (subscription and sign-in confirmations, presence and
//! watchlist events) go through the channel and user registries, which
//! write them to the connection under their locks.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hush_protocol::auth::{self, AuthError};
use hush_protocol::msgs::Method;
use hush_protocol::presence::{self, PresenceMember};
use hush_protocol::wire::{
    self, ClientMessage, RequestFrame, SubscribeData, SubscriptionErrorType,
};
use hush_protocol::{ChannelKind, ChannelName, CloseCode, EventName, UserId, limits};
use serde_json::value::RawValue;

use crate::app::App;
use crate::conn::{ConnHandle, Frame};
use crate::ratelimit::TokenBucket;
use crate::telemetry::{AuthFailure, Rejection};
use crate::webhooks::{HookEvent, client_event_data};

/// The message Pusher sends when an app has client events turned off.
const CLIENT_EVENTS_DISABLED: &str =
    "To send client events, you must enable this feature in the Settings page of your dashboard.";

struct SignedIn {
    id: UserId,
    info: Option<Box<RawValue>>,
    watchlist: Vec<UserId>,
    /// The `user_data` signed in with, exactly as confirmed to the client.
    user_data: String,
}

/// What the connection must do after a message, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Effect {
    /// Send this frame to the client.
    Send(Frame),
    /// Answer this `hush:request` from the key directory.
    Directory(DirectoryRequest),
    /// Send `pusher:error` with this code and close.
    Close(CloseCode, &'static str),
}

/// A `hush:request` for the key directory, counted in flight (see
/// [`MAX_REQUESTS_IN_FLIGHT`]) until its answer is handed to the connection
/// with [`DirectoryRequest::release_then`], or it is dropped.
#[derive(Debug)]
pub struct DirectoryRequest {
    /// The request as the client sent it.
    pub request: RequestFrame,
    /// The user the connection is signed in as.
    pub user: Option<UserId>,
    /// The connection's device (the mailbox's methods).
    pub device: Arc<crate::mailbox::ConnDevice>,
    slot: InFlight,
}

impl DirectoryRequest {
    /// True unless the method writes to the store. Writes run to the end
    /// even if the client leaves: cancelled between the store's commit and
    /// the in-memory log's update, the node's view would lag the store until
    /// its next write.
    pub fn read_only(&self) -> bool {
        !Method::from_name(&self.request.method).is_some_and(Method::commits)
    }

    /// Frees the request's in-flight slot, then runs `send` (the answer):
    /// once the client can read the answer, the slot is already free, so a
    /// client that sends its next request on reading an answer never finds
    /// the limit still counting this one.
    pub fn release_then<R>(self, send: impl FnOnce() -> R) -> R {
        self.slot.release_then(send)
    }
}

/// `hush:request`s one connection may have in flight.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 8;

/// The state of one connection.
pub struct Session {
    app: Arc<App>,
    handle: ConnHandle,
    /// `hush:request`s being answered.
    in_flight: Arc<AtomicUsize>,
    /// What the connection must do, oldest first (a cell: the handlers
    /// queue replies while they read the app's configuration through
    /// `self`).
    effects: RefCell<VecDeque<Effect>>,
    /// Subscribed channels; for presence, the user id joined as.
    subs: HashMap<ChannelName, Option<String>>,
    user: Option<SignedIn>,
    client_events: TokenBucket,
    /// Subscribe frames this connection may still send (None: no cap).
    subscribes: Option<TokenBucket>,
    /// Key directory writes this connection may still make (None: no cap).
    directory_writes: Option<TokenBucket>,
    /// `mailbox.send`s per minute allowed on this connection (0: no cap).
    mailbox_send_rate: u32,
    /// Those still allowed, made on the first send (most connections never
    /// send one).
    mailbox_sends: Option<TokenBucket>,
    /// The connection's device, made on its first `hush:request` (most
    /// connections never send one).
    device: Option<Arc<crate::mailbox::ConnDevice>>,
    authorized: bool,
}

impl Session {
    /// A fresh session for `handle` on `app`.
    pub fn new(app: Arc<App>, handle: ConnHandle, now: Instant) -> Self {
        let rate = app.config.max_client_events_per_second;
        let subscribes = (app.config.max_subscriptions_per_second > 0).then(|| {
            TokenBucket::with_burst(
                app.config.max_subscriptions_per_second,
                app.config.max_channels_per_connection,
                now,
            )
        });
        Self {
            app,
            handle,
            in_flight: Arc::new(AtomicUsize::new(0)),
            effects: RefCell::default(),
            subs: HashMap::new(),
            user: None,
            client_events: TokenBucket::new(rate, now),
            subscribes,
            directory_writes: None,
            mailbox_send_rate: 0,
            mailbox_sends: None,
            device: None,
            authorized: false,
        }
    }

    /// Caps the connection's key directory writes (publish, revoke) at
    /// `per_minute` (bursts up to the same number); 0 = no cap. Writes
    /// beyond it are answered `rate_limited` without reaching the directory.
    pub fn limit_directory_writes(&mut self, per_minute: u32, now: Instant) {
        self.directory_writes = (per_minute > 0).then(|| TokenBucket::per_minute(per_minute, now));
    }

    /// Caps the connection's `mailbox.send`s at `per_minute` likewise.
    pub fn limit_mailbox_sends(&mut self, per_minute: u32) {
        self.mailbox_send_rate = per_minute;
        self.mailbox_sends = None;
    }

    /// The connection's device state, if it used the mailbox's methods.
    pub fn device(&self) -> Option<&Arc<crate::mailbox::ConnDevice>> {
        self.device.as_ref()
    }

    /// True once the connection signed in or joined a private/presence channel
    /// (what "authorized connections" asks for).
    pub fn is_authorized(&self) -> bool {
        self.authorized
    }

    /// The next thing the connection must do, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.get_mut().pop_front()
    }

    fn effect(&self, effect: Effect) {
        self.effects.borrow_mut().push_back(effect);
    }

    fn reply(&self, frame: String) {
        self.effect(Effect::Send(Frame::from(frame)));
    }

    fn close_with(&self, code: CloseCode, message: &'static str) {
        self.effect(Effect::Close(code, message));
    }

    /// Sends `pusher:error` with code `null`.
    pub fn send_error(&self, message: &str) {
        self.error(None, message);
    }

    fn error(&self, code: Option<CloseCode>, message: &str) {
        self.reply(wire::error(code.map(CloseCode::code), message));
    }

    /// Handles one text frame.
    pub fn handle_text(&mut self, text: &str, now: Instant) {
        self.handle_parsed(wire::parse_client_frame(text), now);
    }

    /// Handles one text frame already parsed (a frame that did not parse
    /// gets `pusher:error`).
    pub fn handle_parsed(
        &mut self,
        parsed: Result<ClientMessage, hush_protocol::wire::FrameError>,
        now: Instant,
    ) {
        match parsed {
            Err(e) => self.error(None, &e.to_string()),
            Ok(msg) => self.handle(msg, now),
        }
    }

    /// Handles one parsed message.
    pub fn handle(&mut self, msg: ClientMessage, now: Instant) {
        match msg {
            ClientMessage::Ping => self.reply(wire::PONG.to_owned()),
            ClientMessage::Pong | ClientMessage::UnknownPusher(_) => {}
            ClientMessage::Subscribe(d) => self.subscribe(d, now),
            ClientMessage::Unsubscribe { channel } => self.unsubscribe(&channel),
            ClientMessage::Signin { auth, user_data } => self.signin(&auth, &user_data),
            ClientMessage::ClientEvent {
                event,
                channel,
                data,
            } => self.client_event(
                &event,
                channel.as_deref(),
                data.map(hush_protocol::msgs::RawJson::into_inner),
                now,
            ),
            ClientMessage::HushRequest(request) => self.hush_request(request, now),
            ClientMessage::NotAllowed(event) => {
                let shown: String = event.chars().take(64).collect();
                self.error(
                    None,
                    &format!("Event '{shown}' not allowed: client events must start with client-"),
                );
            }
            // A message a newer codec knows and this server does not
            // handle: ignored, like an unknown pusher: event.
            _ => {}
        }
    }

    /// Hands a `hush:request` to the connection to answer from the key
    /// directory ([`Effect::Directory`]), at most [`MAX_REQUESTS_IN_FLIGHT`]
    /// at a time: a request is in flight from when it is read until its
    /// answer is handed to the connection, so the 8th concurrent one is
    /// answered and the 9th gets `rate_limited`. Writes beyond the
    /// connection's write rate ([`Session::limit_directory_writes`]) get
    /// `rate_limited` too.
    fn hush_request(&mut self, request: RequestFrame, now: Instant) {
        // Released once the request is answered, or dropped unanswered.
        let (slot, before) = InFlight::take(&self.in_flight);
        if before >= MAX_REQUESTS_IN_FLIGHT {
            return self.reply(wire::hush_response_err(
                &request.id,
                hush_protocol::msgs::ErrorCode::RateLimited.as_str(),
                &format!("at most {MAX_REQUESTS_IN_FLIGHT} requests in flight per connection"),
            ));
        }
        let writes = Method::from_name(&request.method).is_some_and(Method::writes);
        let refused = writes
            && self
                .directory_writes
                .as_mut()
                .is_some_and(|bucket| !bucket.try_take(now));
        if refused {
            return self.reply(wire::hush_response_err(
                &request.id,
                hush_protocol::msgs::ErrorCode::RateLimited.as_str(),
                "too many key directory writes on this connection; retry in a minute",
            ));
        }
        let sends = Method::from_name(&request.method) == Some(Method::MailboxSend);
        let rate = self.mailbox_send_rate;
        if sends
            && rate > 0
            && !self
                .mailbox_sends
                .get_or_insert_with(|| TokenBucket::per_minute(rate, now))
                .try_take(now)
        {
            return self.reply(wire::hush_response_err(
                &request.id,
                hush_protocol::msgs::ErrorCode::RateLimited.as_str(),
                "too many mailbox sends on this connection; retry in a minute",
            ));
        }
        let user = self.user.as_ref().map(|u| u.id.clone());
        let device = self.device.get_or_insert_with(Default::default).clone();
        self.effect(Effect::Directory(DirectoryRequest {
            request,
            user,
            device,
            slot,
        }));
    }

    fn sub_error(&self, channel: &str, kind: SubscriptionErrorType, msg: &str) {
        // The channel is echoed exactly (bounded by the frame size limit) so
        // pusher-js routes the error to that channel's bindings.
        self.reply(wire::subscription_error(channel, kind, msg));
    }

    fn subscribe(&mut self, d: SubscribeData, now: Instant) {
        let name = match self.app.parse_channel(&d.channel) {
            Ok(n) => n,
            Err(e) => {
                return self.sub_error(
                    &d.channel,
                    SubscriptionErrorType::InvalidChannel,
                    &e.to_string(),
                );
            }
        };
        let cfg = &self.app.config;
        if !self.subs.contains_key(&name) && self.subs.len() >= cfg.max_channels_per_connection {
            let msg = format!(
                "Maximum number of channels per connection ({}) reached",
                cfg.max_channels_per_connection
            );
            self.app.metrics.rejected(Rejection::ChannelsPerConnection);
            return self.sub_error(name.as_str(), SubscriptionErrorType::LimitReached, &msg);
        }
        // Every subscribe frame is charged, a repeated one too (it costs an
        // HMAC and, on a presence channel, the whole member list back), and
        // before the signature is checked.
        if self
            .subscribes
            .as_mut()
            .is_some_and(|bucket| !bucket.try_take(now))
        {
            let msg = format!(
                "Too many subscriptions on this connection: at most {} per second",
                cfg.max_subscriptions_per_second
            );
            self.app.metrics.rejected(Rejection::SubscribeRate);
            return self.sub_error(name.as_str(), SubscriptionErrorType::LimitReached, &msg);
        }
        let auth = d.auth.as_deref().unwrap_or("");
        let socket = &self.handle.socket_id;
        let member = match name.kind() {
            ChannelKind::Public => None,
            ChannelKind::Private | ChannelKind::Encrypted => {
                if let Err(e) =
                    auth::verify_channel(&cfg.key, cfg.secret.as_bytes(), auth, socket, &name, None)
                {
                    return self.auth_failed(&name, &e);
                }
                None
            }
            ChannelKind::Presence => {
                match self.presence_member(&name, auth, d.channel_data.as_deref()) {
                    Ok(m) => Some(m),
                    Err((kind, msg)) => {
                        if kind == SubscriptionErrorType::AuthError {
                            self.app.metrics.auth_failed(AuthFailure::Channel);
                        }
                        return self.sub_error(name.as_str(), kind, &msg);
                    }
                }
            }
            ChannelKind::ServerToUser => {
                let mine = self
                    .user
                    .as_ref()
                    .is_some_and(|u| Some(u.id.as_str()) == name.server_to_user_id());
                if !mine {
                    return self.sub_error(
                        name.as_str(),
                        SubscriptionErrorType::AuthError,
                        "Sign in as this user to subscribe to its #server-to-user- channel",
                    );
                }
                None
            }
        };
        // One identity per socket and channel: joining again as another user
        // would leave the member list on the first id while this socket's
        // client events carried the second.
        if let (Some(Some(joined)), Some(m)) = (self.subs.get(&name), &member) {
            if *joined != m.user_id {
                let shown: String = joined.chars().take(128).collect();
                return self.sub_error(
                    name.as_str(),
                    SubscriptionErrorType::AuthError,
                    &format!(
                        "Already subscribed to {name} as user {shown}: unsubscribe before joining as another user"
                    ),
                );
            }
        }
        let kind = name.kind();
        let user_id = member.as_ref().map(|m| m.user_id.clone());
        match self.app.subscribe(&name, &self.handle, member) {
            Ok(s) => {
                tracing::debug!(socket_id = %self.handle.socket_id, channel = %name, occupied = s.occupied, member_added = s.member_added, "subscribed");
                if kind.requires_auth() {
                    self.authorized = true;
                }
                self.subs.entry(name).or_insert(user_id);
            }
            Err(e) => {
                self.app.metrics.rejected(Rejection::PresenceMembers);
                self.sub_error(
                    name.as_str(),
                    SubscriptionErrorType::LimitReached,
                    &e.to_string(),
                );
            }
        }
    }

    fn auth_failed(&self, name: &ChannelName, e: &AuthError) {
        tracing::info!(socket_id = %self.handle.socket_id, channel = %name, error = %e, "subscription refused");
        self.app.metrics.auth_failed(AuthFailure::Channel);
        self.sub_error(
            name.as_str(),
            SubscriptionErrorType::AuthError,
            &e.to_string(),
        );
    }

    /// Verifies a presence subscription and works out who joins.
    fn presence_member(
        &self,
        name: &ChannelName,
        auth: &str,
        channel_data: Option<&str>,
    ) -> Result<PresenceMember, (SubscriptionErrorType, String)> {
        let cfg = &self.app.config;
        let socket = &self.handle.socket_id;
        let auth_err = |e: AuthError| (SubscriptionErrorType::AuthError, e.to_string());
        match channel_data {
            Some(data) => {
                auth::verify_channel(
                    &cfg.key,
                    cfg.secret.as_bytes(),
                    auth,
                    socket,
                    name,
                    Some(data),
                )
                .map_err(auth_err)?;
                presence::parse_channel_data(data, cfg.max_presence_user_info_bytes).map_err(|e| {
                    match e {
                        presence::MemberDataError::InfoTooLarge { .. } => {
                            (SubscriptionErrorType::LimitReached, e.to_string())
                        }
                        _ => (SubscriptionErrorType::AuthError, e.to_string()),
                    }
                })
            }
            None => {
                let Some(user) = &self.user else {
                    return Err((
                        SubscriptionErrorType::AuthError,
                        "Presence channels need channel_data, or a signed-in connection".into(),
                    ));
                };
                auth::verify_channel(&cfg.key, cfg.secret.as_bytes(), auth, socket, name, None)
                    .map_err(auth_err)?;
                Ok(PresenceMember {
                    user_id: user.id.to_string(),
                    user_info: user.info.clone(),
                })
            }
        }
    }

    fn unsubscribe(&mut self, channel: &str) {
        let Ok(name) = self.app.parse_channel(channel) else {
            return;
        };
        if self.subs.remove(&name).is_some() {
            self.app.unsubscribe(&name, self.handle.id);
        }
    }

    fn signin(&mut self, auth_value: &str, user_data: &str) {
        let cfg = &self.app.config;
        let refuse = |this: &Self, msg: String| {
            tracing::info!(socket_id = %this.handle.socket_id, error = %msg, "sign-in refused");
            this.app.metrics.auth_failed(AuthFailure::Signin);
            if this.app.config.user_authentication {
                this.close_with(
                    CloseCode::Unauthorized,
                    "Connection not authorized: invalid sign-in",
                );
            } else {
                this.error(None, &msg);
            }
        };
        if let Err(e) = auth::verify_user(
            &cfg.key,
            cfg.secret.as_bytes(),
            auth_value,
            &self.handle.socket_id,
            user_data,
        ) {
            return refuse(self, e.to_string());
        }
        let parsed = match presence::parse_user_data(user_data, cfg.max_presence_user_info_bytes) {
            Ok(u) => u,
            Err(e) => return refuse(self, e.to_string()),
        };
        if let Some(current) = &self.user {
            if current.id != parsed.id {
                return refuse(
                    self,
                    "This connection is already signed in as another user".into(),
                );
            }
            // The same sign-in again: confirm, change nothing. Other
            // `user_data` for the same user would be confirmed to the client
            // while the server kept the first (presence joins without
            // channel_data, the watchlist): refused instead, the sign-in in
            // force stays as it was.
            if current.user_data != user_data {
                self.error(
                    None,
                    "Already signed in as this user with other user_data: reconnect to sign in with new user_info or watchlist",
                );
                return;
            }
            return self.reply(wire::signin_success(user_data));
        }
        let mut watchlist: Vec<UserId> = Vec::new();
        for w in &parsed.watchlist {
            if let Ok(id) = UserId::parse(w) {
                if !watchlist.contains(&id) {
                    watchlist.push(id);
                }
            }
        }
        let over = watchlist.len() > limits::MAX_WATCHLIST;
        watchlist.truncate(limits::MAX_WATCHLIST);
        // Confirmed while the user index is locked: the client sees
        // `signin_success` only once it is findable, and its first
        // `watchlist_events` before any change another sign-in announces.
        let handle = &self.handle;
        let watching = !watchlist.is_empty();
        self.app
            .sign_in_then(&parsed.id, handle, &watchlist, |state| {
                handle.send(&Frame::from(wire::signin_success(user_data)));
                if over {
                    handle.send(&Frame::from(wire::error(
                        Some(CloseCode::WatchlistLimit.code()),
                        "Watchlist limit exceeded: only the first 100 user ids are watched",
                    )));
                }
                if watching {
                    let on: Vec<&str> = state.online.iter().map(UserId::as_str).collect();
                    let off: Vec<&str> = state.offline.iter().map(UserId::as_str).collect();
                    handle.send(&Frame::from(wire::watchlist_events(&on, &off)));
                }
            });
        self.authorized = true;
        self.user = Some(SignedIn {
            id: parsed.id,
            info: parsed.user_info,
            watchlist,
            user_data: user_data.to_owned(),
        });
    }

    fn client_event(
        &mut self,
        event: &str,
        channel: Option<&str>,
        data: Option<Box<RawValue>>,
        now: Instant,
    ) {
        let cfg = &self.app.config;
        if !cfg.client_events {
            return self.error(None, CLIENT_EVENTS_DISABLED);
        }
        if let Err(e) = EventName::parse_client(event) {
            return self.error(None, &e.to_string());
        }
        let Some(channel) = channel else {
            return self.error(None, "Client events need a channel");
        };
        let name = match self.app.parse_channel(channel) {
            Ok(n) => n,
            Err(e) => return self.error(None, &e.to_string()),
        };
        let encrypted = name.kind() == ChannelKind::Encrypted;
        if !(name.kind().allows_client_events() || encrypted && cfg.encrypted_client_events) {
            return self.error(
                None,
                &format!(
                    "Client events are only allowed on private and presence channels, not on {name}"
                ),
            );
        }
        let Some(presence_user) = self.subs.get(&name) else {
            return self.error(
                None,
                &format!("Client event rejected: not subscribed to {name}"),
            );
        };
        let size = data.as_deref().map_or(0, |d| d.get().len());
        if size > cfg.max_event_data_bytes {
            self.app.metrics.rejected(Rejection::EventSize);
            return self.error(
                None,
                &format!(
                    "Client event rejected: data is larger than {} bytes",
                    cfg.max_event_data_bytes
                ),
            );
        }
        // The server cannot read encrypted client events and must not relay
        // plaintext as if it were sealed: only a string holding an envelope.
        if encrypted && !data.as_deref().is_some_and(is_envelope_string) {
            return self.error(
                None,
                "Client events on private-encrypted- channels must carry data that is a string holding {\"nonce\",\"ciphertext\"}",
            );
        }
        if !self.client_events.try_take(now) {
            self.app.metrics.rejected(Rejection::ClientEventRate);
            return self.error(
                Some(CloseCode::ClientEventRateLimit),
                CloseCode::ClientEventRateLimit.message(),
            );
        }
        let frame: Frame = wire::client_event(
            event,
            name.as_str(),
            data.as_deref(),
            presence_user.as_deref(),
        )
        .into();
        let socket_id = &self.handle.socket_id;
        self.app
            .client_event(&name, &frame, socket_id, || HookEvent::ClientEvent {
                channel: name.clone(),
                event: event.to_owned(),
                data: client_event_data(data.as_deref()),
                socket_id: socket_id.clone(),
                user_id: presence_user.clone(),
            });
    }

    /// Leaves every channel and signs out; called once when the socket ends.
    pub fn close(&mut self) {
        self.effects.get_mut().clear();
        for (name, _) in self.subs.drain() {
            self.app.unsubscribe(&name, self.handle.id);
        }
        if let Some(user) = self.user.take() {
            self.app.sign_out(&user.id, self.handle.id, &user.watchlist);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

/// True if `data` is a JSON string whose text is a suite 0 envelope.
fn is_envelope_string(data: &RawValue) -> bool {
    serde_json::from_str::<std::borrow::Cow<'_, str>>(data.get())
        .is_ok_and(|text| hush_protocol::encrypted::is_ciphertext_envelope(&text))
}

/// One `hush:request` counted in flight until dropped.
#[derive(Debug)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts one more; also returns how many were in flight before.
    fn take(count: &Arc<AtomicUsize>) -> (Self, usize) {
        let before = count.fetch_add(1, Ordering::AcqRel);
        (Self(count.clone()), before)
    }

    /// Frees the slot, then runs `send` (the answer): once the client can
    /// read the answer, the slot is already free.
    fn release_then<R>(self, send: impl FnOnce() -> R) -> R {
        drop(self);
        send()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_free_before_its_answer_is_sent() {
        let count = Arc::new(AtomicUsize::new(0));
        let mut slots: Vec<InFlight> = (0..MAX_REQUESTS_IN_FLIGHT)
            .map(|i| {
                let (slot, before) = InFlight::take(&count);
                assert_eq!(before, i);
                slot
            })
            .collect();
        let Some(answered) = slots.pop() else {
            unreachable!("MAX_REQUESTS_IN_FLIGHT > 0");
        };
        // What the client's next request would find while the answer is sent.
        let seen_while_sending = answered.release_then(|| count.load(Ordering::Acquire));
        assert_eq!(seen_while_sending, MAX_REQUESTS_IN_FLIGHT - 1);
        let (next, before) = InFlight::take(&count);
        assert!(
            before < MAX_REQUESTS_IN_FLIGHT,
            "the next request is accepted"
        );
        drop(slots);
        drop(next);
        assert_eq!(count.load(Ordering::Acquire), 0);
    }

    fn session(extra: &str) -> (Session, Arc<crate::conn::Link>) {
        let config = crate::Config::from_toml(&hush_testkit::app_toml(extra)).unwrap();
        let cfg = config
            .effective_apps()
            .into_iter()
            .find(|a| a.id == hush_testkit::ID)
            .unwrap();
        let app = Arc::new(App::with_hooks(cfg, None));
        let (handle, link) = ConnHandle::new(hush_protocol::SocketId::from_parts(1, 1), 64, None);
        (Session::new(app, handle, Instant::now()), link)
    }

    fn request(id: &str) -> String {
        serde_json::json!({"event":"hush:request","data":{"id":id,"method":"directory.lookup","params":{"users":[]}}})
            .to_string()
    }

    #[test]
    fn requests_are_effects_and_the_ninth_in_flight_is_refused() {
        let (mut s, link) = session("");
        let now = Instant::now();
        for i in 0..=MAX_REQUESTS_IN_FLIGHT {
            s.handle_text(&request(&format!("r{i}")), now);
        }
        let mut effects: Vec<Effect> = std::iter::from_fn(|| s.poll_effect()).collect();
        let Some(Effect::Send(refused)) = effects.pop() else {
            panic!("the last request is answered at once: {effects:?}");
        };
        assert!(refused.payload().contains("rate_limited"), "{refused:?}");
        assert!(refused.payload().contains("r8"), "{refused:?}");
        assert_eq!(effects.len(), MAX_REQUESTS_IN_FLIGHT);
        let mut requests: Vec<DirectoryRequest> = effects
            .into_iter()
            .map(|e| match e {
                Effect::Directory(r) => r,
                other => panic!("expected a directory request, got {other:?}"),
            })
            .collect();
        assert!(requests.iter().all(DirectoryRequest::read_only));
        // The session sent nothing itself: the connection runs the effects.
        assert_eq!(link.outbox().queued(), 0);
        // An answered request frees its slot.
        let answered = requests.remove(0);
        assert_eq!(answered.request.id, "r0");
        answered.release_then(|| ());
        s.handle_text(&request("again"), now);
        assert!(matches!(s.poll_effect(), Some(Effect::Directory(_))));
        assert!(s.poll_effect().is_none());
    }

    /// A hostile client subscribing and unsubscribing in a loop changes
    /// shared state (on a cluster: a bus message to every node) at most at
    /// the connection's subscription rate, after a burst of its channel
    /// allowance; a client that just subscribes to its channels once is
    /// not affected.
    #[test]
    fn attack_subscribe_churn_is_bounded_per_connection() {
        let (mut s, _link) =
            session("max_channels_per_connection = 50\nmax_subscriptions_per_second = 10");
        let frame = |event: &str| {
            serde_json::json!({"event": event, "data": {"channel": "churn"}}).to_string()
        };
        let churn = |s: &mut Session, now: Instant, rounds: usize| {
            let mut joined = 0;
            for _ in 0..rounds {
                s.handle_text(&frame("pusher:subscribe"), now);
                let name = s.app.parse_channel("churn").unwrap();
                if s.subs.contains_key(&name) {
                    joined += 1;
                }
                s.handle_text(&frame("pusher:unsubscribe"), now);
            }
            joined
        };
        let now = Instant::now();
        assert_eq!(churn(&mut s, now, 1000), 50, "the burst, then refused");
        assert_eq!(
            churn(&mut s, now + std::time::Duration::from_secs(1), 1000),
            10,
            "then the rate"
        );
        // Subscribing again to a channel it has is charged too.
        let (mut s, _link) =
            session("max_channels_per_connection = 5\nmax_subscriptions_per_second = 1");
        for _ in 0..100 {
            s.handle_text(&frame("pusher:subscribe"), now);
        }
        let refused = std::iter::from_fn(|| s.poll_effect())
            .filter(
                |e| matches!(e, Effect::Send(f) if f.payload().contains("Too many subscriptions")),
            )
            .count();
        assert_eq!(refused, 95, "the burst of 5, then refused");
        assert_eq!(s.subs.len(), 1);
        // 0: no cap.
        let (mut s, _link) = session("max_subscriptions_per_second = 0");
        assert_eq!(churn(&mut s, now, 3000), 3000);
    }

    #[test]
    fn a_refused_signin_is_a_close_when_authentication_is_required() {
        let (mut s, _link) = session("user_authentication = true");
        let bad = serde_json::json!({"event":"pusher:signin","data":{"auth": format!("{}:{}", hush_testkit::KEY, "0".repeat(64)), "user_data": "{\"id\":\"1\"}"}});
        s.handle_text(&bad.to_string(), Instant::now());
        assert!(matches!(
            s.poll_effect(),
            Some(Effect::Close(CloseCode::Unauthorized, _))
        ));
        let (mut s, _link) = session("");
        s.handle_text(&bad.to_string(), Instant::now());
        match s.poll_effect() {
            Some(Effect::Send(f)) => assert!(f.payload().contains("pusher:error"), "{f:?}"),
            other => panic!("expected an error frame, got {other:?}"),
        }
    }
}
