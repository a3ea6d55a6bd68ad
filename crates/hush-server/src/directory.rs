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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::directory::DirectoryState;
use hush_crypto::identity::{DeviceCard, Revocation};
use hush_crypto::transparency::{Hash, LogEntry, LogKey, MerkleLog, TreeHead};
use hush_protocol::UserId;
use hush_protocol::msgs::hush::{
    Appended, Consistency, Entries, ErrorCode, HushRequest, HushResponse, LogHead, LogRecord,
    Lookup, RequestFrame, UserRecords,
};
use hush_store::{Store, StoreError};

/// Users one lookup may name.
pub const MAX_LOOKUP_USERS: usize = 50;
/// Entries one `log.entries` answer may hold.
pub const MAX_ENTRIES: u64 = 1000;
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
            Self::Unavailable(_) => ErrorCode::Unavailable,
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
            Self::Unavailable(_) => 503,
        }
    }
}

/// One app's log, in memory once loaded.
struct AppLog {
    app_id: String,
    log: MerkleLog,
    state: DirectoryState,
}

/// The key directory of every app on this node.
pub struct Directory {
    store: Store,
    key: LogKey,
    apps: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<AppLog>>>>>,
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

    fn record(&self, entry: &LogEntry, index: u64) -> LogRecord {
        let proof = self
            .log
            .inclusion_proof(index, self.log.size())
            .unwrap_or_default();
        LogRecord {
            index,
            proof: proof_b64(&proof),
            record: b64(&entry.to_bytes()),
        }
    }
}

impl Directory {
    /// The directory over `store`, with the node's tree-head key (created in
    /// the store on first start).
    pub async fn open(store: Store) -> Result<Self, StoreError> {
        let seed = store
            .server_key(LOG_KEY_NAME, || *LogKey::generate().to_secret_bytes())
            .await?;
        Ok(Self {
            key: LogKey::from_secret_bytes(&seed),
            store,
            apps: Mutex::new(HashMap::new()),
        })
    }

    /// The tree-head public key clients pin, base64.
    pub fn public_key(&self) -> String {
        b64(&self.key.public_key().to_bytes())
    }

    fn slot(&self, app_id: &str) -> Arc<tokio::sync::Mutex<Option<AppLog>>> {
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
            for leaf in batch {
                let index = log.log.size();
                // A stored leaf that no longer verifies means the store was
                // altered behind the server's back: refuse to serve it.
                let entry = LogEntry::from_bytes(&leaf).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "directory leaf {index} of app {app_id} does not verify"
                    ))
                })?;
                log.state.apply(&entry, index).map_err(|e| {
                    StoreError::Corrupt(format!("directory leaf {index} of app {app_id}: {e}"))
                })?;
                log.log.append(&leaf);
            }
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
        self.with_log(app_id, async |log: &mut AppLog| {
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
        if card.body().expires_at <= now_secs {
            return Err(DirError::InvalidRecord("card: card has expired".into()));
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

    /// `directory.lookup`: the active cards and revocations of up to 50
    /// users, with inclusion proofs and, given `since`, a consistency proof.
    pub async fn lookup(
        &self,
        app_id: &str,
        users: &[String],
        since: Option<u64>,
    ) -> Result<Lookup, DirError> {
        if users.is_empty() {
            return Err(DirError::BadRequest("name at least one user".into()));
        }
        if users.len() > MAX_LOOKUP_USERS {
            return Err(DirError::TooMany(format!(
                "Too many users: a lookup names at most {MAX_LOOKUP_USERS}, this one names {}",
                users.len()
            )));
        }
        let ids = users
            .iter()
            .map(|u| UserId::parse(u).map_err(|e| DirError::BadRequest(format!("user {u:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let key = &self.key;
        self.with_log(app_id, async |log: &mut AppLog| {
            let size = log.log.size();
            let mut out = std::collections::BTreeMap::new();
            for id in &ids {
                let mut cards = Vec::new();
                let mut revocations = Vec::new();
                if let Some(user) = log.state.user(id) {
                    for device in user.active_cards() {
                        cards.push(log.record(&LogEntry::Card(device.card.clone()), device.index));
                    }
                    for (index, rev) in &user.revocations {
                        revocations.push(log.record(&LogEntry::Revocation(rev.clone()), *index));
                    }
                }
                out.insert(id.as_str().to_owned(), UserRecords { cards, revocations });
            }
            let consistency = match since {
                Some(since) => Some(proof_b64(
                    &log.log.consistency_proof(since, size).ok_or_else(|| {
                        DirError::NotFound(format!("tree size {since} is beyond {size}"))
                    })?,
                )),
                None => None,
            };
            Ok(Lookup {
                consistency,
                head: log.signed_head(key),
                users: out,
            })
        })
        .await
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
        let bad = |e: hush_protocol::msgs::hush::ParamsError| DirError::BadRequest(e.0);
        let params = request.params_object().map_err(bad)?;
        let method = request
            .known_method()
            .ok_or_else(|| DirError::UnknownMethod(request.method.chars().take(64).collect()))?;
        let user = user.ok_or(DirError::NotSignedIn)?;
        Ok(
            match HushRequest::from_params(method, &params).map_err(bad)? {
                HushRequest::DirectoryPublish { card } => {
                    HushResponse::DirectoryPublish(self.publish(app_id, user, &card).await?)
                }
                HushRequest::DirectoryRevoke { revocation } => {
                    HushResponse::DirectoryRevoke(self.revoke(app_id, user, &revocation).await?)
                }
                HushRequest::DirectoryLookup { users, since } => {
                    HushResponse::DirectoryLookup(self.lookup(app_id, &users, since).await?)
                }
                HushRequest::LogHead => HushResponse::LogHead(self.head(app_id).await?),
                HushRequest::LogConsistency { from, to } => HushResponse::LogConsistency(
                    self.consistency(app_id, from.unwrap_or(0), to).await?,
                ),
                HushRequest::LogEntries { start, end } => {
                    let start = start.unwrap_or(0);
                    let end = end.unwrap_or(start.saturating_add(MAX_ENTRIES));
                    HushResponse::LogEntries(self.entries(app_id, start, end).await?)
                }
                _ => return Err(DirError::UnknownMethod(method.name().to_owned())),
            },
        )
    }
}
