//! Epoch heads: for each app and published akd epoch, the root hash, when it
//! was published and the directory's log size at that epoch.
//!
//! A head, once recorded, never changes: recording a different head for the
//! same epoch is a [`StoreError::Conflict`] (a second, different root for
//! one epoch is what a forked directory looks like).

use crate::akd_db::queries;
use crate::backend::dispatch;
use crate::{Store, StoreError};

/// Most heads one [`Store::epoch_heads`] call returns.
pub const MAX_EPOCH_HEADS_PER_READ: u64 = 1000;

/// One published epoch of an app's akd directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochHead {
    /// The akd epoch.
    pub epoch: u64,
    /// The directory's root hash at that epoch (akd's `EpochHash` digest).
    pub root_hash: [u8; 32],
    /// When the epoch was published (ms since the Unix epoch).
    pub published_ms: i64,
    /// The directory's chronological entry count at that epoch (the
    /// directory's own bookkeeping; the store does not interpret it).
    pub log_size: u64,
}

impl Store {
    /// Records `head` for `app_id`. `Ok(true)`: recorded; `Ok(false)`: the
    /// very same head was already there (a retry); a different head for that
    /// epoch is a [`StoreError::Conflict`] and changes nothing.
    pub async fn record_epoch_head(
        &self,
        app_id: &str,
        head: &EpochHead,
    ) -> Result<bool, StoreError> {
        dispatch!(&self.backend, queries::record_head(app_id, head))
    }

    /// `app_id`'s head for `epoch`, if recorded.
    pub async fn epoch_head(
        &self,
        app_id: &str,
        epoch: u64,
    ) -> Result<Option<EpochHead>, StoreError> {
        let Ok(epoch) = i64::try_from(epoch) else {
            return Ok(None);
        };
        dispatch!(&self.backend, queries::head_at(app_id, epoch))
    }

    /// `app_id`'s heads with `start <= epoch < end`, in epoch order, at most
    /// [`MAX_EPOCH_HEADS_PER_READ`] (read on from the last epoch + 1).
    pub async fn epoch_heads(
        &self,
        app_id: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<EpochHead>, StoreError> {
        let (Ok(start), end) = (i64::try_from(start), i64::try_from(end).unwrap_or(i64::MAX))
        else {
            return Ok(Vec::new());
        };
        if end <= start {
            return Ok(Vec::new());
        }
        dispatch!(&self.backend, queries::heads_between(app_id, start, end))
    }

    /// `app_id`'s head with the highest epoch, if any.
    pub async fn latest_epoch_head(&self, app_id: &str) -> Result<Option<EpochHead>, StoreError> {
        dispatch!(&self.backend, queries::latest_head(app_id))
    }
}
