//! The key directory (docs/PROTOCOL-EXT.md §2, docs/KEY-TRANSPARENCY.md):
//! device cards and revocations published by signed-in users, kept in one
//! append-only transparency log per app, served with inclusion and
//! consistency proofs under tree heads the server signs.
//!
//! The server only ever holds *public* keys here, plus its own tree-head
//! signing key; nothing in the directory opens user content.
//!
//! Each app's log is loaded from the store on first use and then kept in
//! memory (leaf hashes and the directory state); a write is checked against
//! the rules ([`DirectoryState`]), made durable in the store, and only then
//! applied in memory and acknowledged.
//!
//! One signed-in user must not stall the directory for everyone (issue 13,
//! finding 12; docs/KEY-TRANSPARENCY.md "Limits"): a user has at most
//! [`DirectoryConfig::max_devices_per_user`] active devices, cards live at
//! most [`DirectoryConfig::max_card_lifetime_days`], writes are rate-capped
//! per user here and per connection in the session, lookup ids are
//! de-duplicated and answers bounded in bytes (paged through `more`), and
//! lookups run on a bounded set of blocking threads: the app's log is
//! locked only to copy the records and proof paths the answer needs, and a
//! lookup whose client is gone stops (its future is dropped, which cancels
//! the blocking work at the next user).

mod limits;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::directory::DirectoryState;
use hush_crypto::identity::{DeviceCard, Revocation};
use hush_crypto::transparency::{Hash, LogEntry, LogKey, MerkleLog, TreeHead};
use hush_protocol::UserId;
use hush_protocol::msgs::encode as wire;
use hush_protocol::msgs::hush::{
    Appended, Consistency, Entries, ErrorCode, HushRequest, HushResponse, LogHead, LogRecord,
    Lookup, RequestFrame, UserRecords,
};
use hush_store::{Store, StoreError};

use crate::config::DirectoryConfig;
use limits::{Cancel, Jobs, WriteLimiter};

/// Users one lookup may name.
pub const MAX_LOOKUP_USERS: usize = 50;
/// Entries one `log.entries` answer may hold.
pub const MAX_ENTRIES: u64 = 1000;
/// Revocations a lookup serves per user: the newest ones (older ones are in
/// the log, `log.entries`). Revoked devices never come back, so a client
/// needs a revocation only to tell "revoked" from "unknown"; the active
/// cards served are never revoked ones.
pub const LOOKUP_REVOCATIONS_PER_USER: usize = 32;
/// How far ahead of the server's clock a card's `created_at` may be.
pub const MAX_CARD_CLOCK_SKEW_SECS: u64 = 3600;
/// Name of the tree-head signing key in the store.
const LOG_KEY_NAME: &str = "directory-log-v1";

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
    /// Beyond the end of the log.
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
    #[error("key directory unavailable")]
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

/// One app's log, in memory once loaded.
struct AppLog {
    app_id: String,
    log: MerkleLog,
    state: DirectoryState,
}

/// One app's log slot: locked (asynchronously) by writers across the
/// store's commit, and by lookups only while they copy what they answer.
type Slot = Arc<tokio::sync::Mutex<Option<AppLog>>>;

/// The key directory of every app on this node.
pub struct Directory {
    store: Store,
    key: Arc<LogKey>,
    apps: Mutex<HashMap<String, Slot>>,
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

fn proof_b64(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(|h| b64(h)).collect()
}

fn now_ms() -> u64 {
    u64::try_from(hush_store::now_ms()).unwrap_or(0)
}

fn decode_record(text: &str, what: &str) -> Result<Vec<u8>, DirError> {
    STANDARD
        .decode(text)
        .map_err(|_| DirError::BadRequest(format!("params.{what} must be standard base64")))
}

impl AppLog {
    fn signed_head(&self, key: &LogKey) -> String {
        let head = TreeHead {
            log_id: self.app_id.clone(),
            size: self.log.size(),
            root: self.log.root(),
            timestamp: now_ms(),
        };
        b64(&key.sign(head).to_bytes())
    }
}

impl Directory {
    /// The directory over `store`, with the node's tree-head key (created in
    /// the store on first start).
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let seed = store
            .server_key(LOG_KEY_NAME, || *LogKey::generate().to_secret_bytes())
            .await?;
        let limits = DirectoryConfig::default();
        Ok(Self {
            key: Arc::new(LogKey::from_secret_bytes(&seed)),
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

    /// The tree-head public key clients pin, base64 (`hush directory-key`
    /// prints it).
    pub fn public_key(&self) -> String {
        b64(&self.key.public_key().to_bytes())
    }

    fn slot(&self, app_id: &str) -> Slot {
        let mut apps = self
            .apps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        apps.entry(app_id.to_owned()).or_default().clone()
    }

    /// Runs `f` on the app's loaded log (loading it from the store first).
    async fn with_log<T>(
        &self,
        app_id: &str,
        f: impl AsyncFnOnce(&mut AppLog) -> Result<T, DirError>,
    ) -> Result<T, DirError> {
        let slot = self.slot(app_id);
        let mut guard = slot.lock().await;
        let log = match &mut *guard {
            Some(log) => log,
            empty @ None => empty.insert(self.load(app_id).await?),
        };
        f(log).await
    }

    async fn load(&self, app_id: &str) -> Result<AppLog, DirError> {
        let mut log = AppLog {
            app_id: app_id.to_owned(),
            log: MerkleLog::new(),
            state: DirectoryState::new(),
        };
        loop {
            let start = log.log.size();
            let batch = self
                .store
                .directory_leaves(
                    app_id,
                    start,
                    start + hush_store::directory::MAX_LEAVES_PER_READ,
                )
                .await?;
            if batch.is_empty() {
                break;
            }
            // Replaying verifies every signature: CPU work, kept off the
            // async workers.
            log = tokio::task::spawn_blocking(move || replay(log, batch))
                .await
                .map_err(|_| DirError::Busy("key directory load was interrupted".into()))??;
        }
        tracing::debug!(app = app_id, size = log.log.size(), "key directory loaded");
        Ok(log)
    }

    /// Checks and appends one entry for `user`; answers with its index,
    /// the new head and the inclusion proof.
    async fn append(
        &self,
        app_id: &str,
        user: &UserId,
        entry: LogEntry,
    ) -> Result<Appended, DirError> {
        let key = &self.key;
        let store = &self.store;
        let max_devices = self.limits.max_devices_per_user;
        self.with_log(app_id, async |log: &mut AppLog| {
            if let LogEntry::Card(card) = &entry {
                check_device_cap(&log.state, card, max_devices)?;
            }
            log.state.check(&entry).map_err(|e| match e {
                hush_crypto::directory::RuleError::BrokenChain => DirError::Conflict(e.to_string()),
                _ => DirError::InvalidRecord(e.to_string()),
            })?;
            let index = log.log.size();
            let leaf = entry.to_bytes();
            if !store
                .directory_append(app_id, index, &leaf, user.as_str())
                .await?
            {
                // Another writer (another node on this store) got there
                // first: catch up, and let the client retry.
                *log = self.load(app_id).await?;
                return Err(DirError::Conflict(
                    "the log moved on; retry the request".into(),
                ));
            }
            log.state
                .apply(&entry, index)
                .map_err(|e| DirError::InvalidRecord(e.to_string()))?;
            log.log.append(&leaf);
            let proof = log
                .log
                .inclusion_proof(index, log.log.size())
                .unwrap_or_default();
            Ok(Appended {
                head: log.signed_head(key),
                index,
                proof: proof_b64(&proof),
            })
        })
        .await
    }

    /// `directory.publish`: a device card of the signed-in user.
    pub async fn publish(
        &self,
        app_id: &str,
        user: &UserId,
        card: &str,
    ) -> Result<Appended, DirError> {
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
    ) -> Result<Appended, DirError> {
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

    /// `directory.lookup`: the active cards and (newest) revocations of up
    /// to 50 users, with inclusion proofs and, given `since`, a consistency
    /// proof. Repeated ids are answered once; users that do not fit in
    /// [`DirectoryConfig::max_lookup_bytes`] are named in `more`.
    ///
    /// Runs on one of the directory's blocking workers (waiting for one
    /// while they are busy, `unavailable` when too many wait); the app's
    /// log is locked (only this app's) until the answer's records and proof
    /// paths are copied, and dropping the returned future stops the work.
    pub async fn lookup(
        &self,
        app_id: &str,
        users: &[String],
        since: Option<u64>,
    ) -> Result<Lookup, DirError> {
        self.lookup_then(app_id, users, since, |lookup| lookup)
            .await
    }

    /// [`Directory::lookup`], then `finish` on the answer (on the same
    /// blocking worker: encoding a large answer is CPU work too).
    async fn lookup_then<T: Send + 'static>(
        &self,
        app_id: &str,
        users: &[String],
        since: Option<u64>,
        finish: impl FnOnce(Lookup) -> T + Send + 'static,
    ) -> Result<T, DirError> {
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
        // The app's lock first, then a worker: lookups of one app queue on
        // their own app's lock, so at most one per app waits for a worker
        // and one app's flood cannot fill the node's queue.
        let slot = self.slot(app_id);
        let mut guard = slot.lock_owned().await;
        if guard.is_none() {
            *guard = Some(self.load(app_id).await?);
        }
        let _job = self.jobs.enter().await?;
        let cancel = Cancel::default();
        let stop = cancel.token();
        let key = self.key.clone();
        let limits = self.limits.clone();
        tokio::task::spawn_blocking(move || {
            let picked = {
                let log = guard
                    .as_ref()
                    .ok_or_else(|| DirError::Busy("key directory not loaded".into()))?;
                pick(log, &ids, since, &limits, &stop)?
            };
            // The app's log is free again: encoding and signing need only
            // the copy.
            drop(guard);
            let lookup = picked.encode(&key, &stop)?;
            stop.check()?;
            Ok(finish(lookup))
        })
        .await
        .map_err(|_| DirError::Busy("key directory lookup was interrupted".into()))?
    }

    /// `log.head`: the current signed tree head and the log key.
    pub async fn head(&self, app_id: &str) -> Result<LogHead, DirError> {
        let key = &self.key;
        let public = self.public_key();
        self.with_log(app_id, async |log: &mut AppLog| {
            Ok(LogHead {
                head: log.signed_head(key),
                key: public,
            })
        })
        .await
    }

    /// `log.consistency`: proof that the tree of size `to` extends the one of
    /// size `from`.
    pub async fn consistency(
        &self,
        app_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Consistency, DirError> {
        self.with_log(app_id, async |log: &mut AppLog| {
            let size = log.log.size();
            if from > to || to > size {
                return Err(DirError::NotFound(format!(
                    "need from <= to <= {size}, got {from} and {to}"
                )));
            }
            let proof = log
                .log
                .consistency_proof(from, to)
                .ok_or_else(|| DirError::NotFound("no such proof".into()))?;
            Ok(Consistency {
                proof: proof_b64(&proof),
            })
        })
        .await
    }

    /// `log.entries`: leaf data `start..end` (at most 1000).
    pub async fn entries(&self, app_id: &str, start: u64, end: u64) -> Result<Entries, DirError> {
        if end < start || end - start > MAX_ENTRIES {
            return Err(DirError::BadRequest(format!(
                "need start <= end <= start + {MAX_ENTRIES}"
            )));
        }
        // Past the end of the log there is nothing (and the store could not
        // even express an index beyond i64::MAX).
        let size = self
            .with_log(app_id, async |log: &mut AppLog| Ok(log.log.size()))
            .await?;
        let (start, end) = (start.min(size), end.min(size));
        let leaves = self.store.directory_leaves(app_id, start, end).await?;
        Ok(Entries {
            entries: leaves.iter().map(|l| b64(l)).collect(),
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
    /// its `hush:response` frame; a lookup's answer is encoded on the
    /// blocking worker that computed it.
    pub async fn respond(
        &self,
        app_id: &str,
        user: Option<&UserId>,
        request: &RequestFrame,
    ) -> Result<String, DirError> {
        let id = request.id.clone();
        let (parsed, user) = parse(request, user)?;
        match parsed {
            HushRequest::DirectoryLookup { users, since } => {
                self.lookup_then(app_id, &users, since, move |lookup| {
                    wire::hush_response_ok(&id, &HushResponse::DirectoryLookup(lookup).encode())
                })
                .await
            }
            other => {
                let value = self.dispatch(app_id, user, other).await?;
                Ok(wire::hush_response_ok(&id, &value.encode()))
            }
        }
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
            HushRequest::DirectoryLookup { users, since } => {
                HushResponse::DirectoryLookup(self.lookup(app_id, &users, since).await?)
            }
            HushRequest::LogHead => HushResponse::LogHead(self.head(app_id).await?),
            HushRequest::LogConsistency { from, to } => {
                HushResponse::LogConsistency(self.consistency(app_id, from.unwrap_or(0), to).await?)
            }
            HushRequest::LogEntries { start, end } => {
                let start = start.unwrap_or(0);
                let end = end.unwrap_or(start.saturating_add(MAX_ENTRIES));
                HushResponse::LogEntries(self.entries(app_id, start, end).await?)
            }
            other => return Err(DirError::UnknownMethod(other.method().name().to_owned())),
        })
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

/// Applies stored leaves to a log being loaded (on a blocking thread: every
/// record's signatures are verified).
fn replay(mut log: AppLog, batch: Vec<Vec<u8>>) -> Result<AppLog, DirError> {
    for leaf in batch {
        let index = log.log.size();
        let app_id = &log.app_id;
        // A stored leaf that no longer verifies means the store was
        // altered behind the server's back: refuse to serve it.
        let entry = LogEntry::from_bytes(&leaf).map_err(|_| {
            StoreError::Corrupt(if written_before_derived_ids(&leaf) {
                format!(
                    "directory leaf {index} of app {app_id} is a card of an older hush \
                     (device ids not derived from the signing key): this version cannot \
                     serve that log; see docs/OPERATIONS.md, \"Upgrades and draining\""
                )
            } else {
                format!("directory leaf {index} of app {app_id} does not verify")
            })
        })?;
        log.state.apply(&entry, index).map_err(|e| {
            StoreError::Corrupt(format!("directory leaf {index} of app {app_id}: {e}"))
        })?;
        log.log.append(&leaf);
    }
    Ok(log)
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

/// One record of a lookup answer, copied out of the log: leaf data, index,
/// inclusion proof.
struct Picked {
    leaf: Vec<u8>,
    index: u64,
    proof: Vec<Hash>,
}

impl Picked {
    fn new(log: &AppLog, entry: &LogEntry, index: u64) -> Self {
        Self {
            leaf: entry.to_bytes(),
            index,
            proof: log
                .log
                .inclusion_proof(index, log.log.size())
                .unwrap_or_default(),
        }
    }

    /// About the bytes this record takes in the answer's JSON.
    fn encoded_len(&self) -> usize {
        self.leaf.len().div_ceil(3) * 4 + self.proof.len() * 47 + 48
    }

    fn encode(&self) -> LogRecord {
        LogRecord {
            index: self.index,
            proof: proof_b64(&self.proof),
            record: b64(&self.leaf),
        }
    }
}

/// What a lookup answers, copied out of the app's log (so the log is free
/// while it is encoded and signed).
struct Answer {
    head: TreeHead,
    consistency: Option<Vec<Hash>>,
    users: Vec<(String, Vec<Picked>, Vec<Picked>)>,
    more: Vec<String>,
}

/// Copies the records `ids` need from `log`: per user its active cards
/// (the newest `max_devices_per_user` of them, should the store hold more)
/// and newest [`LOOKUP_REVOCATIONS_PER_USER`] revocations, users in order
/// until `max_lookup_bytes` (the first user always; the rest go to `more`).
fn pick(
    log: &AppLog,
    ids: &[UserId],
    since: Option<u64>,
    limits: &DirectoryConfig,
    stop: &limits::CancelToken,
) -> Result<Answer, DirError> {
    let size = log.log.size();
    let consistency =
        match since {
            Some(since) => Some(log.log.consistency_proof(since, size).ok_or_else(|| {
                DirError::NotFound(format!("tree size {since} is beyond {size}"))
            })?),
            None => None,
        };
    let mut users = Vec::new();
    let mut more = Vec::new();
    let mut bytes = 0usize;
    for (n, id) in ids.iter().enumerate() {
        stop.check()?;
        let mut cards = Vec::new();
        let mut revocations = Vec::new();
        if let Some(user) = log.state.user(id) {
            let mut active: Vec<_> = user.devices.values().filter(|d| !d.revoked).collect();
            if active.len() > limits.max_devices_per_user {
                active.sort_by_key(|d| std::cmp::Reverse(d.index));
                active.truncate(limits.max_devices_per_user);
            }
            active.sort_by_key(|d| d.card.device_id());
            for device in active {
                cards.push(Picked::new(
                    log,
                    &LogEntry::Card(device.card.clone()),
                    device.index,
                ));
            }
            let from = user
                .revocations
                .len()
                .saturating_sub(LOOKUP_REVOCATIONS_PER_USER);
            for (index, rev) in &user.revocations[from..] {
                revocations.push(Picked::new(log, &LogEntry::Revocation(rev.clone()), *index));
            }
        }
        let user_bytes = id.as_str().len()
            + 40
            + cards
                .iter()
                .chain(&revocations)
                .map(Picked::encoded_len)
                .sum::<usize>();
        if n > 0 && bytes + user_bytes > limits.max_lookup_bytes {
            more.extend(ids[n..].iter().map(|u| u.as_str().to_owned()));
            break;
        }
        bytes += user_bytes;
        users.push((id.as_str().to_owned(), cards, revocations));
    }
    Ok(Answer {
        head: TreeHead {
            log_id: log.app_id.clone(),
            size,
            root: log.log.root(),
            timestamp: now_ms(),
        },
        consistency,
        users,
        more,
    })
}

impl Answer {
    fn encode(self, key: &LogKey, stop: &limits::CancelToken) -> Result<Lookup, DirError> {
        let mut users = std::collections::BTreeMap::new();
        for (id, cards, revocations) in self.users {
            stop.check()?;
            users.insert(
                id,
                UserRecords {
                    cards: cards.iter().map(Picked::encode).collect(),
                    revocations: revocations.iter().map(Picked::encode).collect(),
                },
            );
        }
        Ok(Lookup {
            consistency: self.consistency.as_deref().map(proof_b64),
            head: b64(&key.sign(self.head).to_bytes()),
            more: self.more,
            users,
        })
    }
}
