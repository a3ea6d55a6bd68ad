//! hush's durable storage.
//!
//! One [`Store`] hides which database is used: SQLite (the embedded
//! default: a file in the data directory, WAL mode, created on first start)
//! or PostgreSQL (a `postgres://` URL: one database shared by every node of a
//! cluster). The backend is an enum inside [`Store`] (see `backend.rs`); the
//! SQL is portable (`$n` parameters, standard types) and written once, and
//! the schema lives in additive, embedded migrations, one directory per
//! backend (`migrations/sqlite/`, `migrations/postgres/`), applied on
//! [`Store::open`].
//!
//! It holds the webhook outbox ([`outbox`]), the key directory's log
//! ([`directory`]), akd's storage for key directory v2 ([`akd_db`]: an
//! [`AkdDb`] per app and the published [`EpochHead`]s) and the encrypted
//! mailbox ([`mailbox`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), hush_store::StoreError> {
//! let store = hush_store::Store::open("sqlite://./hush-data/hush.sqlite3", &Default::default()).await?;
//! store.ping().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod akd_db;
pub mod apps;
mod backend;
pub mod directory;
mod error;
pub mod mailbox;
mod migrations;
pub mod outbox;
mod pg;
mod sqlite;
#[cfg(test)]
mod testing;

use std::time::Duration;

use backend::Backend;

pub use akd_db::{AkdDb, EpochHead, MAX_EPOCH_HEADS_PER_READ};
pub use apps::StoredApp;
pub use error::StoreError;
pub use outbox::{
    AppCounts, DeadLetter, FailureOutcome, NewOutboxEvent, OccupancyChange, Occupied, OutboxEvent,
    Target,
};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long a statement waits for a lock (SQLite) or a pooled
    /// connection (both).
    pub busy_timeout: Duration,
    /// Create the database (and its directory) when missing. Tools that only
    /// inspect a store turn this off, so a wrong path is an error, not a new
    /// empty database. (SQLite only: a PostgreSQL database must exist.)
    pub create: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            create: true,
        }
    }
}

/// The storage of one hush node (cheap to clone: the pool is shared).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.backend {
            Backend::Sqlite(_) => f.write_str("Store(sqlite)"),
            Backend::Postgres(_) => f.write_str("Store(postgres)"),
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies the
    /// migrations. `sqlite://PATH` (directories are created), `sqlite:PATH`
    /// and `sqlite::memory:` are understood, and `postgres://` /
    /// `postgresql://` URLs (the database must exist; several nodes may open
    /// it at once: migrations run under PostgreSQL's advisory lock).
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        let backend = match scheme.as_str() {
            "sqlite" => Backend::Sqlite(sqlite::open(url, options).await?),
            "postgres" | "postgresql" => Backend::Postgres(pg::open(url, options).await?),
            _ => {
                return Err(StoreError::Unsupported(format!(
                    "unknown store URL scheme in '{}' (expected sqlite://PATH or postgres://…)",
                    redact_url(url)
                )));
            }
        };
        Ok(Self { backend })
    }

    /// Checks that the database answers (readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => sqlite::ping(p).await,
            Backend::Postgres(p) => pg::ping(p).await,
        }
    }

    /// Closes every pooled connection (waits for checked-out ones).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// True when several nodes may share this store (PostgreSQL): the
    /// webhook outbox is then delivered under leases, and the key directory
    /// re-reads what other nodes wrote before it answers.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }
}

/// `url` with any password replaced by `****` (for logs and `--print-config`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:****@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://hush:s3cret@db:5432/hush"),
            "postgres://hush:****@db:5432/hush"
        );
        assert_eq!(
            redact_url("sqlite://./d/h.sqlite3"),
            "sqlite://./d/h.sqlite3"
        );
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }

    /// TLS to PostgreSQL (rustls): `require` encrypts; `verify-full` checks
    /// the server's certificate and name against `sslrootcert` and refuses a
    /// server whose certificate no trusted CA signed.
    #[tokio::test]
    async fn postgres_over_tls_verifies_the_server() {
        use crate::testing::pg_server::Postgres;
        let pg = tokio::task::spawn_blocking(Postgres::start_tls)
            .await
            .unwrap();
        let url = pg.create_database();
        let o = StoreOptions::default();
        let encrypted = |s: Store| async move {
            let Backend::Postgres(p) = &s.backend else {
                unreachable!()
            };
            let on: bool =
                sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                    .fetch_one(p)
                    .await
                    .unwrap();
            assert!(on, "not encrypted");
        };
        encrypted(
            Store::open(&format!("{url}?sslmode=require"), &o)
                .await
                .unwrap(),
        )
        .await;
        let ca = pg.tls_cert();
        let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display());
        encrypted(Store::open(&verified, &o).await.unwrap()).await;
        // The system's roots do not include this self-signed certificate.
        assert!(
            Store::open(&format!("{url}?sslmode=verify-ca"), &o)
                .await
                .is_err()
        );
        drop(pg);
    }

    #[tokio::test]
    async fn refuses_unknown_urls_and_missing_files() {
        let o = StoreOptions::default();
        let dir = tempfile::tempdir().unwrap();
        let missing = format!("sqlite://{}/nope/hush.sqlite3", dir.path().display());
        let no_create = StoreOptions {
            create: false,
            ..StoreOptions::default()
        };
        assert!(matches!(
            Store::open(&missing, &no_create).await,
            Err(StoreError::Open { .. })
        ));
        assert!(!dir.path().join("nope").exists());
        let e = Store::open("mysql://u:secret@h/db", &o).await.unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
