//! Errors of HTTP API calls.

use std::time::Duration;

use hush_protocol::{ChannelNameError, EventNameError};

/// Shows caller input in an error: escaped (no raw newlines or control
/// characters reach a log line) and cut to 100 characters.
pub(crate) fn shown(s: &str) -> String {
    let cut: String = s.chars().take(100).collect();
    format!("{cut:?}")
}

/// A request refused before anything was signed or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A channel name is not valid (PROTOCOL.md §5.2).
    #[error("{reason}: {name}")]
    Channel {
        /// The name as given (escaped).
        name: String,
        /// Why.
        reason: ChannelNameError,
    },
    /// `#server-to-user-` channels are reached through [`crate::Client::send_to_user`].
    #[error("{0} is a #server-to-user- channel: use send_to_user")]
    ServerToUserChannel(String),
    /// The call needs a presence channel.
    #[error("{0} is not a presence channel")]
    NotPresence(String),
    /// The event name is not valid.
    #[error("{reason}: {name}")]
    Event {
        /// The name as given (escaped).
        name: String,
        /// Why.
        reason: EventNameError,
    },
    /// A socket id is not two ASCII decimal numbers joined by a dot.
    #[error("invalid socket id {0}: expected two ASCII decimal numbers joined by '.'")]
    SocketId(String),
    /// A user id is not 1–128 characters of `A-Z a-z 0-9 _ - = @ , . ;`.
    #[error("invalid user id {0}: 1-128 characters of A-Z a-z 0-9 _ - = @ , . ;")]
    UserId(String),
    /// A user id with `,` cannot be looked up over the HTTP API, whose
    /// `ids` parameter is comma-separated (the WebSocket `directory.lookup`
    /// takes a JSON array and has no such limit).
    #[error("user id {0} contains ',', which the HTTP API's comma-separated ids cannot carry")]
    UserIdWithComma(String),
    /// The event data (after encryption, if any) is over the limit.
    #[error("event data is {size} bytes; the limit is {max}")]
    DataTooLarge {
        /// Bytes of the `data` string that would be sent.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A trigger with no channel.
    #[error("at least one channel is required")]
    NoChannels,
    /// More channels than one trigger may name.
    #[error("a trigger names at most {max} channels, got {count}")]
    TooManyChannels {
        /// Channels given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A batch must hold 1 to 10 events.
    #[error("a batch holds 1 to {max} events, got {count}")]
    BatchSize {
        /// Events given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An encrypted channel together with other channels in one trigger.
    #[error("you cannot trigger to multiple channels when using encrypted channels")]
    EncryptedMultiChannel,
    /// A `private-encrypted-` channel without a configured master key.
    #[error("{0} is an encrypted channel: set Config::encryption_master_key")]
    MasterKeyRequired(String),
    /// A sealed event (hush extension) to a channel that is not
    /// `private-encrypted-`.
    #[error("{0} is not an encrypted channel: sealed events need a private-encrypted- channel")]
    NotEncrypted(String),
    /// The data could not be serialized to JSON.
    #[error("event data is not serializable as JSON: {0}")]
    Json(String),
    /// A directory lookup must name 1 to 50 users.
    #[error("a directory lookup names 1 to {max} users, got {count}")]
    LookupSize {
        /// Users given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An epoch range the directory's audit endpoint does not serve
    /// (`1 <= from < to <= from + 16`).
    #[error("invalid epoch range: {0}")]
    LogRange(String),
    /// A query parameter the SDK sets itself (`auth_*`, `body_md5`).
    #[error("query parameter {0} is set by the SDK")]
    ReservedParam(String),
}

/// Why an HTTP API call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Refused before sending.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The server answered with a status other than 2xx.
    ///
    /// `message` is the `error` member of hush's `{"error": "…"}` body, or the
    /// body text of other servers (hosted Pusher answers in plain text).
    #[error("HTTP {status}: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// No complete HTTP exchange (connection refused, reset, DNS, TLS…). The
    /// text is the whole cause chain, e.g. `client error (Connect): tcp
    /// connect error: Connection refused (os error 111)`.
    #[error("request failed: {0}")]
    Transport(String),
    /// No complete response within [`crate::Config::timeout`].
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// A 2xx response whose body is not the JSON expected.
    #[error("unexpected response body: {0}")]
    Decode(String),
}

impl Error {
    /// [`Error::Transport`] from an error and its causes, joined by `: `
    /// (repeated messages dropped).
    pub(crate) fn transport(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut parts: Vec<String> = Vec::new();
        let mut next = Some(e);
        while let Some(err) = next {
            let text = err.to_string();
            if parts.last() != Some(&text) {
                parts.push(text);
            }
            next = err.source();
        }
        Self::Transport(parts.join(": "))
    }

    /// The HTTP status, for [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Builds [`Error::Api`] from a non-2xx response body.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct HushError {
            error: String,
        }
        let message = match serde_json::from_slice::<HushError>(body) {
            Ok(e) => e.error,
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.chars().count() > 1000 {
                    format!("{}…", text.chars().take(1000).collect::<String>())
                } else {
                    text.to_owned()
                }
            }
        };
        Self::Api { status, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_messages() {
        let e = Error::from_response(400, br#"{"error":"Invalid channel name"}"#);
        assert_eq!(e.status(), Some(400));
        assert_eq!(e.to_string(), "HTTP 400: Invalid channel name");
        let e = Error::from_response(401, b"Invalid signature: you should have sent ...\n");
        assert_eq!(
            e.to_string(),
            "HTTP 401: Invalid signature: you should have sent ..."
        );
        let e = Error::from_response(500, &[b'x'; 5000]);
        assert!(e.to_string().len() < 1100);
        assert_eq!(Error::Timeout(Duration::from_secs(1)).status(), None);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(Error::transport(&io).to_string(), "request failed: refused");
    }

    #[test]
    fn shown_escapes_and_cuts() {
        assert_eq!(shown("1.1\n"), r#""1.1\n""#);
        assert_eq!(shown(&"a".repeat(500)).len(), 102);
    }
}
