//! Public-key end-to-end encryption (suite 1, docs/E2EE-SUITE1.md) on top of
//! a [`Client`]: the device's key store, its card in the key directory,
//! verified lookups with key-change detection, and signed multi-recipient
//! envelopes on any channel.
//!
//! ```rust,no_run
//! use hush_client::Client;
//! use hush_client::e2ee::{E2ee, KeyStore, StoreKey};
//!
//! # async fn demo(client: Client) -> Result<(), Box<dyn std::error::Error>> {
//! let store = KeyStore::new("alice-phone.hks", StoreKey::generate());
//! // First device of the user: generates the identity and device keys.
//! let e2ee = E2ee::create(client.clone(), store, "alice", true)?;
//! e2ee.publish().await?;                       // signs in, publishes the card
//!
//! let room = client.subscribe("private-chat").await?;
//! e2ee.send(&room, "message", &serde_json::json!({"text": "hi"}), &["bob"]).await?;
//!
//! let mut incoming = client.bind(hush_client::e2ee::CLIENT_EVENT);
//! while let Some(ev) = incoming.recv().await {
//!     match e2ee.open(&ev).await {
//!         Ok(m) => println!("{} ({}) says {}", m.sender_user, m.sender_device, m.data),
//!         Err(e) => eprintln!("refused: {e}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! **Trust model.** The directory's log key is pinned on first contact
//! (trust on first use of the log) and every answer is checked against it:
//! tree heads must be signed and consistent with the last trusted head
//! (persisted in the key store), and every record must carry a valid
//! inclusion proof. A directory that forks or rewrites its history is
//! reported as [`E2eeError::Log`]. Cards are bound to the user's identity
//! key; a change of a contact's identity key or device set raises a
//! [`KeyChanged`] event, and a contact the user marked verified (after
//! comparing [`safety numbers`](E2ee::safety_number)) cannot be sent to
//! after an identity change until re-verified.
//!
//! **Requests need a signed-in connection**: every directory call signs in
//! first ([`Client::signin`]), so the client needs a user authorizer that
//! signs in as this device's user.

mod error;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::backup::{self, BackupParams};
use hush_crypto::identity::{
    DeviceCard, DeviceId, DeviceSigningPublicKey, EncryptionPublicKey, IdentityKey,
    IdentityPublicKey, Revocation, RevocationKind, SIGNATURE_LEN, UnsignedCard,
};
use hush_crypto::safety::SafetyNumber;
use hush_crypto::suite1::{
    self, Envelope, OpenError, Recipient, ReplayGuard, SealRequest, TrustedSender,
};
use hush_crypto::transparency::{Hash, LogEntry, LogMonitor, LogPublicKey, SignedTreeHead};
use hush_protocol::{ChannelName, EventName, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Mutex, broadcast};

pub use error::E2eeError;
pub use store::{DeviceData, KeyStore, StoreError, StoreKey};

use crate::client::{Channel, Client, MAX_CLIENT_EVENT_BYTES};
use crate::event::Event;
use store::{Accepted, LogPin, MAX_ACCEPTED};

/// Outer name of suite 1 client events (private and presence channels).
pub const CLIENT_EVENT: &str = "client-hush-e2ee";
/// Outer name of suite 1 events triggered by a backend (any channel type).
pub const SERVER_EVENT: &str = "hush-e2ee";
/// How long a card this crate issues is valid.
pub const CARD_VALIDITY_SECS: u64 = 365 * 24 * 3600;
/// Default age after which a cached sender card is looked up again before
/// an envelope is opened ([`E2ee::set_cache_ttl`]).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn b64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

fn unb64(v: &Value, what: &str) -> Result<Vec<u8>, E2eeError> {
    v.as_str()
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or_else(|| E2eeError::InvalidRecord(format!("{what} is not base64")))
}

fn hashes(v: &Value, what: &str) -> Result<Vec<Hash>, E2eeError> {
    let Some(list) = v.as_array() else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|h| {
            unb64(h, what)?
                .try_into()
                .map_err(|_| E2eeError::InvalidRecord(format!("{what}: not a 32-byte hash")))
        })
        .collect()
}

fn sth(v: &Value) -> Result<SignedTreeHead, E2eeError> {
    Ok(SignedTreeHead::from_bytes(&unb64(v, "head")?)?)
}

/// A contact's keys or device set changed (compared with the cache, on a
/// lookup). Subscribe with [`E2ee::key_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChanged {
    /// The user.
    pub user: String,
    /// The identity key changed (a rotation, or a directory attack): the
    /// safety number changed.
    pub identity_changed: bool,
    /// Devices that appeared.
    pub added: Vec<DeviceId>,
    /// Devices that disappeared (revoked, expired, or retired by a rotation).
    pub removed: Vec<DeviceId>,
    /// The user was marked verified (sending to them is now refused if the
    /// identity changed).
    pub was_verified: bool,
}

/// A user's keys as the directory proved them.
#[derive(Debug, Clone)]
pub struct UserKeys {
    /// The user.
    pub user: UserId,
    /// The identity key (`None`: the user has no active card).
    pub identity: Option<IdentityPublicKey>,
    /// Active, unexpired, unrevoked device cards.
    pub devices: Vec<DeviceCard>,
    /// Revocation records.
    pub revocations: Vec<Revocation>,
}

/// An opened and verified envelope.
#[derive(Clone)]
pub struct Message {
    /// The channel it arrived on.
    pub channel: String,
    /// The real event name (from inside the ciphertext).
    pub event: String,
    /// The plaintext, decoded as JSON when it is JSON (else a string).
    pub data: Value,
    /// The sender's user id (directory-verified).
    pub sender_user: String,
    /// The sending device.
    pub sender_device: DeviceId,
    /// The sender's random message id.
    pub message_id: [u8; 16],
    /// Sender time (Unix ms).
    pub timestamp_ms: u64,
    /// Whether the sender is a contact this device marked verified (and the
    /// identity key is still the verified one).
    pub verified_sender: bool,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("event", &self.event)
            .field("sender_user", &self.sender_user)
            .field("sender_device", &self.sender_device)
            .finish_non_exhaustive()
    }
}

/// A new device's request to be cross-signed by the identity key (carried to
/// an existing device by the application, e.g. as a QR code). Its text form
/// ([`CardRequest::to_text`]) is compact JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRequest {
    user: String,
    device: String,
    identity: String,
    signing: String,
    encryption: String,
    created: u64,
    expires: u64,
    signature: String,
}

impl CardRequest {
    /// The text form.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, E2eeError> {
        serde_json::from_str(text).map_err(|e| E2eeError::Invalid(format!("card request: {e}")))
    }

    fn body(&self) -> Result<(UnsignedCard, [u8; SIGNATURE_LEN]), E2eeError> {
        let bad = |w: &str| E2eeError::Invalid(format!("card request: bad {w}"));
        let key32 = |s: &str, w: &str| -> Result<[u8; 32], E2eeError> {
            STANDARD
                .decode(s)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad(w))
        };
        let device: [u8; 16] = hex::decode(&self.device)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("device"))?;
        let signature: [u8; SIGNATURE_LEN] = STANDARD
            .decode(&self.signature)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("signature"))?;
        Ok((
            UnsignedCard {
                user_id: UserId::parse(&self.user).map_err(|_| bad("user"))?,
                device_id: DeviceId(device),
                identity_key: IdentityPublicKey::from_bytes(&key32(&self.identity, "identity")?)?,
                signing_key: DeviceSigningPublicKey::from_bytes(&key32(&self.signing, "signing")?)?,
                encryption_key: EncryptionPublicKey::from_bytes(&key32(
                    &self.encryption,
                    "encryption",
                )?)?,
                created_at: self.created,
                expires_at: self.expires,
                previous: None,
            },
            signature,
        ))
    }
}

struct State {
    data: DeviceData,
    guard: ReplayGuard,
    cache_ttl: Duration,
    /// The card cache, parsed (signatures checked once, not per message).
    parsed: std::collections::HashMap<String, Parsed>,
}

/// One cached user's records, parsed.
#[derive(Clone)]
struct Parsed {
    identity: Option<IdentityPublicKey>,
    cards: Vec<DeviceCard>,
    revocations: Vec<Revocation>,
}

impl State {
    /// The parsed cache entry of `user` (parsed from the store on first use).
    fn parsed(&mut self, user: &str) -> Option<&Parsed> {
        if !self.parsed.contains_key(user) {
            let c = self.data.contacts.get(user)?;
            let decode = |s: &String| STANDARD.decode(s).ok();
            let p = Parsed {
                identity: decode(&c.identity)
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .and_then(|b| IdentityPublicKey::from_bytes(&b).ok()),
                cards: c
                    .cards
                    .iter()
                    .filter_map(decode)
                    .filter_map(|b| DeviceCard::from_bytes(&b).ok())
                    .collect(),
                revocations: c
                    .revocations
                    .iter()
                    .filter_map(decode)
                    .filter_map(|b| Revocation::from_bytes(&b).ok())
                    .collect(),
            };
            self.parsed.insert(user.to_owned(), p);
        }
        self.parsed.get(user)
    }
}

struct Shared {
    client: Client,
    store: KeyStore,
    state: Mutex<State>,
    changes: broadcast::Sender<KeyChanged>,
}

/// One device's E2EE on a [`Client`]. Cheap to clone. Every change of the
/// device's state (published card, trusted tree head, card cache, verified
/// contacts, send sequence) is saved to the [`KeyStore`] at once.
#[derive(Clone)]
pub struct E2ee {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for E2ee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2ee")
            .field("store", &self.shared.store.path())
            .finish_non_exhaustive()
    }
}

impl E2ee {
    /// Creates a new key store for `user` on this device (with a new identity
    /// key when `first_device`; a secondary device gets its card cross-signed
    /// later, through [`E2ee::card_request`] or [`E2ee::restore_identity`]).
    /// Refuses to overwrite an existing store.
    pub fn create(
        client: Client,
        store: KeyStore,
        user: &str,
        first_device: bool,
    ) -> Result<Self, E2eeError> {
        let user = UserId::parse(user).map_err(|e| E2eeError::Invalid(format!("user id: {e}")))?;
        let data = DeviceData::generate(user, first_device);
        store.create(&data)?;
        Ok(Self::from_data(client, store, data))
    }

    /// Opens an existing key store.
    pub fn open_store(client: Client, store: KeyStore) -> Result<Self, E2eeError> {
        let data = store.load()?;
        Ok(Self::from_data(client, store, data))
    }

    /// Opens the key store if it exists (it must belong to `user`), else
    /// creates it as [`create`](Self::create) does.
    pub fn open_or_create(
        client: Client,
        store: KeyStore,
        user: &str,
        first_device: bool,
    ) -> Result<Self, E2eeError> {
        if !store.exists() {
            return Self::create(client, store, user, first_device);
        }
        let data = store.load()?;
        if data.user.as_str() != user {
            return Err(E2eeError::Invalid(format!(
                "the key store belongs to user {:?}, not {user:?}",
                data.user.as_str()
            )));
        }
        Ok(Self::from_data(client, store, data))
    }

    fn from_data(client: Client, store: KeyStore, data: DeviceData) -> Self {
        let (changes, _) = broadcast::channel(256);
        // Envelopes accepted before a restart stay refused.
        let mut guard = ReplayGuard::default();
        for a in &data.accepted {
            let device = hex::decode(&a.device)
                .ok()
                .and_then(|v| <[u8; 16]>::try_from(v).ok());
            let id = hex::decode(&a.message_id)
                .ok()
                .and_then(|v| <[u8; 16]>::try_from(v).ok());
            if let (Some(device), Some(id), Ok(channel)) =
                (device, id, ChannelName::parse(&a.channel))
            {
                guard.commit(DeviceId(device), &channel, a.sequence, id);
            }
        }
        Self {
            shared: Arc::new(Shared {
                client,
                store,
                state: Mutex::new(State {
                    data,
                    guard,
                    cache_ttl: DEFAULT_CACHE_TTL,
                    parsed: std::collections::HashMap::new(),
                }),
                changes,
            }),
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// This device's user id.
    pub async fn user_id(&self) -> UserId {
        self.shared.state.lock().await.data.user.clone()
    }

    /// This device's id.
    pub async fn device_id(&self) -> DeviceId {
        self.shared.state.lock().await.data.device_id
    }

    /// Runs `f` on the device's data (read only): card, trusted head, log key…
    pub async fn with_data<R>(&self, f: impl FnOnce(&DeviceData) -> R) -> R {
        f(&self.shared.state.lock().await.data)
    }

    /// Key-change events ([`KeyChanged`]), raised by lookups (explicit, and
    /// those done by [`send`](Self::send) and [`open`](Self::open)).
    pub fn key_changes(&self) -> broadcast::Receiver<KeyChanged> {
        self.shared.changes.subscribe()
    }

    /// How old a cached sender card may be before [`open`](Self::open) looks
    /// the sender up again (default [`DEFAULT_CACHE_TTL`]; zero: always).
    pub async fn set_cache_ttl(&self, ttl: Duration) {
        self.shared.state.lock().await.cache_ttl = ttl;
    }

    fn save(&self, st: &State) -> Result<(), E2eeError> {
        Ok(self.shared.store.save(&st.data)?)
    }

    /// Before a card renewal: if the device still has the X25519 key of the
    /// card being replaced (`old`), draws a new one and saves it at once
    /// (before the new card is sent, so a lost answer cannot lose the key the
    /// directory may already list). A key stolen from this device stops
    /// opening what is sent after the renewal.
    fn renew_encryption_key(
        &self,
        st: &mut State,
        old: &EncryptionPublicKey,
    ) -> Result<(), E2eeError> {
        if st.data.keys.encryption_public_key() == *old {
            st.data.renew_encryption_key();
            self.save(st)?;
        }
        Ok(())
    }

    async fn request(&self, method: &str, params: Value) -> Result<Value, E2eeError> {
        let c = &self.shared.client;
        // Bounded: while offline, a sign-in waits for the next connection.
        tokio::time::timeout(c.request_timeout(), c.signin())
            .await
            .map_err(|_| E2eeError::Directory(crate::DirectoryError::Timeout))??;
        Ok(c.request(method, params).await?)
    }

    /// The log monitor: pinned key and trusted head; on first use, pins the
    /// key from `log.head` (trust on first use of the log).
    async fn monitor(&self, st: &mut State) -> Result<LogMonitor, E2eeError> {
        if let (Some(key), Some(head)) = (st.data.log_key(), st.data.trusted_head()) {
            let key = LogPublicKey::from_bytes(&key)?;
            return Ok(LogMonitor::resume(head.log_id.clone(), key, head));
        }
        let r = self.request("log.head", json!({})).await?;
        let key: [u8; 32] = unb64(&r["key"], "log key")?
            .try_into()
            .map_err(|_| E2eeError::InvalidRecord("log key length".into()))?;
        let head = sth(&r["head"])?;
        let mut m = LogMonitor::new(head.head.log_id.clone(), LogPublicKey::from_bytes(&key)?);
        m.update(&head, &[])?;
        pin(st, &head, &key);
        self.save(st)?;
        Ok(m)
    }

    /// Accepts the head a write returned (fetching the consistency proof
    /// from the trusted size) and checks that `leaf` is in it at `index`.
    async fn verify_write(
        &self,
        st: &mut State,
        leaf: &[u8],
        result: &Value,
    ) -> Result<u64, E2eeError> {
        let mut m = self.monitor(st).await?;
        let head = sth(&result["head"])?;
        let from = m.trusted().map_or(0, |t| t.size);
        let proof = if head.head.size > from && from > 0 {
            let r = self
                .request(
                    "log.consistency",
                    json!({"from": from, "to": head.head.size}),
                )
                .await?;
            hashes(&r["proof"], "consistency proof")?
        } else {
            Vec::new()
        };
        m.update(&head, &proof)?;
        let index = result["index"]
            .as_u64()
            .ok_or_else(|| E2eeError::InvalidRecord("no index".into()))?;
        m.verify_entry(leaf, index, &hashes(&result["proof"], "inclusion proof")?)?;
        let key = m_key(st);
        pin(st, &head, &key);
        Ok(index)
    }

    /// Appends `rev` to the directory and checks the write against the log.
    async fn publish_revocation(&self, st: &mut State, rev: Revocation) -> Result<(), E2eeError> {
        let leaf = LogEntry::Revocation(rev.clone()).to_bytes();
        let r = self
            .request(
                "directory.revoke",
                json!({"revocation": b64(&rev.to_bytes())}),
            )
            .await?;
        self.verify_write(st, &leaf, &r).await?;
        Ok(())
    }

    /// Appends this device's `card` to the directory, checks the write
    /// against the log, and keeps the card as this device's own.
    async fn publish_card(
        &self,
        st: &mut State,
        card: DeviceCard,
    ) -> Result<DeviceCard, E2eeError> {
        let leaf = LogEntry::Card(card.clone()).to_bytes();
        let r = self
            .request("directory.publish", json!({"card": b64(&card.to_bytes())}))
            .await?;
        self.verify_write(st, &leaf, &r).await?;
        st.data.card = Some(card.clone());
        self.save(st)?;
        Ok(card)
    }

    /// Cross-checks a signed tree head another client trusts (gossip: e.g.
    /// exchanged inside messages or when comparing safety numbers) against
    /// this device's trusted head, with a consistency proof fetched from the
    /// directory when the sizes differ. Two clients shown different logs get
    /// [`E2eeError::Log`]`(`[`LogError::Fork`](hush_crypto::transparency::LogError::Fork)`)`.
    /// Share this device's head with [`DeviceData::trusted_signed_head`].
    pub async fn cross_check(&self, other: &SignedTreeHead) -> Result<(), E2eeError> {
        let mut st = self.shared.state.lock().await;
        let m = self.monitor(&mut st).await?;
        let mine = m.trusted().map_or(0, |t| t.size);
        let theirs = other.head.size;
        let proof = if mine == theirs {
            Vec::new()
        } else {
            let r = self
                .request(
                    "log.consistency",
                    json!({"from": mine.min(theirs), "to": mine.max(theirs)}),
                )
                .await?;
            hashes(&r["proof"], "consistency proof")?
        };
        Ok(m.cross_check(other, &proof)?)
    }

    /// Looks users up and verifies every record against the log: the tree
    /// head must extend the trusted one (consistency proof from the trusted
    /// size), every card and revocation must be included in it, cards must
    /// be bound to one identity key, unexpired and unrevoked. Updates the
    /// card cache and raises [`KeyChanged`] events. At most 50 users.
    pub async fn lookup(&self, users: &[&str]) -> Result<Vec<UserKeys>, E2eeError> {
        let ids = users
            .iter()
            .map(|u| UserId::parse(u).map_err(|e| E2eeError::Invalid(format!("user {u:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut st = self.shared.state.lock().await;
        self.lookup_locked(&mut st, &ids).await
    }

    async fn lookup_locked(
        &self,
        st: &mut State,
        users: &[UserId],
    ) -> Result<Vec<UserKeys>, E2eeError> {
        let mut m = self.monitor(st).await?;
        let since = m.trusted().map_or(0, |t| t.size);
        let names: Vec<&str> = users.iter().map(UserId::as_str).collect();
        let r = match self
            .request("directory.lookup", json!({"users": names, "since": since}))
            .await
        {
            Ok(r) => r,
            Err(E2eeError::Directory(e))
                if e.code() == Some(&crate::request::ErrorCode::NotFound) =>
            {
                // The log is smaller than the size we trust: a rollback.
                let h = self.request("log.head", json!({})).await?;
                m.update(&sth(&h["head"])?, &[])?;
                return Err(E2eeError::Directory(e));
            }
            Err(e) => return Err(e),
        };
        let head = sth(&r["head"])?;
        m.update(&head, &hashes(&r["consistency"], "consistency proof")?)?;
        let key = m_key(st);
        pin(st, &head, &key);
        let now = now_secs();
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let entry = &r["users"][user.as_str()];
            let keys = verify_user(&m, user, entry, now)?;
            self.remember(st, &keys);
            out.push(keys);
        }
        self.save(st)?;
        Ok(out)
    }

    /// Updates the cache with verified keys; raises [`KeyChanged`].
    fn remember(&self, st: &mut State, keys: &UserKeys) {
        let identity = keys
            .identity
            .map(|k| b64(&k.to_bytes()))
            .unwrap_or_default();
        let cards: Vec<String> = keys.devices.iter().map(|c| b64(&c.to_bytes())).collect();
        let new_ids: BTreeSet<DeviceId> = keys.devices.iter().map(DeviceCard::device_id).collect();
        // Users without keys are not cached (envelopes name arbitrary
        // senders: they must not grow the store).
        if keys.identity.is_none() && !st.data.contacts.contains_key(keys.user.as_str()) {
            return;
        }
        let entry = st
            .data
            .contacts
            .entry(keys.user.as_str().to_owned())
            .or_default();
        let first = entry.fetched_ms == 0;
        if !first {
            let old_ids: BTreeSet<DeviceId> = entry
                .cards
                .iter()
                .filter_map(|c| STANDARD.decode(c).ok())
                .filter_map(|b| DeviceCard::from_bytes(&b).ok())
                .map(|c| c.device_id())
                .collect();
            let identity_changed = entry.identity != identity;
            if identity_changed || old_ids != new_ids {
                let ev = KeyChanged {
                    user: keys.user.as_str().to_owned(),
                    identity_changed,
                    added: new_ids.difference(&old_ids).copied().collect(),
                    removed: old_ids.difference(&new_ids).copied().collect(),
                    was_verified: entry.verified.is_some(),
                };
                tracing::info!(user = %ev.user, identity_changed, "hush-client: key change");
                let _ = self.shared.changes.send(ev);
            }
        }
        entry.identity = identity;
        entry.cards = cards;
        st.parsed.insert(
            keys.user.as_str().to_owned(),
            Parsed {
                identity: keys.identity,
                cards: keys.devices.clone(),
                revocations: keys.revocations.clone(),
            },
        );
        let Some(entry) = st.data.contacts.get_mut(keys.user.as_str()) else {
            return;
        };
        entry.revocations = keys
            .revocations
            .iter()
            .map(|r| b64(&r.to_bytes()))
            .collect();
        entry.fetched_ms = now_ms();
    }

    /// Publishes this device's card (idempotent). The first device issues it
    /// with the identity key it holds; a secondary device publishes the card
    /// installed by [`install_card`](Self::install_card), or issues one after
    /// [`restore_identity`](Self::restore_identity). The answer's inclusion
    /// proof is verified.
    pub async fn publish(&self) -> Result<DeviceCard, E2eeError> {
        let mut st = self.shared.state.lock().await;
        let me = st.data.user.clone();
        let own = self
            .lookup_locked(&mut st, std::slice::from_ref(&me))
            .await?;
        let card = match st.data.card.clone() {
            Some(c) if c.verify(&me, c.identity_key(), now_secs()).is_ok() => c,
            _ => {
                if st.data.identity.is_none() {
                    return Err(E2eeError::NoIdentityKey);
                }
                // The card this one renews: the directory's, else this
                // device's own last card (an expired one is not listed).
                let previous = own[0]
                    .devices
                    .iter()
                    .find(|c| c.device_id() == st.data.device_id)
                    .or(st.data.card.as_ref())
                    .map(|c| (c.id(), *c.encryption_key()));
                if let Some((_, key)) = previous {
                    self.renew_encryption_key(&mut st, &key)?;
                }
                let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
                issue(&st.data, identity, previous.map(|(id, _)| id))?
            }
        };
        if own[0].devices.iter().any(|c| c.id() == card.id()) {
            st.data.card = Some(card.clone());
            self.save(&st)?;
            return Ok(card);
        }
        self.publish_card(&mut st, card).await
    }

    /// On a device without the identity key: a request for a card, to be
    /// cross-signed by a device that has it ([`approve_device`](Self::approve_device)).
    /// The user's identity key is taken from a verified lookup.
    pub async fn card_request(&self) -> Result<CardRequest, E2eeError> {
        let mut st = self.shared.state.lock().await;
        let me = st.data.user.clone();
        let own = self
            .lookup_locked(&mut st, std::slice::from_ref(&me))
            .await?;
        let identity = own[0]
            .identity
            .ok_or_else(|| E2eeError::UnknownUser(me.to_string()))?;
        let now = now_secs();
        let body = UnsignedCard::new(
            me.clone(),
            st.data.device_id,
            &identity,
            &st.data.keys,
            now.saturating_sub(60),
            now + CARD_VALIDITY_SECS,
            None,
        );
        let sig = body.self_sign(&st.data.keys)?;
        Ok(CardRequest {
            user: me.as_str().to_owned(),
            device: hex::encode(st.data.device_id.0),
            identity: b64(&identity.to_bytes()),
            signing: b64(&body.signing_key.to_bytes()),
            encryption: b64(&body.encryption_key.to_bytes()),
            created: body.created_at,
            expires: body.expires_at,
            signature: b64(&sig),
        })
    }

    /// On a device holding the identity key: cross-signs another device's
    /// [`CardRequest`] of the same user. Returns the complete card (give it
    /// to the new device: [`install_card`](Self::install_card)).
    pub async fn approve_device(&self, request: &CardRequest) -> Result<DeviceCard, E2eeError> {
        let st = self.shared.state.lock().await;
        let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
        let (body, device_sig) = request.body()?;
        if body.user_id != st.data.user || body.identity_key != identity.public_key() {
            return Err(E2eeError::Card(
                hush_crypto::identity::CardError::IdentityMismatch,
            ));
        }
        let identity_sig = body.cross_sign(identity)?;
        Ok(DeviceCard::assemble(body, device_sig, identity_sig)?)
    }

    /// Installs the card an existing device made for this device; then
    /// [`publish`](Self::publish).
    pub async fn install_card(&self, card: DeviceCard) -> Result<(), E2eeError> {
        let mut st = self.shared.state.lock().await;
        let d = &st.data;
        if *card.user_id() != d.user
            || card.device_id() != d.device_id
            || *card.signing_key() != d.keys.signing_public_key()
            || *card.encryption_key() != d.keys.encryption_public_key()
        {
            return Err(E2eeError::Card(
                hush_crypto::identity::CardError::KeyMismatch,
            ));
        }
        st.data.card = Some(card);
        self.save(&st)
    }

    /// Seals the identity key under `password` (Argon2id) for a backup.
    pub async fn backup_identity(
        &self,
        password: &[u8],
        params: BackupParams,
    ) -> Result<Vec<u8>, E2eeError> {
        let st = self.shared.state.lock().await;
        let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
        Ok(backup::seal_identity(identity, password, params)?)
    }

    /// Restores the identity key from a backup onto this device (which can
    /// then issue its own card: [`publish`](Self::publish)). The key must be
    /// the user's current identity in the directory, if the user has one.
    pub async fn restore_identity(&self, blob: &[u8], password: &[u8]) -> Result<(), E2eeError> {
        let identity = backup::open_identity(blob, password)?;
        let mut st = self.shared.state.lock().await;
        let me = st.data.user.clone();
        let own = self
            .lookup_locked(&mut st, std::slice::from_ref(&me))
            .await?;
        if let Some(current) = own[0].identity
            && current != identity.public_key()
        {
            return Err(E2eeError::Card(
                hush_crypto::identity::CardError::IdentityMismatch,
            ));
        }
        st.data.identity = Some(identity);
        self.save(&st)
    }

    /// Revokes one of the user's devices (needs the identity key).
    pub async fn revoke_device(&self, device: DeviceId) -> Result<(), E2eeError> {
        let mut st = self.shared.state.lock().await;
        let me = st.data.user.clone();
        let own = self
            .lookup_locked(&mut st, std::slice::from_ref(&me))
            .await?;
        let identity = st.data.identity.as_ref().ok_or(E2eeError::NoIdentityKey)?;
        let card = own[0]
            .devices
            .iter()
            .find(|c| c.device_id() == device)
            .ok_or_else(|| E2eeError::Invalid(format!("no active device {device}")))?;
        let rev = Revocation::revoke_device(identity, card, now_secs())?;
        self.publish_revocation(&mut st, rev).await?;
        if device == st.data.device_id {
            st.data.card = None;
        }
        self.save(&st)
    }

    /// Whether an identity rotation was started and not finished (its new
    /// key is kept in the key store): call [`E2ee::rotate_identity`] again.
    pub async fn rotation_pending(&self) -> bool {
        self.shared
            .state
            .lock()
            .await
            .data
            .pending_identity
            .is_some()
    }

    /// Replaces the identity key: publishes the rotation (signed by the old
    /// and the new key), then a new card for this device under the new key.
    /// The user's other devices are retired and must be approved again.
    ///
    /// The new key is saved (as pending) before the rotation is sent: if the
    /// answer is lost, the directory may already require the new key, so a
    /// failed call is retried by calling again, which reuses that key and
    /// sends the rotation only if the directory does not show it yet.
    pub async fn rotate_identity(&self) -> Result<DeviceCard, E2eeError> {
        let mut st = self.shared.state.lock().await;
        let old = st.data.identity.clone().ok_or(E2eeError::NoIdentityKey)?;
        let new = match &st.data.pending_identity {
            Some(k) => k.clone(),
            None => {
                let k = IdentityKey::generate();
                st.data.pending_identity = Some(k.clone());
                self.save(&st)?;
                k
            }
        };
        let user = st.data.user.clone();
        let own = self
            .lookup_locked(&mut st, std::slice::from_ref(&user))
            .await?;
        let already = own.iter().flat_map(|u| &u.revocations).any(|r| {
            matches!(r.kind(), RevocationKind::IdentityRotation { new_identity }
                if *new_identity == new.public_key())
        });
        if !already {
            let rev = Revocation::rotate_identity(user, &old, &new, now_secs())?;
            self.publish_revocation(&mut st, rev).await?;
        }
        let previous = st.data.card.as_ref().map(|c| (c.id(), *c.encryption_key()));
        if let Some((_, key)) = previous {
            self.renew_encryption_key(&mut st, &key)?;
        }
        let card = issue(&st.data, &new, previous.map(|(id, _)| id))?;
        st.data.identity = Some(new);
        st.data.pending_identity = None;
        st.data.card = None;
        self.save(&st)?;
        self.publish_card(&mut st, card).await
    }

    /// The safety number between this user and `user` (looked up and
    /// verified first), for `hush verify` and in-app comparison.
    pub async fn safety_number(&self, user: &str) -> Result<SafetyNumber, E2eeError> {
        let keys = self.lookup(&[user]).await?;
        let remote = keys[0]
            .identity
            .ok_or_else(|| E2eeError::UnknownUser(user.to_owned()))?;
        let st = self.shared.state.lock().await;
        let local = own_identity(&st.data).ok_or(E2eeError::NotPublished)?;
        Ok(SafetyNumber::for_users(
            &st.data.user,
            &local,
            &keys[0].user,
            &remote,
        ))
    }

    /// Marks `user` verified at their current identity key (after the users
    /// compared safety numbers). Sending to them is then refused if that key
    /// changes, until they are marked verified again.
    pub async fn mark_verified(&self, user: &str) -> Result<(), E2eeError> {
        let keys = self.lookup(&[user]).await?;
        let identity = keys[0]
            .identity
            .ok_or_else(|| E2eeError::UnknownUser(user.to_owned()))?;
        let mut st = self.shared.state.lock().await;
        if let Some(c) = st.data.contacts.get_mut(user) {
            c.verified = Some(b64(&identity.to_bytes()));
        }
        self.save(&st)
    }

    /// Removes the verified mark.
    pub async fn unverify(&self, user: &str) -> Result<(), E2eeError> {
        let mut st = self.shared.state.lock().await;
        if let Some(c) = st.data.contacts.get_mut(user) {
            c.verified = None;
        }
        self.save(&st)
    }

    /// Whether `user` is marked verified and their cached identity is still
    /// the verified one.
    pub async fn is_verified(&self, user: &str) -> bool {
        let st = self.shared.state.lock().await;
        st.data
            .contacts
            .get(user)
            .is_some_and(|c| c.verified.as_deref() == Some(c.identity.as_str()))
    }

    /// Seals an envelope of `event`/`data_json` for every device of `users`
    /// (and this user's other devices) on `channel`, under the outer event
    /// name `outer` ([`CLIENT_EVENT`] or [`SERVER_EVENT`]). Returns the
    /// base64 `data` string: for a backend to trigger as [`SERVER_EVENT`]
    /// on any channel, or what [`send`](Self::send) sends. The recipients'
    /// keys are looked up (and verified) first.
    pub async fn seal(
        &self,
        channel: &str,
        outer: &str,
        event: &str,
        data_json: &str,
        users: &[&str],
    ) -> Result<String, E2eeError> {
        let channel = ChannelName::parse(channel).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let outer = EventName::parse_api(outer).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let inner = EventName::parse_api(event).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let mut st = self.shared.state.lock().await;
        if st.data.card.is_none() {
            return Err(E2eeError::NotPublished);
        }
        let me = st.data.user.clone();
        let mut ids: Vec<UserId> = vec![me.clone()];
        for u in users {
            let id =
                UserId::parse(u).map_err(|e| E2eeError::Invalid(format!("user {u:?}: {e}")))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let found = self.lookup_locked(&mut st, &ids).await?;
        let mut recipients: Vec<Recipient> = Vec::new();
        for keys in &found {
            let is_me = keys.user == me;
            if !is_me {
                let c = st.data.contacts.get(keys.user.as_str());
                if let Some(c) = c
                    && let Some(v) = &c.verified
                    && *v != c.identity
                {
                    return Err(E2eeError::KeyChangedSinceVerified(keys.user.to_string()));
                }
                if keys.devices.is_empty() {
                    return Err(E2eeError::NoDevices(keys.user.to_string()));
                }
            }
            recipients.extend(
                keys.devices
                    .iter()
                    .filter(|c| !(is_me && c.device_id() == st.data.device_id))
                    .map(Recipient::from),
            );
        }
        if recipients.is_empty() {
            return Err(E2eeError::NoDevices(me.to_string()));
        }
        st.data.sequence = st.data.sequence.saturating_add(1).max(now_ms());
        let req = SealRequest {
            sender_user: &me,
            sender_device: st.data.device_id,
            sender_keys: &st.data.keys,
            channel: &channel,
            event: &outer,
            inner_event: &inner,
            timestamp_ms: now_ms(),
            sequence: st.data.sequence,
            recipients: &recipients,
        };
        let limit = MAX_CLIENT_EVENT_BYTES - 2;
        let out = suite1::seal_with_limit(&req, data_json.as_bytes(), limit)?;
        self.save(&st)?;
        Ok(out)
    }

    /// Sends `data` (serialized as JSON) as event `event`, end-to-end
    /// encrypted for every device of `users` and this user's other devices,
    /// as a [`CLIENT_EVENT`] on a subscribed private or presence channel.
    pub async fn send<T: Serialize + ?Sized>(
        &self,
        channel: &Channel,
        event: &str,
        data: &T,
        users: &[&str],
    ) -> Result<(), E2eeError> {
        let name =
            ChannelName::parse(channel.name()).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        if !name.kind().allows_client_events() {
            return Err(E2eeError::Client(crate::Error::ClientEventsNotAllowed(
                name.to_string(),
            )));
        }
        let json = serde_json::to_string(data).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let envelope = self
            .seal(channel.name(), CLIENT_EVENT, event, &json, users)
            .await?;
        channel.trigger(CLIENT_EVENT, &envelope).await?;
        Ok(())
    }

    /// Opens a received [`CLIENT_EVENT`] or [`SERVER_EVENT`]: checks this
    /// device is listed, looks up the sender (cache, refreshed after the
    /// cache TTL or when the device is unknown), checks the sender's card
    /// against its directory-verified identity and the revocations, decrypts,
    /// verifies the signature and refuses replays.
    pub async fn open(&self, event: &Event) -> Result<Message, E2eeError> {
        if event.event != CLIENT_EVENT && event.event != SERVER_EVENT {
            return Err(E2eeError::NotAnEnvelope);
        }
        let Value::String(data) = &event.data else {
            return Err(E2eeError::NotAnEnvelope);
        };
        let env = Envelope::from_data(data)?;
        let h = env.header().clone();
        if Some(h.channel.as_str()) != event.channel.as_deref() || h.event.as_str() != event.event {
            return Err(E2eeError::WrongChannel);
        }
        let mut st = self.shared.state.lock().await;
        if !env.recipients().contains(&st.data.device_id) {
            return Err(E2eeError::Open(OpenError::NotARecipient));
        }
        let sender = h.sender_user.clone();
        let recent = st
            .data
            .contacts
            .get(sender.as_str())
            .is_some_and(|c| now_ms().saturating_sub(c.fetched_ms) < millis(st.cache_ttl));
        let known = st
            .parsed(sender.as_str())
            .is_some_and(|p| p.cards.iter().any(|c| c.device_id() == h.sender_device));
        if !(recent && known) {
            self.lookup_locked(&mut st, std::slice::from_ref(&sender))
                .await?;
        }
        let (verified, current) = st
            .data
            .contacts
            .get(sender.as_str())
            .map(|c| (c.verified.clone(), c.identity.clone()))
            .unwrap_or_default();
        let Parsed {
            identity,
            cards,
            revocations,
        } = st
            .parsed(sender.as_str())
            .cloned()
            .ok_or(E2eeError::Open(OpenError::UnknownSender))?;
        let identity = identity.ok_or(E2eeError::Open(OpenError::UnknownSender))?;
        let Some(card) = cards.into_iter().find(|c| c.device_id() == h.sender_device) else {
            let revoked = revocations.iter().any(|r| {
                r.verify(&sender, &identity).is_ok()
                    && matches!(r.kind(), RevocationKind::Device { device_id, .. } if *device_id == h.sender_device)
            });
            return Err(E2eeError::Open(if revoked {
                OpenError::RevokedSender
            } else {
                OpenError::UnknownSender
            }));
        };
        let trusted = TrustedSender {
            card: &card,
            identity: &identity,
            revocations: &revocations,
        };
        let State { data, guard, .. } = &mut *st;
        let opened = env.open(data.device_id, &data.keys, &trusted, guard, now_ms())?;
        data.accepted.push_back(Accepted {
            device: hex::encode(h.sender_device.0),
            channel: h.channel.to_string(),
            sequence: h.sequence,
            message_id: hex::encode(h.message_id),
        });
        while data.accepted.len() > MAX_ACCEPTED {
            data.accepted.pop_front();
        }
        // The message is already committed to the in-memory replay guard:
        // failing here would lose it for good (opening it again is a
        // replay). A failed save is logged; the next save persists the
        // accepted entry.
        if let Err(e) = self.save(&st) {
            tracing::warn!(error = %e, "hush-client: saving the key store after opening a message failed");
        }
        let text = String::from_utf8_lossy(&opened.plaintext);
        let value = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.to_string()));
        Ok(Message {
            channel: h.channel.to_string(),
            event: opened.event.to_string(),
            data: value,
            sender_user: sender.to_string(),
            sender_device: h.sender_device,
            message_id: h.message_id,
            timestamp_ms: h.timestamp_ms,
            verified_sender: verified.as_deref() == Some(current.as_str()),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn own_identity(d: &DeviceData) -> Option<IdentityPublicKey> {
    d.identity
        .as_ref()
        .map(IdentityKey::public_key)
        .or_else(|| d.card.as_ref().map(|c| *c.identity_key()))
}

fn issue(
    d: &DeviceData,
    identity: &IdentityKey,
    previous: Option<hush_crypto::identity::CardId>,
) -> Result<DeviceCard, E2eeError> {
    let now = now_secs();
    let body = UnsignedCard::new(
        d.user.clone(),
        d.device_id,
        &identity.public_key(),
        &d.keys,
        now.saturating_sub(60),
        now + CARD_VALIDITY_SECS,
        previous,
    );
    Ok(DeviceCard::issue(body, &d.keys, identity)?)
}

fn m_key(st: &State) -> [u8; 32] {
    st.data.log_key().unwrap_or([0; 32])
}

/// Records `sth` (just accepted by the monitor) as the trusted head.
fn pin(st: &mut State, sth: &SignedTreeHead, key: &[u8; 32]) {
    let t = &sth.head;
    st.data.log = Some(LogPin {
        log_id: t.log_id.clone(),
        key: b64(key),
        size: t.size,
        root: b64(&t.root),
        timestamp: t.timestamp,
        signed: b64(&sth.to_bytes()),
    });
}

/// Verifies one user's lookup entry against the (updated) monitor.
fn verify_user(
    m: &LogMonitor,
    user: &UserId,
    entry: &Value,
    now: u64,
) -> Result<UserKeys, E2eeError> {
    let bad = |w: String| E2eeError::InvalidRecord(format!("{user}: {w}"));
    let mut cards = Vec::new();
    let mut revocations = Vec::new();
    for (kind, list) in [
        ("cards", &entry["cards"]),
        ("revocations", &entry["revocations"]),
    ] {
        for e in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            let leaf = unb64(&e["record"], "record")?;
            let index = e["index"]
                .as_u64()
                .ok_or_else(|| bad("entry without index".into()))?;
            m.verify_entry(&leaf, index, &hashes(&e["proof"], "inclusion proof")?)?;
            match (kind, LogEntry::from_bytes(&leaf)) {
                ("cards", Ok(LogEntry::Card(c))) if c.user_id() == user => cards.push(c),
                ("revocations", Ok(LogEntry::Revocation(r))) if r.user_id() == user => {
                    revocations.push(r);
                }
                _ => return Err(bad(format!("unexpected record in {kind}"))),
            }
        }
    }
    let identity = match cards.first() {
        None => None,
        Some(first) => {
            let id = *first.identity_key();
            if cards.iter().any(|c| *c.identity_key() != id) {
                return Err(bad("cards under different identity keys".into()));
            }
            Some(id)
        }
    };
    let mut devices = Vec::with_capacity(cards.len());
    let mut seen = BTreeMap::new();
    for c in cards {
        let Some(id) = identity.as_ref() else { break };
        if seen.insert(c.device_id(), ()).is_some() {
            return Err(bad("two cards for one device".into()));
        }
        let revoked = revocations
            .iter()
            .any(|r| r.verify(user, id).is_ok() && r.revokes(&c));
        if !revoked && c.verify(user, id, now).is_ok() {
            devices.push(c);
        }
    }
    Ok(UserKeys {
        user: user.clone(),
        identity,
        devices,
        revocations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::identity::DeviceKeys;
    use hush_crypto::transparency::{LogKey, MerkleLog, TreeHead};

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    fn card(identity: &IdentityKey, created: u64, expires: u64) -> DeviceCard {
        let keys = DeviceKeys::generate();
        let body = UnsignedCard::new(
            alice(),
            DeviceId::random(),
            &identity.public_key(),
            &keys,
            created,
            expires,
            None,
        );
        DeviceCard::issue(body, &keys, identity).unwrap()
    }

    /// A log holding `entries`, a monitor trusting its head, and the lookup
    /// entry JSON the server would send for them.
    fn served(entries: &[LogEntry]) -> (LogMonitor, Value) {
        let key = LogKey::generate();
        let mut log = MerkleLog::new();
        for e in entries {
            log.append(&e.to_bytes());
        }
        let head = key.sign(TreeHead {
            log_id: "3".into(),
            size: log.size(),
            root: log.root(),
            timestamp: 1,
        });
        let mut m = LogMonitor::new("3", key.public_key());
        m.update(&head, &[]).unwrap();
        let json_of = |e: &LogEntry, i: u64| {
            let proof = log.inclusion_proof(i, log.size()).unwrap();
            json!({
                "record": b64(&e.to_bytes()),
                "index": i,
                "proof": proof.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            })
        };
        let mut cards = Vec::new();
        let mut revs = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match e {
                LogEntry::Card(_) => cards.push(json_of(e, i as u64)),
                LogEntry::Revocation(_) => revs.push(json_of(e, i as u64)),
            }
        }
        (m, json!({"cards": cards, "revocations": revs}))
    }

    #[test]
    fn lookups_are_checked_client_side() {
        let now = now_secs();
        let id = IdentityKey::generate();
        let good = card(&id, now - 10, now + 100);
        let expired = card(&id, now - 100, now - 1);
        let revoked = card(&id, now - 10, now + 100);
        let rev = Revocation::revoke_device(&id, &revoked, now).unwrap();
        let entries = [
            LogEntry::Card(good.clone()),
            LogEntry::Card(expired),
            LogEntry::Card(revoked),
            LogEntry::Revocation(rev),
        ];
        let (m, entry) = served(&entries);
        let keys = verify_user(&m, &alice(), &entry, now).unwrap();
        assert_eq!(keys.identity, Some(id.public_key()));
        assert_eq!(
            keys.devices.iter().map(DeviceCard::id).collect::<Vec<_>>(),
            vec![good.id()]
        );
        assert_eq!(keys.revocations.len(), 1);

        // A tampered proof, a record for another user, two identities.
        let mut bad = entry.clone();
        bad["cards"][0]["index"] = json!(1);
        assert!(matches!(
            verify_user(&m, &alice(), &bad, now),
            Err(E2eeError::Log(_))
        ));
        let bob = UserId::parse("bob").unwrap();
        assert!(matches!(
            verify_user(&m, &bob, &entry, now),
            Err(E2eeError::InvalidRecord(_))
        ));
        let other = IdentityKey::generate();
        let (m2, two) = served(&[
            LogEntry::Card(good),
            LogEntry::Card(card(&other, now - 10, now + 100)),
        ]);
        assert!(matches!(
            verify_user(&m2, &alice(), &two, now),
            Err(E2eeError::InvalidRecord(_))
        ));
        // A card presented as a revocation.
        let mut swapped = entry.clone();
        swapped["revocations"] = json!([entry["cards"][0].clone()]);
        assert!(matches!(
            verify_user(&m, &alice(), &swapped, now),
            Err(E2eeError::InvalidRecord(_))
        ));
    }

    /// The handle and its futures can move across tasks (`tokio::spawn`).
    #[allow(dead_code, clippy::extra_unused_type_parameters)]
    fn handles_and_futures_are_send() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>(_: &T) {}
        send_sync::<E2ee>();
        send_sync::<KeyChanged>();
        send_sync::<Message>();
        let f = |e: &E2ee, ev: &Event, ch: &Channel| {
            send(&e.open(ev));
            send(&e.send(ch, "m", &1, &["bob"]));
            send(&e.lookup(&["bob"]));
            send(&e.publish());
            send(&e.cross_check(&SignedTreeHead::from_bytes(&[]).unwrap()));
        };
        let _ = f;
    }

    #[test]
    fn card_requests_parse_strictly() {
        assert!(CardRequest::parse("{").is_err());
        let r = CardRequest {
            user: "alice".into(),
            device: "00".into(),
            identity: String::new(),
            signing: String::new(),
            encryption: String::new(),
            created: 0,
            expires: 1,
            signature: String::new(),
        };
        let back = CardRequest::parse(&r.to_text()).unwrap();
        assert_eq!(back, r);
        assert!(matches!(back.body(), Err(E2eeError::Invalid(_))));
    }
}
