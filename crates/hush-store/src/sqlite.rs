//! The SQLite backend: opening the file and applying the migrations.

use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::{StoreError, StoreOptions, migrations};

pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<SqlitePool, StoreError> {
    let open_err = |reason: &dyn std::fmt::Display| StoreError::Open {
        path: crate::redact_url(url),
        reason: reason.to_string(),
    };
    let connect = SqliteConnectOptions::from_str(url)
        .map_err(|e| open_err(&e))?
        .create_if_missing(options.create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true)
        // Deleted rows (acknowledged mailbox envelopes above all) are
        // overwritten with zeros, not left in free pages.
        .pragma("secure_delete", "ON");
    let file = connect.get_filename();
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if !in_memory && options.create {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.busy_timeout)
        .connect_with(connect)
        .await
        .map_err(|e| open_err(&e))?;
    migrations::sqlite().await?.run(&pool).await?;
    tracing::debug!(url, "store opened");
    Ok(pool)
}

pub(crate) async fn ping(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
