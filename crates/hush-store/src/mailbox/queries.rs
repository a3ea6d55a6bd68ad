// The mailbox's queries, compiled once per backend (see
// `crate::backend::per_backend`). Every transaction starts with a write, so
// on SQLite it takes the write lock up front (waiting with the busy timeout)
// instead of failing to upgrade a read snapshot that another writer made
// stale.

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Row};

use crate::StoreError;
use crate::mailbox::{
    DeviceRef, Enqueued, ID_LEN, MailboxTotals, MessageStatus, NewMessage, Page, PendingDevice,
    Queued, Quota,
};

fn device_id(bytes: &[u8]) -> Result<[u8; ID_LEN], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("mailbox device id is not 16 bytes".into()))
}

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) async fn enqueue(
    pool: &Pool,
    m: &NewMessage<'_>,
    quota: Quota,
) -> Result<Enqueued, StoreError> {
    let size = i64::try_from(m.envelope.len()).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO mailbox_messages (app_id, message_id, sender_user, sender_device, envelope, \
         created_ms, expires_ms, recipients, remaining) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
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
            "SELECT id FROM mailbox_messages WHERE app_id = $1 AND sender_user = $2 AND message_id = $3",
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
             VALUES ($1, $2, $3, 1, $4) ON CONFLICT (app_id, user_id, device_id) DO UPDATE SET \
             messages = mailbox_devices.messages + 1, bytes = mailbox_devices.bytes + excluded.bytes RETURNING messages, bytes",
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
             VALUES ($1, $2, $3, $4, $5)",
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

/// Rows per multi-row statement (9 parameters each: far below SQLite's
/// limit of 32,766).
const CHUNK: usize = 200;

pub(crate) async fn enqueue_batch(
    pool: &Pool,
    messages: &[NewMessage<'_>],
    quota: Quota,
) -> Result<Vec<Enqueued>, StoreError> {
    if messages.len() <= 1 {
        let mut out = Vec::with_capacity(1);
        for m in messages {
            out.push(enqueue(pool, m, quota).await?);
        }
        return Ok(out);
    }
    let mut tx = pool.begin().await?;
    // 1. The messages (a resent message id is skipped here).
    let mut ids: BTreeMap<(&str, &str, &[u8]), i64> = BTreeMap::new();
    for chunk in messages.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO mailbox_messages (app_id, message_id, sender_user, sender_device, \
             envelope, created_ms, expires_ms, recipients, remaining) ",
        );
        q.push_values(chunk, |mut b, m| {
            let n = count(m.recipients.len() as u64);
            b.push_bind(m.app_id)
                .push_bind(&m.message_id[..])
                .push_bind(m.sender_user)
                .push_bind(&m.sender_device[..])
                .push_bind(m.envelope)
                .push_bind(m.created_ms)
                .push_bind(m.expires_ms)
                .push_bind(n)
                .push_bind(n);
        });
        q.push(" ON CONFLICT (app_id, sender_user, message_id) DO NOTHING RETURNING id, app_id, sender_user, message_id");
        for row in q.build().fetch_all(&mut *tx).await? {
            let app: String = row.try_get(1)?;
            let sender: String = row.try_get(2)?;
            let mid: Vec<u8> = row.try_get(3)?;
            if let Some(m) = chunk
                .iter()
                .find(|m| m.app_id == app && m.sender_user == sender && m.message_id[..] == mid[..])
            {
                ids.insert(
                    (m.app_id, m.sender_user, &m.message_id[..]),
                    row.try_get(0)?,
                );
            }
        }
    }
    // 2. The per-device totals, once per device, checked against the quota.
    let mut per_device: BTreeMap<(&str, &DeviceRef), (i64, i64)> = BTreeMap::new();
    let mut fresh = vec![false; messages.len()];
    for (i, m) in messages.iter().enumerate() {
        let key = (m.app_id, m.sender_user, &m.message_id[..]);
        // The first of repeated message ids in the batch is the new one.
        let first = messages[..i]
            .iter()
            .all(|o| (o.app_id, o.sender_user, &o.message_id[..]) != key);
        if ids.contains_key(&key) && first {
            fresh[i] = true;
            for r in m.recipients {
                let e = per_device.entry((m.app_id, r)).or_default();
                e.0 += 1;
                e.1 += i64::try_from(m.envelope.len()).unwrap_or(i64::MAX);
            }
        }
    }
    for ((app, d), (n, bytes)) in &per_device {
        let (messages_now, bytes_now): (i64, i64) = sqlx::query_as(
            "INSERT INTO mailbox_devices (app_id, user_id, device_id, messages, bytes) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, user_id, device_id) DO UPDATE SET \
             messages = mailbox_devices.messages + excluded.messages, \
             bytes = mailbox_devices.bytes + excluded.bytes \
             RETURNING messages, bytes",
        )
        .bind(*app)
        .bind(&d.user)
        .bind(&d.device[..])
        .bind(n)
        .bind(bytes)
        .fetch_one(&mut *tx)
        .await?;
        if messages_now > count(quota.max_messages) || bytes_now > count(quota.max_bytes) {
            // Someone's queue is full: queue one by one, so that only the
            // message that does not fit is refused.
            tx.rollback().await?;
            let mut out = Vec::with_capacity(messages.len());
            for m in messages {
                out.push(enqueue(pool, m, quota).await?);
            }
            return Ok(out);
        }
    }
    // 3. The queue rows.
    let rows: Vec<(&NewMessage<'_>, &DeviceRef, i64)> = messages
        .iter()
        .zip(&fresh)
        .filter(|(_, f)| **f)
        .flat_map(|(m, _)| {
            let id = ids
                .get(&(m.app_id, m.sender_user, &m.message_id[..]))
                .copied()
                .unwrap_or_default();
            m.recipients.iter().map(move |r| (m, r, id))
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO mailbox_queue (app_id, user_id, device_id, message, size) ",
        );
        q.push_values(chunk, |mut b, (m, r, id)| {
            b.push_bind(m.app_id)
                .push_bind(&r.user)
                .push_bind(&r.device[..])
                .push_bind(*id)
                .push_bind(i64::try_from(m.envelope.len()).unwrap_or(i64::MAX));
        });
        q.build().execute(&mut *tx).await?;
    }
    // 4. Ids of messages that were already queued.
    let mut out = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let key = (m.app_id, m.sender_user, &m.message_id[..]);
        match ids.get(&key) {
            Some(&id) if fresh[i] => out.push(Enqueued::Queued { id }),
            Some(&id) => out.push(Enqueued::Duplicate { id }),
            None => {
                let id: i64 = sqlx::query_scalar(
                    "SELECT id FROM mailbox_messages WHERE app_id = $1 AND sender_user = $2 \
                     AND message_id = $3",
                )
                .bind(m.app_id)
                .bind(m.sender_user)
                .bind(&m.message_id[..])
                .fetch_one(&mut *tx)
                .await?;
                out.push(Enqueued::Duplicate { id });
            }
        }
    }
    tx.commit().await?;
    Ok(out)
}

pub(crate) async fn fetch(
    pool: &Pool,
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
         WHERE q.app_id = $1 AND q.user_id = $2 AND q.device_id = $3 AND q.message > $4 \
         AND m.expires_ms > $5 ORDER BY q.message LIMIT $6",
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
            "UPDATE mailbox_queue SET delivered_ms = $1 WHERE app_id = $2 AND user_id = $3 \
             AND device_id = $4 AND message BETWEEN $5 AND $6 AND delivered_ms IS NULL",
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

pub(crate) async fn mark_delivered(
    pool: &Pool,
    app_id: &str,
    device: &DeviceRef,
    id: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE mailbox_queue SET delivered_ms = $1 WHERE app_id = $2 AND user_id = $3 \
         AND device_id = $4 AND message = $5 AND delivered_ms IS NULL",
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
    async fn apply(&self, tx: &mut Conn, app_id: &str) -> Result<u64, StoreError> {
        // How many recipients each message lost, grouped by that number
        // (1 for all of them when one device acknowledges).
        let mut lost: BTreeMap<i64, i64> = BTreeMap::new();
        for id in &self.messages {
            *lost.entry(*id).or_default() += 1;
        }
        let mut by_count: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (id, n) in lost {
            by_count.entry(n).or_default().push(id);
        }
        for (n, ids) in &by_count {
            for chunk in ids.chunks(500) {
                let mut q =
                    QueryBuilder::<Db>::new("UPDATE mailbox_messages SET remaining = remaining - ");
                q.push_bind(n).push(" WHERE id IN (");
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id);
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
                let mut q = QueryBuilder::<Db>::new(
                    "DELETE FROM mailbox_messages WHERE remaining <= 0 AND id IN (",
                );
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id);
                }
                q.push(")");
                q.build().execute(&mut *tx).await?;
            }
        }
        for ((user, device), (messages, bytes)) in &self.devices {
            sqlx::query(
                "UPDATE mailbox_devices SET messages = messages - $1, bytes = bytes - $2 \
                 WHERE app_id = $3 AND user_id = $4 AND device_id = $5",
            )
            .bind(messages)
            .bind(bytes)
            .bind(app_id)
            .bind(user)
            .bind(device)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM mailbox_devices WHERE app_id = $1 AND user_id = $2 AND device_id = $3 \
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

pub(crate) async fn ack(
    pool: &Pool,
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
        let mut q = QueryBuilder::<Db>::new("DELETE FROM mailbox_queue WHERE app_id = ");
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

pub(crate) async fn pending(
    pool: &Pool,
    app_id: &str,
    device: &DeviceRef,
) -> Result<u64, StoreError> {
    let n: Option<i64> = sqlx::query_scalar(
        "SELECT messages FROM mailbox_devices WHERE app_id = $1 AND user_id = $2 AND device_id = $3",
    )
    .bind(app_id)
    .bind(&device.user)
    .bind(&device.device[..])
    .fetch_optional(pool)
    .await?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

pub(crate) async fn status(
    pool: &Pool,
    app_id: &str,
    sender_user: &str,
    message_id: &[u8; ID_LEN],
) -> Result<Option<MessageStatus>, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        "SELECT id, recipients FROM mailbox_messages WHERE app_id = $1 AND sender_user = $2 \
         AND message_id = $3",
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
        "SELECT user_id, device_id, delivered_ms FROM mailbox_queue WHERE message = $1 \
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

pub(crate) async fn purge_devices(
    pool: &Pool,
    app_id: &str,
    user: &str,
    keep: &[[u8; ID_LEN]],
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut q = QueryBuilder::<Db>::new("DELETE FROM mailbox_queue WHERE app_id = ");
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

pub(crate) async fn expire(pool: &Pool, now_ms: i64) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "DELETE FROM mailbox_queue WHERE message IN \
         (SELECT id FROM mailbox_messages WHERE expires_ms <= $1) \
         RETURNING app_id, user_id, device_id, message, size",
    )
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    let expired: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM mailbox_messages WHERE expires_ms <= $1")
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
    sqlx::query("DELETE FROM mailbox_messages WHERE expires_ms <= $1")
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(u64::try_from(expired).unwrap_or(0))
}

pub(crate) async fn totals(pool: &Pool) -> Result<MailboxTotals, StoreError> {
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
