//! Test helpers: the same test bodies on both backends.
//!
//! [`both_backends!`] turns `async fn name(url: String)` bodies into two
//! tests, `name::sqlite` (a file in a temporary directory) and
//! `name::postgres` (a fresh database on the test binary's PostgreSQL
//! server, see `hush_testkit::postgres`, included here by path: hush-store
//! cannot depend on hush-testkit, which depends on it).

#[path = "../../hush-testkit/src/postgres.rs"]
pub(crate) mod pg_server;

use crate::{Store, StoreOptions};

/// A database URL of one backend, and what keeps it alive.
pub(crate) struct TestDb {
    /// The store URL.
    pub(crate) url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new SQLite file in a new temporary directory.
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: format!("sqlite://{}/hush.sqlite3", dir.path().display()),
            _dir: Some(dir),
        }
    }

    /// A new database on the shared PostgreSQL server.
    pub(crate) async fn postgres() -> Self {
        let url = tokio::task::spawn_blocking(pg_server::database)
            .await
            .unwrap();
        Self { url, _dir: None }
    }

    /// Opens a store on it.
    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url, &StoreOptions::default())
            .await
            .unwrap()
    }
}

/// `both_backends!(a, b, …)`: for each `async fn a(db: &TestDb)` in scope,
/// the tests `a::sqlite` and `a::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    let db = $crate::testing::TestDb::sqlite();
                    super::$name(&db).await;
                }

                #[tokio::test]
                async fn postgres() {
                    let db = $crate::testing::TestDb::postgres().await;
                    super::$name(&db).await;
                }
            }
        )*
    };
}
pub(crate) use both_backends;
