//! The encrypted mailbox (issue 18): suite 1 envelopes queued for recipient
//! devices until each has fetched and acknowledged them.
//!
//! A message is stored once ([`NewMessage::envelope`]) with one queue row
//! per recipient device; acknowledging deletes the device's row, and the
//! envelope goes with the last row or at expiry. Ids grow in queueing order
//! and are never reused, so a device reads its queue in order and an old
//! acknowledgement cannot delete a newer message. On SQLite, deleted rows
//! are overwritten (`secure_delete`); [`Store::checkpoint`] then moves the
//! overwritten pages out of the write-ahead log. On PostgreSQL, deleted
//! rows stay in the table's pages until `VACUUM` reuses them
//! (docs/OPERATIONS.md).

use crate::backend::{Backend, dispatch, per_backend};
use crate::{Store, StoreError};

per_backend!(queries, "mailbox/queries.rs");

/// Length of a device id and of a message id.
pub const ID_LEN: usize = 16;

/// A recipient device: its user and device id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceRef {
    /// The user id.
    pub user: String,
    /// The device id.
    pub device: [u8; ID_LEN],
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// The app.
    pub app_id: &'a str,
    /// The envelope's message id (the sender's random 16 bytes).
    pub message_id: [u8; ID_LEN],
    /// The sending user.
    pub sender_user: &'a str,
    /// The sending device.
    pub sender_device: [u8; ID_LEN],
    /// The envelope (binary).
    pub envelope: &'a [u8],
    /// When it was queued (Unix ms).
    pub created_ms: i64,
    /// When it is deleted unread (Unix ms).
    pub expires_ms: i64,
    /// The devices it is queued for (at least one, no repeats).
    pub recipients: &'a [DeviceRef],
}

/// Per-device limits on what may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Messages waiting for one device.
    pub max_messages: u64,
    /// Envelope bytes waiting for one device.
    pub max_bytes: u64,
}

/// What [`Store::mailbox_enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued under this id.
    Queued {
        /// The mailbox id.
        id: i64,
    },
    /// The sender already queued this message id (a retried send): nothing
    /// was written; this is the first one's id.
    Duplicate {
        /// The mailbox id of the first.
        id: i64,
    },
    /// This recipient device's queue is full: nothing was written.
    OverQuota(DeviceRef),
}

/// A message waiting for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The mailbox id.
    pub id: i64,
    /// The envelope.
    pub envelope: Vec<u8>,
    /// When it was queued (Unix ms).
    pub created_ms: i64,
}

/// A page of a device's queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Oldest first.
    pub messages: Vec<Queued>,
    /// More wait after the last one.
    pub more: bool,
}

/// A device still holding a message ([`MessageStatus::pending`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDevice {
    /// The device.
    pub device: DeviceRef,
    /// Sent to it (pushed or fetched) but not acknowledged yet.
    pub delivered: bool,
}

/// Where a message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageStatus {
    /// Devices it was queued for.
    pub recipients: u64,
    /// Devices that have not acknowledged it.
    pub pending: Vec<PendingDevice>,
}

/// What the mailbox holds, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxTotals {
    /// Messages stored (each envelope once).
    pub messages: u64,
    /// Queue rows (one per recipient device still to acknowledge).
    pub queued: u64,
    /// Envelope bytes stored.
    pub bytes: u64,
}

impl Store {
    /// Queues `message` for its recipients, unless the sender already
    /// queued its message id or a recipient's queue would exceed `quota`.
    pub async fn mailbox_enqueue(
        &self,
        message: &NewMessage<'_>,
        quota: Quota,
    ) -> Result<Enqueued, StoreError> {
        dispatch!(&self.backend, queries::enqueue(message, quota))
    }

    /// Queues several messages in one transaction (a group commit), each as
    /// [`Store::mailbox_enqueue`] would: the result of each, in order. When
    /// one would overfill a queue, the batch is queued one message at a
    /// time instead, so only that message is refused.
    pub async fn mailbox_enqueue_batch(
        &self,
        messages: &[NewMessage<'_>],
        quota: Quota,
    ) -> Result<Vec<Enqueued>, StoreError> {
        dispatch!(&self.backend, queries::enqueue_batch(messages, quota))
    }

    /// Up to `limit` messages of `device`'s queue with ids above `after`,
    /// not expired at `now_ms`, oldest first, stopping before `max_bytes` of
    /// envelopes (one message at least); marks them delivered.
    pub async fn mailbox_fetch(
        &self,
        app_id: &str,
        device: &DeviceRef,
        after: i64,
        limit: usize,
        max_bytes: usize,
        now_ms: i64,
    ) -> Result<Page, StoreError> {
        dispatch!(
            &self.backend,
            queries::fetch(app_id, device, after, limit, max_bytes, now_ms)
        )
    }

    /// Marks message `id` delivered to `device` (pushed on its connection).
    pub async fn mailbox_mark_delivered(
        &self,
        app_id: &str,
        device: &DeviceRef,
        id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(
            &self.backend,
            queries::mark_delivered(app_id, device, id, now_ms)
        )
    }

    /// Deletes `ids` from `device`'s queue (ids that are not in it are
    /// ignored) and every envelope no device holds any more; returns how
    /// many were deleted.
    pub async fn mailbox_ack(
        &self,
        app_id: &str,
        device: &DeviceRef,
        ids: &[i64],
    ) -> Result<u64, StoreError> {
        dispatch!(&self.backend, queries::ack(app_id, device, ids))
    }

    /// How many messages wait for `device`.
    pub async fn mailbox_pending(
        &self,
        app_id: &str,
        device: &DeviceRef,
    ) -> Result<u64, StoreError> {
        dispatch!(&self.backend, queries::pending(app_id, device))
    }

    /// Where the message `message_id` that `sender_user` sent stands;
    /// `None` once every device acknowledged it or it expired.
    pub async fn mailbox_status(
        &self,
        app_id: &str,
        sender_user: &str,
        message_id: &[u8; ID_LEN],
    ) -> Result<Option<MessageStatus>, StoreError> {
        dispatch!(
            &self.backend,
            queries::status(app_id, sender_user, message_id)
        )
    }

    /// Empties the queues of `user`'s devices that are not in `keep` (its
    /// revoked devices); returns how many queue rows were deleted.
    pub async fn mailbox_purge_devices(
        &self,
        app_id: &str,
        user: &str,
        keep: &[[u8; ID_LEN]],
    ) -> Result<u64, StoreError> {
        dispatch!(&self.backend, queries::purge_devices(app_id, user, keep))
    }

    /// Deletes the messages expired at `now_ms`; returns how many.
    pub async fn mailbox_expire(&self, now_ms: i64) -> Result<u64, StoreError> {
        dispatch!(&self.backend, queries::expire(now_ms))
    }

    /// What the mailbox holds.
    pub async fn mailbox_totals(&self) -> Result<MailboxTotals, StoreError> {
        dispatch!(&self.backend, queries::totals())
    }

    /// SQLite: copies the write-ahead log into the database and truncates
    /// it, so pages overwritten by deletions replace the old ones in the
    /// database file and no old copy stays in the log. Returns false when
    /// readers kept it from finishing (try again later). PostgreSQL: nothing
    /// to do here (`true`).
    pub async fn checkpoint(&self) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(p) => {
                let (busy, _, _): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(p)
                        .await?;
                Ok(busy == 0)
            }
            // PostgreSQL keeps no copy in a file of this node's; the
            // server's VACUUM (autovacuum) reclaims deleted rows.
            Backend::Postgres(_) => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests;
