// The apps table's queries, compiled once per backend (see
// `crate::backend::per_backend`).

use sqlx::Row;

use crate::apps::StoredApp;
use crate::{StoreError, now_ms};

fn row(r: &DbRow) -> Result<StoredApp, StoreError> {
    Ok(StoredApp {
        id: r.try_get("id")?,
        key: r.try_get("key")?,
        settings: r.try_get("settings")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}

pub(crate) async fn list(p: &Pool) -> Result<Vec<StoredApp>, StoreError> {
    let rows = sqlx::query("SELECT id, key, settings, updated_ms FROM apps ORDER BY id")
        .fetch_all(p)
        .await?;
    rows.iter().map(row).collect()
}

pub(crate) async fn get(p: &Pool, id: &str) -> Result<Option<StoredApp>, StoreError> {
    let r = sqlx::query("SELECT id, key, settings, updated_ms FROM apps WHERE id = $1")
        .bind(id)
        .fetch_optional(p)
        .await?;
    r.as_ref().map(row).transpose()
}

pub(crate) async fn insert(
    p: &Pool,
    id: &str,
    key: &str,
    settings: &str,
) -> Result<bool, StoreError> {
    let r = sqlx::query(
        "INSERT INTO apps (id, key, settings, updated_ms) VALUES ($1, $2, $3, $4) \
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

pub(crate) async fn update(p: &Pool, id: &str, settings: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("UPDATE apps SET settings = $1, updated_ms = $2 WHERE id = $3")
        .bind(settings)
        .bind(now_ms())
        .bind(id)
        .execute(p)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn delete(p: &Pool, id: &str) -> Result<bool, StoreError> {
    let r = sqlx::query("DELETE FROM apps WHERE id = $1")
        .bind(id)
        .execute(p)
        .await?;
    Ok(r.rows_affected() == 1)
}
