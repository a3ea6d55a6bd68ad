//! What the mailbox hands the application: the persisted inbox entries and
//! the events of [`E2ee::mailbox_events`](super::E2ee::mailbox_events), and
//! the conversation channel a set of users shares.

use hush_crypto::identity::DeviceId;
use hush_protocol::UserId;
use serde::{Deserialize, Serialize};

use super::{E2eeError, Message};

/// Prefix of the conversation channels of mailbox envelopes.
pub use hush_crypto::suite1::conversation::CONVERSATION_PREFIX;

/// The conversation channel of a set of users (order and repeats do not
/// matter; include the sender): `private-hush-mailbox-` and 32 hex digits of
/// SHA-256(context ‖ the sorted unique user ids, each followed by NUL). Every
/// member computes the same name, so one sender device's messages to one
/// conversation form one contiguous suite 1 stream.
///
/// ```
/// use hush_client::e2ee::conversation_channel;
/// let a = conversation_channel(&["bob", "alice"]).unwrap();
/// assert_eq!(a, conversation_channel(&["alice", "bob", "alice"]).unwrap());
/// assert!(a.starts_with("private-hush-mailbox-"));
/// ```
pub fn conversation_channel(users: &[&str]) -> Result<String, E2eeError> {
    let ids = users
        .iter()
        .map(|u| UserId::parse(u).map_err(|e| E2eeError::Invalid(format!("user {u:?}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    hush_crypto::suite1::conversation::conversation_channel(&ids)
        .map(|c| c.as_str().to_owned())
        .ok_or_else(|| E2eeError::Invalid("a conversation needs a user".into()))
}

/// One mailbox message as kept in the key store's inbox (the newest
/// [`INBOX_LIMIT`](super::INBOX_LIMIT), oldest first; read with
/// [`E2ee::inbox`](super::E2ee::inbox)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// The server's mailbox id it arrived under.
    pub mailbox_id: u64,
    /// The sender's message id (32 hex digits).
    pub message_id: String,
    /// The sender's user id (directory-verified).
    pub sender_user: String,
    /// The sending device (32 hex digits).
    pub sender_device: String,
    /// The conversation channel.
    pub conversation: String,
    /// The sender device's sequence number in the conversation.
    pub sequence: u64,
    /// The inner event name.
    pub event: String,
    /// The plaintext (JSON when it was JSON, else a string).
    pub data: serde_json::Value,
    /// Sender time (Unix ms, signed).
    pub timestamp_ms: u64,
    /// When the server queued it (Unix ms, as the server says).
    pub queued_ms: u64,
    /// When this device opened it (Unix ms).
    pub received_ms: u64,
    /// It arrived after a later message of its stream (accepted once,
    /// inside the replay window).
    pub late: bool,
}

/// A mailbox message, opened and saved in the inbox before it is announced
/// (and acknowledged to the server).
#[derive(Debug, Clone)]
pub struct MailboxMessage {
    /// The server's mailbox id.
    pub mailbox_id: u64,
    /// When the server queued it (Unix ms, as the server says).
    pub queued_ms: u64,
    /// It arrived after a later message of its stream (see
    /// [`InboxEntry::late`]).
    pub late: bool,
    /// The opened message (`channel` is the conversation channel).
    pub message: Message,
}

/// One sender stream: a sender device in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRef {
    /// The sender's user id (as the envelope's header says).
    pub sender_user: String,
    /// The sending device.
    pub sender_device: DeviceId,
    /// The conversation channel.
    pub conversation: String,
}

/// What the mailbox saw (subscribe with
/// [`E2ee::mailbox_events`](super::E2ee::mailbox_events)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MailboxEvent {
    /// A message, in sequence order within its stream.
    Message(MailboxMessage),
    /// Messages of a stream never arrived (dropped by the server, expired,
    /// or not addressed to this device): the next one was delivered
    /// without them. Reported when the fetch cycle ended (or the push wait
    /// ran out) without them.
    Gap {
        /// The stream.
        stream: StreamRef,
        /// First missing sequence number.
        first: u64,
        /// Last missing sequence number.
        last: u64,
    },
    /// The server delivered this message of a stream out of order: it was
    /// held and delivered in order, or (when later ones had been delivered
    /// already) accepted late.
    Reordered {
        /// The stream.
        stream: StreamRef,
        /// Its sequence number.
        sequence: u64,
    },
    /// An envelope this device had already accepted (a replay, a second
    /// copy, or a message saved before a crash and fetched again): not
    /// shown again; acknowledged.
    Duplicate {
        /// The server's mailbox id.
        mailbox_id: u64,
        /// The stream (from the unauthenticated header).
        stream: StreamRef,
        /// Its sequence number.
        sequence: u64,
        /// The inbox holds this message (e.g. a crash came between saving
        /// and acknowledging it): benign.
        in_inbox: bool,
    },
    /// An envelope that does not open (tampered, not for this device, an
    /// unknown or revoked sender, not a mailbox envelope): acknowledged so
    /// it does not come back.
    Rejected {
        /// The server's mailbox id.
        mailbox_id: u64,
        /// Why.
        error: String,
    },
}

/// The inbox entry of an opened message.
pub(super) fn entry(m: &MailboxMessage, received_ms: u64) -> InboxEntry {
    let msg = &m.message;
    InboxEntry {
        mailbox_id: m.mailbox_id,
        message_id: hex::encode(msg.message_id),
        sender_user: msg.sender_user.clone(),
        sender_device: hex::encode(msg.sender_device.0),
        conversation: msg.channel.clone(),
        sequence: msg.sequence,
        event: msg.event.clone(),
        data: msg.data.clone(),
        timestamp_ms: msg.timestamp_ms,
        queued_ms: m.queued_ms,
        received_ms,
        late: m.late,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_are_the_set_of_users() {
        let ab = conversation_channel(&["alice", "bob"]).unwrap();
        assert_eq!(ab, conversation_channel(&["bob", "alice", "bob"]).unwrap());
        assert_ne!(
            ab,
            conversation_channel(&["alice", "bob", "carol"]).unwrap()
        );
        assert_ne!(ab, conversation_channel(&["alice"]).unwrap());
        // NUL-separated: "a"+"bc" is not "ab"+"c".
        assert_ne!(
            conversation_channel(&["a", "bc"]).unwrap(),
            conversation_channel(&["ab", "c"]).unwrap()
        );
        assert_eq!(ab.len(), CONVERSATION_PREFIX.len() + 32);
        assert!(conversation_channel(&[]).is_err());
        assert!(conversation_channel(&["bad user"]).is_err());
    }
}
