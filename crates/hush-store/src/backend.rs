//! The two backends: SQLite (embedded, the default) and PostgreSQL (shared
//! by the nodes of a cluster).
//!
//! [`Backend`] is an enum holding sqlx's concrete pool of each. The queries
//! are written once, in portable SQL (`$n` parameters, `ON CONFLICT`,
//! `RETURNING`, `BIGINT`/`BLOB`-`BYTEA` columns), in a file per domain
//! (`outbox/queries.rs`, `mailbox/queries.rs`, …) that [`per_backend!`]
//! compiles once per backend: inside `sqlite` with `Db = Sqlite`, inside
//! `postgres` with `Db = Postgres` (the aliases below). That is a generic
//! function over the two databases without sqlx's generic trait bounds
//! (every `Encode`/`Decode`/`Executor` bound spelled at every function) and
//! without `sqlx::Any`, which would lose the typed pool (`BEGIN IMMEDIATE`,
//! `PRAGMA`, advisory locks), checks no types at compile time and adds a
//! conversion on every value. What is not portable is a function of the
//! backend's module here ([`sqlite::begin_write`] …), one beside the other.

use std::time::Duration;

/// A store's connection pool.
#[derive(Clone)]
pub(crate) enum Backend {
    /// The embedded database.
    Sqlite(sqlx::SqlitePool),
    /// A PostgreSQL server.
    Postgres(sqlx::PgPool),
}

/// Compiles `$file` (a file of queries over the aliases `Db`, `Pool`,
/// `DbRow`, `Conn`) once per backend, as modules `$name::sqlite` and
/// `$name::postgres`.
macro_rules! per_backend {
    ($name:ident, $file:literal) => {
        /// The queries, once per backend.
        mod $name {
            /// The queries on SQLite.
            pub(crate) mod sqlite {
                #[allow(unused_imports)]
                use crate::backend::sqlite::*;
                include!($file);
            }
            /// The same queries on PostgreSQL.
            pub(crate) mod postgres {
                #[allow(unused_imports)]
                use crate::backend::postgres::*;
                include!($file);
            }
        }
    };
}
pub(crate) use per_backend;

/// Calls `$module::sqlite::$f(pool, args…)` or `$module::postgres::$f(…)`
/// on the store's backend, and awaits it.
macro_rules! dispatch {
    ($backend:expr, $module:ident :: $f:ident ( $($arg:expr),* $(,)? )) => {
        match $backend {
            $crate::backend::Backend::Sqlite(p) => $module::sqlite::$f(p, $($arg),*).await,
            $crate::backend::Backend::Postgres(p) => $module::postgres::$f(p, $($arg),*).await,
        }
    };
}
pub(crate) use dispatch;

/// SQLite's types and its non-portable statements.
pub(crate) mod sqlite {
    /// The database.
    pub(crate) type Db = sqlx::Sqlite;
    /// Its pool.
    pub(crate) type Pool = sqlx::SqlitePool;
    /// One of its rows.
    pub(crate) type DbRow = sqlx::sqlite::SqliteRow;
    /// One of its connections.
    pub(crate) type Conn = sqlx::SqliteConnection;

    /// A transaction that writes: SQLite takes the write lock first
    /// (`BEGIN IMMEDIATE`), so a concurrent writer waits (busy timeout)
    /// instead of failing on a read-to-write upgrade.
    pub(crate) async fn begin_write(
        pool: &Pool,
    ) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }
}

/// PostgreSQL's types and its non-portable statements.
pub(crate) mod postgres {
    /// The database.
    pub(crate) type Db = sqlx::Postgres;
    /// Its pool.
    pub(crate) type Pool = sqlx::PgPool;
    /// One of its rows.
    pub(crate) type DbRow = sqlx::postgres::PgRow;
    /// One of its connections.
    pub(crate) type Conn = sqlx::PgConnection;

    /// A transaction that writes (row locks are taken as rows are written).
    pub(crate) async fn begin_write(
        pool: &Pool,
    ) -> Result<sqlx::Transaction<'static, Db>, sqlx::Error> {
        pool.begin().await
    }
}

/// How long a pooled PostgreSQL connection may stay idle before it is
/// closed (a restarted server's dead connections go at the latest then;
/// sqlx also tests every connection before handing it out).
pub(crate) const PG_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
