//! What one connection has done (subscriptions, sign-in, client-event budget)
//! and how each client message changes it. The socket loop lives in
//! [`crate::gateway`]; this module never touches the socket.

use std::collections::HashMap;
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
use crate::channels::SubscribeOptions;
use crate::config::WebhookEventType;
use crate::conn::{ConnHandle, Frame};
use crate::directory::{DirError, Directory};
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

/// What the socket loop must do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Keep going.
    Continue,
    /// Send `pusher:error` with this code and close.
    Close(CloseCode, &'static str),
}

/// `hush:request`s one connection may have in flight.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 8;

/// The state of one connection.
pub struct Session {
    app: Arc<App>,
    handle: ConnHandle,
    directory: Arc<Directory>,
    /// `hush:request`s being answered.
    in_flight: Arc<AtomicUsize>,
    /// Their tasks, aborted when the connection closes (nobody would read
    /// the answers).
    requests: Vec<tokio::task::AbortHandle>,
    /// Subscribed channels; for presence, the user id joined as.
    subs: HashMap<ChannelName, Option<String>>,
    user: Option<SignedIn>,
    client_events: TokenBucket,
    authorized: bool,
}

impl Session {
    /// A fresh session for `handle` on `app`.
    pub fn new(app: Arc<App>, handle: ConnHandle, directory: Arc<Directory>, now: Instant) -> Self {
        let rate = app.config.max_client_events_per_second;
        Self {
            app,
            handle,
            directory,
            in_flight: Arc::new(AtomicUsize::new(0)),
            requests: Vec::new(),
            subs: HashMap::new(),
            user: None,
            client_events: TokenBucket::new(rate, now),
            authorized: false,
        }
    }

    /// True once the connection signed in or joined a private/presence channel
    /// (what "authorized connections" asks for).
    pub fn is_authorized(&self) -> bool {
        self.authorized
    }

    fn reply(&self, frame: String) {
        self.handle.send(&Frame::from(frame));
    }

    /// Sends `pusher:error` with code `null`.
    pub fn send_error(&self, message: &str) {
        self.error(None, message);
    }

    fn error(&self, code: Option<CloseCode>, message: &str) {
        self.reply(wire::error(code.map(CloseCode::code), message));
    }

    /// Handles one text frame.
    pub fn handle_text(&mut self, text: &str, now: Instant) -> Outcome {
        match wire::parse_client_frame(text) {
            Err(e) => {
                self.error(None, &e.to_string());
                Outcome::Continue
            }
            Ok(msg) => self.handle(msg, now),
        }
    }

    /// Handles one parsed message.
    pub fn handle(&mut self, msg: ClientMessage, now: Instant) -> Outcome {
        match msg {
            ClientMessage::Ping => self.reply(wire::PONG.to_owned()),
            ClientMessage::Pong | ClientMessage::UnknownPusher(_) => {}
            ClientMessage::Subscribe(d) => self.subscribe(d),
            ClientMessage::Unsubscribe { channel } => self.unsubscribe(&channel),
            ClientMessage::Signin { auth, user_data } => return self.signin(&auth, &user_data),
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
            ClientMessage::HushRequest(request) => self.hush_request(request),
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
        Outcome::Continue
    }

    /// Answers a `hush:request` on a task of its own (the directory reads
    /// and writes the store), at most [`MAX_REQUESTS_IN_FLIGHT`] at a time: a
    /// request is in flight from when it is read until its answer is handed
    /// to the connection, so the 8th concurrent one is answered and the 9th
    /// gets `rate_limited`.
    fn hush_request(&mut self, request: RequestFrame) {
        // Released when the task ends, however it ends.
        let (slot, before) = InFlight::take(&self.in_flight);
        if before >= MAX_REQUESTS_IN_FLIGHT {
            return self.reply(wire::hush_response_err(
                &request.id,
                hush_protocol::msgs::ErrorCode::RateLimited.as_str(),
                &format!("at most {MAX_REQUESTS_IN_FLIGHT} requests in flight per connection"),
            ));
        }
        let directory = self.directory.clone();
        let handle = self.handle.clone();
        let app_id = self.app.config.id.clone();
        let user = self.user.as_ref().map(|u| u.id.clone());
        // Writes run to the end even if the client leaves: cancelled between
        // the store's commit and the in-memory log's update, the node's view
        // would lag the store until its next write.
        let read_only = !Method::from_name(&request.method).is_some_and(Method::writes);
        self.requests.retain(|t| !t.is_finished());
        let task = tokio::spawn(async move {
            let result = directory.handle(&app_id, user.as_ref(), &request).await;
            let frame = match result {
                Ok(value) => wire::hush_response_ok(&request.id, &value.encode()),
                Err(e) => {
                    if let DirError::Unavailable(source) = &e {
                        tracing::warn!(app = %app_id, error = %source, "key directory request failed");
                    }
                    wire::hush_response_err(&request.id, e.code().as_str(), &e.to_string())
                }
            };
            // The slot is free before the answer can reach the client: a
            // client that sends its next request on reading an answer never
            // finds 8 still counted.
            slot.release_then(|| handle.send(&Frame::from(frame)));
        });
        if read_only {
            self.requests.push(task.abort_handle());
        }
    }

    fn sub_error(&self, channel: &str, kind: SubscriptionErrorType, msg: &str) {
        // The channel is echoed exactly (bounded by the frame size limit) so
        // pusher-js routes the error to that channel's bindings.
        self.reply(wire::subscription_error(channel, kind, msg));
    }

    fn subscribe(&mut self, d: SubscribeData) {
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
        let opts = SubscribeOptions {
            max_members: cfg.max_presence_members,
            subscription_count: cfg.subscription_count,
        };
        match self
            .app
            .channels
            .subscribe(&name, &self.handle, member, opts)
        {
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
            self.app.channels.unsubscribe(
                &name,
                self.handle.id,
                self.app.config.subscription_count,
            );
        }
    }

    fn signin(&mut self, auth_value: &str, user_data: &str) -> Outcome {
        let cfg = &self.app.config;
        let refuse = |this: &Self, msg: String| {
            tracing::info!(socket_id = %this.handle.socket_id, error = %msg, "sign-in refused");
            this.app.metrics.auth_failed(AuthFailure::Signin);
            if this.app.config.user_authentication {
                Outcome::Close(
                    CloseCode::Unauthorized,
                    "Connection not authorized: invalid sign-in",
                )
            } else {
                this.error(None, &msg);
                Outcome::Continue
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
                return Outcome::Continue;
            }
            self.reply(wire::signin_success(user_data));
            return Outcome::Continue;
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
            .users
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
        Outcome::Continue
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
        let n = self
            .app
            .channels
            .publish(&name, &frame, Some(&self.handle.socket_id), None);
        self.app.metrics.delivered(n, frame.payload_len());
        if let Some(h) = &self.app.hooks {
            if h.wants(WebhookEventType::ClientEvent) {
                h.emit(HookEvent::ClientEvent {
                    channel: name,
                    event: event.to_owned(),
                    data: client_event_data(data.as_deref()),
                    socket_id: self.handle.socket_id.clone(),
                    user_id: presence_user.clone(),
                });
            }
        }
    }

    /// Leaves every channel and signs out; called once when the socket ends.
    pub fn close(&mut self) {
        for task in self.requests.drain(..) {
            task.abort();
        }
        let count = self.app.config.subscription_count;
        for (name, _) in self.subs.drain() {
            self.app.channels.unsubscribe(&name, self.handle.id, count);
        }
        if let Some(user) = self.user.take() {
            self.app
                .users
                .sign_out(&user.id, self.handle.id, &user.watchlist);
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
}
