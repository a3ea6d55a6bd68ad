//! Event names (PROTOCOL.md §5.3).

use std::fmt;

/// Longest event name accepted.
pub const MAX_EVENT_NAME_LENGTH: usize = 200;

/// A validated event name: 1–200 bytes, no control characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventName(Box<str>);

/// Why a string is not an acceptable event name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventNameError {
    /// Empty name.
    #[error("Invalid event name: must not be empty")]
    Empty,
    /// Longer than 200 bytes.
    #[error("Invalid event name: longer than 200 characters")]
    TooLong,
    /// Holds a control character.
    #[error("Invalid event name: control characters are not allowed")]
    BadCharacter,
    /// `pusher:` / `pusher_internal:` names are the server's.
    #[error("Invalid event name: the pusher: and pusher_internal: prefixes are reserved")]
    Reserved,
    /// A client event must start with `client-`.
    #[error("Client event names must start with client-")]
    NotClientEvent,
}

impl EventName {
    fn parse_any(s: &str) -> Result<Self, EventNameError> {
        if s.is_empty() {
            return Err(EventNameError::Empty);
        }
        if s.len() > MAX_EVENT_NAME_LENGTH {
            return Err(EventNameError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(EventNameError::BadCharacter);
        }
        Ok(Self(s.into()))
    }

    /// Parses the name of an event published through the HTTP API
    /// (anything but the reserved `pusher:` / `pusher_internal:` prefixes).
    pub fn parse_api(s: &str) -> Result<Self, EventNameError> {
        let name = Self::parse_any(s)?;
        if s.starts_with("pusher:") || s.starts_with("pusher_internal:") {
            return Err(EventNameError::Reserved);
        }
        Ok(name)
    }

    /// Parses the name of a client event (`client-…`).
    pub fn parse_client(s: &str) -> Result<Self, EventNameError> {
        if !s.starts_with("client-") {
            return Err(EventNameError::NotClientEvent);
        }
        Self::parse_any(s)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventName({})", &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(EventName::parse_api("my-event").is_ok());
        assert!(EventName::parse_api("App\\Events\\Thing").is_ok());
        assert_eq!(
            EventName::parse_api("pusher:x"),
            Err(EventNameError::Reserved)
        );
        assert_eq!(
            EventName::parse_api("pusher_internal:x"),
            Err(EventNameError::Reserved)
        );
        assert_eq!(EventName::parse_api(""), Err(EventNameError::Empty));
        assert_eq!(
            EventName::parse_api(&"e".repeat(201)),
            Err(EventNameError::TooLong)
        );
        assert_eq!(
            EventName::parse_api("a\nb"),
            Err(EventNameError::BadCharacter)
        );
        assert!(EventName::parse_client("client-typing").is_ok());
        assert_eq!(
            EventName::parse_client("typing"),
            Err(EventNameError::NotClientEvent)
        );
    }
}
