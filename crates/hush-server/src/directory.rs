//! The key directory (docs/PROTOCOL-EXT.md §2, docs/KEY-TRANSPARENCY.md):
//! device cards and revocations published by signed-in users, committed per
//! app to an auditable key directory (Meta's akd: a sparse Merkle prefix
//! tree with VRF-hidden labels), served with lookup, history and
//! append-only proofs under epoch heads the server signs.
//!
//! The server only ever holds *public* keys here, plus its own head-signing
//! and VRF keys; nothing in the directory opens user content.
//!
//! Each app's directory is loaded from the store on first use. A write is
//! checked against the rules ([`DirectoryState`]), made durable in the
//! store, applied in memory, and marked pending; the app's next epoch
//! (at most [`DirectoryConfig::epoch_interval_ms`] later) commits every
//! pending user's new [`UserEntry`](hush_crypto::transparency::proofs::UserEntry)
//! to the tree, and only then is the write acknowledged, with the writer's
//! lookup proof. Records written but not yet in an epoch when the node
//! stopped are published when the app is next loaded.
//!
//! One signed-in user must not stall the directory for everyone (issue 13,
//! finding 12; docs/KEY-TRANSPARENCY.md "Limits"): a user has at most
//! [`DirectoryConfig::max_devices_per_user`] active devices, cards live at
//! most [`DirectoryConfig::max_card_lifetime_days`], writes are rate-capped
//! per user here and per connection in the session, lookup ids are
//! de-duplicated and answers bounded in bytes (paged through `more`), and
//! proofs are computed on a bounded set of blocking threads, never under
//! the lock writers of the app take; a lookup whose client is gone stops
//! (its future is dropped, which cancels the blocking work at the next
//! user).
//!
//! On a store shared by several nodes (PostgreSQL) the directory is one for
//! the cluster: one log and one pair of keys per app (the keys are created
//! once, by whichever node inserts first). Before a node answers (lookup,
//! history, head, audit, the mailbox's card reads) or checks a write, it
//! compares the app's log size and latest epoch in the database with what
//! it has loaded and catches up when another node moved them: the new
//! records are replayed and, if the epoch moved, the tree is opened again (a
//! new akd storage, so no stale cache answers). Epochs are published under a
//! cluster-wide lock per app ([`Store::directory_lock`]) by whichever node
//! runs its publication first, from the database's state read under that
//! lock: one linear log, no fork. Records another node wrote but has not
//! published yet are published by the next publication of any node.

mod limits;
mod tree;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::directory::DirectoryState;
use hush_crypto::identity::{DeviceCard, Revocation};
use hush_crypto::transparency::proofs::MAX_HISTORY_VERSIONS;
use hush_crypto::transparency::{Hash, LogEntry, LogKey, TreeHead};
use hush_protocol::UserId;
use hush_protocol::msgs::encode as wire;
use hush_protocol::msgs::hush::{
    Audit, ErrorCode, History, HushRequest, HushResponse, LogHead, Lookup, Published, RequestFrame,
};
use hush_store::{Store, StoreError};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::config::DirectoryConfig;
use limits::{Cancel, Jobs, WriteLimiter};
use tree::{Tree, Vrf};

/// Users one lookup may name.
pub const MAX_LOOKUP_USERS: usize = 50;
/// Epochs one `log.audit` answer may span.
pub const MAX_AUDIT_EPOCHS: u64 = 16;
/// How far ahead of the server's clock a card's `created_at` may be.
pub const MAX_CARD_CLOCK_SKEW_SECS: u64 = 3600;
/// How long a write waits for the epoch that publishes it.
const PUBLISH_WAIT: Duration = Duration::from_secs(30);
/// Name of the head-signing key in the store.
const LOG_KEY_NAME: &str = "directory-log-v1";
/// Name of the VRF key in the store.
const VRF_KEY_NAME: &str = "directory-vrf-v1";

/// Why a directory request failed; [`DirError::code`] is the stable code of
/// docs/PROTOCOL-EXT.md.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Missing or malformed parameters.
    #[error("{0}")]
    BadRequest(String),
    /// The method does not exist.
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    /// The connection has not signed in.
    #[error("sign in (pusher:signin) before using the key directory")]
    NotSignedIn,
    /// The record belongs to another user.
    #[error("{0}")]
    Forbidden(String),
    /// The record does not parse, verify or follow the directory's rules.
    #[error("{0}")]
    InvalidRecord(String),
    /// The record conflicts with the directory's state.
    #[error("{0}")]
    Conflict(String),
    /// Over a limit (a bad request on the HTTP API: 400, as the Pusher API
    /// answers parameters it refuses).
    #[error("{0}")]
    TooMany(String),
    /// Beyond the directory's last epoch, or a user with no entry.
    #[error("{0}")]
    NotFound(String),
    /// Too many writes for this user (`rate_limited`; HTTP 429).
    #[error("{0}")]
    RateLimited(String),
    /// The directory's workers are all busy and their queue is full, or the
    /// work was cancelled (`unavailable`; HTTP 503).
    #[error("{0}")]
    Busy(String),
    /// The store failed.
    #[error("the store is unavailable; retry shortly")]
    Unavailable(#[from] StoreError),
}

impl DirError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::UnknownMethod(_) => ErrorCode::UnknownMethod,
            Self::NotSignedIn => ErrorCode::NotSignedIn,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::InvalidRecord(_) => ErrorCode::InvalidRecord,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::TooMany(_) => ErrorCode::TooMany,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::Busy(_) | Self::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    /// The HTTP status for the same error on the HTTP API.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_)
            | Self::UnknownMethod(_)
            | Self::InvalidRecord(_)
            | Self::TooMany(_) => 400,
            Self::NotSignedIn => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::RateLimited(_) => 429,
            Self::Busy(_) | Self::Unavailable(_) => 503,
        }
    }
}

/// A published epoch: its root, when it was published, and how many of
/// the app's records it covers.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    epoch: u64,
    root: Hash,
    published_ms: u64,
    log_size: u64,
}

/// One app's directory, in memory once loaded.
struct AppLog {
    state: DirectoryState,
    /// Records stored.
    size: u64,
    /// Users with an entry in the tree.
    published: HashSet<UserId>,
    /// Users whose entry changed since the last epoch.
    pending: BTreeSet<UserId>,
    /// An epoch publication is scheduled or running.
    scheduled: bool,
    tree: Tree,
    /// The latest published epoch (earlier ones are in the store).
    last: Option<Epoch>,
}

/// One app's slot: the loaded directory (locked, asynchronously, by writers
/// across the store's commit and by readers only to copy what they need)
/// and the number of records the latest epoch covers (writers wait on it).
struct AppSlot {
    app_id: String,
    log: tokio::sync::Mutex<Option<AppLog>>,
    covered: watch::Sender<u64>,
}

/// What loading and publishing an app's directory need.
#[derive(Clone)]
struct Publisher {
    interval: Duration,
    store: Store,
    vrf: Vrf,
}

/// How long a publication waits for another node's to end.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// Loads retried when another node published in the middle of one.
const LOAD_ATTEMPTS: usize = 5;
/// Appends retried when another node took the index first.
const APPEND_ATTEMPTS: usize = 5;

/// The key directory of every app on this node.
pub struct Directory {
    store: Store,
    key: Arc<LogKey>,
    vrf: Vrf,
    vrf_public: [u8; 32],
    apps: Mutex<HashMap<String, Arc<AppSlot>>>,
    limits: DirectoryConfig,
    writes: WriteLimiter,
    jobs: Jobs,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("log_key", &self.key.public_key())
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn now_ms() -> u64 {
    u64::try_from(hush_store::now_ms()).unwrap_or(0)
}

fn decode_record(text: &str, what: &str) -> Result<Vec<u8>, DirError> {
    STANDARD
        .decode(text)
        .map_err(|_| DirError::BadRequest(format!("params.{what} must be standard base64")))
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut seed);
    seed
}

impl Directory {
    /// The directory over `store`, with the node's head-signing and VRF keys
    /// (created in the store on first start).
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let seed = store
            .server_key(LOG_KEY_NAME, || *LogKey::generate().to_secret_bytes())
            .await?;
        let vrf_seed: Zeroizing<[u8; 32]> = store.server_key(VRF_KEY_NAME, random_seed).await?;
        let vrf = Vrf::new(vrf_seed);
        let vrf_public = vrf
            .public_key()
            .await
            .map_err(|e| StoreError::Corrupt(format!("directory VRF key: {e}")))?;
        let limits = DirectoryConfig::default();
        Ok(Self {
            key: Arc::new(LogKey::from_secret_bytes(&seed)),
            vrf,
            vrf_public,
            store,
            apps: Mutex::new(HashMap::new()),
            writes: WriteLimiter::new(limits.writes_per_user_per_minute),
            jobs: Jobs::new(limits.workers, limits.max_queued),
            limits,
        })
    }

    /// The same directory under `limits` (`[directory]` of the
    /// configuration) instead of the defaults.
    pub fn with_limits(mut self, limits: DirectoryConfig) -> Self {
        self.writes = WriteLimiter::new(limits.writes_per_user_per_minute);
        self.jobs = Jobs::new(limits.workers, limits.max_queued);
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &DirectoryConfig {
        &self.limits
    }

    /// The head-signing public key clients pin, base64 (`hush directory-key`
    /// prints it).
    pub fn public_key(&self) -> String {
        b64(&self.key.public_key().to_bytes())
    }

    /// The VRF public key clients pin, base64 (`hush directory-key` prints
    /// it).
    pub fn vrf_public_key(&self) -> String {
        b64(&self.vrf_public)
    }

    fn slot(&self, app_id: &str) -> Arc<AppSlot> {
        let mut apps = self
            .apps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        apps.entry(app_id.to_owned())
            .or_insert_with(|| {
                Arc::new(AppSlot {
                    app_id: app_id.to_owned(),
                    log: tokio::sync::Mutex::new(None),
                    covered: watch::Sender::new(0),
                })
            })
            .clone()
    }

    fn publisher(&self) -> Publisher {
        Publisher {
            interval: Duration::from_millis(self.limits.epoch_interval_ms),
            store: self.store.clone(),
            vrf: self.vrf.clone(),
        }
    }

    /// Runs `f` on the app's loaded directory (loading it first, or again
    /// when another node sharing the store moved it).
    async fn with_log<T>(
        &self,
        slot: &Arc<AppSlot>,
        f: impl FnOnce(&mut AppLog) -> Result<T, DirError>,
    ) -> Result<T, DirError> {
        let mut guard = slot.log.lock().await;
        f(self.publisher().current(slot, &mut guard).await?)
    }
}

impl Publisher {
    /// The app's directory as the store holds it now: the loaded one if the
    /// store is this node's own or nobody moved it, else loaded again. On a
    /// shared store, records no epoch covers get a publication scheduled.
    async fn current<'g>(
        &self,
        slot: &Arc<AppSlot>,
        guard: &'g mut Option<AppLog>,
    ) -> Result<&'g mut AppLog, DirError> {
        if self.store.is_shared() {
            self.sync(slot, guard).await?;
        }
        let log = match guard {
            Some(log) => log,
            empty @ None => empty.insert(self.load(slot).await?),
        };
        if self.store.is_shared() && !log.pending.is_empty() && !log.scheduled {
            log.scheduled = true;
            schedule(slot.clone(), self.clone());
        }
        Ok(log)
    }

    /// Brings the loaded directory (if any) up to what the store holds: when
    /// another node appended records or published epochs, the new records
    /// are replayed onto it and, if the epoch moved, its tree is opened
    /// again (a new akd storage: nothing stale stays cached). Anything else
    /// (the store went back: a restored backup), or a failure half-way, and
    /// the app is loaded again from scratch.
    async fn sync(&self, slot: &AppSlot, guard: &mut Option<AppLog>) -> Result<(), DirError> {
        let app_id = slot.app_id.as_str();
        let Some(log) = guard.as_mut() else {
            return Ok(());
        };
        let size = self.store.directory_size(app_id).await?;
        let epoch = self.store.latest_epoch_head(app_id).await?.map(|h| h.epoch);
        let last = log.last.map(|e| e.epoch);
        if size == log.size && epoch == last {
            return Ok(());
        }
        tracing::debug!(
            app = app_id,
            size,
            ?epoch,
            "key directory moved on another node"
        );
        if size >= log.size && epoch >= last {
            match self.refresh(slot, log).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    *guard = None;
                    return Err(e);
                }
            }
        }
        *guard = None;
        *guard = Some(self.load(slot).await?);
        Ok(())
    }

    /// The incremental part of [`Publisher::sync`]: `log` only lags behind.
    /// On an error `log` is left half-way: drop it.
    async fn refresh(&self, slot: &AppSlot, log: &mut AppLog) -> Result<(), DirError> {
        let app_id = slot.app_id.as_str();
        let epoch = self.store.latest_epoch_head(app_id).await?.map(|h| h.epoch);
        if epoch != log.last.map(|e| e.epoch) {
            let (tree, last) = self.open_tree(app_id).await?;
            log.tree = tree;
            log.last = last;
        }
        let covered = log.last.map_or(0, |e| e.log_size);
        let mut loaded = Loaded {
            state: std::mem::replace(&mut log.state, DirectoryState::new()),
            size: log.size,
            covered,
            published: std::mem::take(&mut log.published),
            pending: std::mem::take(&mut log.pending),
        };
        settle(&mut loaded);
        let loaded = self.read_records(app_id, loaded).await?;
        log.state = loaded.state;
        log.size = loaded.size;
        log.published = loaded.published;
        log.pending = loaded.pending;
        slot.covered.send_replace(covered);
        Ok(())
    }

    /// Replays the records of the store from `loaded.size` on.
    async fn read_records(&self, app_id: &str, mut loaded: Loaded) -> Result<Loaded, DirError> {
        loop {
            let start = loaded.size;
            let batch = self
                .store
                .directory_leaves(
                    app_id,
                    start,
                    start + hush_store::directory::MAX_LEAVES_PER_READ,
                )
                .await?;
            if batch.is_empty() {
                return Ok(loaded);
            }
            // Replaying verifies every signature: CPU work, kept off the
            // async workers.
            let app = app_id.to_owned();
            loaded = tokio::task::spawn_blocking(move || replay(&app, loaded, batch))
                .await
                .map_err(|_| DirError::Busy("key directory load was interrupted".into()))??;
        }
    }

    /// The tree and its last head, consistent: on a shared store another
    /// node may publish between the two reads (then they are read again).
    async fn open_tree(&self, app_id: &str) -> Result<(Tree, Option<Epoch>), DirError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tree = Tree::open(self.store.akd_db(app_id), self.vrf.clone()).await?;
            let last = self.store.latest_epoch_head(app_id).await?.map(epoch_of);
            let (current, _) = tree.current().await?;
            if current == last.map_or(0, |e| e.epoch) {
                return Ok((tree, last));
            }
            if !self.store.is_shared() || attempt >= LOAD_ATTEMPTS {
                // Heads are recorded in the publication's own transaction: a
                // tree at another epoch than its last head was altered.
                return Err(StoreError::Corrupt(format!(
                    "key directory of app {app_id}: the tree is at epoch {current}, its last \
                     recorded head at {}",
                    last.map_or(0, |e| e.epoch)
                ))
                .into());
            }
        }
    }

    async fn load(&self, slot: &AppSlot) -> Result<AppLog, DirError> {
        let app_id = slot.app_id.as_str();
        let (tree, last) = self.open_tree(app_id).await?;
        let covered = last.map_or(0, |e| e.log_size);
        let loaded = Loaded {
            state: DirectoryState::new(),
            size: 0,
            covered,
            published: HashSet::new(),
            pending: BTreeSet::new(),
        };
        let loaded = self.read_records(app_id, loaded).await?;
        let mut log = AppLog {
            state: loaded.state,
            size: loaded.size,
            published: loaded.published,
            pending: loaded.pending,
            scheduled: false,
            tree,
            last,
        };
        // Records stored but in no epoch yet (the node stopped before
        // publishing them, or the tree is new): publish them now, so every
        // answer after a load covers every record. On a shared store another
        // node may be publishing them: they wait for a publication under the
        // cluster's lock (see `current`).
        if !log.pending.is_empty() && !self.store.is_shared() {
            let users = std::mem::take(&mut log.pending);
            let updates = entries_of(&log.state, &users);
            let at = now_ms();
            let (epoch, root) = log.tree.publish(updates, loaded.size, at).await?;
            record_epoch(
                slot,
                &mut log,
                users,
                Epoch {
                    epoch,
                    root,
                    published_ms: at,
                    log_size: loaded.size,
                },
            );
        }
        slot.covered
            .send_replace(log.last.map_or(0, |e| e.log_size));
        tracing::debug!(app = app_id, records = log.size, "key directory loaded");
        Ok(log)
    }
}

impl Directory {
    /// Checks and stores one entry for `user`, then waits for the epoch
    /// that publishes it; answers with that epoch's head and the user's
    /// lookup proof.
    async fn append(
        &self,
        app_id: &str,
        user: &UserId,
        entry: LogEntry,
    ) -> Result<Published, DirError> {
        let slot = self.slot(app_id);
        let max_devices = self.limits.max_devices_per_user;
        let store = &self.store;
        let publisher = self.publisher();
        let leaf = entry.to_bytes();
        let mut attempt = 0;
        let index = loop {
            attempt += 1;
            let mut guard = slot.log.lock().await;
            let log = publisher.current(&slot, &mut guard).await?;
            if let LogEntry::Card(card) = &entry {
                check_device_cap(&log.state, card, max_devices)?;
            }
            log.state.check(&entry).map_err(|e| match e {
                hush_crypto::directory::RuleError::BrokenChain => DirError::Conflict(e.to_string()),
                _ => DirError::InvalidRecord(e.to_string()),
            })?;
            let index = log.size;
            if !store
                .directory_append(app_id, index, &leaf, user.as_str())
                .await?
            {
                // Another writer (another node on this store) took the
                // index first: reload and check the entry again against
                // the log as it now is.
                *guard = None;
                if attempt < APPEND_ATTEMPTS {
                    continue;
                }
                return Err(DirError::Conflict(
                    "the directory moved on; retry the request".into(),
                ));
            }
            log.state
                .apply(&entry, index)
                .map_err(|e| DirError::InvalidRecord(e.to_string()))?;
            log.size += 1;
            log.pending.insert(user.clone());
            if !log.scheduled {
                log.scheduled = true;
                schedule(slot.clone(), publisher);
            }
            break index;
        };
        let mut covered = slot.covered.subscribe();
        tokio::time::timeout(PUBLISH_WAIT, covered.wait_for(|c| *c > index))
            .await
            .map_err(|_| DirError::Busy("the directory's epoch is late; retry".into()))?
            .map_err(|_| DirError::Busy("the directory is shutting down".into()))?;
        let (head, mut proofs) = self.proofs(&slot, vec![user.clone()], usize::MAX).await?;
        let proof = proofs
            .pop()
            .ok_or_else(|| DirError::Busy("no proof for the written entry".into()))?;
        Ok(Published {
            head,
            proof: b64(&proof.proof),
        })
    }

    /// Signs the head of `epoch` at `timestamp`.
    fn sign(&self, app_id: &str, (epoch, root): (u64, Hash), timestamp: u64) -> String {
        let head = TreeHead {
            log_id: app_id.to_owned(),
            epoch,
            root,
            timestamp,
        };
        b64(&self.key.sign(head).to_bytes())
    }

    /// Lookup proofs for `users` (which all have entries), on a directory
    /// worker; the signed head they are for.
    async fn proofs(
        &self,
        slot: &Arc<AppSlot>,
        users: Vec<UserId>,
        max_bytes: usize,
    ) -> Result<(String, Vec<tree::UserProof>), DirError> {
        let tree = self.with_log(slot, |log| Ok(log.tree.clone())).await?;
        let _job = self.jobs.enter().await?;
        let cancel = Cancel::default();
        let (at, proofs) = tree.lookup(users, max_bytes, cancel.token()).await?;
        Ok((self.sign(&slot.app_id, at, now_ms()), proofs))
    }

    /// The current cards of `users`' active devices (published, not
    /// revoked, not expired at `now_secs`), writes not yet in an epoch
    /// included: what the mailbox routes to.
    pub async fn active_cards(
        &self,
        app_id: &str,
        users: &[UserId],
        now_secs: u64,
    ) -> Result<HashMap<UserId, Vec<DeviceCard>>, DirError> {
        let slot = self.slot(app_id);
        self.with_log(&slot, |log| {
            Ok(users
                .iter()
                .filter_map(|u| {
                    let state = log.state.user(u)?;
                    let cards = state
                        .active_cards()
                        .into_iter()
                        .filter(|d| d.card.body().expires_at > now_secs)
                        .map(|d| d.card.clone())
                        .collect();
                    Some((u.clone(), cards))
                })
                .collect())
        })
        .await
    }

    /// `directory.publish`: a device card of the signed-in user.
    pub async fn publish(
        &self,
        app_id: &str,
        user: &UserId,
        card: &str,
    ) -> Result<Published, DirError> {
        let bytes = decode_record(card, "card")?;
        let card = DeviceCard::from_bytes(&bytes)
            .map_err(|e| DirError::InvalidRecord(format!("card: {e}")))?;
        if card.user_id() != user {
            return Err(DirError::Forbidden(
                "the card is for another user than the signed-in one".into(),
            ));
        }
        let now_secs = now_ms() / 1000;
        let body = card.body();
        if body.expires_at <= now_secs {
            return Err(DirError::InvalidRecord("card: card has expired".into()));
        }
        if body.created_at > now_secs.saturating_add(MAX_CARD_CLOCK_SKEW_SECS) {
            return Err(DirError::InvalidRecord(
                "card: created_at is in the future".into(),
            ));
        }
        let days = self.limits.max_card_lifetime_days;
        if body.expires_at.saturating_sub(body.created_at) > days.saturating_mul(86_400) {
            return Err(DirError::InvalidRecord(format!(
                "card: expires_at is more than {days} days after created_at"
            )));
        }
        self.append(app_id, user, LogEntry::Card(card)).await
    }

    /// `directory.revoke`: a revocation by the signed-in user.
    pub async fn revoke(
        &self,
        app_id: &str,
        user: &UserId,
        record: &str,
    ) -> Result<Published, DirError> {
        let bytes = decode_record(record, "revocation")?;
        let rev = Revocation::from_bytes(&bytes)
            .map_err(|e| DirError::InvalidRecord(format!("revocation: {e}")))?;
        if rev.user_id() != user {
            return Err(DirError::Forbidden(
                "the revocation is for another user than the signed-in one".into(),
            ));
        }
        self.append(app_id, user, LogEntry::Revocation(rev)).await
    }

    /// `directory.lookup`: the lookup proofs (each carrying the user's
    /// entry) of up to 50 users, at one epoch. Repeated ids are answered
    /// once; users without an entry are left out; users that do not fit in
    /// [`DirectoryConfig::max_lookup_bytes`] are named in `more`.
    ///
    /// Proofs are computed on one of the directory's blocking workers
    /// (waiting for one while they are busy, `unavailable` when too many
    /// wait), and dropping the returned future stops the work.
    pub async fn lookup(&self, app_id: &str, users: &[String]) -> Result<Lookup, DirError> {
        if users.is_empty() {
            return Err(DirError::BadRequest("name at least one user".into()));
        }
        if users.len() > MAX_LOOKUP_USERS {
            return Err(DirError::TooMany(format!(
                "Too many users: a lookup names at most {MAX_LOOKUP_USERS}, this one names {}",
                users.len()
            )));
        }
        let mut seen = HashSet::new();
        let mut ids = Vec::with_capacity(users.len());
        for u in users {
            let id =
                UserId::parse(u).map_err(|e| DirError::BadRequest(format!("user {u:?}: {e}")))?;
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        }
        let slot = self.slot(app_id);
        let present: Vec<UserId> = self
            .with_log(&slot, |log| {
                Ok(ids
                    .iter()
                    .filter(|u| log.published.contains(*u))
                    .cloned()
                    .collect())
            })
            .await?;
        let (head, proofs) = self
            .proofs(&slot, present.clone(), self.limits.max_lookup_bytes)
            .await?;
        // The first user with an entry that did not fit, if any.
        let cut = present.get(proofs.len()).cloned();
        let answered: BTreeMap<String, String> = proofs
            .into_iter()
            .map(|p| (p.user.as_str().to_owned(), b64(&p.proof)))
            .collect();
        // Everyone from the first user that did not fit, in request order.
        let more = match cut {
            None => Vec::new(),
            Some(first) => ids
                .iter()
                .skip_while(|u| **u != first)
                .map(|u| u.as_str().to_owned())
                .collect(),
        };
        Ok(Lookup {
            head,
            more,
            users: answered,
        })
    }

    /// `directory.history`: the history proof of `user`'s own `versions`
    /// most recent entries (1–64).
    pub async fn history(
        &self,
        app_id: &str,
        user: &UserId,
        versions: Option<u64>,
    ) -> Result<History, DirError> {
        let versions = versions.unwrap_or(1);
        let max = MAX_HISTORY_VERSIONS as u64;
        if versions == 0 || versions > max {
            return Err(DirError::BadRequest(format!(
                "params.versions must be between 1 and {max}"
            )));
        }
        let slot = self.slot(app_id);
        let tree = self
            .with_log(&slot, |log| {
                if log.published.contains(user) {
                    Ok(log.tree.clone())
                } else {
                    Err(DirError::NotFound(
                        "the user has no directory entry yet".into(),
                    ))
                }
            })
            .await?;
        let _job = self.jobs.enter().await?;
        let (at, proof) = tree.history(user.clone(), versions as usize).await?;
        Ok(History {
            head: self.sign(app_id, at, now_ms()),
            proof: b64(&proof),
            versions,
        })
    }

    /// `log.head`: the current signed epoch head (or, given `epoch`, that
    /// past epoch's head, signed with the time it was published) and the
    /// directory's keys.
    pub async fn head(&self, app_id: &str, epoch: Option<u64>) -> Result<LogHead, DirError> {
        let slot = self.slot(app_id);
        let tree = self.with_log(&slot, |log| Ok(log.tree.clone())).await?;
        let head = match epoch {
            Some(e) => {
                let p = self
                    .store
                    .epoch_head(app_id, e)
                    .await?
                    .map(epoch_of)
                    .ok_or_else(|| DirError::NotFound(format!("no epoch {e}")))?;
                self.sign(app_id, (p.epoch, p.root), p.published_ms)
            }
            None => self.sign(app_id, tree.current().await?, now_ms()),
        };
        Ok(LogHead {
            head,
            key: self.public_key(),
            vrf: self.vrf_public_key(),
        })
    }

    /// `log.audit` for the signed HTTP API (auditors holding the app's
    /// credentials): the heads of epochs `from..=to` (signed with the time
    /// each was published) and the append-only proof between them.
    pub async fn audit(&self, app_id: &str, from: u64, to: u64) -> Result<Audit, DirError> {
        self.audit_within(app_id, from, to, None).await
    }

    /// [`Directory::audit`], refused (`too_many`) when the epochs after
    /// `from` hold more than `max_records` records: what a signed-in end
    /// user may ask for over the WebSocket, whose proof would otherwise grow
    /// with the largest epoch (every user at once, after an upgrade).
    async fn audit_within(
        &self,
        app_id: &str,
        from: u64,
        to: u64,
        max_records: Option<u64>,
    ) -> Result<Audit, DirError> {
        if from == 0 || to <= from || to - from > MAX_AUDIT_EPOCHS {
            return Err(DirError::BadRequest(format!(
                "need 1 <= from < to <= from + {MAX_AUDIT_EPOCHS}"
            )));
        }
        let slot = self.slot(app_id);
        let (tree, last) = self
            .with_log(&slot, |log| {
                Ok((log.tree.clone(), log.last.map_or(0, |e| e.epoch)))
            })
            .await?;
        if to > last {
            return Err(DirError::NotFound(format!(
                "epoch {to} is beyond the directory's last epoch {last}"
            )));
        }
        let epochs: Vec<Epoch> = self
            .store
            .epoch_heads(app_id, from, to + 1)
            .await?
            .into_iter()
            .map(epoch_of)
            .collect();
        let consecutive = epochs.iter().map(|e| e.epoch).eq(from..=to);
        if !consecutive {
            return Err(DirError::NotFound(
                "this node has no record of some of those epochs".into(),
            ));
        }
        if let (Some(max), Some(first), Some(last)) = (max_records, epochs.first(), epochs.last()) {
            let records = last.log_size.saturating_sub(first.log_size);
            if records > max {
                return Err(DirError::TooMany(format!(
                    "epochs {from}..{to} hold {records} records, more than the {max} one audit \
                     may span here; ask for fewer epochs, or audit through the signed HTTP API"
                )));
            }
        }
        let _job = self.jobs.enter().await?;
        let proof = tree.audit(from, to).await?;
        Ok(Audit {
            heads: epochs
                .iter()
                .map(|e| self.sign(app_id, (e.epoch, e.root), e.published_ms))
                .collect(),
            proof: b64(&proof),
        })
    }

    /// Counts one write of `user` against the per-user write rate.
    fn take_write(&self, app_id: &str, user: &UserId) -> Result<(), DirError> {
        if self.writes.try_take(app_id, user, Instant::now()) {
            Ok(())
        } else {
            Err(DirError::RateLimited(format!(
                "too many key directory writes for this user (at most {} a minute); retry later",
                self.limits.writes_per_user_per_minute
            )))
        }
    }

    /// Answers one `hush:request` like [`Directory::handle`], as the text of
    /// its `hush:response` frame.
    pub async fn respond(
        &self,
        app_id: &str,
        user: Option<&UserId>,
        request: &RequestFrame,
    ) -> Result<String, DirError> {
        let id = request.id.clone();
        let (parsed, user) = parse(request, user)?;
        let value = self.dispatch(app_id, user, parsed).await?;
        Ok(wire::hush_response_ok(&id, &value.encode()))
    }

    /// Dispatches one `hush:request` from a connection of `app_id`, signed in
    /// as `user` (if at all). Checked in this order: parameters that are not
    /// an object, an unknown method, a connection not signed in (every method
    /// needs one), then the method's parameters.
    pub async fn handle(
        &self,
        app_id: &str,
        user: Option<&UserId>,
        request: &RequestFrame,
    ) -> Result<HushResponse, DirError> {
        let (parsed, user) = parse(request, user)?;
        self.dispatch(app_id, user, parsed).await
    }

    async fn dispatch(
        &self,
        app_id: &str,
        user: &UserId,
        request: HushRequest,
    ) -> Result<HushResponse, DirError> {
        Ok(match request {
            HushRequest::DirectoryPublish { card } => {
                self.take_write(app_id, user)?;
                HushResponse::DirectoryPublish(self.publish(app_id, user, &card).await?)
            }
            HushRequest::DirectoryRevoke { revocation } => {
                self.take_write(app_id, user)?;
                HushResponse::DirectoryRevoke(self.revoke(app_id, user, &revocation).await?)
            }
            HushRequest::DirectoryLookup { users } => {
                HushResponse::DirectoryLookup(self.lookup(app_id, &users).await?)
            }
            HushRequest::DirectoryHistory { versions } => {
                HushResponse::DirectoryHistory(self.history(app_id, user, versions).await?)
            }
            HushRequest::LogHead { epoch } => {
                HushResponse::LogHead(self.head(app_id, epoch).await?)
            }
            HushRequest::LogAudit { from, to } => {
                let max = Some(self.limits.max_audit_records);
                HushResponse::LogAudit(self.audit_within(app_id, from, to, max).await?)
            }
            other => return Err(DirError::UnknownMethod(other.method().name().to_owned())),
        })
    }
}

/// The entries of `users` (those with an identity) as the tree stores them.
fn entries_of(state: &DirectoryState, users: &BTreeSet<UserId>) -> Vec<(UserId, Vec<u8>)> {
    users
        .iter()
        .filter_map(|u| state.entry(u).map(|e| (u.clone(), e.to_bytes())))
        .collect()
}

/// An epoch head as the store keeps it.
fn epoch_of(h: hush_store::EpochHead) -> Epoch {
    Epoch {
        epoch: h.epoch,
        root: h.root_hash,
        published_ms: u64::try_from(h.published_ms).unwrap_or(0),
        log_size: h.log_size,
    }
}

/// Notes a published epoch (its head is already in the store) in `log` and
/// wakes the writers it covers.
fn record_epoch(slot: &AppSlot, log: &mut AppLog, users: BTreeSet<UserId>, epoch: Epoch) {
    log.last = Some(epoch);
    log.published.extend(users);
    slot.covered.send_replace(epoch.log_size);
}

/// Publishes the app's pending users after `interval` (one task at a time
/// per app: `scheduled` is set until it ends); reschedules itself while
/// writes keep arriving or after a failure. On a shared store it publishes
/// under the cluster's lock on the app, from the state the store holds
/// then (reloaded if another node moved it).
fn schedule(slot: Arc<AppSlot>, publisher: Publisher) {
    tokio::spawn(async move {
        tokio::time::sleep(publisher.interval).await;
        let lock = match publisher
            .store
            .directory_lock(&slot.app_id, LOCK_WAIT)
            .await
        {
            Ok(lock) => lock,
            Err(e) => {
                tracing::warn!(app = %slot.app_id, error = %e, "key directory epoch postponed: no lock");
                schedule(slot, publisher);
                return;
            }
        };
        publish_pending(&slot, &publisher).await;
        lock.release().await;
    });
}

/// One publication of the app's pending users (see [`schedule`]).
async fn publish_pending(slot: &Arc<AppSlot>, publisher: &Publisher) {
    let job = {
        let mut guard = slot.log.lock().await;
        if publisher.store.is_shared() {
            if let Err(e) = publisher.sync(slot, &mut guard).await {
                tracing::warn!(app = %slot.app_id, error = %e, "key directory epoch failed; reloading the app's directory");
                *guard = None;
                return;
            }
        }
        let Some(log) = guard.as_mut() else { return };
        log.scheduled = true;
        let users = std::mem::take(&mut log.pending);
        (
            log.tree.clone(),
            entries_of(&log.state, &users),
            users,
            log.size,
        )
    };
    let (tree, updates, users, log_size) = job;
    let at = now_ms();
    let result = if updates.is_empty() {
        Ok(None)
    } else {
        tree.publish(updates, log_size, at).await.map(Some)
    };
    let mut guard = slot.log.lock().await;
    let Some(log) = guard.as_mut() else { return };
    if !log.tree.same(&tree) {
        // Refreshed meanwhile by a request that saw this very epoch in the
        // store (no other node publishes while this one holds the lock):
        // its users are only missing from `published`. Anything else, and
        // the app is loaded again on the next request.
        match result {
            Ok(Some((epoch, _))) if log.last.is_some_and(|l| l.epoch >= epoch) => {
                log.published.extend(users);
                log.scheduled = false;
                if !log.pending.is_empty() {
                    log.scheduled = true;
                    schedule(slot.clone(), publisher.clone());
                }
            }
            _ => *guard = None,
        }
        return;
    }
    log.scheduled = false;
    match result {
        // Nothing to commit (no user with an identity changed).
        Ok(None) => {}
        Ok(Some((epoch, root))) => {
            let e = Epoch {
                epoch,
                root,
                published_ms: at,
                log_size,
            };
            record_epoch(slot, log, users, e);
        }
        Err(e) => {
            // akd updates its cache before the store's transaction: after
            // a failed publication the loaded tree is not trusted. Drop
            // the whole app; the next request reloads it from the store
            // and publishes every record no epoch covers yet.
            tracing::warn!(app = %slot.app_id, error = %e, "key directory epoch failed; reloading the app's directory");
            *guard = None;
            return;
        }
    }
    if !log.pending.is_empty() {
        log.scheduled = true;
        schedule(slot.clone(), publisher.clone());
    }
}

fn bad_params(e: hush_protocol::msgs::hush::ParamsError) -> DirError {
    DirError::BadRequest(e.0)
}

/// A request and its user, checked in this order: parameters that are not
/// an object, an unknown method, a connection not signed in (every method
/// needs one), then the method's parameters.
fn parse<'a>(
    request: &RequestFrame,
    user: Option<&'a UserId>,
) -> Result<(HushRequest, &'a UserId), DirError> {
    let params = request.params_object().map_err(bad_params)?;
    let method = request
        .known_method()
        .ok_or_else(|| DirError::UnknownMethod(request.method.chars().take(64).collect()))?;
    let user = user.ok_or(DirError::NotSignedIn)?;
    Ok((
        HushRequest::from_params(method, &params).map_err(bad_params)?,
        user,
    ))
}

/// A directory being loaded from the store.
struct Loaded {
    state: DirectoryState,
    size: u64,
    /// Records the last recorded epoch covers.
    covered: u64,
    published: HashSet<UserId>,
    pending: BTreeSet<UserId>,
}

/// After the covered record count grew to `loaded.covered`: pending users
/// whose records are all covered now are published, and any user with a
/// covered record has an entry in the tree.
fn settle(loaded: &mut Loaded) {
    let covered = loaded.covered;
    let mut still = BTreeSet::new();
    for user in std::mem::take(&mut loaded.pending) {
        let entries = loaded
            .state
            .user(&user)
            .map_or(&[][..], |s| s.entries.as_slice());
        if entries.first().is_some_and(|i| *i < covered) {
            loaded.published.insert(user.clone());
        }
        if entries.last().is_none_or(|i| *i >= covered) {
            still.insert(user);
        }
    }
    loaded.pending = still;
}

/// Applies stored records to a directory being loaded (on a blocking
/// thread: every record's signatures are verified).
fn replay(app_id: &str, mut loaded: Loaded, batch: Vec<Vec<u8>>) -> Result<Loaded, DirError> {
    for leaf in batch {
        let index = loaded.size;
        // A stored record that no longer verifies means the store was
        // altered behind the server's back: refuse to serve it.
        let entry = LogEntry::from_bytes(&leaf).map_err(|_| {
            StoreError::Corrupt(if written_before_derived_ids(&leaf) {
                format!(
                    "directory record {index} of app {app_id} is a card of an older hush \
                     (device ids not derived from the signing key): this version cannot \
                     serve that directory; see docs/OPERATIONS.md, \"Upgrades and draining\""
                )
            } else {
                format!("directory record {index} of app {app_id} does not verify")
            })
        })?;
        loaded.state.apply(&entry, index).map_err(|e| {
            StoreError::Corrupt(format!("directory record {index} of app {app_id}: {e}"))
        })?;
        let user = match &entry {
            LogEntry::Card(c) => c.user_id().clone(),
            LogEntry::Revocation(r) => r.user_id().clone(),
        };
        if index < loaded.covered {
            loaded.published.insert(user);
        } else {
            loaded.pending.insert(user);
        }
        loaded.size += 1;
    }
    Ok(loaded)
}

/// True when `leaf` is a device card that verifies except that its device id
/// is not derived from its signing key: written by a hush from before
/// derived device ids (a format change, not tampering).
fn written_before_derived_ids(leaf: &[u8]) -> bool {
    matches!(
        leaf.split_first(),
        Some((1, body)) if matches!(
            DeviceCard::from_bytes(body),
            Err(hush_crypto::identity::CardError::DeviceIdNotDerived)
        )
    )
}

/// Refuses a card for one more device when the user already has `max`
/// active ones (a new card for a device the user has replaces its card).
fn check_device_cap(state: &DirectoryState, card: &DeviceCard, max: usize) -> Result<(), DirError> {
    let Some(user) = state.user(card.user_id()) else {
        return Ok(());
    };
    if user.devices.contains_key(&card.device_id()) {
        return Ok(());
    }
    let active = user.devices.values().filter(|d| !d.revoked).count();
    if active >= max {
        return Err(DirError::TooMany(format!(
            "too many devices: a user has at most {max} active devices; revoke one first"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod tests;
