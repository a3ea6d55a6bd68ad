//! Store errors.

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names a backend this build does not have.
    #[error("store: {0}")]
    Unsupported(String),
    /// The database could not be opened or created.
    #[error("store: cannot open {path}: {reason}")]
    Open {
        /// The database (URL without password, or file path).
        path: String,
        /// Why.
        reason: String,
    },
    /// Applying the schema migrations failed.
    #[error("store: migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed (database unreachable, locked too long, disk full…).
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    /// The write contradicts what is already stored (e.g. a second, different
    /// head for a recorded epoch); nothing was written.
    #[error("store: conflict: {0}")]
    Conflict(String),
    /// A stored row could not be decoded.
    #[error("store: bad row: {0}")]
    Corrupt(String),
}
