//! Apps kept in the store (`hush apps add|list|show|rotate-secret|disable|
//! remove`), read by running nodes within seconds. The store does not
//! interpret an app's settings: they are the server's JSON form of an
//! `[apps.X]` table, checked by the server and the CLI.

use sqlx::{Row, SqlitePool};

use crate::{Backend, Store, StoreError, now_ms};

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
        match &self.backend {
            Backend::Sqlite(p) => list(p).await,
        }
    }

    /// The stored app `id`.
    pub async fn app_get(&self, id: &str) -> Result<Option<StoredApp>, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => get(p, id).await,
        }
    }

    /// Adds an app; `false` (nothing written) when its id or key is taken.
    pub async fn app_insert(
        &self,
        id: &str,
        key: &str,
        settings: &str,
    ) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => {
                let r = sqlx::query(
                    "INSERT INTO apps (id, key, settings, updated_ms) VALUES (?, ?, ?, ?) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(id)
                .bind(key)
                .bind(settings)
                .bind(now_ms())
                .execute(p)
                .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    }

    /// Replaces the settings of app `id`; `false` when there is no such app.
    pub async fn app_update(&self, id: &str, settings: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => {
                let r = sqlx::query("UPDATE apps SET settings = ?, updated_ms = ? WHERE id = ?")
                    .bind(settings)
                    .bind(now_ms())
                    .bind(id)
                    .execute(p)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    }

    /// Deletes app `id`; `false` when there is no such app.
    pub async fn app_delete(&self, id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => {
                let r = sqlx::query("DELETE FROM apps WHERE id = ?")
                    .bind(id)
                    .execute(p)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    }
}

fn row(r: &sqlx::sqlite::SqliteRow) -> Result<StoredApp, StoreError> {
    Ok(StoredApp {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        settings: r.try_get("settings")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

async fn list(p: &SqlitePool) -> Result<Vec<StoredApp>, StoreError> {
    let rows = sqlx::query("SELECT id, key, settings, updated_ms FROM apps ORDER BY id")
        .fetch_all(p)
        .await?;
    rows.iter().map(row).collect()
}

async fn get(p: &SqlitePool, id: &str) -> Result<Option<StoredApp>, StoreError> {
    let r = sqlx::query("SELECT id, key, settings, updated_ms FROM apps WHERE id = ?")
        .bind(id)
        .fetch_optional(p)
        .await?;
    r.as_ref().map(row).transpose()
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreOptions};

    #[tokio::test]
    async fn apps_are_added_once_updated_and_removed() {
        let s = Store::open("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
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
