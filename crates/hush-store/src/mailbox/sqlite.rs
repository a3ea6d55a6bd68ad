//! The mailbox on SQLite. Every transaction starts with a write, so it takes
//! the write lock up front (waiting with the busy timeout) instead of
//! failing to upgrade a read snapshot that another writer made stale.

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::{
    DeviceRef, Enqueued, ID_LEN, MailboxTotals, MessageStatus, NewMessage, Page, PendingDevice,
    Queued, Quota,
};
use crate::StoreError;

fn device_id(bytes: &[u8]) -> Result<[u8; ID_LEN], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("mailbox device id is not 16 bytes".into()))
}

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) async fn enqueue(
    pool: &SqlitePool,
    m: &NewMessage<'_>,
    quota: Quota,
) -> Result<Enqueued, StoreError> {
    let size = i64::try_from(m.envelope.len()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO mailbox_messages (app_id, message_id, sender_user, sender_device, envelope, \
         created_ms, expires_ms, recipients, remaining) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (app_id, sender_user, message_id) DO NOTHING RETURNING id",
    )
    .bind(m.app_id)
    .bind(&m.message_id[..])
    .bind(m.sender_user)
    .bind(&m.sender_device[..])
    .bind(m.envelope)
    .bind(m.created_ms)
    .bind(m.expires_ms)
    .bind(count(m.recipients.len() as u64))
    .bind(count(m.recipients.len() as u64))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = inserted else {
        let id: i64 = sqlx::query_scalar(
            "SELECT id FROM mailbox_messages WHERE app_id = ? AND sender_user = ? AND message_id = ?",
        )
        .bind(m.app_id)
        .bind(m.sender_user)
        .bind(&m.message_id[..])
        .fetch_one(&mut *tx)
        .await?;
        return Ok(Enqueued::Duplicate { id });
    };
    let id: i64 = row.try_get(0)?;
    for r in m.recipients {
        let (messages, bytes): (i64, i64) = sqlx::query_as(
            "INSERT INTO mailbox_devices (app_id, user_id, device_id, messages, bytes) \
             VALUES (?, ?, ?, 1, ?) ON CONFLICT (app_id, user_id, device_id) DO UPDATE SET \
             messages = messages + 1, bytes = bytes + excluded.bytes RETURNING messages, bytes",
        )
        .bind(m.app_id)
        .bind(&r.user)
        .bind(&r.device[..])
        .bind(size)
        .fetch_one(&mut *tx)
        .await?;
        if messages > count(quota.max_messages) || bytes > count(quota.max_bytes) {
            tx.rollback().await?;
            return Ok(Enqueued::OverQuota(r.clone()));
        }
        sqlx::query(
            "INSERT INTO mailbox_queue (app_id, user_id, device_id, message, size) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(m.app_id)
        .bind(&r.user)
        .bind(&r.device[..])
        .bind(id)
        .bind(size)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Enqueued::Queued { id })
}

pub(super) async fn fetch(
    pool: &SqlitePool,
    app_id: &str,
    device: &DeviceRef,
    after: i64,
    limit: usize,
    max_bytes: usize,
    now_ms: i64,
) -> Result<Page, StoreError> {
    let rows = sqlx::query(
        "SELECT q.message, m.envelope, m.created_ms FROM mailbox_queue q \
         JOIN mailbox_messages m ON m.id = q.message \
         WHERE q.app_id = ? AND q.user_id = ? AND q.device_id = ? AND q.message > ? \
         AND m.expires_ms > ? ORDER BY q.message LIMIT ?",
    )
    .bind(app_id)
    .bind(&device.user)
    .bind(&device.device[..])
    .bind(after)
    .bind(now_ms)
    .bind(count(limit as u64 + 1))
    .fetch_all(pool)
    .await?;
    let mut page = Page::default();
    let mut bytes = 0usize;
    for row in rows {
        let envelope: Vec<u8> = row.try_get(1)?;
        let full = page.messages.len() >= limit
            || (!page.messages.is_empty() && bytes + envelope.len() > max_bytes);
        if full {
            page.more = true;
            break;
        }
        bytes += envelope.len();
        page.messages.push(Queued {
            id: row.try_get(0)?,
            envelope,
            created_ms: row.try_get(2)?,
        });
    }
    if let (Some(first), Some(last)) = (page.messages.first(), page.messages.last()) {
        sqlx::query(
            "UPDATE mailbox_queue SET delivered_ms = ? WHERE app_id = ? AND user_id = ? \
             AND device_id = ? AND message BETWEEN ? AND ? AND delivered_ms IS NULL",
        )
        .bind(now_ms)
        .bind(app_id)
        .bind(&device.user)
        .bind(&device.device[..])
        .bind(first.id)
        .bind(last.id)
        .execute(pool)
        .await?;
    }
    Ok(page)
}

pub(super) async fn mark_delivered(
    pool: &SqlitePool,
    app_id: &str,
    device: &DeviceRef,
    id: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mailbox_queue SET delivered_ms = ? WHERE app_id = ? AND user_id = ? \
         AND device_id = ? AND message = ? AND delivered_ms IS NULL",
    )
    .bind(now_ms)
    .bind(app_id)
    .bind(&device.user)
    .bind(&device.device[..])
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deleted queue rows: (user, device) → (messages, bytes), and the
/// messages that lost a recipient (each once per row deleted).
#[derive(Default)]
struct Released {
    devices: BTreeMap<(String, Vec<u8>), (i64, i64)>,
    messages: Vec<i64>,
}

impl Released {
    fn add(&mut self, user: String, device: Vec<u8>, message: i64, size: i64) {
        let e = self.devices.entry((user, device)).or_default();
        e.0 += 1;
        e.1 += size;
        self.messages.push(message);
    }

    /// Updates the counters and deletes the envelopes no device holds.
    async fn apply(&self, tx: &mut SqliteConnection, app_id: &str) -> Result<u64, StoreError> {
        for chunk in self.messages.chunks(500) {
            for id in chunk {
                sqlx::query("UPDATE mailbox_messages SET remaining = remaining - 1 WHERE id = ?")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut q = QueryBuilder::<Sqlite>::new(
                "DELETE FROM mailbox_messages WHERE remaining <= 0 AND id IN (",
            );
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id);
            }
            q.push(")");
            q.build().execute(&mut *tx).await?;
        }
        for ((user, device), (messages, bytes)) in &self.devices {
            sqlx::query(
                "UPDATE mailbox_devices SET messages = messages - ?, bytes = bytes - ? \
                 WHERE app_id = ? AND user_id = ? AND device_id = ?",
            )
            .bind(messages)
            .bind(bytes)
            .bind(app_id)
            .bind(user)
            .bind(device)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM mailbox_devices WHERE app_id = ? AND user_id = ? AND device_id = ? \
                 AND messages <= 0",
            )
            .bind(app_id)
            .bind(user)
            .bind(device)
            .execute(&mut *tx)
            .await?;
        }
        Ok(self.messages.len() as u64)
    }
}

pub(super) async fn ack(
    pool: &SqlitePool,
    app_id: &str,
    device: &DeviceRef,
    ids: &[i64],
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let mut released = Released::default();
    for chunk in ids.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM mailbox_queue WHERE app_id = ");
        q.push_bind(app_id)
            .push(" AND user_id = ")
            .push_bind(&device.user)
            .push(" AND device_id = ")
            .push_bind(&device.device[..])
            .push(" AND message IN (");
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id);
        }
        q.push(") RETURNING message, size");
        for row in q.build().fetch_all(&mut *tx).await? {
            released.add(
                device.user.clone(),
                device.device.to_vec(),
                row.try_get(0)?,
                row.try_get(1)?,
            );
        }
    }
    let n = released.apply(&mut tx, app_id).await?;
    tx.commit().await?;
    Ok(n)
}

pub(super) async fn pending(
    pool: &SqlitePool,
    app_id: &str,
    device: &DeviceRef,
) -> Result<u64, StoreError> {
    let n: Option<i64> = sqlx::query_scalar(
        "SELECT messages FROM mailbox_devices WHERE app_id = ? AND user_id = ? AND device_id = ?",
    )
    .bind(app_id)
    .bind(&device.user)
    .bind(&device.device[..])
    .fetch_optional(pool)
    .await?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

pub(super) async fn status(
    pool: &SqlitePool,
    app_id: &str,
    sender_user: &str,
    message_id: &[u8; ID_LEN],
) -> Result<Option<MessageStatus>, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, recipients FROM mailbox_messages WHERE app_id = ? AND sender_user = ? \
         AND message_id = ?",
    )
    .bind(app_id)
    .bind(sender_user)
    .bind(&message_id[..])
    .fetch_optional(pool)
    .await?;
    let Some((id, recipients)) = row else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT user_id, device_id, delivered_ms FROM mailbox_queue WHERE message = ? \
         ORDER BY user_id, device_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in rows {
        let device: Vec<u8> = row.try_get(1)?;
        let delivered: Option<i64> = row.try_get(2)?;
        pending.push(PendingDevice {
            device: DeviceRef {
                user: row.try_get(0)?,
                device: device_id(&device)?,
            },
            delivered: delivered.is_some(),
        });
    }
    Ok(Some(MessageStatus {
        recipients: u64::try_from(recipients).unwrap_or(0),
        pending,
    }))
}

pub(super) async fn purge_devices(
    pool: &SqlitePool,
    app_id: &str,
    user: &str,
    keep: &[[u8; ID_LEN]],
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM mailbox_queue WHERE app_id = ");
    q.push_bind(app_id).push(" AND user_id = ").push_bind(user);
    if !keep.is_empty() {
        q.push(" AND device_id NOT IN (");
        let mut sep = q.separated(", ");
        for d in keep {
            sep.push_bind(&d[..]);
        }
        q.push(")");
    }
    q.push(" RETURNING device_id, message, size");
    let mut released = Released::default();
    for row in q.build().fetch_all(&mut *tx).await? {
        released.add(
            user.to_owned(),
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
        );
    }
    let n = released.apply(&mut tx, app_id).await?;
    tx.commit().await?;
    Ok(n)
}

pub(super) async fn expire(pool: &SqlitePool, now_ms: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "DELETE FROM mailbox_queue WHERE message IN \
         (SELECT id FROM mailbox_messages WHERE expires_ms <= ?) \
         RETURNING app_id, user_id, device_id, message, size",
    )
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    let expired: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM mailbox_messages WHERE expires_ms <= ?")
            .bind(now_ms)
            .fetch_one(&mut *tx)
            .await?;
    let mut by_app: BTreeMap<String, Released> = BTreeMap::new();
    for row in rows {
        let app: String = row.try_get(0)?;
        by_app.entry(app).or_default().add(
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
        );
    }
    for (app, released) in &by_app {
        released.apply(&mut tx, app).await?;
    }
    sqlx::query("DELETE FROM mailbox_messages WHERE expires_ms <= ?")
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(u64::try_from(expired).unwrap_or(0))
}

pub(super) async fn totals(pool: &SqlitePool) -> Result<MailboxTotals, StoreError> {
    let (messages, bytes): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), SUM(length(envelope)) FROM mailbox_messages")
            .fetch_one(pool)
            .await?;
    let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mailbox_queue")
        .fetch_one(pool)
        .await?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(MailboxTotals {
        messages: u(messages),
        queued: u(queued),
        bytes: u(bytes.unwrap_or(0)),
    })
}

pub(super) async fn checkpoint(pool: &SqlitePool) -> Result<bool, StoreError> {
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await?;
    Ok(busy == 0)
}
