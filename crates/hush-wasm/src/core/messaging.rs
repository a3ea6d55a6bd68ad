//! Sealing envelopes for users' devices and opening received ones
//! (hush-client `e2ee/messaging.rs`), given keys already looked up.

use hush_crypto::identity::{DeviceId, RevocationKind};
use hush_crypto::suite1::{
    self, Envelope, OpenError, Recipient, SealRequest, StreamKey, TrustedSender,
};
use hush_protocol::{ChannelName, EventName, UserId};
use serde_json::{Value, json};

use super::device::{Device, Parsed};
use super::directory::UserKeys;
use super::error::CoreError;
use super::gossip::{self, GossipCheck, Local};

/// Outer name of suite 1 client events.
pub const CLIENT_EVENT: &str = "client-hush-e2ee";
/// Outer name of suite 1 events triggered by a backend.
pub const SERVER_EVENT: &str = "hush-e2ee";
/// Outer name of mailbox envelopes.
pub const MAILBOX_EVENT: &str = "hush-mailbox";
/// Pusher's client-event data limit, as hush-client's
/// `MAX_CLIENT_EVENT_BYTES` (10 KiB).
pub const MAX_CLIENT_EVENT_BYTES: usize = 10 * 1024;

/// Which replay guard opens an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A channel event.
    Channel,
    /// The mailbox (its own guard).
    Mailbox {
        /// The server's mailbox id.
        mailbox_id: u64,
        /// When the server queued it.
        queued_ms: u64,
    },
}

/// An opened, verified envelope.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub channel: String,
    pub event: String,
    pub data: Value,
    pub sender_user: String,
    pub sender_device: DeviceId,
    pub message_id: [u8; 16],
    pub timestamp_ms: u64,
    pub sequence: u64,
    pub missed: u64,
    pub verified_sender: bool,
    pub gossip: GossipCheck,
    pub late: bool,
    pub via: Via,
}

impl Message {
    /// The JSON form (README "Message").
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "channel": self.channel, "event": self.event, "data": self.data,
            "senderUser": self.sender_user, "senderDevice": hex::encode(self.sender_device.0),
            "messageId": hex::encode(self.message_id), "timestampMs": self.timestamp_ms,
            "sequence": self.sequence, "missed": self.missed,
            "verifiedSender": self.verified_sender, "gossip": self.gossip.name(),
        });
        if let (
            Via::Mailbox {
                mailbox_id,
                queued_ms,
            },
            Some(o),
        ) = (self.via, v.as_object_mut())
        {
            o.insert("mailboxId".into(), json!(mailbox_id));
            o.insert("queuedMs".into(), json!(queued_ms));
            o.insert("late".into(), json!(self.late));
        }
        v
    }
}

/// What a seal needs besides the looked-up keys.
pub(crate) struct SealArgs {
    pub channel: ChannelName,
    pub outer: EventName,
    pub inner: EventName,
    pub data: String,
}

/// Seals for the devices in `found` (this user's other devices included),
/// refusing verified contacts whose identity changed.
pub(crate) fn seal(
    dev: &mut Device,
    found: &[UserKeys],
    a: &SealArgs,
    now_ms: u64,
) -> Result<String, CoreError> {
    let me = dev.data.user.clone();
    let mut recipients: Vec<Recipient> = Vec::new();
    for keys in found {
        let is_me = keys.user == me;
        if !is_me {
            let c = dev.data.contacts.get(keys.user.as_str());
            if let Some(c) = c
                && let Some(v) = &c.verified
                && *v != c.identity
            {
                return Err(CoreError::KeyChangedSinceVerified(keys.user.to_string()));
            }
            if keys.devices.is_empty() {
                return Err(CoreError::NoDevices(keys.user.to_string()));
            }
        }
        recipients.extend(
            keys.devices
                .iter()
                .filter(|c| !(is_me && c.device_id() == dev.data.device_id))
                .map(Recipient::from),
        );
    }
    if recipients.is_empty() {
        return Err(CoreError::NoDevices(me.to_string()));
    }
    let sequence = dev.data.next_sequence(&a.channel);
    let head = dev.data.trusted_signed_head();
    let req = SealRequest {
        sender_user: &me,
        sender_device: dev.data.device_id,
        sender_keys: &dev.data.keys,
        channel: &a.channel,
        event: &a.outer,
        inner_event: &a.inner,
        timestamp_ms: now_ms,
        sequence,
        recipients: &recipients,
        tree_head: head.as_ref(),
    };
    let limit = MAX_CLIENT_EVENT_BYTES - 2;
    let data = suite1::seal_with_limit(&req, a.data.as_bytes(), limit)?;
    dev.data.record_sequence(&a.channel, sequence);
    Ok(data)
}

/// Whether `sender`'s cards are cached, fresh, and include `device`.
pub(crate) fn cached(dev: &mut Device, sender: &UserId, device: DeviceId, now_ms: u64) -> bool {
    let ttl = dev.cache_ttl_ms;
    let recent = dev
        .data
        .contacts
        .get(sender.as_str())
        .is_some_and(|c| now_ms.saturating_sub(c.fetched_ms) < ttl);
    let known = dev
        .parsed(sender.as_str())
        .is_some_and(|p| p.cards.iter().any(|c| c.device_id() == device));
    recent && known
}

/// Refuses an envelope not addressed to this device (before any lookup).
pub(crate) fn check_recipient(dev: &Device, env: &Envelope) -> Result<(), CoreError> {
    if !env.recipients().contains(&dev.data.device_id) {
        return Err(CoreError::Open(OpenError::NotARecipient));
    }
    Ok(())
}

/// Opens `env` with the sender's cached (verified) keys and the replay
/// guard of `via`; returns the message (gossip not settled yet) and the
/// local gossip comparison.
pub(crate) fn open(
    dev: &mut Device,
    env: &Envelope,
    via: Via,
    now_ms: u64,
) -> Result<(Message, Local), CoreError> {
    let h = env.header().clone();
    let sender = h.sender_user.clone();
    check_recipient(dev, env)?;
    if let Some(theirs) = &h.tree_head {
        gossip::verify(dev, theirs)?;
    }
    let (verified, current) = dev
        .data
        .contacts
        .get(sender.as_str())
        .map(|c| (c.verified.clone(), c.identity.clone()))
        .unwrap_or_default();
    let Parsed {
        identity,
        cards,
        revocations,
    } = dev
        .parsed(sender.as_str())
        .cloned()
        .ok_or(CoreError::Open(OpenError::UnknownSender))?;
    let identity = identity.ok_or(CoreError::Open(OpenError::UnknownSender))?;
    let Some(card) = cards.into_iter().find(|c| c.device_id() == h.sender_device) else {
        let revoked = revocations.iter().any(|r| {
            r.verify(&sender, &identity).is_ok()
                && matches!(r.kind(), RevocationKind::Device { device_id, .. } if *device_id == h.sender_device)
        });
        return Err(CoreError::Open(if revoked {
            OpenError::RevokedSender
        } else {
            OpenError::UnknownSender
        }));
    };
    let trusted = TrustedSender {
        card: &card,
        identity: &identity,
        revocations: &revocations,
    };
    let Device {
        data,
        guard,
        mailbox_guard,
        ..
    } = &mut *dev;
    let (guard, streams) = match via {
        Via::Channel => (guard, &mut data.streams),
        Via::Mailbox { .. } => (mailbox_guard, &mut data.mailbox_streams),
    };
    let me = data
        .card
        .as_ref()
        .ok_or(CoreError::Open(OpenError::NotARecipient))?;
    let stream = StreamKey {
        user: h.sender_user.clone(),
        device: h.sender_device,
        channel: h.channel.clone(),
    };
    let before = guard.state(&stream);
    let late = before.is_some_and(|b| h.sequence < b.highest);
    let opened = env.open(me, &data.keys, &trusted, guard, now_ms)?;
    if let Some(state) = guard.state(&stream) {
        streams.insert(stream, state);
    }
    if streams.len() > guard.len() {
        streams.retain(|k, _| guard.state(k).is_some());
    }
    let text = String::from_utf8_lossy(&opened.plaintext);
    let value = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.to_string()));
    let message = Message {
        channel: h.channel.to_string(),
        event: opened.event.to_string(),
        data: value,
        sender_user: sender.to_string(),
        sender_device: h.sender_device,
        message_id: h.message_id,
        timestamp_ms: h.timestamp_ms,
        sequence: h.sequence,
        missed: opened.missed,
        verified_sender: verified.as_deref() == Some(current.as_str()),
        gossip: GossipCheck::Unchecked,
        late,
        via,
    };
    let local = gossip::compare(dev, h.tree_head.as_ref());
    Ok((message, local))
}
