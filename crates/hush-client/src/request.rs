//! `hush:request` / `hush:response` (docs/PROTOCOL-EXT.md §1): requests to
//! the server on the WebSocket, answered by id. The key directory
//! (`directory.*`, `log.*`) is reached this way.

use hush_protocol::msgs::{ClientMessage, RawJson, RequestFrame};

/// Requests one client has in flight at most (the server allows 8 per
/// connection and answers `rate_limited` beyond). Further calls wait.
pub const MAX_IN_FLIGHT: usize = 8;

/// The server's stable error codes (docs/PROTOCOL-EXT.md §1), from
/// hush-protocol's codec.
pub use hush_protocol::msgs::ErrorCode;

/// Why a `hush:request` ([`Client::request`](crate::Client::request)) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The server answered with an error.
    #[error("server refused the request ({code}): {message}")]
    Server {
        /// The stable error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The client is not connected right now.
    #[error("not connected")]
    NotConnected,
    /// The connection was lost before the answer came (the request may or
    /// may not have been carried out).
    #[error("connection lost before the response arrived")]
    ConnectionLost,
    /// No answer within the request timeout.
    #[error("no response within the request timeout")]
    Timeout,
    /// The answer is not a well-formed `hush:response`.
    #[error("invalid response: {0}")]
    BadResponse(String),
    /// The client was disconnected (or every handle dropped).
    #[error("the client is disconnected")]
    Closed,
}

impl DirectoryError {
    /// The server's error code, when the server refused.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The `hush:request` frame for `method` with `params` (a JSON object).
pub(crate) fn frame(id: &str, method: &str, params: RawJson) -> String {
    ClientMessage::HushRequest(RequestFrame {
        id: id.to_owned(),
        method: method.to_owned(),
        params: Some(params),
    })
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn request_frames() {
        let v: Value = serde_json::from_str(&frame(
            "r1",
            "log.head",
            RawJson::from_string("{}".into()).unwrap(),
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"event":"hush:request","data":{"id":"r1","method":"log.head","params":{}}})
        );
        for c in ["bad_request", "rate_limited", "conflict", "too_many"] {
            assert_eq!(ErrorCode::parse(c).as_str(), c);
        }
    }
}
