//! The key directory's durable part: each app's transparency-log leaves, in
//! index order, and the server's own signing keys (docs/KEY-TRANSPARENCY.md).
//!
//! The store does not interpret leaves; the server checks them against the
//! directory rules before appending. Appends name the index they expect, so
//! two writers can never both take one index: the second gets `false` and
//! must reload.

use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;

use crate::backend::{Backend, dispatch, per_backend};
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

/// How often a node waiting for [`Store::directory_lock`] tries again.
const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Held while a node publishes an epoch of one app's key directory on a
/// shared store: PostgreSQL's session advisory lock on
/// `hashtextextended('hush-directory:' || app_id, 0)`, on a connection
/// taken out of the pool for as long as it is held. Nothing on SQLite (one
/// process per file; the directory serialises its epochs in memory).
///
/// Give it back with [`DirectoryLock::release`]. Dropped without that (a
/// panic, a cancelled task), its connection is closed instead of returned
/// to the pool, which ends the session and so frees the lock; a node that
/// dies frees it the same way.
#[derive(Debug)]
pub struct DirectoryLock {
    conn: Option<PoolConnection<sqlx::Postgres>>,
}

impl DirectoryLock {
    /// Unlocks and returns the connection to the pool.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock_all()")
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                drop(conn.detach());
            }
        }
    }
}

impl Drop for DirectoryLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Closing the session frees its advisory locks.
            drop(conn.detach());
        }
    }
}

impl Store {
    /// Takes the cluster-wide lock on `app_id`'s key directory (see
    /// [`DirectoryLock`]), waiting at most `wait` for another node to let
    /// go of it (then a [`StoreError::Conflict`]).
    pub async fn directory_lock(
        &self,
        app_id: &str,
        wait: Duration,
    ) -> Result<DirectoryLock, StoreError> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(DirectoryLock { conn: None });
        };
        let mut conn = pool.acquire().await?;
        let key = format!("hush-directory:{app_id}");
        let deadline = Instant::now() + wait;
        loop {
            // try_: never a statement blocked in the server, so giving up
            // (or a cancelled task) leaves no waiter behind.
            let got: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                    .bind(&key)
                    .fetch_one(&mut *conn)
                    .await?;
            if got {
                return Ok(DirectoryLock { conn: Some(conn) });
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Conflict(format!(
                    "the key directory of app {app_id:?} stayed locked by another node for {} ms",
                    wait.as_millis()
                )));
            }
            tokio::time::sleep(LOCK_RETRY).await;
        }
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

    /// The directory lock excludes other nodes (other pools) until released
    /// or dropped, and a dropped holder's session frees it.
    #[tokio::test]
    async fn postgres_directory_lock_is_exclusive_across_nodes() {
        let db = TestDb::postgres().await;
        let (a, b) = (db.open().await, db.open().await);
        let short = std::time::Duration::from_millis(100);
        let held = a.directory_lock("app", short).await.unwrap();
        assert!(matches!(
            b.directory_lock("app", short).await,
            Err(crate::StoreError::Conflict(_))
        ));
        // Another app is another lock.
        b.directory_lock("other", short)
            .await
            .unwrap()
            .release()
            .await;
        held.release().await;
        let held = b.directory_lock("app", short).await.unwrap();
        // Dropped: its session ends, which frees the lock.
        drop(held);
        let wait = std::time::Duration::from_secs(5);
        a.directory_lock("app", wait).await.unwrap().release().await;
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
