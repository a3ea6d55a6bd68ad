//! The key directory's durable part: each app's transparency-log leaves, in
//! index order, and the server's own signing keys (docs/KEY-TRANSPARENCY.md).
//!
//! The store does not interpret leaves; the server checks them against the
//! directory rules before appending. Appends name the index they expect, so
//! two writers can never both take one index: the second gets `false` and
//! must reload.

use crate::backend::{dispatch, per_backend};
use crate::{Store, StoreError};

per_backend!(queries, "directory/queries.rs");

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
        dispatch!(&self.backend, queries::append(app_id, idx, leaf, user_id))
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
        dispatch!(&self.backend, queries::leaves(app_id, start, end))
    }

    /// The named server key, created from `generate()` on first use. Every
    /// caller (and every node sharing the store) gets the same key.
    pub async fn server_key(
        &self,
        name: &str,
        generate: impl FnOnce() -> [u8; 32],
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, StoreError> {
        let fresh = zeroize::Zeroizing::new(generate());
        dispatch!(&self.backend, queries::server_key(name, &fresh[..]))
    }

    /// How many leaves `app_id`'s log holds (the index the next append
    /// takes): what another node sharing the store may have appended.
    pub async fn directory_size(&self, app_id: &str) -> Result<u64, StoreError> {
        let n = dispatch!(&self.backend, queries::size(app_id))?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("directory log size {n}")))
    }
}

fn index_to_sql(idx: u64) -> Result<i64, StoreError> {
    i64::try_from(idx).map_err(|_| StoreError::Corrupt(format!("log index {idx} out of range")))
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    use crate::testing::{TestDb, both_backends};

    both_backends!(
        appends_in_order_without_holes_or_double_writes,
        server_keys_are_created_once
    );

    async fn appends_in_order_without_holes_or_double_writes(db: &TestDb) {
        let s = db.open().await;
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

    async fn server_keys_are_created_once(db: &TestDb) {
        let s = db.open().await;
        let first = s.server_key("log", || [7; 32]).await.unwrap();
        let again = s.server_key("log", || [9; 32]).await.unwrap();
        assert_eq!(*first, [7; 32]);
        assert_eq!(*again, [7; 32]);
    }

    /// Nodes starting together on one new PostgreSQL database: the
    /// migrations run once (under the migrator's advisory lock) and every
    /// node gets the key of whichever inserted first. (SQLite is one
    /// process per file: the server's data lock.)
    #[tokio::test]
    async fn postgres_concurrent_opens_migrate_once_and_share_server_keys() {
        let db = TestDb::postgres().await;
        let mut tasks = Vec::new();
        for n in 0..8u8 {
            let url = db.url.clone();
            tasks.push(tokio::spawn(async move {
                let s = Store::open(&url, &StoreOptions::default()).await.unwrap();
                let key = s.server_key("log", || [n; 32]).await.unwrap();
                s.close().await;
                *key
            }));
        }
        let mut keys = Vec::new();
        for t in tasks {
            keys.push(t.await.unwrap());
        }
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
        let s = db.open().await;
        assert_eq!(*s.server_key("log", || [99; 32]).await.unwrap(), keys[0]);
    }
}
