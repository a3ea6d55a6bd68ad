//! The key directory's durable part: each app's transparency-log leaves, in
//! index order, and the server's own signing keys (docs/KEY-TRANSPARENCY.md).
//!
//! The store does not interpret leaves; the server checks them against the
//! directory rules before appending. Appends name the index they expect, so
//! two writers can never both take one index: the second gets `false` and
//! must reload.

use sqlx::{Row, SqlitePool};

use crate::{Backend, Store, StoreError, now_ms};

/// Most leaves one [`Store::directory_leaves`] call returns.
pub const MAX_LEAVES_PER_READ: u64 = 100_000;

impl Store {
    /// Appends `leaf` at index `idx` of `app_id`'s log. Returns `false`
    /// (nothing written) if that index is already taken.
    pub async fn directory_append(
        &self,
        app_id: &str,
        idx: u64,
        leaf: &[u8],
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let idx = index_to_sql(idx)?;
        match &self.backend {
            Backend::Sqlite(p) => append(p, app_id, idx, leaf, user_id).await,
        }
    }

    /// Leaves `start..end` of `app_id`'s log (at most
    /// [`MAX_LEAVES_PER_READ`]), in index order.
    pub async fn directory_leaves(
        &self,
        app_id: &str,
        start: u64,
        end: u64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = end.min(start.saturating_add(MAX_LEAVES_PER_READ));
        if end <= start {
            return Ok(Vec::new());
        }
        let (start, end) = (index_to_sql(start)?, index_to_sql(end)?);
        match &self.backend {
            Backend::Sqlite(p) => leaves(p, app_id, start, end).await,
        }
    }

    /// The named server key, created from `generate()` on first use. Every
    /// caller (and every node sharing the store) gets the same key.
    pub async fn server_key(
        &self,
        name: &str,
        generate: impl FnOnce() -> [u8; 32],
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, StoreError> {
        let fresh = zeroize::Zeroizing::new(generate());
        match &self.backend {
            Backend::Sqlite(p) => server_key(p, name, &fresh[..]).await,
        }
    }
}

fn index_to_sql(idx: u64) -> Result<i64, StoreError> {
    i64::try_from(idx).map_err(|_| StoreError::Corrupt(format!("log index {idx} out of range")))
}

async fn append(
    pool: &SqlitePool,
    app_id: &str,
    idx: i64,
    leaf: &[u8],
    user_id: &str,
) -> Result<bool, StoreError> {
    // The index must be the next one (the log has no holes): one statement,
    // so SQLite takes the write lock before it reads. A deferred transaction
    // that counted first and then inserted failed with SQLITE_BUSY whenever
    // the webhook outbox wrote in between, and the count scanned the log.
    let inserted = sqlx::query(
        "INSERT INTO directory_log (app_id, idx, leaf, user_id, created_ms) \
         SELECT $1, $2, $3, $4, $5 \
         WHERE $2 = 0 OR EXISTS \
             (SELECT 1 FROM directory_log WHERE app_id = $1 AND idx = $2 - 1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(app_id)
    .bind(idx)
    .bind(leaf)
    .bind(user_id)
    .bind(now_ms())
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

async fn leaves(
    pool: &SqlitePool,
    app_id: &str,
    start: i64,
    end: i64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let rows = sqlx::query(
        "SELECT idx, leaf FROM directory_log WHERE app_id = $1 AND idx >= $2 AND idx < $3 \
         ORDER BY idx",
    )
    .bind(app_id)
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (expected, row) in (start..).zip(rows) {
        let idx: i64 = row.try_get(0)?;
        if idx != expected {
            return Err(StoreError::Corrupt(format!(
                "directory log of app {app_id} has a hole at index {expected}"
            )));
        }
        out.push(row.try_get(1)?);
    }
    Ok(out)
}

async fn server_key(
    pool: &SqlitePool,
    name: &str,
    fresh: &[u8],
) -> Result<zeroize::Zeroizing<[u8; 32]>, StoreError> {
    sqlx::query(
        "INSERT INTO server_keys (name, secret, created_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(fresh)
    .bind(now_ms())
    .execute(pool)
    .await?;
    let row = sqlx::query("SELECT secret FROM server_keys WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await?;
    let secret: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(row.try_get(0)?);
    let key: [u8; 32] = secret
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("server key {name} is not 32 bytes")))?;
    Ok(zeroize::Zeroizing::new(key))
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
        (
            dir,
            Store::open(&url, &StoreOptions::default()).await.unwrap(),
        )
    }

    #[tokio::test]
    async fn appends_in_order_without_holes_or_double_writes() {
        let (_dir, s) = store().await;
        assert!(
            s.directory_append("a", 0, b"\x01one", "alice")
                .await
                .unwrap()
        );
        assert!(s.directory_append("a", 1, b"\x01two", "bob").await.unwrap());
        // Index taken, or a hole: refused.
        assert!(!s.directory_append("a", 1, b"\x01dup", "bob").await.unwrap());
        assert!(!s.directory_append("a", 5, b"\x01gap", "bob").await.unwrap());
        // Apps have separate logs.
        assert!(s.directory_append("b", 0, b"\x02x", "carol").await.unwrap());
        assert_eq!(
            s.directory_leaves("a", 0, u64::MAX).await.unwrap(),
            vec![b"\x01one".to_vec(), b"\x01two".to_vec()]
        );
        assert_eq!(
            s.directory_leaves("a", 1, 2).await.unwrap(),
            vec![b"\x01two".to_vec()]
        );
        assert!(s.directory_leaves("a", 2, 1).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn server_keys_are_created_once() {
        let (_dir, s) = store().await;
        let first = s.server_key("log", || [7; 32]).await.unwrap();
        let again = s.server_key("log", || [9; 32]).await.unwrap();
        assert_eq!(*first, [7; 32]);
        assert_eq!(*again, [7; 32]);
    }
}
