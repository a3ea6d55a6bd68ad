//! The encrypted offline mailbox (issue 18), client side: device
//! authentication on every connection, sending suite 1 envelopes to users'
//! devices through `mailbox.send`, and receiving them (fetch cycles and
//! `hush:mailbox` pushes) in order, exactly once.
//!
//! Receiving, per item: parse the envelope; put it through the reorder
//! buffer ([`hush_crypto::suite1::reorder`]); open it with the mailbox's own replay guard
//! (window [`MAILBOX_MAX_AGE`], persisted like the channel streams); save
//! the guard's state and the message in the inbox in one key-store save;
//! only then acknowledge it (`mailbox.ack`) and announce it. A crash before
//! the save fetches it again; a crash after the save and before the
//! acknowledgement fetches a message the guard refuses: it is acknowledged
//! as a [`MailboxEvent::Duplicate`] (`in_inbox`), never shown twice.

use std::collections::{HashSet, VecDeque};
use std::sync::Weak;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::suite1::{Envelope, OpenError, ReplayGuard, StreamKey};
use hush_protocol::msgs::hush::{Fetched, Sent, Status};
use hush_protocol::msgs::{HushRequest, HushResponse, MailboxItem, names};
use serde::Serialize;
use tokio::sync::broadcast;

use super::inbox::{
    CONVERSATION_PREFIX, MailboxEvent, MailboxMessage, StreamRef, conversation_channel,
};
use super::messaging::{Messaging, Via};
use super::state::Shared;
use super::{E2eeError, millis};
use crate::client::ConnectionState;
use crate::request::DirectoryError;
use hush_crypto::suite1::reorder::{Released, ReorderBuffer};

/// The outer event name sealed into mailbox envelopes: a mailbox envelope
/// does not open as a channel event, nor a channel envelope from the
/// mailbox (where the replay window is much longer).
pub const MAILBOX_EVENT: &str = "hush-mailbox";
/// How old a mailbox message may be (its signed time) and still open: the
/// mailbox's time to live (30 days) and a day of clock skew.
pub const MAILBOX_MAX_AGE: Duration = Duration::from_secs(31 * 24 * 3600);
/// How many opened mailbox messages the key store's inbox keeps (the
/// newest).
pub const INBOX_LIMIT: usize = 1000;
/// How long a pushed message that skips ahead waits for the missing ones
/// before it is delivered with a [`MailboxEvent::Gap`].
pub const PUSH_REORDER_WAIT: Duration = Duration::from_secs(2);
/// How often the mailbox task fetches even without a reconnect (pushes the
/// client had to drop are found then).
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(300);

const FETCH_LIMIT: u64 = 100;
const MAX_PAGES: usize = 100;
const RECENT_IDS: usize = 4096;

/// A new mailbox replay guard.
pub(super) fn new_guard() -> ReplayGuard {
    ReplayGuard::default().with_max_age_ms(millis(MAILBOX_MAX_AGE))
}

/// A message sealed for the mailbox, not sent yet
/// ([`E2ee::seal_for_users`](super::E2ee::seal_for_users)). Sending the same
/// one again ([`E2ee::mailbox_send`](super::E2ee::mailbox_send)) is safe:
/// the server keeps one copy per message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMessage {
    /// The users named to the server (`mailbox.send`).
    pub users: Vec<String>,
    /// The envelope (standard base64).
    pub envelope: String,
    /// Its message id (32 hex digits).
    pub message_id: String,
    /// The conversation channel.
    pub conversation: String,
    /// This device's sequence number in the conversation.
    pub sequence: u64,
}

/// A message the server queued ([`E2ee::send_to_users`](super::E2ee::send_to_users)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The message id (32 hex digits), for [`E2ee::mailbox_status`](super::E2ee::mailbox_status).
    pub message_id: String,
    /// The conversation channel.
    pub conversation: String,
    /// This device's sequence number in the conversation.
    pub sequence: u64,
    /// Recipient devices it was queued for.
    pub devices: u64,
    /// Of those, connected now (pushed at once).
    pub online: u64,
    /// When the server deletes it unread (Unix ms).
    pub expires_ms: u64,
}

/// One queued item, parsed.
pub(super) struct Incoming {
    id: u64,
    sent_ms: u64,
    env: Envelope,
}

/// How an item reached the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `mailbox.fetch`: a stream new to this device waits for the end of
    /// the cycle (which sorts it).
    Fetch,
    /// A `hush:mailbox` push: a message that skips ahead waits
    /// [`PUSH_REORDER_WAIT`].
    Push,
}

/// Acknowledge at once, or collect the ids (the step API).
pub(super) enum Acks {
    /// `mailbox.ack` each message once it is saved.
    Now,
    /// Collect the ids; the caller acknowledges.
    Collect(Vec<u64>),
}

/// The receiving side's memory: the reorder buffer and the ids in hand.
pub(super) struct Receiver {
    buffer: ReorderBuffer<Incoming>,
    /// Ids held in the buffer.
    held: HashSet<u64>,
    /// Ids processed lately (a push of one is ignored).
    recent: VecDeque<u64>,
    recent_set: HashSet<u64>,
    /// A message could not be processed for a passing reason: fetch again.
    pub resync: bool,
    clock: Instant,
}

impl Default for Receiver {
    fn default() -> Self {
        Self {
            buffer: ReorderBuffer::default(),
            held: HashSet::new(),
            recent: VecDeque::new(),
            recent_set: HashSet::new(),
            resync: false,
            clock: Instant::now(),
        }
    }
}

impl Receiver {
    fn now(&self) -> u64 {
        millis(self.clock.elapsed())
    }

    fn remember(&mut self, id: u64) {
        if self.recent_set.insert(id) {
            self.recent.push_back(id);
            if self.recent.len() > RECENT_IDS
                && let Some(old) = self.recent.pop_front()
            {
                self.recent_set.remove(&old);
            }
        }
    }

    /// When the earliest held push must be released.
    fn deadline(&self) -> Option<Instant> {
        self.buffer
            .next_deadline()
            .map(|ms| self.clock + Duration::from_millis(ms))
    }
}

fn bad(what: &str) -> E2eeError {
    E2eeError::Directory(DirectoryError::BadResponse(format!(
        "{what}: unexpected answer"
    )))
}

/// Errors that pass: the message is not acknowledged and comes back.
fn transient(e: &E2eeError) -> bool {
    matches!(
        e,
        E2eeError::Directory(_)
            | E2eeError::Client(_)
            | E2eeError::Store(_)
            | E2eeError::StaleHead { .. }
            | E2eeError::DirectoryNotPinned
            | E2eeError::UntrustedDirectory { .. }
            | E2eeError::Log(_)
    )
}

/// Proves on the current connection which device this is (`device.challenge`
/// then `device.auth`), unless done on this socket already. Signs in first.
pub(super) async fn ensure_device_auth(sh: &Shared) -> Result<(), E2eeError> {
    let mut authed = sh.device_auth.lock().await;
    let client = &sh.client;
    let socket = client
        .socket_id()
        .ok_or(E2eeError::Directory(DirectoryError::NotConnected))?;
    if authed.as_deref() == Some(socket.as_str()) {
        return Ok(());
    }
    if sh.with(|st| st.data.card.is_none()) {
        return Err(E2eeError::NotPublished);
    }
    tokio::time::timeout(client.request_timeout(), client.signin())
        .await
        .map_err(|_| E2eeError::Directory(DirectoryError::Timeout))??;
    let nonce = match client.call(&HushRequest::DeviceChallenge).await? {
        HushResponse::DeviceChallenge(c) => c.nonce,
        _ => return Err(bad("device.challenge")),
    };
    let nonce: [u8; hush_crypto::device_auth::NONCE_LEN] = STANDARD
        .decode(nonce.as_str())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("device.challenge nonce"))?;
    let (device, signature) = sh.with(|st| {
        let user = st.data.user.clone();
        let challenge = hush_crypto::device_auth::Challenge {
            app_key: client.app_key(),
            socket_id: socket.as_str(),
            user_id: user.as_str(),
            nonce: &nonce,
        };
        (
            hex::encode(st.data.device_id.0),
            STANDARD.encode(challenge.sign(&st.data.keys)),
        )
    });
    match client
        .call(&HushRequest::DeviceAuth { device, signature })
        .await?
    {
        HushResponse::DeviceAuth(a) => {
            tracing::debug!(pending = a.pending, "hush-client: device authenticated");
        }
        _ => return Err(bad("device.auth")),
    }
    *authed = Some(socket.as_str().to_owned());
    Ok(())
}

/// Seals `data` for every device of `users` and this user's other devices,
/// on the conversation channel of `users` and this user.
pub(super) async fn seal<T: Serialize + ?Sized>(
    sh: &Shared,
    event: &str,
    data: &T,
    users: &[&str],
) -> Result<SealedMessage, E2eeError> {
    let me = sh.with(|st| st.data.user.clone());
    let mut all: Vec<&str> = users.to_vec();
    all.push(me.as_str());
    let conversation = conversation_channel(&all)?;
    let json = serde_json::to_string(data).map_err(|e| E2eeError::Invalid(e.to_string()))?;
    let envelope = Messaging::new(sh)
        .seal(&conversation, MAILBOX_EVENT, event, &json, users)
        .await?;
    let env = Envelope::from_data(&envelope)?;
    let h = env.header();
    let mut named: Vec<String> = Vec::new();
    for u in users {
        if *u != me.as_str() && !named.iter().any(|n| n == u) {
            named.push((*u).to_owned());
        }
    }
    if named.is_empty() {
        named.push(me.to_string());
    }
    Ok(SealedMessage {
        users: named,
        message_id: hex::encode(h.message_id),
        sequence: h.sequence,
        conversation,
        envelope,
    })
}

/// Whether a failed request may succeed on a new try (after a reconnect).
fn retryable(e: &E2eeError) -> bool {
    matches!(
        e,
        E2eeError::Directory(
            DirectoryError::ConnectionLost | DirectoryError::NotConnected | DirectoryError::Timeout
        )
    ) || matches!(e, E2eeError::Directory(DirectoryError::Server { code, .. }) if *code == crate::ErrorCode::Forbidden)
}

/// `mailbox.send` of a sealed message, retried (same envelope, so the same
/// id) across a lost connection, with device authentication first.
pub(super) async fn send(sh: &Shared, sealed: &SealedMessage) -> Result<SentMessage, E2eeError> {
    const TRIES: usize = 3;
    let mut last = None;
    for attempt in 0..TRIES {
        if attempt > 0 {
            let wait = sh.client.request_timeout();
            let _ = tokio::time::timeout(wait, sh.client.connected()).await;
        }
        let r = async {
            ensure_device_auth(sh).await?;
            let req = HushRequest::MailboxSend {
                users: sealed.users.clone(),
                envelope: sealed.envelope.clone(),
            };
            match sh.client.call(&req).await {
                Ok(HushResponse::MailboxSend(s)) => Ok(s),
                Ok(_) => Err(bad("mailbox.send")),
                Err(e) => Err(E2eeError::Directory(e)),
            }
        }
        .await;
        match r {
            Ok(Sent {
                devices,
                expires_ms,
                message,
                online,
            }) => {
                return Ok(SentMessage {
                    message_id: message,
                    conversation: sealed.conversation.clone(),
                    sequence: sealed.sequence,
                    devices,
                    online,
                    expires_ms,
                });
            }
            Err(e) if retryable(&e) => {
                // Forbidden: this connection's device authentication was
                // lost (e.g. the server restarted): authenticate again.
                *sh.device_auth.lock().await = None;
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(E2eeError::Directory(DirectoryError::NotConnected)))
}

/// `mailbox.status` of a message this user sent.
pub(super) async fn status(sh: &Shared, message_id: &str) -> Result<Status, E2eeError> {
    ensure_device_auth(sh).await?;
    match sh
        .client
        .call(&HushRequest::MailboxStatus {
            message: message_id.to_owned(),
        })
        .await?
    {
        HushResponse::MailboxStatus(s) => Ok(s),
        _ => Err(bad("mailbox.status")),
    }
}

/// `mailbox.ack`: returns how many the server deleted.
pub(super) async fn ack(sh: &Shared, ids: &[u64]) -> Result<u64, E2eeError> {
    let mut deleted = 0;
    for chunk in ids.chunks(256) {
        match sh
            .client
            .call(&HushRequest::MailboxAck {
                ids: chunk.to_vec(),
            })
            .await?
        {
            HushResponse::MailboxAck(a) => deleted += a.deleted,
            _ => return Err(bad("mailbox.ack")),
        }
    }
    Ok(deleted)
}

/// `mailbox.fetch` of one page.
async fn fetch(sh: &Shared, after: Option<u64>) -> Result<Fetched, E2eeError> {
    match sh
        .client
        .call(&HushRequest::MailboxFetch {
            after,
            limit: Some(FETCH_LIMIT),
        })
        .await?
    {
        HushResponse::MailboxFetch(f) => Ok(f),
        _ => Err(bad("mailbox.fetch")),
    }
}

/// One fetch cycle: device authentication, every page, then everything the
/// reorder buffer still holds (gaps are reported then).
pub(super) async fn sync(sh: &Shared, rx: &mut Receiver, acks: &mut Acks) -> Result<(), E2eeError> {
    ensure_device_auth(sh).await?;
    rx.resync = false;
    let mut after: Option<u64> = None;
    for _ in 0..MAX_PAGES {
        let page = fetch(sh, after).await?;
        let n = page.messages.len();
        for item in page.messages {
            after = Some(after.map_or(item.id, |a| a.max(item.id)));
            offer(sh, rx, item, Mode::Fetch, acks).await;
        }
        if !page.more || n == 0 {
            break;
        }
        if after.is_none() {
            break;
        }
    }
    for r in rx.buffer.flush() {
        open_one(sh, rx, r, acks).await;
    }
    Ok(())
}

/// Handles one pushed item.
pub(super) async fn on_push(sh: &Shared, rx: &mut Receiver, item: MailboxItem) {
    offer(sh, rx, item, Mode::Push, &mut Acks::Now).await;
}

/// Releases the pushes whose wait ran out.
pub(super) async fn expire(sh: &Shared, rx: &mut Receiver) {
    let now = rx.now();
    for r in rx.buffer.expire(now) {
        open_one(sh, rx, r, &mut Acks::Now).await;
    }
}

async fn offer(sh: &Shared, rx: &mut Receiver, item: MailboxItem, mode: Mode, acks: &mut Acks) {
    if rx.held.contains(&item.id) || (mode == Mode::Push && rx.recent_set.contains(&item.id)) {
        return;
    }
    let env = match Envelope::from_data(&item.envelope) {
        Ok(env) => env,
        Err(e) => {
            finish(sh, rx, item.id, acks).await;
            emit(
                sh,
                MailboxEvent::Rejected {
                    mailbox_id: item.id,
                    error: E2eeError::Open(e).to_string(),
                },
            );
            return;
        }
    };
    let h = env.header();
    let stream = StreamKey {
        user: h.sender_user.clone(),
        device: h.sender_device,
        channel: h.channel.clone(),
    };
    let sequence = h.sequence;
    let known = sh.with(|st| st.mailbox_guard.state(&stream));
    let expected = match (known, mode) {
        (Some(s), _) => Some(s.highest.saturating_add(1)),
        (None, Mode::Push) => Some(sequence),
        (None, Mode::Fetch) => None,
    };
    let deadline = (mode == Mode::Push).then(|| rx.now() + millis(PUSH_REORDER_WAIT));
    rx.held.insert(item.id);
    let incoming = Incoming {
        id: item.id,
        sent_ms: item.sent_ms,
        env,
    };
    for r in rx
        .buffer
        .insert(stream, sequence, incoming, expected, deadline)
    {
        open_one(sh, rx, r, acks).await;
    }
}

fn emit(sh: &Shared, e: MailboxEvent) {
    let _ = sh.mailbox_events.send(e);
}

/// Done with `id`: acknowledged (or collected), remembered.
async fn finish(sh: &Shared, rx: &mut Receiver, id: u64, acks: &mut Acks) {
    rx.remember(id);
    match acks {
        Acks::Collect(ids) => ids.push(id),
        Acks::Now => {
            // A lost acknowledgement is harmless: the message comes back
            // and is acknowledged as a duplicate.
            if let Err(e) = ack(sh, &[id]).await {
                tracing::warn!(error = %e, id, "hush-client: mailbox.ack failed");
            }
        }
    }
}

async fn open_one(sh: &Shared, rx: &mut Receiver, r: Released<Incoming>, acks: &mut Acks) {
    let Released {
        stream,
        sequence,
        item,
        reordered,
    } = r;
    rx.held.remove(&item.id);
    let id = item.id;
    let h = item.env.header();
    let sref = StreamRef {
        sender_user: stream.user.to_string(),
        sender_device: stream.device,
        conversation: stream.channel.to_string(),
    };
    let result = if h.event.as_str() != MAILBOX_EVENT {
        Err(E2eeError::NotAnEnvelope)
    } else if !h.channel.as_str().starts_with(CONVERSATION_PREFIX) {
        Err(E2eeError::WrongChannel)
    } else {
        Messaging::new(sh)
            .open_envelope(
                &item.env,
                Via::Mailbox {
                    mailbox_id: id,
                    queued_ms: item.sent_ms,
                },
            )
            .await
    };
    match result {
        Ok((message, late)) => {
            finish(sh, rx, id, acks).await;
            if message.missed > 0 {
                emit(
                    sh,
                    MailboxEvent::Gap {
                        stream: sref.clone(),
                        first: message.sequence.saturating_sub(message.missed),
                        last: message.sequence.saturating_sub(1),
                    },
                );
            }
            if reordered || late {
                emit(
                    sh,
                    MailboxEvent::Reordered {
                        stream: sref,
                        sequence,
                    },
                );
            }
            emit(
                sh,
                MailboxEvent::Message(MailboxMessage {
                    mailbox_id: id,
                    queued_ms: item.sent_ms,
                    late,
                    message,
                }),
            );
        }
        Err(E2eeError::Open(OpenError::Replay)) => {
            let (user, device, mid) = (
                h.sender_user.as_str(),
                hex::encode(h.sender_device.0),
                hex::encode(h.message_id),
            );
            let in_inbox = sh.with(|st| {
                st.data.inbox.iter().any(|e| {
                    e.sender_user == user && e.sender_device == device && e.message_id == mid
                })
            });
            finish(sh, rx, id, acks).await;
            emit(
                sh,
                MailboxEvent::Duplicate {
                    mailbox_id: id,
                    stream: sref,
                    sequence,
                    in_inbox,
                },
            );
        }
        Err(e) if transient(&e) => {
            tracing::warn!(error = %e, id, "hush-client: mailbox message not processed now; fetched again later");
            rx.resync = true;
        }
        Err(e) => {
            finish(sh, rx, id, acks).await;
            emit(
                sh,
                MailboxEvent::Rejected {
                    mailbox_id: id,
                    error: e.to_string(),
                },
            );
        }
    }
}

/// The mailbox task: a fetch cycle after device authentication on every
/// (re)connection (and every [`RESYNC_INTERVAL`]), pushes in between;
/// ends when the [`Shared`] is gone.
pub(super) async fn run(sh: Weak<Shared>) {
    let Some((mut states, mut pushes, wake)) = sh.upgrade().map(|s| {
        (
            s.client.state_changes(),
            s.client.bind(names::HUSH_MAILBOX),
            s.mailbox_wake.clone(),
        )
    }) else {
        return;
    };
    let mut synced: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut resync_at = tokio::time::Instant::now() + RESYNC_INTERVAL;
    loop {
        let socket = match &*states.borrow_and_update() {
            ConnectionState::Connected { socket_id } => Some(socket_id.as_str().to_owned()),
            _ => None,
        };
        let due = retry_at.is_none_or(|t| t <= tokio::time::Instant::now());
        if socket.is_some() && socket != synced && due {
            let Some(shared) = sh.upgrade() else { return };
            let mut rx = shared.mailbox.lock().await;
            match sync(&shared, &mut rx, &mut Acks::Now).await {
                Ok(()) if !rx.resync => {
                    synced.clone_from(&socket);
                    backoff = Duration::from_secs(1);
                    retry_at = None;
                }
                r => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "hush-client: mailbox fetch failed; retrying");
                    }
                    retry_at = Some(tokio::time::Instant::now() + backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            resync_at = tokio::time::Instant::now() + RESYNC_INTERVAL;
        }
        let deadline = match sh.upgrade() {
            Some(s) => s.mailbox.lock().await.deadline(),
            None => return,
        };
        tokio::select! {
            r = states.changed() => {
                if r.is_err() {
                    return;
                }
            }
            e = pushes.recv() => {
                let Some(e) = e else { return };
                // Pushes before this connection's first fetch are fetched.
                if e.channel.is_some() || socket.is_none() || synced != socket {
                    continue;
                }
                let Ok(item) = serde_json::from_value::<MailboxItem>(e.data) else {
                    continue;
                };
                let Some(shared) = sh.upgrade() else { return };
                let mut rx = shared.mailbox.lock().await;
                on_push(&shared, &mut rx, item).await;
                if rx.resync {
                    synced = None;
                    retry_at = Some(tokio::time::Instant::now() + backoff);
                }
            }
            () = wake.notified() => {
                retry_at = None;
            }
            () = sleep_until(retry_at) => {}
            () = sleep_until(deadline.map(tokio::time::Instant::from_std)) => {
                let Some(shared) = sh.upgrade() else { return };
                let mut rx = shared.mailbox.lock().await;
                expire(&shared, &mut rx).await;
            }
            () = tokio::time::sleep_until(resync_at) => {
                synced = None;
                resync_at = tokio::time::Instant::now() + RESYNC_INTERVAL;
            }
        }
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Subscribes to the mailbox events, then starts the task if it is not
/// running.
pub(super) fn start(sh: &std::sync::Arc<Shared>) -> broadcast::Receiver<MailboxEvent> {
    let events = sh.mailbox_events.subscribe();
    let mut task = sh
        .mailbox_task
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if task.is_none() {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let t = rt.spawn(run(std::sync::Arc::downgrade(sh)));
                *task = Some(t.abort_handle());
            }
            Err(_) => tracing::warn!("hush-client: start_mailbox needs a tokio runtime"),
        }
    }
    events
}
