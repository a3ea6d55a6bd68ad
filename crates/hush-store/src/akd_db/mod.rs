//! akd's storage on hush's store: [`AkdDb`] implements
//! [`akd::storage::Database`] (and [`akd::storage::StorageUtil`]) for one
//! app, with the semantics of akd's in-memory reference database
//! (`akd::storage::memory::AsyncInMemoryDatabase`), persistently.
//!
//! Tables (migration 0005): `akd_records` holds the `Azks` and tree-node
//! records under akd's full binary id, in a compact hand-written binary
//! encoding; `akd_value_states` holds the value states, one row per
//! (label, epoch) like the reference; `akd_epoch_heads` holds the
//! published epoch heads ([`EpochHead`], see [`heads`]). Every row carries
//! its app id and every query filters on it: two apps never see each other's
//! records.
//!
//! Wrap an [`AkdDb`] in a [`akd::storage::StorageManager`] (which adds the
//! cache and akd's transactions). A commit of a transaction (one publish) is
//! one database transaction; [`AkdDb::stage_epoch_head`] makes it record the
//! epoch's head in that same transaction.

mod codec;
pub mod heads;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::Store;
use crate::backend::{Backend, dispatch, per_backend};
use akd::errors::StorageError;
use akd::storage::types::{DbRecord, KeyData, ValueState, ValueStateRetrievalFlag};
use akd::storage::{Database, DbSetState, Storable, StorageUtil};
use akd::{AkdLabel, AkdValue, AzksValue, Digest};
pub use heads::{EpochHead, MAX_EPOCH_HEADS_PER_READ};

per_backend!(queries, "queries.rs");

/// akd's storage for one app on hush's store. Cheap to clone; clones share
/// the pool and the staged epoch head.
#[derive(Clone)]
pub struct AkdDb {
    backend: Backend,
    app_id: Arc<str>,
    staged: Arc<Mutex<Option<StagedHead>>>,
}

/// An epoch head to record with the next transaction commit.
#[derive(Clone, Copy)]
struct StagedHead {
    epoch: u64,
    log_size: u64,
    published_ms: i64,
    /// The configuration's `compute_root_hash_from_val`.
    root_hash: fn(&AzksValue) -> Digest,
}

impl std::fmt::Debug for AkdDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AkdDb")
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// akd's storage for `app_id`'s key directory.
    pub fn akd_db(&self, app_id: &str) -> AkdDb {
        AkdDb {
            backend: self.backend.clone(),
            app_id: Arc::from(app_id),
            staged: Arc::default(),
        }
    }
}

impl AkdDb {
    /// The app this storage belongs to.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Makes the next transaction commit (the end of akd's `publish`) record
    /// the head of `epoch` in the same database transaction as akd's records:
    /// the root hash is `TC::compute_root_hash_from_val` of the committed
    /// root node (what `publish` returns), with `log_size` and
    /// `published_ms`. That commit fails, writing nothing, if it is not the
    /// commit of `epoch` or if a different head for `epoch` is recorded.
    ///
    /// The next commit consumes the staged head whether it succeeds or not.
    /// A `publish` with nothing to change commits nothing: call
    /// [`AkdDb::unstage_epoch_head`] then. Clones share the staged head, so
    /// stage on a clone of the `AkdDb` the `StorageManager` owns.
    pub fn stage_epoch_head<TC: akd::Configuration>(
        &self,
        epoch: u64,
        log_size: u64,
        published_ms: i64,
    ) {
        *self.slot() = Some(StagedHead {
            epoch,
            log_size,
            published_ms,
            root_hash: TC::compute_root_hash_from_val,
        });
    }

    /// Drops a staged head; `true` if there was one.
    pub fn unstage_epoch_head(&self) -> bool {
        self.slot().take().is_some()
    }

    /// The SQLite pool (tests that look at SQLite itself).
    #[cfg(test)]
    pub(crate) fn sqlite_pool(&self) -> &sqlx::SqlitePool {
        match &self.backend {
            Backend::Sqlite(p) => p,
            Backend::Postgres(_) => panic!("not a SQLite store"),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<StagedHead>> {
        // The slot holds plain data: a panic elsewhere cannot leave it torn.
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Database for AkdDb {
    async fn set(&self, record: DbRecord) -> Result<(), StorageError> {
        self.batch_set(vec![record], DbSetState::General).await
    }

    async fn batch_set(
        &self,
        records: Vec<DbRecord>,
        state: DbSetState,
    ) -> Result<(), StorageError> {
        let head = match state {
            DbSetState::TransactionCommit => self.slot().take(),
            DbSetState::General => None,
        };
        let head = head.map(|h| head_of(h, &records)).transpose()?;
        dispatch!(
            &self.backend,
            queries::batch_set(&self.app_id, &records, head.as_ref())
        )
    }

    async fn get<St: Storable>(&self, id: &St::StorageKey) -> Result<DbRecord, StorageError> {
        let bin = St::get_full_binary_key_id(id);
        dispatch!(
            &self.backend,
            queries::get(&self.app_id, St::data_type(), &bin)
        )?
        .ok_or_else(|| StorageError::NotFound(format!("{:?} {id:?}", St::data_type())))
    }

    async fn batch_get<St: Storable>(
        &self,
        ids: &[St::StorageKey],
    ) -> Result<Vec<DbRecord>, StorageError> {
        let bins: Vec<Vec<u8>> = ids.iter().map(St::get_full_binary_key_id).collect();
        dispatch!(
            &self.backend,
            queries::batch_get(&self.app_id, St::data_type(), &bins)
        )
    }

    async fn get_user_data(&self, username: &AkdLabel) -> Result<KeyData, StorageError> {
        let states = dispatch!(&self.backend, queries::user_states(&self.app_id, username))?;
        if states.is_empty() {
            return Err(StorageError::NotFound(format!("ValueState {username:?}")));
        }
        Ok(KeyData { states })
    }

    async fn get_user_state(
        &self,
        username: &AkdLabel,
        flag: ValueStateRetrievalFlag,
    ) -> Result<ValueState, StorageError> {
        let one = std::slice::from_ref(username);
        dispatch!(
            &self.backend,
            queries::user_states_at(&self.app_id, one, flag)
        )?
        .pop()
        .ok_or_else(|| StorageError::NotFound(format!("ValueState {username:?}")))
    }

    async fn get_user_state_versions(
        &self,
        usernames: &[AkdLabel],
        flag: ValueStateRetrievalFlag,
    ) -> Result<HashMap<AkdLabel, (u64, AkdValue)>, StorageError> {
        Ok(dispatch!(
            &self.backend,
            queries::user_states_at(&self.app_id, usernames, flag)
        )?
        .into_iter()
        .map(|s| (s.username, (s.version, s.value)))
        .collect())
    }
}

#[async_trait::async_trait]
impl StorageUtil for AkdDb {
    async fn batch_get_type_direct<St: Storable>(&self) -> Result<Vec<DbRecord>, StorageError> {
        dispatch!(
            &self.backend,
            queries::all_of_type(&self.app_id, Some(St::data_type()))
        )
    }

    async fn batch_get_all_direct(&self) -> Result<Vec<DbRecord>, StorageError> {
        dispatch!(&self.backend, queries::all_of_type(&self.app_id, None))
    }
}

/// The head a staged commit records: the root hash from the committed root
/// node, checked against the committed `Azks` epoch.
fn head_of(staged: StagedHead, records: &[DbRecord]) -> Result<EpochHead, StorageError> {
    let refuse = |why: String| Err(StorageError::Transaction(format!("epoch head: {why}")));
    let azks_epoch = records.iter().rev().find_map(|r| match r {
        DbRecord::Azks(a) => Some(a.latest_epoch),
        _ => None,
    });
    if azks_epoch != Some(staged.epoch) {
        return refuse(format!(
            "staged for epoch {} but the commit is of epoch {azks_epoch:?}",
            staged.epoch
        ));
    }
    let root = akd::NodeLabel::root();
    let Some(node) = records.iter().rev().find_map(|r| match r {
        DbRecord::TreeNode(n) if n.label == root => Some(&n.latest_node),
        _ => None,
    }) else {
        return refuse("the commit carries no root node".into());
    };
    if node.last_epoch != staged.epoch {
        return refuse(format!(
            "the committed root node is of epoch {}, not {}",
            node.last_epoch, staged.epoch
        ));
    }
    Ok(EpochHead {
        epoch: staged.epoch,
        root_hash: (staged.root_hash)(&node.hash),
        published_ms: staged.published_ms,
        log_size: staged.log_size,
    })
}
