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
//! **Trust model.** The directory's log key is pinned: the one the app
//! configured with [`E2ee::pin_directory_key`] (printed by `hush
//! directory-key` at deploy time; any other key is refused), else the key
//! seen on first contact (trust on first use of the log). Every answer is
//! checked against it:
//! tree heads must be signed and consistent with the last trusted head
//! (persisted in the key store), and every record must carry a valid
//! inclusion proof. A directory that forks or rewrites its history is
//! reported as [`E2eeError::Log`], a replayed old head (signed longer ago
//! than [`E2ee::set_max_head_age`]) as [`E2eeError::StaleHead`]. The device
//! watches its own user: cards, revocations and identity changes it did not
//! make raise an [`OwnerAlarm`] ([`E2ee::owner_alarms`]). Every envelope
//! carries the sender's latest verified tree head (gossip): a receiver
//! shown another log than the sender sees a [`ForkDetected`] event on
//! [`E2ee::forks`] (both signed heads as evidence) and the message flagged
//! [`GossipCheck::Fork`]. Cards are bound to the user's identity
//! key; a change of a contact's identity key or device set raises a
//! [`KeyChanged`] event, and a contact the user marked verified (after
//! comparing [`safety numbers`](E2ee::safety_number)) cannot be sent to
//! after an identity change until re-verified.
//!
//! **Requests need a signed-in connection**: every directory call signs in
//! first ([`Client::signin`]), so the client needs a user authorizer that
//! signs in as this device's user.

//!
//! **Layout.** [`E2ee`] is a thin handle over parts with one job each,
//! sharing the device state (`state.rs`, locked only between awaits): the
//! directory client (`directory.rs`), this user's devices (`devices.rs`),
//! the identity backup (`backup.rs`), contact verification
//! (`verification.rs`), messaging (`messaging.rs`) and the offline mailbox
//! (`mailbox.rs`: device authentication, sending, the receiving task; its
//! reorder buffer in hush-crypto's `suite1::reorder`, its inbox and events in `inbox.rs`).
//!
//! **Mailbox.** [`E2ee::send_to_users`] queues an envelope in the server's
//! mailbox for every device of the users (and this user's other devices);
//! [`E2ee::start_mailbox`] receives them, in order and exactly once, into
//! the persisted [`inbox`](E2ee::inbox), reporting gaps, reordering,
//! duplicates and refused envelopes as [`MailboxEvent`]s.

mod backup;
mod devices;
mod directory;
mod error;
mod gossip;
mod inbox;
mod mailbox;
mod messaging;
mod owner;
mod state;
mod store;
#[cfg(test)]
mod tests;
mod verification;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::backup::BackupParams;
use hush_crypto::identity::{DeviceCard, DeviceId, IdentityPublicKey, Revocation};
use hush_crypto::safety::SafetyNumber;
use hush_crypto::suite1::ReplayGuard;
use hush_crypto::transparency::SignedTreeHead;
use hush_protocol::UserId;
use serde::Serialize;
use tokio::sync::broadcast;

pub use devices::CardRequest;
pub use error::E2eeError;
pub use gossip::{ForkDetected, GossipCheck};
pub use hush_crypto::suite1::reorder::{MAX_HELD, MAX_HELD_PER_STREAM};
/// The answer of [`E2ee::mailbox_status`] (hush-protocol's `mailbox.status`
/// result).
pub use hush_protocol::msgs::hush::Status as MailboxStatus;
pub use inbox::{
    CONVERSATION_PREFIX, InboxEntry, MailboxEvent, MailboxMessage, StreamRef, conversation_channel,
};
pub use mailbox::{
    INBOX_LIMIT, MAILBOX_EVENT, MAILBOX_MAX_AGE, PUSH_REORDER_WAIT, RESYNC_INTERVAL, SealedMessage,
    SentMessage,
};
pub use messaging::Message;
pub use owner::{DEFAULT_OWNER_CHECK_INTERVAL, OwnerAlarm};
pub use store::{DeviceData, KeyStore, StoreError, StoreKey};

use crate::client::{Channel, Client};
use crate::event::Event;
use backup::Backup;
use devices::Devices;
use directory::Directory;
use messaging::Messaging;
use state::{Shared, State};
use verification::Verification;

/// Outer name of suite 1 client events (private and presence channels).
pub const CLIENT_EVENT: &str = "client-hush-e2ee";
/// Outer name of suite 1 events triggered by a backend (any channel type).
pub const SERVER_EVENT: &str = "hush-e2ee";
/// How long a card this crate issues is valid.
pub const CARD_VALIDITY_SECS: u64 = 365 * 24 * 3600;
/// Default age after which a cached sender card is looked up again before
/// an envelope is opened ([`E2ee::set_cache_ttl`]).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// Default bound on the age of a tree head the directory serves
/// ([`E2ee::set_max_head_age`]).
pub const DEFAULT_MAX_HEAD_AGE: Duration =
    Duration::from_millis(hush_crypto::transparency::Freshness::DEFAULT_MAX_AGE_MS);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, millis)
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn b64(b: &[u8]) -> String {
    STANDARD.encode(b)
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
        // Envelopes accepted before a restart stay refused: every sender
        // stream's high-water mark and window come back.
        let mut guard = ReplayGuard::default();
        for (stream, state) in &data.streams {
            guard.restore(stream.clone(), *state);
        }
        let mut mailbox_guard = mailbox::new_guard();
        for (stream, state) in &data.mailbox_streams {
            mailbox_guard.restore(stream.clone(), *state);
        }
        let state = State {
            data,
            guard,
            mailbox_guard,
            cache_ttl: DEFAULT_CACHE_TTL,
            freshness: hush_crypto::transparency::Freshness::default(),
            owner_interval: DEFAULT_OWNER_CHECK_INTERVAL,
            trust_on_first_use: false,
            parsed: std::collections::HashMap::new(),
            gossip_checked: gossip::Checked::default(),
            heads: directory::KeptHeads::new(),
        };
        let shared = Arc::new(Shared::new(client, store, state));
        // The owner watch, when a runtime runs this (the task holds no
        // strong reference; it is aborted when the last handle is dropped).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let task = rt.spawn(owner::watch(Arc::downgrade(&shared)));
            *shared
                .watcher
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task.abort_handle());
        }
        Self { shared }
    }

    fn directory(&self) -> Directory<'_> {
        Directory::new(&self.shared)
    }

    fn devices(&self) -> Devices<'_> {
        Devices::new(&self.shared)
    }

    fn backup(&self) -> Backup<'_> {
        Backup::new(&self.shared)
    }

    fn verification(&self) -> Verification<'_> {
        Verification::new(&self.shared)
    }

    fn messaging(&self) -> Messaging<'_> {
        Messaging::new(&self.shared)
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// This device's user id.
    pub async fn user_id(&self) -> UserId {
        self.shared.with(|st| st.data.user.clone())
    }

    /// This device's id.
    pub async fn device_id(&self) -> DeviceId {
        self.shared.with(|st| st.data.device_id)
    }

    /// Runs `f` on the device's data (read only): card, trusted head, log key…
    pub async fn with_data<R>(&self, f: impl FnOnce(&DeviceData) -> R) -> R {
        self.shared.with(|st| f(&st.data))
    }

    /// Key-change events ([`KeyChanged`]), raised by lookups (explicit, and
    /// those done by [`send`](Self::send) and [`open`](Self::open)).
    pub fn key_changes(&self) -> broadcast::Receiver<KeyChanged> {
        self.shared.changes.subscribe()
    }

    /// Pins the key directory's log key (32 bytes, as `hush directory-key`
    /// prints it at deploy time): from then on this device refuses a
    /// directory signed by any other key ([`E2eeError::UntrustedDirectory`])
    /// instead of trusting the key the server presents on first use. Kept in
    /// the key store. Refused when the device already trusts another key
    /// (re-create the key store to move to another directory).
    pub async fn pin_directory_key(&self, key: &[u8; 32]) -> Result<(), E2eeError> {
        hush_crypto::transparency::LogPublicKey::from_bytes(key)?;
        self.shared.update(|st| {
            if let Some(trusted) = st.data.log_key() {
                directory::check_pinned(key, &trusted)?;
            }
            st.data.pinned_log_key = Some(*key);
            Ok(())
        })
    }

    /// Pins the key directory's VRF public key (32 bytes, as `hush
    /// directory-key` prints it): from then on this device refuses a
    /// directory with another VRF key ([`E2eeError::UntrustedDirectory`]).
    /// Kept in the key store; refused when the device already trusts
    /// another VRF key.
    pub async fn pin_directory_vrf_key(&self, key: &[u8; 32]) -> Result<(), E2eeError> {
        hush_crypto::transparency::proofs::VrfPublicKey::from_bytes(key)?;
        self.shared.update(|st| {
            if let Some(trusted) = st.data.vrf_key() {
                directory::check_pinned(key, &trusted)?;
            }
            st.data.pinned_vrf_key = Some(*key);
            Ok(())
        })
    }

    /// Allows (or forbids again) taking the key directory's keys from its
    /// first answer when the app pinned none: trust on first use of the
    /// directory. Off by default: a device that has not seen the directory
    /// yet refuses to use it ([`E2eeError::DirectoryNotPinned`]) until the
    /// app pins both keys ([`pin_directory_key`](Self::pin_directory_key),
    /// [`pin_directory_vrf_key`](Self::pin_directory_vrf_key); `hush
    /// directory-key` prints them at deploy time) or calls this. Not kept in
    /// the key store: an app setting, given at every start. Once the device
    /// trusts a directory, its keys are kept either way.
    pub async fn set_trust_on_first_use(&self, allow: bool) {
        self.shared.with(|st| st.trust_on_first_use = allow);
    }

    /// The pinned key directory VRF key, if any.
    pub async fn pinned_directory_vrf_key(&self) -> Option<[u8; 32]> {
        self.shared.with(|st| st.data.pinned_vrf_key)
    }

    /// The pinned key directory log key, if any.
    pub async fn pinned_directory_key(&self) -> Option<[u8; 32]> {
        self.shared.with(|st| st.data.pinned_log_key)
    }

    /// Owner alarms: cards, revocations and identity changes of this
    /// device's own user that this device did not make, found by the owner
    /// watch (when the client connects, and every
    /// [`owner check interval`](Self::set_owner_check_interval)) or by
    /// [`check_own_keys`](Self::check_own_keys). A card approved by another
    /// of the user's devices cannot be told apart from one a malicious
    /// server or a thief of the identity key added: ask the user, then
    /// [`acknowledge_own_devices`](Self::acknowledge_own_devices). The watch
    /// starts once this device has a card and trusts the log.
    pub fn owner_alarms(&self) -> broadcast::Receiver<OwnerAlarm> {
        self.shared.alarms.subscribe()
    }

    /// Looks this device's own user up now (verified as every lookup),
    /// raises an [`OwnerAlarm`] for everything this device did not make and
    /// returns them. Nothing is checked (empty) before this device has a
    /// card and trusts the log.
    pub async fn check_own_keys(&self) -> Result<Vec<OwnerAlarm>, E2eeError> {
        owner::check(&self.shared).await
    }

    /// Records that the user confirmed `devices` as their own: their cards,
    /// and their revocations, raise no more [`OwnerAlarm`]s on this device.
    pub async fn acknowledge_own_devices(&self, devices: &[DeviceId]) -> Result<(), E2eeError> {
        self.shared.update(|st| {
            st.data.known_devices.extend(devices.iter().copied());
            st.data.known_revocations.extend(devices.iter().copied());
            Ok(())
        })
    }

    /// How often the owner watch looks this user up besides on every
    /// connection (default [`DEFAULT_OWNER_CHECK_INTERVAL`]; the next check
    /// is `every` from now).
    pub async fn set_owner_check_interval(&self, every: Duration) {
        self.shared.with(|st| st.owner_interval = every);
        self.shared.wake.notify_one();
    }

    /// The oldest a tree head the directory serves may be (by its signed
    /// timestamp) before it is refused as [`E2eeError::StaleHead`] (default
    /// [`DEFAULT_MAX_HEAD_AGE`]): the directory signs a fresh head on every
    /// answer, so an old one is a replay freezing this device on an old
    /// view. Heads more than 5 minutes in the future are refused too.
    pub async fn set_max_head_age(&self, age: Duration) {
        self.shared.with(|st| st.freshness.max_age_ms = millis(age));
    }

    /// How old a cached sender card may be before [`open`](Self::open) looks
    /// the sender up again (default [`DEFAULT_CACHE_TTL`]; zero: always).
    pub async fn set_cache_ttl(&self, ttl: Duration) {
        self.shared.with(|st| st.cache_ttl = ttl);
    }

    /// Forks detected from the tree heads gossiped inside received envelopes
    /// (each opened message's head is compared with this device's trusted
    /// one): a [`ForkDetected`] carries both signed heads as evidence. The
    /// message itself is still returned, flagged [`GossipCheck::Fork`].
    pub fn forks(&self) -> broadcast::Receiver<ForkDetected> {
        self.shared.forks.subscribe()
    }

    /// Cross-checks a signed epoch head another client trusts (gossip: e.g.
    /// exchanged inside messages or when comparing safety numbers) against
    /// the heads this device accepted, or, for an epoch it has no head of,
    /// against the directory's own signed head of that epoch. Two clients
    /// shown different trees get
    /// [`E2eeError::Log`]`(`[`LogError::Fork`](hush_crypto::transparency::LogError::Fork)`)`.
    /// Share this device's head with [`DeviceData::trusted_signed_head`].
    pub async fn cross_check(&self, other: &SignedTreeHead) -> Result<(), E2eeError> {
        self.directory().cross_check(other).await
    }

    /// Looks users up and verifies every answer: the epoch head must be
    /// signed by the pinned key, fresh and not older than the trusted one;
    /// each user's entry must come with a lookup proof that it is the
    /// user's latest at that head (so nothing was left out); its cards must
    /// be bound to the entry's identity key, unexpired and unrevoked.
    /// Updates the card cache and raises [`KeyChanged`] events. At most 50
    /// users.
    pub async fn lookup(&self, users: &[&str]) -> Result<Vec<UserKeys>, E2eeError> {
        self.directory().lookup(users).await
    }

    /// Publishes this device's card (idempotent). The first device issues it
    /// with the identity key it holds; a secondary device publishes the card
    /// installed by [`install_card`](Self::install_card), or issues one after
    /// [`restore_identity`](Self::restore_identity). The answer's lookup
    /// proof must show the card in this user's latest entry.
    pub async fn publish(&self) -> Result<DeviceCard, E2eeError> {
        let card = self.devices().publish().await?;
        // The mailbox task may be waiting for a card to authenticate with.
        self.shared.mailbox_wake.notify_one();
        Ok(card)
    }

    /// On a device without the identity key: a request for a card, to be
    /// cross-signed by a device that has it ([`approve_device`](Self::approve_device)).
    /// The user's identity key is taken from a verified lookup.
    pub async fn card_request(&self) -> Result<CardRequest, E2eeError> {
        self.devices().card_request().await
    }

    /// On a device holding the identity key: cross-signs another device's
    /// [`CardRequest`] of the same user. Returns the complete card (give it
    /// to the new device: [`install_card`](Self::install_card)).
    pub async fn approve_device(&self, request: &CardRequest) -> Result<DeviceCard, E2eeError> {
        self.devices().approve_device(request)
    }

    /// Installs the card an existing device made for this device; then
    /// [`publish`](Self::publish).
    pub async fn install_card(&self, card: DeviceCard) -> Result<(), E2eeError> {
        self.devices().install_card(card)
    }

    /// Seals the identity key under `password` (Argon2id) for a backup.
    pub async fn backup_identity(
        &self,
        password: &[u8],
        params: BackupParams,
    ) -> Result<Vec<u8>, E2eeError> {
        self.backup().backup_identity(password, params)
    }

    /// Restores the identity key from a backup onto this device (which can
    /// then issue its own card: [`publish`](Self::publish)). The key must be
    /// the user's current identity in the directory, if the user has one.
    pub async fn restore_identity(&self, blob: &[u8], password: &[u8]) -> Result<(), E2eeError> {
        self.backup().restore_identity(blob, password).await
    }

    /// Revokes one of the user's devices (needs the identity key).
    pub async fn revoke_device(&self, device: DeviceId) -> Result<(), E2eeError> {
        self.devices().revoke_device(device).await
    }

    /// Whether an identity rotation was started and not finished (its new
    /// key is kept in the key store): call [`E2ee::rotate_identity`] again.
    pub async fn rotation_pending(&self) -> bool {
        self.devices().rotation_pending()
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
        self.devices().rotate_identity().await
    }

    /// The safety number between this user and `user` (looked up and
    /// verified first), for `hush verify` and in-app comparison.
    pub async fn safety_number(&self, user: &str) -> Result<SafetyNumber, E2eeError> {
        self.verification().safety_number(user).await
    }

    /// Marks `user` verified at their current identity key (after the users
    /// compared safety numbers). Sending to them is then refused if that key
    /// changes, until they are marked verified again.
    pub async fn mark_verified(&self, user: &str) -> Result<(), E2eeError> {
        self.verification().mark_verified(user).await
    }

    /// Removes the verified mark.
    pub async fn unverify(&self, user: &str) -> Result<(), E2eeError> {
        self.verification().unverify(user)
    }

    /// Whether `user` is marked verified and their cached identity is still
    /// the verified one.
    pub async fn is_verified(&self, user: &str) -> bool {
        self.verification().is_verified(user)
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
        self.messaging()
            .seal(channel, outer, event, data_json, users)
            .await
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
        self.messaging().send(channel, event, data, users).await
    }

    /// Opens a received [`CLIENT_EVENT`] or [`SERVER_EVENT`]: checks this
    /// device is listed, looks up the sender (cache, refreshed after the
    /// cache TTL or when the device is unknown), checks the sender's card
    /// against its directory-verified identity and the revocations, decrypts,
    /// verifies the signature and refuses replays. A sender already cached
    /// is opened without waiting for directory work in flight.
    pub async fn open(&self, event: &Event) -> Result<Message, E2eeError> {
        self.messaging().open(event).await
    }

    /// Starts the mailbox (idempotent) and returns a receiver of its
    /// events, subscribed before anything is fetched. The mailbox task then
    /// runs until the last handle of this `E2ee` is dropped: on every
    /// (re)connection, once this device has a published card, it proves
    /// which device it is (`device.auth`), fetches every queued message and
    /// handles `hush:mailbox` pushes in between. Each message is opened (the
    /// mailbox's own replay guard, window [`MAILBOX_MAX_AGE`]), saved in the
    /// [inbox](Self::inbox) with the guard's state in one key-store save,
    /// then acknowledged and announced as [`MailboxEvent::Message`], in
    /// sequence order per sender device and conversation. Not started by
    /// default: an app that does not use the mailbox makes no mailbox
    /// requests, and one that does subscribes before messages flow.
    ///
    /// ```rust,no_run
    /// use hush_client::e2ee::{E2ee, MailboxEvent};
    ///
    /// # async fn demo(e2ee: E2ee) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut events = e2ee.start_mailbox();
    /// e2ee.send_to_users("message", &serde_json::json!({"text": "hi"}), &["bob"]).await?;
    /// while let Ok(ev) = events.recv().await {
    ///     match ev {
    ///         MailboxEvent::Message(m) => println!("{}: {}", m.message.sender_user, m.message.data),
    ///         MailboxEvent::Gap { stream, first, last } => {
    ///             eprintln!("{} lost messages {first}..={last}", stream.sender_user)
    ///         }
    ///         other => eprintln!("{other:?}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn start_mailbox(&self) -> broadcast::Receiver<MailboxEvent> {
        mailbox::start(&self.shared)
    }

    /// Another receiver of the mailbox's events ([`MailboxEvent`]).
    pub fn mailbox_events(&self) -> broadcast::Receiver<MailboxEvent> {
        self.shared.mailbox_events.subscribe()
    }

    /// The persisted inbox: the newest [`INBOX_LIMIT`] mailbox messages
    /// this device opened, oldest first.
    pub async fn inbox(&self) -> Vec<InboxEntry> {
        self.shared
            .with(|st| st.data.inbox.iter().cloned().collect())
    }

    /// Proves on the current connection which device this is
    /// (`device.challenge`, `device.auth`; signs in first). Done by the
    /// mailbox calls when needed; a no-op when done on this socket already.
    pub async fn authenticate_device(&self) -> Result<(), E2eeError> {
        mailbox::ensure_device_auth(&self.shared).await
    }

    /// Seals `data` (as JSON) as event `event` for every device of `users`
    /// and this user's other devices, on the conversation channel of
    /// `users` and this user ([`conversation_channel`]), without sending it:
    /// give it to [`mailbox_send`](Self::mailbox_send), again if need be.
    pub async fn seal_for_users<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        users: &[&str],
    ) -> Result<SealedMessage, E2eeError> {
        mailbox::seal(&self.shared, event, data, users).await
    }

    /// Queues a sealed message in the server's mailbox (`mailbox.send`,
    /// after device authentication), retried across a lost connection.
    /// Sending the same [`SealedMessage`] again is safe: the server keeps
    /// one copy per message id and answers with the same id.
    pub async fn mailbox_send(&self, sealed: &SealedMessage) -> Result<SentMessage, E2eeError> {
        mailbox::send(&self.shared, sealed).await
    }

    /// Sends `data` (as JSON) as event `event`, end-to-end encrypted, to
    /// every device of `users` and this user's other devices through the
    /// mailbox: offline devices get it when they connect. Messages of one
    /// conversation (the set of users) carry contiguous sequence numbers
    /// per sending device, so receivers deliver them in order and see gaps.
    ///
    /// ```rust,no_run
    /// # async fn demo(e2ee: hush_client::e2ee::E2ee) -> Result<(), Box<dyn std::error::Error>> {
    /// let sent = e2ee.send_to_users("message", &serde_json::json!({"text": "hi"}), &["bob"]).await?;
    /// let status = e2ee.mailbox_status(&sent.message_id).await?;
    /// println!("{} of {} devices still to fetch it", status.pending.len(), status.recipients);
    /// # Ok(()) }
    /// ```
    pub async fn send_to_users<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
        users: &[&str],
    ) -> Result<SentMessage, E2eeError> {
        let sealed = self.seal_for_users(event, data, users).await?;
        self.mailbox_send(&sealed).await
    }

    /// Where a message this user sent stands (`mailbox.status`): devices it
    /// was queued for, and those that have not acknowledged it.
    pub async fn mailbox_status(&self, message_id: &str) -> Result<MailboxStatus, E2eeError> {
        mailbox::status(&self.shared, message_id).await
    }

    /// One fetch cycle now, acknowledging what it processed (what the
    /// mailbox task does on each connection).
    pub async fn mailbox_sync(&self) -> Result<(), E2eeError> {
        let mut rx = self.shared.mailbox.lock().await;
        mailbox::sync(&self.shared, &mut rx, &mut mailbox::Acks::Now).await
    }

    /// One fetch cycle that opens, saves and announces messages as
    /// [`mailbox_sync`](Self::mailbox_sync) does, but acknowledges nothing:
    /// returns the mailbox ids to acknowledge ([`mailbox_ack`](Self::mailbox_ack)).
    /// For apps that acknowledge in batches, and to test what a crash
    /// between saving and acknowledging does (the ids come back and are
    /// acknowledged as duplicates, never shown twice).
    pub async fn mailbox_sync_step(&self) -> Result<Vec<u64>, E2eeError> {
        let mut rx = self.shared.mailbox.lock().await;
        let mut acks = mailbox::Acks::Collect(Vec::new());
        mailbox::sync(&self.shared, &mut rx, &mut acks).await?;
        Ok(match acks {
            mailbox::Acks::Collect(ids) => ids,
            mailbox::Acks::Now => Vec::new(),
        })
    }

    /// Acknowledges mailbox ids (`mailbox.ack`); returns how many the server
    /// deleted.
    pub async fn mailbox_ack(&self, ids: &[u64]) -> Result<u64, E2eeError> {
        mailbox::ensure_device_auth(&self.shared).await?;
        mailbox::ack(&self.shared, ids).await
    }
}
