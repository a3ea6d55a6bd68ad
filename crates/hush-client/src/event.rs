//! What the client delivers: [`Event`], and the names of the events it
//! synthesizes (pusher-js's names where pusher-js has one).

use serde::Serialize;
use serde_json::Value;

/// `pusher_internal:subscription_succeeded`, delivered as this name. `data` is
/// `{}`, or for presence channels
/// `{"count":n,"members":{id: info,…},"me":{"id","info"}}`.
pub const SUBSCRIPTION_SUCCEEDED: &str = "pusher:subscription_succeeded";
/// A refused subscription (by the server or by the authorizer):
/// `{"type","error","status"}`.
pub const SUBSCRIPTION_ERROR: &str = "pusher:subscription_error";
/// A presence member joined: `{"id","info"}`.
pub const MEMBER_ADDED: &str = "pusher:member_added";
/// A presence member left: `{"id","info"}`.
pub const MEMBER_REMOVED: &str = "pusher:member_removed";
/// `{"subscription_count": n}` (when the app enables it).
pub const SUBSCRIPTION_COUNT: &str = "pusher:subscription_count";
/// Cache channel without a cached event.
pub const CACHE_MISS: &str = "pusher:cache_miss";
/// A `pusher:error` from the server (no channel): `{"code","message"}`.
pub const ERROR: &str = "pusher:error";
/// Sign-in accepted (no channel): `{"user_data": "…"}`.
pub const SIGNIN_SUCCESS: &str = "pusher:signin_success";
/// Sign-in failed at the authorizer (no channel): `{"type","error","status"}`.
pub const SIGNIN_ERROR: &str = "pusher:signin_error";
/// An event on an encrypted channel could not be opened: `data` is
/// `{"event": <outer event name>, "reason": "…"}` and [`Event::failure`] says why.
pub const DECRYPTION_FAILED: &str = "hush:decryption_failed";
/// The connection was lost or could not be opened, and the client will try
/// again (no channel): `{"reason": "…", "retry_in_ms": …}` (pusher-js's
/// connection `error` event, in hush's words).
pub const CONNECTION_ERROR: &str = "hush:connection_error";

/// Why an event on an encrypted channel was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DecryptError {
    /// No key for the channel (its authorization failed or gave none).
    #[error("no key for this channel: {0}")]
    NoKey(String),
    /// `data` is not an envelope `{"nonce","ciphertext"[,"epoch"]}`, or a
    /// sealed event's plaintext is not the sealed format.
    #[error("malformed encrypted event")]
    Malformed,
    /// The box does not open: wrong key, or tampered with (after one re-fetch of the key).
    #[error("decryption failed (wrong key or tampered)")]
    Decrypt,
    /// The event names a key epoch newer than any the authorizer hands out.
    #[error("unknown key epoch {epoch} (newest known {newest})")]
    UnknownEpoch {
        /// The event's epoch.
        epoch: u64,
        /// The newest epoch held.
        newest: u64,
    },
    /// The event names an epoch whose key was erased (older than the grace period allows).
    #[error(
        "stale key epoch {epoch} (newest {newest}; older keys are erased after the grace period)"
    )]
    StaleEpoch {
        /// The event's epoch.
        epoch: u64,
        /// The newest epoch held.
        newest: u64,
    },
    /// A sealed event addressed to another channel.
    #[error("sealed event belongs to another channel")]
    WrongChannel,
    /// A sealed event whose inner epoch differs from its envelope's.
    #[error("sealed event epoch does not match its envelope")]
    WrongEpoch,
    /// A sealed event whose timestamp is outside the freshness window.
    #[error("sealed event expired (timestamp outside the window)")]
    Expired,
    /// A sealed event already received (same sender and sequence number).
    #[error("replayed sealed event")]
    Replayed,
    /// A sealed event too far below the sender's newest sequence number.
    #[error("stale sealed event (below the replay window)")]
    Stale,
}

impl From<hush_crypto::sealed::SealedError> for DecryptError {
    fn from(e: hush_crypto::sealed::SealedError) -> Self {
        use hush_crypto::sealed::SealedError as S;
        match e {
            S::Decrypt => Self::Decrypt,
            S::WrongChannel => Self::WrongChannel,
            S::WrongEpoch => Self::WrongEpoch,
            S::Expired => Self::Expired,
            S::Replayed => Self::Replayed,
            S::Stale => Self::Stale,
            _ => Self::Malformed,
        }
    }
}

/// Metadata of a sealed event (see `E2EE-CHANNELS.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedInfo {
    /// The sender id (22 characters, base64url).
    pub sender: String,
    /// The sender's sequence number.
    pub seq: u64,
    /// The message id.
    pub message_id: String,
    /// The sender's clock, Unix milliseconds.
    pub timestamp_ms: u64,
    /// The key epoch it was sealed under.
    pub epoch: u64,
}

/// One event, as the application sees it.
///
/// `data` is decoded the way pusher-js decodes it: a string that holds JSON
/// becomes that JSON value, any other string stays a string. On encrypted
/// channels `data` is the decrypted payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The channel, or `None` for connection-level events (`pusher:error`,
    /// `pusher:signin_success`).
    pub channel: Option<String>,
    /// The event name.
    pub event: String,
    /// The data.
    pub data: Value,
    /// The sender's user id (client events on presence channels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Sender and sequence of a sealed event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealedInfo>,
    /// Set on [`DECRYPTION_FAILED`] events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<DecryptError>,
}

impl Event {
    pub(crate) fn new(channel: Option<&str>, event: &str, data: Value) -> Self {
        Self {
            channel: channel.map(str::to_owned),
            event: event.to_owned(),
            data,
            user_id: None,
            sealed: None,
            failure: None,
        }
    }

    /// One JSON line: `{"channel","event","data","user_id"…}` (what `hush listen` prints).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// True for the events the client synthesizes or relays from the protocol
    /// itself (`pusher:…`, `hush:…`), as opposed to application events.
    pub fn is_protocol(&self) -> bool {
        self.event.starts_with("pusher:") || self.event.starts_with("hush:")
    }
}

/// pusher-js's decoding: a string holding JSON becomes that JSON, else stays a string.
pub(crate) fn decode_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_pusher_js() {
        assert_eq!(decode_text(r#"{"a":1}"#), serde_json::json!({"a":1}));
        assert_eq!(decode_text("plain"), Value::String("plain".into()));
        assert_eq!(decode_text("12"), serde_json::json!(12));
    }

    #[test]
    fn json_line_omits_empty_fields() {
        let e = Event::new(Some("c"), "e", serde_json::json!({"x":1}));
        assert_eq!(
            e.to_json_line(),
            r#"{"channel":"c","event":"e","data":{"x":1}}"#
        );
    }
}
