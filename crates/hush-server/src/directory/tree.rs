//! One app's akd tree: publishing epochs and computing lookup, history and
//! append-only proofs, off the async workers.
//!
//! akd's futures hash and evaluate the VRF: CPU work. They run on a
//! blocking thread ([`off_workers`]), so a large lookup or a publication
//! never holds up the runtime that serves connections. A per-app
//! reader-writer lock keeps every proof of one answer at one epoch: a
//! publication waits for the proofs in progress and proofs wait for the
//! publication.

use std::sync::Arc;

use akd::errors::{AkdError, StorageError};
use akd::storage::StorageManager;
use akd::{AkdValue, EpochHash, HistoryParams};
use akd_core::ecvrf::{VRFKeyStorage, VrfError};
use hush_crypto::transparency::Hash;
use hush_crypto::transparency::proofs::{
    AkdConfig, encode_history_proof, encode_lookup_proof, label,
};
use hush_protocol::UserId;
use zeroize::Zeroizing;

use super::DirError;

/// The storage under the tree: the app's akd records in hush's store.
pub(super) type Db = hush_store::akd_db::AkdDb;
type Akd = akd::Directory<AkdConfig, Db, Vrf>;

/// The VRF private key, for akd (which asks for it on every evaluation).
#[derive(Clone)]
pub(super) struct Vrf(Arc<Zeroizing<[u8; 32]>>);

impl Vrf {
    pub(super) fn new(secret: Zeroizing<[u8; 32]>) -> Self {
        Self(Arc::new(secret))
    }

    /// The public key clients pin.
    pub(super) async fn public_key(&self) -> Result<[u8; 32], DirError> {
        let pk = self
            .get_vrf_public_key()
            .await
            .map_err(|e| DirError::Busy(format!("VRF key: {e:?}")))?;
        let bytes: [u8; 32] = pk
            .to_bytes()
            .as_slice()
            .try_into()
            .map_err(|_| DirError::Busy("VRF key length".into()))?;
        Ok(bytes)
    }
}

#[async_trait::async_trait]
impl VRFKeyStorage for Vrf {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(self.0.to_vec())
    }
}

/// Runs `work` on a blocking thread (driving its future there).
pub(super) async fn off_workers<T: Send + 'static>(
    work: impl Future<Output = Result<T, DirError>> + Send + 'static,
) -> Result<T, DirError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work))
        .await
        .map_err(|_| DirError::Busy("key directory work was interrupted".into()))?
}

fn akd_error(e: AkdError) -> DirError {
    tracing::warn!(error = %e, "key directory tree error");
    DirError::Busy(format!("key directory tree: {e}"))
}

/// A lookup proof for one user.
pub(super) struct UserProof {
    pub(super) user: UserId,
    pub(super) proof: Vec<u8>,
}

/// One app's tree.
#[derive(Clone)]
pub(super) struct Tree {
    akd: Akd,
    /// The storage, to stage each epoch's head into the publication's
    /// store transaction.
    db: Db,
    /// Publications write-lock it; proofs read-lock it.
    epoch_lock: Arc<tokio::sync::RwLock<()>>,
}

impl Tree {
    /// The tree stored in `db` (created empty at epoch 0 if there is none).
    pub(super) async fn open(db: Db, vrf: Vrf) -> Result<Self, DirError> {
        let handle = db.clone();
        let storage = StorageManager::new(
            db,
            Some(std::time::Duration::from_secs(600)),
            Some(256 * 1024 * 1024),
            Some(std::time::Duration::from_secs(60)),
        );
        let akd = off_workers(async move {
            Akd::new(
                storage,
                vrf,
                akd::append_only_zks::AzksParallelismConfig::disabled(),
            )
            .await
            .map_err(akd_error)
        })
        .await?;
        Ok(Self {
            akd,
            db: handle,
            epoch_lock: Arc::new(tokio::sync::RwLock::new(())),
        })
    }

    /// Whether `other` is a clone of this tree (the same akd storage and
    /// cache), not a tree loaded again.
    pub(super) fn same(&self, other: &Tree) -> bool {
        Arc::ptr_eq(&self.epoch_lock, &other.epoch_lock)
    }

    /// The current epoch and root.
    pub(super) async fn current(&self) -> Result<(u64, Hash), DirError> {
        let akd = self.akd.clone();
        let lock = self.epoch_lock.clone();
        off_workers(async move {
            let _g = lock.read().await;
            let EpochHash(epoch, root) = akd.get_epoch_hash().await.map_err(akd_error)?;
            Ok((epoch, root))
        })
        .await
    }

    /// Publishes one epoch with `updates` (user, entry bytes), recording its
    /// head (root, `published_ms`, `log_size`: the records it covers) in the
    /// same store transaction as the tree's records.
    pub(super) async fn publish(
        &self,
        updates: Vec<(UserId, Vec<u8>)>,
        log_size: u64,
        published_ms: u64,
    ) -> Result<(u64, Hash), DirError> {
        let akd = self.akd.clone();
        let db = self.db.clone();
        let lock = self.epoch_lock.clone();
        off_workers(async move {
            let _g = lock.write().await;
            let EpochHash(current, _) = akd.get_epoch_hash().await.map_err(akd_error)?;
            db.stage_epoch_head::<AkdConfig>(
                current + 1,
                log_size,
                i64::try_from(published_ms).unwrap_or(i64::MAX),
            );
            let updates = updates
                .into_iter()
                .map(|(u, v)| (label(&u), AkdValue(v)))
                .collect();
            let published = akd.publish(updates).await;
            // A publication that changed nothing committed nothing.
            db.unstage_epoch_head();
            let EpochHash(epoch, root) = published.map_err(akd_error)?;
            Ok((epoch, root))
        })
        .await
    }

    /// Lookup proofs for `users` (all at one epoch, returned with it), in
    /// order, until the next one would take the answer past `max_bytes` (the
    /// first one always): the rest are not computed. `users` must all have
    /// an entry. `stop` is checked between users.
    pub(super) async fn lookup(
        &self,
        users: Vec<UserId>,
        max_bytes: usize,
        stop: super::limits::CancelToken,
    ) -> Result<((u64, Hash), Vec<UserProof>), DirError> {
        let akd = self.akd.clone();
        let lock = self.epoch_lock.clone();
        off_workers(async move {
            let _g = lock.read().await;
            let EpochHash(epoch, root) = akd.get_epoch_hash().await.map_err(akd_error)?;
            let mut out = Vec::with_capacity(users.len());
            let mut bytes = 0usize;
            for user in users {
                stop.check()?;
                let (proof, at) = akd.lookup(label(&user)).await.map_err(akd_error)?;
                if at.0 != epoch {
                    return Err(DirError::Busy("the epoch moved during a lookup".into()));
                }
                let proof = encode_lookup_proof(&proof);
                // About what the user takes in the answer's JSON (base64).
                let len = user.as_str().len() + proof.len().div_ceil(3) * 4 + 8;
                if !out.is_empty() && bytes.saturating_add(len) > max_bytes {
                    break;
                }
                bytes += len;
                out.push(UserProof { user, proof });
            }
            Ok(((epoch, root), out))
        })
        .await
    }

    /// The history proof of `user`'s `versions` most recent entries.
    pub(super) async fn history(
        &self,
        user: UserId,
        versions: usize,
    ) -> Result<((u64, Hash), Vec<u8>), DirError> {
        let akd = self.akd.clone();
        let lock = self.epoch_lock.clone();
        off_workers(async move {
            let _g = lock.read().await;
            let (proof, EpochHash(epoch, root)) = akd
                .key_history(&label(&user), HistoryParams::MostRecent(versions))
                .await
                .map_err(|e| match e {
                    AkdError::Storage(StorageError::NotFound(_)) => {
                        DirError::NotFound("the user has no directory entry yet".into())
                    }
                    e => akd_error(e),
                })?;
            Ok(((epoch, root), encode_history_proof(&proof)))
        })
        .await
    }

    /// The append-only proof from epoch `from` to `to` (akd protobuf).
    pub(super) async fn audit(&self, from: u64, to: u64) -> Result<Vec<u8>, DirError> {
        use protobuf::Message;
        let akd = self.akd.clone();
        let lock = self.epoch_lock.clone();
        off_workers(async move {
            let _g = lock.read().await;
            let proof = akd.audit(from, to).await.map_err(akd_error)?;
            akd_core::proto::specs::types::AppendOnlyProof::from(&proof)
                .write_to_bytes()
                .map_err(|e| DirError::Busy(format!("audit proof: {e}")))
        })
        .await
    }
}
