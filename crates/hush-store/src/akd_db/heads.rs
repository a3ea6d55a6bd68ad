//! Epoch heads: for each app and published akd epoch, the root hash, when it
//! was published and the directory's log size at that epoch.
//!
//! A head, once recorded, never changes: recording a different head for the
//! same epoch is a [`StoreError::Conflict`] (a second, different root for
//! one epoch is what a forked directory looks like).

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::{Backend, Store, StoreError};

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
        match &self.backend {
            Backend::Sqlite(p) => insert(&mut *p.acquire().await?, app_id, head).await,
        }
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
        match &self.backend {
            Backend::Sqlite(p) => {
                let row = sqlx::query(
                    "SELECT epoch, root_hash, published_ms, log_size FROM akd_epoch_heads \
                     WHERE app_id = ? AND epoch = ?",
                )
                .bind(app_id)
                .bind(epoch)
                .fetch_optional(p)
                .await?;
                row.as_ref().map(head_row).transpose()
            }
        }
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
        match &self.backend {
            Backend::Sqlite(p) => {
                let rows = sqlx::query(
                    "SELECT epoch, root_hash, published_ms, log_size FROM akd_epoch_heads \
                     WHERE app_id = ? AND epoch >= ? AND epoch < ? ORDER BY epoch LIMIT ?",
                )
                .bind(app_id)
                .bind(start)
                .bind(end)
                .bind(MAX_EPOCH_HEADS_PER_READ as i64)
                .fetch_all(p)
                .await?;
                rows.iter().map(head_row).collect()
            }
        }
    }

    /// `app_id`'s head with the highest epoch, if any.
    pub async fn latest_epoch_head(&self, app_id: &str) -> Result<Option<EpochHead>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => {
                let row = sqlx::query(
                    "SELECT epoch, root_hash, published_ms, log_size FROM akd_epoch_heads \
                     WHERE app_id = ? ORDER BY epoch DESC LIMIT 1",
                )
                .bind(app_id)
                .fetch_optional(p)
                .await?;
                row.as_ref().map(head_row).transpose()
            }
        }
    }
}

/// Records `head` on `conn` (a pooled connection or an open transaction).
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    app_id: &str,
    head: &EpochHead,
) -> Result<bool, StoreError> {
    let range = |what: &str, v: u64| {
        i64::try_from(v)
            .map_err(|_| StoreError::Corrupt(format!("epoch head {what} {v} out of range")))
    };
    let epoch = range("epoch", head.epoch)?;
    let log_size = range("log size", head.log_size)?;
    let inserted = sqlx::query(
        "INSERT INTO akd_epoch_heads (app_id, epoch, root_hash, published_ms, log_size) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (app_id, epoch) DO NOTHING",
    )
    .bind(app_id)
    .bind(epoch)
    .bind(&head.root_hash[..])
    .bind(head.published_ms)
    .bind(log_size)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(true);
    }
    let row = sqlx::query(
        "SELECT epoch, root_hash, published_ms, log_size FROM akd_epoch_heads \
         WHERE app_id = ? AND epoch = ?",
    )
    .bind(app_id)
    .bind(epoch)
    .fetch_one(&mut *conn)
    .await?;
    if head_row(&row)? == *head {
        Ok(false)
    } else {
        Err(StoreError::Conflict(format!(
            "app {app_id:?} already has a different head for epoch {}",
            head.epoch
        )))
    }
}

fn head_row(r: &SqliteRow) -> Result<EpochHead, StoreError> {
    let unsigned = |name: &str| -> Result<u64, StoreError> {
        let v: i64 = r.try_get(name)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("epoch head {name} = {v}")))
    };
    let hash: Vec<u8> = r.try_get("root_hash")?;
    Ok(EpochHead {
        epoch: unsigned("epoch")?,
        root_hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("epoch head root hash is not 32 bytes".into()))?,
        published_ms: r.try_get("published_ms")?,
        log_size: unsigned("log_size")?,
    })
}
