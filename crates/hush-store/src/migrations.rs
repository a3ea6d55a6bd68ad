//! The schema migrations, embedded in the binary.
//!
//! `sqlx::migrate!` would need sqlx's `macros` feature, which compiles the SQLite
//! driver (and the bundled C library) a second time for the proc-macro. The same
//! result — SQL files embedded at build time, checksummed, applied in order and
//! recorded in `_sqlx_migrations` — comes from sqlx's public `MigrationSource`
//! trait fed with `include_str!`. Migrations are additive: a new file gets the
//! next version and is appended to the list; applied ones are never edited
//! (sqlx refuses a changed checksum).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// (version, description, SQL) of every SQLite migration, in order.
const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "webhook outbox",
        include_str!("../migrations/sqlite/0001_webhook_outbox.sql"),
    ),
    (
        2,
        "key directory",
        include_str!("../migrations/sqlite/0002_key_directory.sql"),
    ),
    (
        3,
        "apps",
        include_str!("../migrations/sqlite/0003_apps.sql"),
    ),
    (
        4,
        "webhook occupancy journal",
        include_str!("../migrations/sqlite/0004_webhook_occupancy.sql"),
    ),
    (
        5,
        "akd key directory",
        include_str!("../migrations/sqlite/0005_akd.sql"),
    ),
    (
        6,
        "encrypted mailbox",
        include_str!("../migrations/sqlite/0006_mailbox.sql"),
    ),
    (
        7,
        "webhook queue leases",
        include_str!("../migrations/sqlite/0007_webhook_leases.sql"),
    ),
];

/// (version, description, SQL) of every PostgreSQL migration, in order (the
/// same versions as SQLite's, in PostgreSQL's types).
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "webhook outbox",
        include_str!("../migrations/postgres/0001_webhook_outbox.sql"),
    ),
    (
        2,
        "key directory",
        include_str!("../migrations/postgres/0002_key_directory.sql"),
    ),
    (
        3,
        "apps",
        include_str!("../migrations/postgres/0003_apps.sql"),
    ),
    (
        4,
        "webhook occupancy journal",
        include_str!("../migrations/postgres/0004_webhook_occupancy.sql"),
    ),
    (
        5,
        "akd key directory",
        include_str!("../migrations/postgres/0005_akd.sql"),
    ),
    (
        6,
        "encrypted mailbox",
        include_str!("../migrations/postgres/0006_mailbox.sql"),
    ),
    (
        7,
        "webhook queue leases",
        include_str!("../migrations/postgres/0007_webhook_leases.sql"),
    ),
];

#[derive(Debug)]
struct Embedded(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator for SQLite databases.
pub(crate) async fn sqlite() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(SQLITE)).await
}

/// The migrator for PostgreSQL databases. sqlx's migrator takes PostgreSQL's
/// advisory lock around its work, so nodes opening one database at once
/// apply each migration once.
pub(crate) async fn postgres() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(POSTGRES)).await
}
