//! User ids from `pusher:signin` (PROTOCOL.md §5.3).

use std::fmt;

use crate::channel::is_channel_char;

/// Longest user id accepted (Pusher's presence limit).
pub const MAX_USER_ID_LENGTH: usize = 128;

/// A signed-in user's id: `[-a-zA-Z0-9_=@,.;]{1,128}`.
///
/// The id becomes part of `#server-to-user-{id}`, so it obeys the channel
/// character set.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Box<str>);

/// Why a string is not a user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid user id: 1-128 characters of A-Z a-z 0-9 _ - = @ , . ;")]
pub struct UserIdError;

impl UserId {
    /// Parses a user id strictly.
    pub fn parse(s: &str) -> Result<Self, UserIdError> {
        if !s.is_empty() && s.len() <= MAX_USER_ID_LENGTH && s.bytes().all(is_channel_char) {
            Ok(Self(s.into()))
        } else {
            Err(UserIdError)
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", &self.0)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids() {
        assert!(UserId::parse("12345").is_ok());
        assert!(UserId::parse("alice@example.com").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a:b").is_err());
        assert!(UserId::parse("a b").is_err());
        assert!(UserId::parse(&"a".repeat(129)).is_err());
        assert!(UserId::parse("ü").is_err());
    }
}
