//! The encrypted mailbox (issue 18, docs/PROTOCOL-EXT.md §4): suite 1
//! envelopes queued in the store for recipient devices, pushed at once to
//! those connected, fetched by the others when they come back, and deleted
//! per device on its acknowledgement.
//!
//! **Devices, not users.** `pusher:signin` says which user a connection is;
//! `device.challenge` / `device.auth` then prove which of the user's
//! devices it is (a signature over a fresh nonce, the socket id and the user
//! id, checked against the device's active card in the key directory;
//! [`hush_crypto::device_auth`]). Fetching and acknowledging need that
//! proof, so a member can neither read nor delete another device's queue.
//!
//! **Store first, then push.** A message is committed before it is pushed
//! (`hush:mailbox`) to the recipient devices' connections, and stays queued
//! until each device acknowledges it: a push that a dying connection never
//! delivered is fetched again on reconnect. Live delivery is a shortcut to
//! the fetch, not a second path that can lose messages.
//!
//! **What the server keeps** is what routing needs: the envelope (opaque
//! ciphertext; its cleartext header names sender user and device), the
//! recipient user and device, sizes and times; all of it deleted with the
//! message (docs/PROTOCOL-EXT.md §4, "What the server keeps").

mod live;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::device_auth::{self, Challenge};
use hush_crypto::identity::{DeviceId, SIGNATURE_LEN};
use hush_crypto::suite1::Envelope;
use hush_protocol::UserId;
use hush_protocol::msgs::hush::{
    Acked, DeviceAuthed, DeviceState, Fetched, MailboxItem, Sent, Status,
};
use hush_protocol::msgs::{HushRequest, HushResponse};
use hush_store::Store;
use hush_store::mailbox::{DeviceRef, Enqueued, Quota};

use crate::config::MailboxConfig;
use crate::conn::{ConnHandle, Frame};
use crate::directory::{DirError, Directory};
pub use live::ConnDevice;
use live::Live;
use writer::{Owned, Writer};

/// Most users one `mailbox.send` names.
pub const MAX_SEND_USERS: usize = 50;
/// Most messages one `mailbox.fetch` returns.
pub const MAX_FETCH: u64 = 100;
/// Most ids one `mailbox.ack` names.
pub const MAX_ACK: usize = 256;

fn now_ms() -> u64 {
    u64::try_from(hush_store::now_ms()).unwrap_or(0)
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn parse_hex16(text: &str, what: &str) -> Result<[u8; 16], DirError> {
    let bad = || DirError::BadRequest(format!("params.{what} must be 32 lowercase hex digits"));
    if text.len() != 32 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// Who is asking: the connection's app, user and device state.
pub struct Caller<'a> {
    /// The app's id.
    pub app_id: &'a str,
    /// The app's key (what device proofs bind).
    pub app_key: &'a str,
    /// The app's mailbox TTL (seconds).
    pub ttl_secs: u64,
    /// The signed-in user.
    pub user: &'a UserId,
    /// The connection (for pushes and device proofs).
    pub handle: &'a ConnHandle,
    /// The connection's device state.
    pub device: &'a Arc<ConnDevice>,
}

/// The mailbox of every app on this node.
pub struct Mailbox {
    store: Store,
    directory: Arc<Directory>,
    config: MailboxConfig,
    live: Live,
    /// Something was deleted since the last checkpoint.
    dirty: AtomicBool,
    /// Serialises device proofs against purges of revoked devices, so a
    /// device revoked while its proof is checked is not left registered.
    auth: tokio::sync::Mutex<()>,
    /// Group commits of concurrent sends.
    writer: Writer,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Mailbox {
    /// The mailbox over `store`, routing with `directory`'s device cards.
    pub fn new(store: Store, directory: Arc<Directory>, config: MailboxConfig) -> Self {
        Self {
            store,
            directory,
            config,
            live: Live::default(),
            dirty: AtomicBool::new(false),
            auth: tokio::sync::Mutex::new(()),
            writer: Writer::default(),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &MailboxConfig {
        &self.config
    }

    /// Answers a `device.*` or `mailbox.*` request.
    pub async fn dispatch(
        &self,
        caller: &Caller<'_>,
        request: HushRequest,
    ) -> Result<HushResponse, DirError> {
        if !self.config.enabled {
            return Err(DirError::UnknownMethod(request.method().name().to_owned()));
        }
        Ok(match request {
            HushRequest::DeviceChallenge => {
                HushResponse::DeviceChallenge(hush_protocol::msgs::hush::Challenge {
                    nonce: STANDARD.encode(caller.device.new_nonce()),
                })
            }
            HushRequest::DeviceAuth { device, signature } => {
                HushResponse::DeviceAuth(self.device_auth(caller, &device, &signature).await?)
            }
            HushRequest::MailboxSend { users, envelope } => {
                let device = self.device_of(caller)?;
                HushResponse::MailboxSend(
                    self.send(
                        caller.app_id,
                        caller.ttl_secs,
                        Some((caller.user, device)),
                        &users,
                        &envelope,
                    )
                    .await?,
                )
            }
            HushRequest::MailboxFetch { after, limit } => {
                let device = self.device_of(caller)?;
                HushResponse::MailboxFetch(self.fetch(caller, device, after, limit).await?)
            }
            HushRequest::MailboxAck { ids } => {
                let device = self.device_of(caller)?;
                HushResponse::MailboxAck(self.ack(caller, device, &ids).await?)
            }
            HushRequest::MailboxStatus { message } => {
                HushResponse::MailboxStatus(self.status(caller, &message).await?)
            }
            other => return Err(DirError::UnknownMethod(other.method().name().to_owned())),
        })
    }

    /// The device this connection proved it is.
    fn device_of(&self, caller: &Caller<'_>) -> Result<DeviceId, DirError> {
        caller.device.device().ok_or_else(|| {
            DirError::Forbidden(
                "authenticate this connection's device (device.challenge, device.auth) first"
                    .into(),
            )
        })
    }

    async fn device_auth(
        &self,
        caller: &Caller<'_>,
        device: &str,
        signature: &str,
    ) -> Result<DeviceAuthed, DirError> {
        let device = DeviceId(parse_hex16(device, "device")?);
        let signature: [u8; SIGNATURE_LEN] = STANDARD
            .decode(signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                DirError::BadRequest("params.signature must be 64 bytes of standard base64".into())
            })?;
        // One nonce, one attempt: a wrong guess needs a new challenge.
        let nonce = caller.device.take_nonce().ok_or_else(|| {
            DirError::BadRequest("ask device.challenge first (a nonce is good once)".into())
        })?;
        if let Some(current) = caller.device.device()
            && current != device
        {
            return Err(DirError::Forbidden(
                "this connection is already another device".into(),
            ));
        }
        let _auth = self.auth.lock().await;
        let cards = self
            .directory
            .active_cards(
                caller.app_id,
                std::slice::from_ref(caller.user),
                now_ms() / 1000,
            )
            .await?;
        let card = cards
            .get(caller.user)
            .and_then(|cs| cs.iter().find(|c| c.device_id() == device))
            .ok_or_else(|| {
                DirError::Forbidden(format!(
                    "device {device} is not an active device of user {}",
                    caller.user
                ))
            })?;
        let socket_id = caller.handle.socket_id.to_string();
        let challenge = Challenge {
            app_key: caller.app_key,
            socket_id: &socket_id,
            user_id: caller.user.as_str(),
            nonce: &nonce,
        };
        challenge.verify(card, &signature).map_err(|e| match e {
            device_auth::DeviceAuthError::WrongCard
            | device_auth::DeviceAuthError::BadSignature => {
                DirError::Forbidden(format!("device proof refused: {e}"))
            }
        })?;
        caller.device.set_device(caller.user.as_str(), device);
        let at = DeviceRef {
            user: caller.user.to_string(),
            device: device.0,
        };
        self.live
            .register(caller.app_id, &at, caller.handle, caller.device);
        let pending = self.store.mailbox_pending(caller.app_id, &at).await?;
        Ok(DeviceAuthed {
            device: device.to_string(),
            pending,
        })
    }

    /// Queues `envelope` for the devices it lists of `users` and of its
    /// sender's user, and pushes it to those connected. `from` is the
    /// connection's user and device (a WebSocket send), `None` for the
    /// signed HTTP API (then the sender device must be an active device of
    /// the envelope's sender user).
    pub async fn send(
        &self,
        app_id: &str,
        ttl_secs: u64,
        from: Option<(&UserId, DeviceId)>,
        users: &[String],
        envelope: &str,
    ) -> Result<Sent, DirError> {
        let r = self.queue(app_id, ttl_secs, from, users, envelope).await;
        if let Err(e) = &r
            && !matches!(e, DirError::TooMany(_))
        {
            let reason = match e {
                DirError::Forbidden(_) => "forbidden",
                DirError::Busy(_) | DirError::Unavailable(_) => "unavailable",
                _ => "bad_request",
            };
            metrics::counter!("hush_mailbox_refused_total", "app" => app_id.to_owned(), "reason" => reason)
                .increment(1);
        }
        r
    }

    async fn queue(
        &self,
        app_id: &str,
        ttl_secs: u64,
        from: Option<(&UserId, DeviceId)>,
        users: &[String],
        envelope: &str,
    ) -> Result<Sent, DirError> {
        if users.is_empty() || users.len() > MAX_SEND_USERS {
            return Err(DirError::BadRequest(format!(
                "name 1 to {MAX_SEND_USERS} users, not {}",
                users.len()
            )));
        }
        if envelope.len() > self.config.max_message_bytes {
            return Err(DirError::BadRequest(format!(
                "the envelope is {} bytes, over the mailbox's {} byte limit",
                envelope.len(),
                self.config.max_message_bytes
            )));
        }
        let env = Envelope::from_data(envelope)
            .map_err(|e| DirError::BadRequest(format!("params.envelope: {e}")))?;
        let header = env.header();
        if let Some((user, device)) = from
            && (header.sender_user != *user || header.sender_device != device)
        {
            return Err(DirError::Forbidden(
                "the envelope's sender is not this connection's user and device".into(),
            ));
        }
        let mut named: BTreeSet<UserId> = BTreeSet::new();
        for u in users {
            named.insert(
                UserId::parse(u).map_err(|e| DirError::BadRequest(format!("user {u:?}: {e}")))?,
            );
        }
        named.insert(header.sender_user.clone());
        let named: Vec<UserId> = named.into_iter().collect();
        let cards = self
            .directory
            .active_cards(app_id, &named, now_ms() / 1000)
            .await?;
        if from.is_none() {
            let known = cards
                .get(&header.sender_user)
                .is_some_and(|cs| cs.iter().any(|c| c.device_id() == header.sender_device));
            if !known {
                return Err(DirError::Forbidden(
                    "the envelope's sender device is not an active device of its sender".into(),
                ));
            }
        }
        let mut owners: HashMap<DeviceId, Vec<&UserId>> = HashMap::new();
        for (user, cs) in &cards {
            for c in cs {
                owners.entry(c.device_id()).or_default().push(user);
            }
        }
        let mut recipients: BTreeSet<DeviceRef> = BTreeSet::new();
        for d in env.recipients() {
            let Some(users) = owners.get(&d) else {
                return Err(DirError::BadRequest(format!(
                    "recipient device {d} is not an active device of the named users"
                )));
            };
            for u in users {
                recipients.insert(DeviceRef {
                    user: u.to_string(),
                    device: d.0,
                });
            }
        }
        let recipients: Vec<DeviceRef> = recipients.into_iter().collect();
        let now = now_ms();
        let expires = now.saturating_add(ttl_secs.saturating_mul(1000));
        let message = Owned {
            app_id: app_id.to_owned(),
            message_id: header.message_id,
            sender_user: header.sender_user.to_string(),
            sender_device: header.sender_device.0,
            envelope: env.as_bytes().to_vec(),
            created_ms: ms(now),
            expires_ms: ms(expires),
            recipients: recipients.clone(),
        };
        let quota = Quota {
            max_messages: self.config.max_messages_per_device,
            max_bytes: self.config.max_bytes_per_device,
        };
        let message_hex = DeviceId(header.message_id).to_string();
        let queued = self
            .writer
            .enqueue(&self.store, message, quota)
            .await
            .inspect(|e| {
                let outcome = match e {
                    Enqueued::Queued { .. } => "queued",
                    Enqueued::Duplicate { .. } => "duplicate",
                    Enqueued::OverQuota(_) => "quota",
                };
                if outcome == "queued" {
                    metrics::counter!("hush_mailbox_queued_total", "app" => app_id.to_owned())
                        .increment(1);
                } else if outcome == "quota" {
                    metrics::counter!("hush_mailbox_refused_total", "app" => app_id.to_owned(), "reason" => "quota")
                        .increment(1);
                }
            })?;
        let id = match queued {
            Enqueued::Queued { id } => id,
            Enqueued::Duplicate { .. } => {
                return Ok(Sent {
                    devices: recipients.len() as u64,
                    expires_ms: expires,
                    message: message_hex,
                    online: 0,
                });
            }
            Enqueued::OverQuota(d) => {
                return Err(DirError::TooMany(format!(
                    "the mailbox of user {} device {} is full ({} messages or {} bytes waiting)",
                    d.user,
                    DeviceId(d.device),
                    self.config.max_messages_per_device,
                    self.config.max_bytes_per_device
                )));
            }
        };
        let item = MailboxItem {
            envelope: envelope.to_owned(),
            id: u64::try_from(id).unwrap_or(0),
            sent_ms: now,
        };
        let frame = Frame::from(hush_protocol::msgs::encode::hush_mailbox(&item));
        let mut online = 0u64;
        for r in &recipients {
            if self.live.push(app_id, r, &frame) {
                online += 1;
                metrics::counter!("hush_mailbox_pushed_total", "app" => app_id.to_owned())
                    .increment(1);
                self.store
                    .mailbox_mark_delivered(app_id, r, id, ms(now))
                    .await?;
            }
        }
        Ok(Sent {
            devices: recipients.len() as u64,
            expires_ms: expires,
            message: message_hex,
            online,
        })
    }

    async fn fetch(
        &self,
        caller: &Caller<'_>,
        device: DeviceId,
        after: Option<u64>,
        limit: Option<u64>,
    ) -> Result<Fetched, DirError> {
        let limit = limit.unwrap_or(MAX_FETCH);
        if !(1..=MAX_FETCH).contains(&limit) {
            return Err(DirError::BadRequest(format!(
                "params.limit must be 1 to {MAX_FETCH}"
            )));
        }
        let at = DeviceRef {
            user: caller.user.to_string(),
            device: device.0,
        };
        let page = self
            .store
            .mailbox_fetch(
                caller.app_id,
                &at,
                ms(after.unwrap_or(0)),
                usize::try_from(limit).unwrap_or(100),
                self.config.max_fetch_bytes,
                ms(now_ms()),
            )
            .await?;
        Ok(Fetched {
            messages: page
                .messages
                .into_iter()
                .map(|m| MailboxItem {
                    envelope: STANDARD.encode(&m.envelope),
                    id: u64::try_from(m.id).unwrap_or(0),
                    sent_ms: u64::try_from(m.created_ms).unwrap_or(0),
                })
                .collect(),
            more: page.more,
        })
    }

    async fn ack(
        &self,
        caller: &Caller<'_>,
        device: DeviceId,
        ids: &[u64],
    ) -> Result<Acked, DirError> {
        if ids.is_empty() || ids.len() > MAX_ACK {
            return Err(DirError::BadRequest(format!(
                "params.ids must hold 1 to {MAX_ACK} ids"
            )));
        }
        let ids: Vec<i64> = ids.iter().filter_map(|&i| i64::try_from(i).ok()).collect();
        let at = DeviceRef {
            user: caller.user.to_string(),
            device: device.0,
        };
        let deleted = self.store.mailbox_ack(caller.app_id, &at, &ids).await?;
        metrics::counter!("hush_mailbox_acknowledged_total", "app" => caller.app_id.to_owned())
            .increment(deleted);
        if deleted > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(Acked { deleted })
    }

    async fn status(&self, caller: &Caller<'_>, message: &str) -> Result<Status, DirError> {
        let id = parse_hex16(message, "message")?;
        let status = self
            .store
            .mailbox_status(caller.app_id, caller.user.as_str(), &id)
            .await?
            .ok_or_else(|| {
                DirError::NotFound(
                    "no message of yours with this id is waiting: every device acknowledged it, \
                     it expired, or it was never queued"
                        .into(),
                )
            })?;
        let pending = status.pending.len() as u64;
        Ok(Status {
            acknowledged: status.recipients.saturating_sub(pending),
            pending: status
                .pending
                .into_iter()
                .map(|p| DeviceState {
                    device: DeviceId(p.device.device).to_string(),
                    state: if p.delivered { "delivered" } else { "queued" }.into(),
                    user: p.device.user,
                })
                .collect(),
            recipients: status.recipients,
        })
    }

    /// After a revocation by `user`: empties the queues of the user's
    /// devices that are no longer active, and stops pushing to their
    /// connections (which can no longer fetch or acknowledge).
    pub async fn revoked(&self, app_id: &str, user: &UserId) -> Result<u64, DirError> {
        let _auth = self.auth.lock().await;
        let cards = self
            .directory
            .active_cards(app_id, std::slice::from_ref(user), now_ms() / 1000)
            .await?;
        let keep: Vec<[u8; 16]> = cards
            .get(user)
            .map(|cs| cs.iter().map(|c| c.device_id().0).collect())
            .unwrap_or_default();
        self.live.forget_except(app_id, user.as_str(), &keep);
        let purged = self
            .store
            .mailbox_purge_devices(app_id, user.as_str(), &keep)
            .await?;
        metrics::counter!("hush_mailbox_purged_total", "app" => app_id.to_owned())
            .increment(purged);
        if purged > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(purged)
    }

    /// The connection of `device` is gone.
    pub fn disconnected(&self, app_id: &str, handle: &ConnHandle, device: &ConnDevice) {
        self.live.unregister(app_id, handle, device);
    }

    /// One maintenance round: deletes expired messages, then checkpoints
    /// the store if anything was deleted since the last round.
    pub async fn maintain(&self) -> Result<(), hush_store::StoreError> {
        let expired = self.store.mailbox_expire(ms(now_ms())).await?;
        if expired > 0 {
            metrics::counter!("hush_mailbox_expired_total").increment(expired);
            self.dirty.store(true, Ordering::Relaxed);
        }
        if self.dirty.swap(false, Ordering::Relaxed) && !self.store.checkpoint().await? {
            // Readers held the log: try again next round.
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Runs [`Mailbox::maintain`] every `maintenance_interval_ms` forever.
    pub async fn run_maintenance(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.maintenance_interval_ms);
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.maintain().await {
                tracing::warn!(error = %e, "mailbox maintenance failed");
            }
        }
    }
}

/// The lock of the live registry (poisoning is ignored: its maps stay
/// consistent between statements).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
