//! Apps kept in the store (`hush apps add|list|show|rotate-secret|disable|
//! remove`), read by running nodes within seconds. The store does not
//! interpret an app's settings: they are the server's JSON form of an
//! `[apps.X]` table, checked by the server and the CLI.

use crate::backend::{dispatch, per_backend};
use crate::{Store, StoreError};

per_backend!(queries, "apps/queries.rs");

/// One stored app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApp {
    /// App id (unique).
    pub id: String,
    /// Public key (unique).
    pub key: String,
    /// Every setting, as JSON.
    pub settings: String,
    /// Last change, Unix milliseconds.
    pub updated_ms: i64,
}

impl Store {
    /// Every stored app, by id.
    pub async fn apps_list(&self) -> Result<Vec<StoredApp>, StoreError> {
        dispatch!(&self.backend, queries::list())
    }

    /// The stored app `id`.
    pub async fn app_get(&self, id: &str) -> Result<Option<StoredApp>, StoreError> {
        dispatch!(&self.backend, queries::get(id))
    }

    /// Adds an app; `false` (nothing written) when its id or key is taken.
    pub async fn app_insert(
        &self,
        id: &str,
        key: &str,
        settings: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(&self.backend, queries::insert(id, key, settings))
    }

    /// Replaces the settings of app `id`; `false` when there is no such app.
    pub async fn app_update(&self, id: &str, settings: &str) -> Result<bool, StoreError> {
        dispatch!(&self.backend, queries::update(id, settings))
    }

    /// Deletes app `id`; `false` when there is no such app.
    pub async fn app_delete(&self, id: &str) -> Result<bool, StoreError> {
        dispatch!(&self.backend, queries::delete(id))
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestDb, both_backends};

    both_backends!(apps_are_added_once_updated_and_removed);

    async fn apps_are_added_once_updated_and_removed(db: &TestDb) {
        let s = db.open().await;
        assert!(s.apps_list().await.unwrap().is_empty());
        assert!(s.app_insert("1", "k1", "{\"a\":1}").await.unwrap());
        assert!(!s.app_insert("1", "k2", "{}").await.unwrap(), "id taken");
        assert!(!s.app_insert("2", "k1", "{}").await.unwrap(), "key taken");
        assert!(s.app_insert("2", "k2", "{}").await.unwrap());
        let before = s.app_get("1").await.unwrap().unwrap();
        assert_eq!(
            (before.key.as_str(), before.settings.as_str()),
            ("k1", "{\"a\":1}")
        );
        assert!(s.app_update("1", "{\"a\":2}").await.unwrap());
        assert_eq!(s.app_get("1").await.unwrap().unwrap().settings, "{\"a\":2}");
        assert!(!s.app_update("9", "{}").await.unwrap());
        let ids: Vec<_> = s
            .apps_list()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, ["1", "2"]);
        assert!(s.app_delete("1").await.unwrap());
        assert!(!s.app_delete("1").await.unwrap());
        assert!(s.app_get("1").await.unwrap().is_none());
    }
}
