//! The mailbox receiver's ordering (hush-client `e2ee/mailbox.rs` `offer`):
//! items from `mailbox.fetch` pages and `hush:mailbox` pushes go through
//! hush-crypto's shared reorder buffer, per stream, and come back in the
//! order to open them (`Device::open_mailbox_op`), exactly once per id.

use std::collections::{HashSet, VecDeque};

use hush_crypto::suite1::reorder::{Released, ReorderBuffer};
use hush_crypto::suite1::{Envelope, StreamKey};
use hush_protocol::msgs::hush::MailboxItem;
use serde_json::{Value, json};

use super::device::Device;
use super::error::CoreError;

/// How long a push that skips ahead waits for the missing one
/// (hush-client `PUSH_REORDER_WAIT`).
pub const PUSH_REORDER_WAIT_MS: u64 = 2_000;
/// Ids remembered as processed (a push of one is ignored).
const RECENT_IDS: usize = 4096;

/// The receiving side's memory: the reorder buffer and the ids in hand.
#[derive(Default)]
pub struct MailboxReceiver {
    buffer: ReorderBuffer<MailboxItem>,
    held: HashSet<u64>,
    recent: VecDeque<u64>,
    recent_set: HashSet<u64>,
}

impl std::fmt::Debug for MailboxReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxReceiver")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

fn released(r: Released<MailboxItem>) -> Value {
    json!({
        "item": serde_json::to_string(&r.item).unwrap_or_default(),
        "id": r.item.id,
        "sequence": r.sequence,
        "reordered": r.reordered,
    })
}

impl MailboxReceiver {
    /// Offers one item (`push`: a `hush:mailbox` push, else a fetched page
    /// item). Returns, in order, the items to open now (`{item, id,
    /// sequence, reordered}`), or `{item, id, rejected}` for an item that is
    /// not an envelope (acknowledge it). An id already held, or a push of
    /// an id processed lately, returns nothing.
    pub fn offer(
        &mut self,
        dev: &Device,
        item_json: &str,
        push: bool,
        now_ms: u64,
    ) -> Result<Vec<Value>, CoreError> {
        let item: MailboxItem = serde_json::from_str(item_json)
            .map_err(|e| CoreError::Invalid(format!("mailbox item: {e}")))?;
        if self.held.contains(&item.id) || (push && self.recent_set.contains(&item.id)) {
            return Ok(Vec::new());
        }
        let env = match Envelope::from_data(&item.envelope) {
            Ok(env) => env,
            Err(e) => {
                self.done(item.id);
                return Ok(vec![json!({
                    "item": item_json, "id": item.id,
                    "rejected": CoreError::Open(e).to_js_message(),
                })]);
            }
        };
        let h = env.header();
        let stream = StreamKey {
            user: h.sender_user.clone(),
            device: h.sender_device,
            channel: h.channel.clone(),
        };
        let sequence = h.sequence;
        let expected = match (dev.mailbox_guard.state(&stream), push) {
            (Some(s), _) => Some(s.highest.saturating_add(1)),
            (None, true) => Some(sequence),
            (None, false) => None,
        };
        let deadline = push.then(|| now_ms.saturating_add(PUSH_REORDER_WAIT_MS));
        self.held.insert(item.id);
        let out = self
            .buffer
            .insert(stream, sequence, item, expected, deadline);
        Ok(self.hand_out(out))
    }

    /// Releases the pushes whose wait ran out at `now_ms`.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Value> {
        let out = self.buffer.expire(now_ms);
        self.hand_out(out)
    }

    /// Releases everything held (the end of a fetch cycle), each stream in
    /// order.
    pub fn flush(&mut self) -> Vec<Value> {
        let out = self.buffer.flush();
        self.hand_out(out)
    }

    /// When `expire` must next be called (ms), if anything is held.
    pub fn next_deadline(&self) -> Option<u64> {
        self.buffer.next_deadline()
    }

    fn hand_out(&mut self, out: Vec<Released<MailboxItem>>) -> Vec<Value> {
        out.into_iter()
            .map(|r| {
                self.held.remove(&r.item.id);
                self.done(r.item.id);
                released(r)
            })
            .collect()
    }

    fn done(&mut self, id: u64) {
        if self.recent_set.insert(id) {
            self.recent.push_back(id);
            if self.recent.len() > RECENT_IDS
                && let Some(old) = self.recent.pop_front()
            {
                self.recent_set.remove(&old);
            }
        }
    }
}
