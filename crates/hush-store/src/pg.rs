//! The PostgreSQL backend: opening the pool and applying the migrations.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::backend::PG_IDLE_TIMEOUT;
use crate::{StoreError, StoreOptions, migrations};

/// Connects to the database at `url` and brings its schema up to date.
/// Several nodes may do this at once: sqlx's migrator holds a PostgreSQL
/// advisory lock (`pg_advisory_lock`) while it checks and applies
/// migrations, so the second node waits and then finds them applied.
pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<PgPool, StoreError> {
    let open_err = |reason: &dyn std::fmt::Display| StoreError::Open {
        path: crate::redact_url(url),
        reason: reason.to_string(),
    };
    let connect = PgConnectOptions::from_str(url)
        .map_err(|e| open_err(&e))?
        .application_name("hush");
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.max(1))
        .acquire_timeout(options.busy_timeout)
        .idle_timeout(PG_IDLE_TIMEOUT)
        // A connection that died with a restarted server is found out and
        // replaced before a query fails on it.
        .test_before_acquire(true)
        .connect_with(connect)
        .await
        .map_err(|e| open_err(&e))?;
    migrations::postgres().await?.run(&pool).await?;
    tracing::debug!(url = %crate::redact_url(url), "store opened");
    Ok(pool)
}

pub(crate) async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}
