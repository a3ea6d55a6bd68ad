//! `hush:request` / `hush:response` (docs/PROTOCOL-EXT.md §1): requests to
//! the server on the WebSocket, answered by id. The key directory
//! (`directory.*`, `log.*`) is reached this way.

use hush_protocol::wire::push_json_str;
use serde_json::Value;

/// Requests one client has in flight at most (the server allows 8 per
/// connection and answers `rate_limited` beyond). Further calls wait.
pub const MAX_IN_FLIGHT: usize = 8;

/// The server's stable error codes (docs/PROTOCOL-EXT.md §1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `bad_request`: malformed parameters.
    BadRequest,
    /// `unknown_method`.
    UnknownMethod,
    /// `not_signed_in`: the connection has not completed `pusher:signin`.
    NotSignedIn,
    /// `forbidden`: e.g. publishing a card for another user.
    Forbidden,
    /// `invalid_record`: a card or revocation that breaks the directory's rules.
    InvalidRecord,
    /// `conflict`: a card links to a card the user does not have, or a lost write race.
    Conflict,
    /// `too_many`: more than 50 users in one lookup.
    TooMany,
    /// `not_found`: e.g. a tree size beyond the log.
    NotFound,
    /// `unavailable`: the server's store failed.
    Unavailable,
    /// `rate_limited`: too many requests in flight.
    RateLimited,
    /// A code this build does not know.
    Other(String),
}

impl ErrorCode {
    /// Parses the wire string.
    pub fn parse(code: &str) -> Self {
        match code {
            "bad_request" => Self::BadRequest,
            "unknown_method" => Self::UnknownMethod,
            "not_signed_in" => Self::NotSignedIn,
            "forbidden" => Self::Forbidden,
            "invalid_record" => Self::InvalidRecord,
            "conflict" => Self::Conflict,
            "too_many" => Self::TooMany,
            "not_found" => Self::NotFound,
            "unavailable" => Self::Unavailable,
            "rate_limited" => Self::RateLimited,
            other => Self::Other(other.chars().take(64).collect()),
        }
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownMethod => "unknown_method",
            Self::NotSignedIn => "not_signed_in",
            Self::Forbidden => "forbidden",
            Self::InvalidRecord => "invalid_record",
            Self::Conflict => "conflict",
            Self::TooMany => "too_many",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
            Self::RateLimited => "rate_limited",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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

/// The `hush:request` frame.
pub(crate) fn frame(id: &str, method: &str, params: &Value) -> String {
    let mut o = String::from(r#"{"event":"hush:request","data":{"id":"#);
    push_json_str(&mut o, id);
    o.push_str(r#","method":"#);
    push_json_str(&mut o, method);
    o.push_str(r#","params":"#);
    o.push_str(&params.to_string());
    o.push_str("}}");
    o
}

/// Parses a `hush:response`'s data into the request id and its outcome.
pub(crate) fn parse_response(data: &Value) -> Option<(String, Result<Value, DirectoryError>)> {
    let id = data.get("id")?.as_str()?.to_owned();
    if let Some(err) = data.get("error") {
        let code = err
            .get("code")
            .and_then(Value::as_str)
            .map_or(ErrorCode::Other("missing".into()), ErrorCode::parse);
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(1024)
            .collect();
        return Some((id, Err(DirectoryError::Server { code, message })));
    }
    Some(match data.get("result") {
        Some(r) => (id, Ok(r.clone())),
        None => (
            id,
            Err(DirectoryError::BadResponse(
                "neither result nor error".into(),
            )),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_and_responses() {
        let v: Value = serde_json::from_str(&frame("r1", "log.head", &json!({}))).unwrap();
        assert_eq!(
            v,
            json!({"event":"hush:request","data":{"id":"r1","method":"log.head","params":{}}})
        );
        let (id, r) = parse_response(&json!({"id":"r1","result":{"a":1}})).unwrap();
        assert_eq!((id.as_str(), r), ("r1", Ok(json!({"a":1}))));
        let (_, r) =
            parse_response(&json!({"id":"x","error":{"code":"not_signed_in","message":"m"}}))
                .unwrap();
        assert_eq!(r.unwrap_err().code(), Some(&ErrorCode::NotSignedIn));
        let (_, r) = parse_response(&json!({"id":"x","error":{"code":"weird"}})).unwrap();
        assert_eq!(
            r.unwrap_err().code(),
            Some(&ErrorCode::Other("weird".into()))
        );
        assert!(matches!(
            parse_response(&json!({"id":"x"})).unwrap().1,
            Err(DirectoryError::BadResponse(_))
        ));
        assert!(parse_response(&json!({"result":1})).is_none());
        for c in ["bad_request", "rate_limited", "conflict", "too_many"] {
            assert_eq!(ErrorCode::parse(c).as_str(), c);
        }
    }
}
