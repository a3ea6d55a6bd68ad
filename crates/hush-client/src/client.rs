//! The application's handles: [`Client`] (cheap to clone) and [`Channel`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hush_protocol::msgs::{HushRequest, HushResponse, RawJson};
use hush_protocol::{ChannelName, EventName, SocketId, UserId};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{ClientBuilder, Config};
use crate::connection::{Command, Task};
use crate::error::Error;
use crate::event::Event;
use crate::listeners::{EventStream, Filter, Listeners};
use crate::request::{self, DirectoryError, MAX_IN_FLIGHT};

/// Largest client event `data` (serialized JSON), as the server enforces.
pub const MAX_CLIENT_EVENT_BYTES: usize = 10 * 1024;

/// The connection's state, as pusher-js names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Built, not yet connecting.
    Initialized,
    /// Opening the WebSocket and waiting for `pusher:connection_established`.
    Connecting,
    /// Connected; channels are (re)subscribed.
    Connected {
        /// This connection's socket id.
        socket_id: SocketId,
    },
    /// The connection was lost; waiting before the next attempt.
    Unavailable,
    /// Stopped by [`Client::disconnect`] (or every handle dropped).
    Disconnected,
    /// Stopped for good: the server refused the connection (close codes
    /// 4000–4099, e.g. 4001 unknown app key).
    Failed {
        /// The close code.
        code: Option<u16>,
        /// The server's reason.
        reason: String,
    },
}

/// A presence channel member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    /// The user id.
    pub id: String,
    /// The `user_info` (`null` when none).
    pub info: Value,
}

/// A presence channel's members, as last reported by the server.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Members {
    /// This client's own member, from its authorization.
    pub me: Option<Member>,
    /// Every member: user id → `user_info`.
    pub members: BTreeMap<String, Value>,
}

impl Members {
    /// Number of distinct users.
    pub fn count(&self) -> usize {
        self.members.len()
    }

    /// A member by id.
    pub fn get(&self, id: &str) -> Option<Member> {
        self.members.get(id).map(|info| Member {
            id: id.to_owned(),
            info: info.clone(),
        })
    }
}

/// State of one channel shared between the handles and the connection task.
#[derive(Debug)]
pub(crate) struct ChannelShared {
    pub name: ChannelName,
    pub subscribed: AtomicBool,
    pub members: Mutex<Option<Members>>,
}

impl ChannelShared {
    pub(crate) fn set_members(&self, m: Option<Members>) {
        *self.members.lock().unwrap_or_else(PoisonError::into_inner) = m;
    }

    pub(crate) fn update_members(&self, f: impl FnOnce(&mut Members)) {
        if let Some(m) = self
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            f(m);
        }
    }
}

struct Inner {
    cmd: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    listeners: Arc<Listeners>,
    channels: Mutex<HashMap<ChannelName, Arc<ChannelShared>>>,
    sealed_sender_id: String,
    /// The app key the client connects with.
    app_key: String,
    /// Bounds the `hush:request`s in flight.
    in_flight: Arc<tokio::sync::Semaphore>,
    next_request: std::sync::atomic::AtomicU64,
    request_timeout: std::time::Duration,
}

/// A connection to a hush (or Pusher) server. Cloning is cheap: every clone
/// drives the same connection task, which stops when the last clone (and
/// every [`Channel`]) is dropped, or on [`Client::disconnect`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder for a client of the app with this (public) key.
    pub fn builder(app_key: &str) -> ClientBuilder {
        ClientBuilder::new(app_key)
    }

    pub(crate) fn start(config: Config, handle: &tokio::runtime::Handle) -> Self {
        let listeners = Arc::new(Listeners::new(config.event_buffer));
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Initialized);
        let sealer = hush_crypto::sealed::Sender::new();
        let sealed_sender_id = sealer.id().to_owned();
        let request_timeout = config.request_timeout;
        let app_key = config.app_key.clone();
        let task = Task::new(
            Arc::new(config),
            listeners.clone(),
            state_tx,
            cmd_rx,
            sealer,
        );
        handle.spawn(task.run());
        Self {
            inner: Arc::new(Inner {
                cmd: cmd_tx,
                state: state_rx,
                listeners,
                channels: Mutex::new(HashMap::new()),
                sealed_sender_id,
                app_key,
                in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
                next_request: std::sync::atomic::AtomicU64::new(1),
                request_timeout,
            }),
        }
    }

    /// The app key this client connects with.
    pub fn app_key(&self) -> &str {
        &self.inner.app_key
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.inner.state.borrow().clone()
    }

    /// A receiver of state changes (`changed().await`, then `borrow()`).
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.clone()
    }

    /// The socket id while connected.
    pub fn socket_id(&self) -> Option<SocketId> {
        match &*self.inner.state.borrow() {
            ConnectionState::Connected { socket_id } => Some(socket_id.clone()),
            _ => None,
        }
    }

    /// Waits until connected; fails if the client failed or was disconnected.
    pub async fn connected(&self) -> Result<SocketId, Error> {
        let mut rx = self.inner.state.clone();
        loop {
            match &*rx.borrow_and_update() {
                ConnectionState::Connected { socket_id } => return Ok(socket_id.clone()),
                ConnectionState::Failed { code, reason } => {
                    return Err(Error::Failed(match code {
                        Some(c) => format!("{reason} ({c})"),
                        None => reason.clone(),
                    }));
                }
                ConnectionState::Disconnected => return Err(Error::Closed),
                _ => {}
            }
            rx.changed().await.map_err(|_| Error::Closed)?;
        }
    }

    async fn command(&self, c: Command) -> Result<(), Error> {
        self.inner.cmd.send(c).await.map_err(|_| Error::Closed)
    }

    /// Subscribes to `name` (authorizing it when it is private, presence or
    /// encrypted; again after every reconnect). The returned [`Channel`]
    /// already receives every event of the channel, including
    /// [`SUBSCRIPTION_SUCCEEDED`](crate::event::SUBSCRIPTION_SUCCEEDED) or
    /// [`SUBSCRIPTION_ERROR`](crate::event::SUBSCRIPTION_ERROR).
    pub async fn subscribe(&self, name: &str) -> Result<Channel, Error> {
        let name = ChannelName::parse(name)?;
        if name.server_to_user_id().is_some() {
            return Err(Error::ChannelName(
                hush_protocol::ChannelNameError::Reserved,
            ));
        }
        let events = self.inner.listeners.add(Filter::Channel(name.to_string()));
        let shared = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(ChannelShared {
                    name: name.clone(),
                    subscribed: AtomicBool::new(false),
                    members: Mutex::new(None),
                })
            })
            .clone();
        self.command(Command::Subscribe(shared.clone())).await?;
        Ok(Channel {
            shared,
            client: self.clone(),
            events,
        })
    }

    /// Unsubscribes from `name`.
    pub async fn unsubscribe(&self, name: &str) -> Result<(), Error> {
        let name = ChannelName::parse(name)?;
        self.inner
            .channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&name);
        self.command(Command::Unsubscribe(name)).await
    }

    /// Every event (all channels, and connection-level events such as
    /// `pusher:error`).
    pub fn bind_all(&self) -> EventStream {
        self.inner.listeners.add(Filter::All)
    }

    /// Every event with this name, on any channel.
    pub fn bind(&self, event: &str) -> EventStream {
        self.inner.listeners.add(Filter::Event(event.to_owned()))
    }

    /// Events sent to the signed-in user (`#server-to-user-{id}`).
    pub fn user_events(&self) -> EventStream {
        self.inner.listeners.add(Filter::User)
    }

    /// Signs in through the authorizer's user authentication (again after
    /// every reconnect) and returns the user id once the server accepted it.
    /// Events sent to the user then arrive on [`Client::user_events`].
    pub async fn signin(&self) -> Result<UserId, Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Signin(tx)).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Closes the connection and stops reconnecting.
    pub async fn disconnect(&self) {
        let _ = self.command(Command::Disconnect).await;
        let mut rx = self.inner.state.clone();
        let _ = rx
            .wait_for(|s| {
                matches!(
                    s,
                    ConnectionState::Disconnected | ConnectionState::Failed { .. }
                )
            })
            .await;
    }

    /// Sends a `hush:request` (docs/PROTOCOL-EXT.md §1) and waits for its
    /// `hush:response`: the `result` object, or a typed error — the server's
    /// error code, [`DirectoryError::Timeout`] after the request timeout
    /// ([`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout)),
    /// [`DirectoryError::ConnectionLost`] when the connection drops first,
    /// [`DirectoryError::NotConnected`] while offline. At most
    /// [`MAX_IN_FLIGHT`](crate::MAX_IN_FLIGHT) requests are in flight; more
    /// wait their turn (the wait counts toward the timeout). Directory
    /// methods need [`Client::signin`] first.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, DirectoryError> {
        let params = RawJson::from_string(params.to_string())
            .map_err(|e| DirectoryError::BadResponse(format!("params: {e}")))?;
        self.send_request(method, params).await
    }

    /// [`Client::request`] with typed parameters and result (hush-protocol's
    /// codec): the answer is read as the result of `request`'s method, and
    /// one that does not have that shape is [`DirectoryError::BadResponse`].
    pub async fn call(&self, request: &HushRequest) -> Result<HushResponse, DirectoryError> {
        let method = request.method();
        let value = self.send_request(method.name(), request.params()).await?;
        HushResponse::decode(method, &value.to_string())
            .map_err(|e| DirectoryError::BadResponse(format!("{}: {e}", method.name())))
    }

    async fn send_request(&self, method: &str, params: RawJson) -> Result<Value, DirectoryError> {
        let inner = &self.inner;
        let work = async {
            let _permit = inner
                .in_flight
                .acquire()
                .await
                .map_err(|_| DirectoryError::Closed)?;
            let n = inner.next_request.fetch_add(1, Ordering::Relaxed);
            let id = format!("hc{n}");
            let frame = request::frame(&id, method, params);
            let (tx, rx) = oneshot::channel();
            inner
                .cmd
                .send(Command::Request {
                    id,
                    frame,
                    reply: tx,
                })
                .await
                .map_err(|_| DirectoryError::Closed)?;
            rx.await.map_err(|_| DirectoryError::Closed)?
        };
        tokio::time::timeout(inner.request_timeout, work)
            .await
            .unwrap_or(Err(DirectoryError::Timeout))
    }

    /// The request timeout ([`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout)).
    pub fn request_timeout(&self) -> std::time::Duration {
        self.inner.request_timeout
    }

    /// This client's sealed-event sender id (what other receivers see in
    /// [`SealedInfo::sender`](crate::SealedInfo) for its
    /// [`Channel::trigger_sealed`] events).
    pub fn sealed_sender_id(&self) -> &str {
        &self.inner.sealed_sender_id
    }

    /// Events dropped because an [`EventStream`] was full, over all streams.
    pub fn dropped_events(&self) -> u64 {
        self.inner.listeners.dropped_total()
    }

    pub(crate) async fn send_client_event(
        &self,
        channel: &ChannelName,
        event: String,
        data: String,
    ) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::ClientEvent {
            channel: channel.clone(),
            event,
            data,
            reply: tx,
        })
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }
}

/// A subscribed channel. It receives every event of the channel through its
/// own bounded stream ([`Channel::recv`]); [`Channel::bind`] makes more
/// streams, filtered by event name.
///
/// Dropping a `Channel` does not unsubscribe (the client keeps the
/// subscription, and resubscribes it after reconnects, like pusher-js); call
/// [`Channel::unsubscribe`] or [`Client::unsubscribe`].
#[derive(Debug)]
pub struct Channel {
    shared: Arc<ChannelShared>,
    client: Client,
    events: EventStream,
}

impl Channel {
    /// The channel name.
    pub fn name(&self) -> &str {
        self.shared.name.as_str()
    }

    /// The next event of this channel; `None` once the client is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// This channel's own event stream.
    pub fn events(&mut self) -> &mut EventStream {
        &mut self.events
    }

    /// A new stream of this event name on this channel.
    pub fn bind(&self, event: &str) -> EventStream {
        self.client.inner.listeners.add(Filter::ChannelEvent(
            self.shared.name.to_string(),
            event.to_owned(),
        ))
    }

    /// True once the server confirmed the subscription on the current connection.
    pub fn is_subscribed(&self) -> bool {
        self.shared.subscribed.load(Ordering::Acquire)
    }

    /// Presence channels: the members, once subscribed.
    pub fn members(&self) -> Option<Members> {
        self.shared
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends a client event (`client-…`) to the channel's other subscribers.
    /// Private and presence channels only; the channel must be subscribed.
    pub async fn trigger<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), Error> {
        let name = &self.shared.name;
        EventName::parse_client(event).map_err(|_| Error::EventName(event.to_owned()))?;
        if !name.kind().allows_client_events() {
            return Err(Error::ClientEventsNotAllowed(name.to_string()));
        }
        let data = serde_json::to_string(data).map_err(|e| Error::Data(e.to_string()))?;
        if data.len() > MAX_CLIENT_EVENT_BYTES {
            return Err(Error::Data(format!(
                "{} bytes, more than {MAX_CLIENT_EVENT_BYTES}",
                data.len()
            )));
        }
        self.client
            .send_client_event(name, event.to_owned(), data)
            .await
    }

    /// Sends a **sealed** client event (hush extension, `E2EE-CHANNELS.md`
    /// §2) on a `private-encrypted-` channel: `event` and the JSON of `data`
    /// travel inside the ciphertext, with this client's sender id and the next
    /// sequence number, as `client-hush-sealed`. The app must enable
    /// `encrypted_client_events` on the server. Receivers get it under `event`.
    pub async fn trigger_sealed<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<(), Error> {
        let name = &self.shared.name;
        EventName::parse_api(event).map_err(|_| Error::EventName(event.to_owned()))?;
        if name.kind() != hush_protocol::ChannelKind::Encrypted {
            return Err(Error::ClientEventsNotAllowed(format!(
                "{name} (sealed events need a private-encrypted- channel)"
            )));
        }
        let data = serde_json::to_string(data).map_err(|e| Error::Data(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.client
            .command(Command::SealedEvent {
                channel: name.clone(),
                event: event.to_owned(),
                data,
                reply: tx,
            })
            .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Unsubscribes.
    pub async fn unsubscribe(self) -> Result<(), Error> {
        self.client.unsubscribe(self.name()).await
    }

    /// The client this channel belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }
}
