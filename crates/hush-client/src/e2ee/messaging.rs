//! Messaging: sealing envelopes for users' devices, and opening received
//! ones. Opening a message from a sender whose cards are cached and fresh
//! touches neither the directory nor its lock, so a directory lookup in
//! flight for another sender does not delay it.

use hush_crypto::identity::{DeviceId, RevocationKind};
use hush_crypto::suite1::{
    self, Envelope, OpenError, Recipient, SealRequest, StreamKey, TrustedSender,
};
use hush_crypto::transparency::{LogError, SignedTreeHead};
use hush_protocol::{ChannelName, EventName, UserId};
use serde::Serialize;
use serde_json::Value;

use super::directory::Directory;
use super::gossip::{self, ForkDetected, GossipCheck, Local};
use super::inbox::{self, MailboxMessage};
use super::state::{Parsed, Shared, State};
use super::{CLIENT_EVENT, E2eeError, INBOX_LIMIT, SERVER_EVENT, millis, now_ms};
use crate::client::{Channel, MAX_CLIENT_EVENT_BYTES};
use crate::event::Event;

/// An opened and verified envelope.
#[derive(Clone)]
pub struct Message {
    /// The channel it arrived on.
    pub channel: String,
    /// The real event name (from inside the ciphertext).
    pub event: String,
    /// The plaintext, decoded as JSON when it is JSON (else a string).
    pub data: Value,
    /// The sender's user id (directory-verified).
    pub sender_user: String,
    /// The sending device.
    pub sender_device: DeviceId,
    /// The sender's random message id.
    pub message_id: [u8; 16],
    /// Sender time (Unix ms).
    pub timestamp_ms: u64,
    /// The sender device's counter on this channel.
    pub sequence: u64,
    /// Gap detected: how many messages of this sender device on this
    /// channel were skipped before this one (dropped by the relay, still in
    /// flight, or not addressed to this device). A late one still opens if
    /// it arrives within [`suite1::WINDOW`] messages. 0 when none were.
    pub missed: u64,
    /// Whether the sender is a contact this device marked verified (and the
    /// identity key is still the verified one).
    pub verified_sender: bool,
    /// What the sender's gossiped tree head says about the directory: a
    /// [`GossipCheck::Fork`] also raised a [`ForkDetected`] event
    /// ([`E2ee::forks`](super::E2ee::forks)).
    pub gossip: GossipCheck,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("channel", &self.channel)
            .field("event", &self.event)
            .field("sender_user", &self.sender_user)
            .field("sender_device", &self.sender_device)
            .field("gossip", &self.gossip)
            .finish_non_exhaustive()
    }
}

/// Which replay guard opens an envelope.
#[derive(Debug, Clone, Copy)]
pub(super) enum Via {
    /// A channel event: the channel guard (freshness window of minutes).
    Channel,
    /// The mailbox: its own guard (window covering the mailbox's time to
    /// live), and the inbox.
    Mailbox {
        /// The server's mailbox id.
        mailbox_id: u64,
        /// When the server queued it.
        queued_ms: u64,
    },
}

/// The messaging of one [`E2ee`](super::E2ee).
pub(super) struct Messaging<'a> {
    sh: &'a Shared,
    dir: Directory<'a>,
}

impl<'a> Messaging<'a> {
    pub(super) fn new(sh: &'a Shared) -> Self {
        Self {
            sh,
            dir: Directory::new(sh),
        }
    }

    /// See [`E2ee::seal`](super::E2ee::seal).
    pub(super) async fn seal(
        &self,
        channel: &str,
        outer: &str,
        event: &str,
        data_json: &str,
        users: &[&str],
    ) -> Result<String, E2eeError> {
        let channel = ChannelName::parse(channel).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let outer = EventName::parse_api(outer).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let inner = EventName::parse_api(event).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let me = self.sh.with(|st| {
            if st.data.card.is_none() {
                return Err(E2eeError::NotPublished);
            }
            Ok(st.data.user.clone())
        })?;
        let mut ids: Vec<UserId> = vec![me.clone()];
        for u in users {
            let id =
                UserId::parse(u).map_err(|e| E2eeError::Invalid(format!("user {u:?}: {e}")))?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        let found = {
            let g = self.dir.lock().await;
            self.dir.lookup_locked(&g, &ids).await?
        };
        self.sh.update(|st| {
            let mut recipients: Vec<Recipient> = Vec::new();
            for keys in &found {
                let is_me = keys.user == me;
                if !is_me {
                    let c = st.data.contacts.get(keys.user.as_str());
                    if let Some(c) = c
                        && let Some(v) = &c.verified
                        && *v != c.identity
                    {
                        return Err(E2eeError::KeyChangedSinceVerified(keys.user.to_string()));
                    }
                    if keys.devices.is_empty() {
                        return Err(E2eeError::NoDevices(keys.user.to_string()));
                    }
                }
                recipients.extend(
                    keys.devices
                        .iter()
                        .filter(|c| !(is_me && c.device_id() == st.data.device_id))
                        .map(Recipient::from),
                );
            }
            if recipients.is_empty() {
                return Err(E2eeError::NoDevices(me.to_string()));
            }
            let sequence = st.data.next_sequence(&channel);
            // Gossip: the head the lookup above just verified.
            let head = st.data.trusted_signed_head();
            let req = SealRequest {
                sender_user: &me,
                sender_device: st.data.device_id,
                sender_keys: &st.data.keys,
                channel: &channel,
                event: &outer,
                inner_event: &inner,
                timestamp_ms: now_ms(),
                sequence,
                recipients: &recipients,
                tree_head: head.as_ref(),
            };
            let limit = MAX_CLIENT_EVENT_BYTES - 2;
            let data = suite1::seal_with_limit(&req, data_json.as_bytes(), limit)?;
            st.data.record_sequence(&channel, sequence);
            Ok(data)
        })
    }

    /// See [`E2ee::send`](super::E2ee::send).
    pub(super) async fn send<T: Serialize + ?Sized>(
        &self,
        channel: &Channel,
        event: &str,
        data: &T,
        users: &[&str],
    ) -> Result<(), E2eeError> {
        let name =
            ChannelName::parse(channel.name()).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        if !name.kind().allows_client_events() {
            return Err(E2eeError::Client(crate::Error::ClientEventsNotAllowed(
                name.to_string(),
            )));
        }
        let json = serde_json::to_string(data).map_err(|e| E2eeError::Invalid(e.to_string()))?;
        let envelope = self
            .seal(channel.name(), CLIENT_EVENT, event, &json, users)
            .await?;
        channel.trigger(CLIENT_EVENT, &envelope).await?;
        Ok(())
    }

    /// Whether `sender`'s cards are cached, fresh, and include `device`.
    fn cached(st: &mut State, sender: &UserId, device: DeviceId) -> bool {
        let recent = st
            .data
            .contacts
            .get(sender.as_str())
            .is_some_and(|c| now_ms().saturating_sub(c.fetched_ms) < millis(st.cache_ttl));
        let known = st
            .parsed(sender.as_str())
            .is_some_and(|p| p.cards.iter().any(|c| c.device_id() == device));
        recent && known
    }

    /// See [`E2ee::open`](super::E2ee::open).
    pub(super) async fn open(&self, event: &Event) -> Result<Message, E2eeError> {
        if event.event != CLIENT_EVENT && event.event != SERVER_EVENT {
            return Err(E2eeError::NotAnEnvelope);
        }
        let Value::String(data) = &event.data else {
            return Err(E2eeError::NotAnEnvelope);
        };
        let env = Envelope::from_data(data)?;
        let h = env.header();
        if Some(h.channel.as_str()) != event.channel.as_deref() || h.event.as_str() != event.event {
            return Err(E2eeError::WrongChannel);
        }
        Ok(self.open_envelope(&env, Via::Channel).await?.0)
    }

    /// Opens a parsed envelope with the replay guard of `via`: the channel
    /// guard, or the mailbox's (then the message is appended to the inbox
    /// and saved with the guard's state in one key-store save, undone in
    /// memory if the save fails). Returns the message and whether it was
    /// late (below its stream's high-water mark).
    pub(super) async fn open_envelope(
        &self,
        env: &Envelope,
        via: Via,
    ) -> Result<(Message, bool), E2eeError> {
        let h = env.header().clone();
        let sender = h.sender_user.clone();
        let cached = self.sh.with(|st| {
            if !env.recipients().contains(&st.data.device_id) {
                return Err(E2eeError::Open(OpenError::NotARecipient));
            }
            Ok(Self::cached(st, &sender, h.sender_device))
        })?;
        if !cached {
            let g = self.dir.lock().await;
            // Another open may have looked the sender up while this one waited.
            if !self
                .sh
                .with(|st| Self::cached(st, &sender, h.sender_device))
            {
                self.dir
                    .lookup_locked(&g, std::slice::from_ref(&sender))
                    .await?;
            }
        }
        let message = self.sh.with(|st| {
            // The gossiped head must be signed by this device's log: a head
            // that is not is refused before anything is opened or recorded.
            if let Some(theirs) = &h.tree_head {
                gossip::verify(st, theirs)?;
            }
            let (verified, current) = st
                .data
                .contacts
                .get(sender.as_str())
                .map(|c| (c.verified.clone(), c.identity.clone()))
                .unwrap_or_default();
            let Parsed {
                identity,
                cards,
                revocations,
            } = st
                .parsed(sender.as_str())
                .cloned()
                .ok_or(E2eeError::Open(OpenError::UnknownSender))?;
            let identity = identity.ok_or(E2eeError::Open(OpenError::UnknownSender))?;
            let Some(card) = cards.into_iter().find(|c| c.device_id() == h.sender_device) else {
                let revoked = revocations.iter().any(|r| {
                    r.verify(&sender, &identity).is_ok()
                        && matches!(r.kind(), RevocationKind::Device { device_id, .. } if *device_id == h.sender_device)
                });
                return Err(E2eeError::Open(if revoked {
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
            let State {
                data,
                guard,
                mailbox_guard,
                ..
            } = &mut *st;
            let (guard, streams) = match via {
                Via::Channel => (guard, &mut data.streams),
                Via::Mailbox { .. } => (mailbox_guard, &mut data.mailbox_streams),
            };
            // This device's own card: the envelope must be addressed to it
            // (this user, this device, this card), not only to its id.
            let me = data
                .card
                .as_ref()
                .ok_or(E2eeError::Open(OpenError::NotARecipient))?;
            let stream = StreamKey {
                user: h.sender_user.clone(),
                device: h.sender_device,
                channel: h.channel.clone(),
            };
            let before = guard.state(&stream);
            let late = before.is_some_and(|b| h.sequence < b.highest);
            let opened = env.open(me, &data.keys, &trusted, guard, now_ms())?;
            // Mirror the stream's new state into the saved data (and drop
            // what the guard swept out as expired).
            let saved_before: Vec<_> = if matches!(via, Via::Mailbox { .. }) {
                streams.iter().map(|(k, v)| (k.clone(), *v)).collect()
            } else {
                Vec::new()
            };
            if let Some(state) = guard.state(&stream) {
                streams.insert(stream, state);
            }
            if streams.len() > guard.len() {
                streams.retain(|k, _| guard.state(k).is_some());
            }
            if opened.missed > 0 {
                tracing::warn!(
                    channel = %h.channel,
                    sender = %sender,
                    missed = opened.missed,
                    "hush-client: gap detected: messages missing from this sender"
                );
            }
            let text = String::from_utf8_lossy(&opened.plaintext);
            let value =
                serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.to_string()));
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
            };
            match via {
                Via::Channel => {
                    // The message is already committed to the in-memory
                    // replay guard: failing here would lose it for good
                    // (opening it again is a replay). A failed save is
                    // logged; the next save persists the accepted entry.
                    if let Err(e) = self.sh.save(st) {
                        tracing::warn!(error = %e, "hush-client: saving the key store after opening a message failed");
                    }
                }
                Via::Mailbox {
                    mailbox_id,
                    queued_ms,
                } => {
                    // One save: the guard's state and the inbox entry. If it
                    // fails, both are undone in memory and the message is
                    // not acknowledged: it is fetched and opened again.
                    let mm = MailboxMessage {
                        mailbox_id,
                        queued_ms,
                        late,
                        message: message.clone(),
                    };
                    st.data.inbox.push_back(inbox::entry(&mm, now_ms()));
                    while st.data.inbox.len() > INBOX_LIMIT {
                        st.data.inbox.pop_front();
                    }
                    if let Err(e) = self.sh.save(st) {
                        st.data.inbox.pop_back();
                        st.data.mailbox_streams = saved_before.into_iter().collect();
                        let mut g = super::mailbox::new_guard();
                        for (k, v) in &st.data.mailbox_streams {
                            g.restore(k.clone(), *v);
                        }
                        st.mailbox_guard = g;
                        return Err(e);
                    }
                }
            }
            let local = gossip::compare(st, h.tree_head.as_ref());
            Ok::<_, E2eeError>((message, late, local))
        })?;
        let (mut message, late, local) = (message.0, message.1, message.2);
        message.gossip = match (local, h.tree_head) {
            (Local::Done(check), _) => check,
            (Local::Fork(ours), Some(theirs)) => self.fork(&message, ours, theirs),
            (Local::NeedsProof(ours), Some(theirs)) => {
                // A round trip, with the state unlocked (the directory lock
                // orders it after any lookup in flight).
                match self.dir.cross_check(&theirs).await {
                    Ok(()) => {
                        self.sh.with(|st| st.gossip_checked.insert(&ours, &theirs));
                        GossipCheck::Consistent
                    }
                    Err(E2eeError::Log(LogError::Fork | LogError::Rollback { .. })) => {
                        let epoch = theirs.head.epoch;
                        let ours = self
                            .sh
                            .with(|st| super::directory::kept_head(st, epoch))
                            .unwrap_or(ours);
                        self.fork(&message, ours, theirs)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "hush-client: could not check the sender's tree head");
                        GossipCheck::Unchecked
                    }
                }
            }
            (_, None) => GossipCheck::Unchecked,
        };
        Ok((message, late))
    }

    /// Reports a fork seen in `message`'s gossiped head.
    fn fork(&self, message: &Message, ours: SignedTreeHead, theirs: SignedTreeHead) -> GossipCheck {
        tracing::error!(
            sender = %message.sender_user,
            ours = ours.head.epoch,
            theirs = theirs.head.epoch,
            "hush-client: directory fork detected from a gossiped tree head"
        );
        let _ = self.sh.forks.send(ForkDetected {
            ours,
            theirs,
            sender: message.sender_user.clone(),
            channel: message.channel.clone(),
        });
        GossipCheck::Fork
    }
}
