// The key directory log's and server keys' queries, compiled once per
// backend (see `crate::backend::per_backend`).

use sqlx::Row;

use crate::{StoreError, now_ms};

pub(crate) async fn append(
    pool: &Pool,
    app_id: &str,
    idx: i64,
    leaf: &[u8],
    user_id: &str,
) -> Result<bool, StoreError> {
    // The index must be the next one (the log has no holes): one statement,
    // so SQLite takes the write lock before it reads (and on PostgreSQL, of
    // two nodes appending one index, the primary key refuses the second). A deferred transaction
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

pub(crate) async fn leaves(
    pool: &Pool,
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

pub(crate) async fn server_key(
    pool: &Pool,
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

/// The number of leaves in `app_id`'s log (its next index).
pub(crate) async fn size(pool: &Pool, app_id: &str) -> Result<i64, StoreError> {
    let n: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM directory_log WHERE app_id = $1")
            .bind(app_id)
            .fetch_one(pool)
            .await?;
    Ok(n)
}
