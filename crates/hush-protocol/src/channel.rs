//! Channel names and their kinds (PROTOCOL.md §5).

use std::fmt;

use crate::user::UserId;

/// Default (and maximum) channel name length, as in the Pusher SDKs.
pub const MAX_CHANNEL_NAME_LENGTH: usize = 200;

/// The prefix of per-user channels used for server-to-user events.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// A validated channel name.
///
/// Accepts `[-a-zA-Z0-9_=@,.;]{1,max}` (ASCII only, so no `:` and no look-alike
/// characters), or `#server-to-user-{user id}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Box<str>);

/// Why a string is not a channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("Invalid channel name: must not be empty")]
    Empty,
    /// The name is longer than allowed.
    #[error("Invalid channel name: longer than {max} characters")]
    TooLong {
        /// The limit in force.
        max: usize,
    },
    /// The name holds a character outside `[-a-zA-Z0-9_=@,.;]`.
    #[error("Invalid channel name: only A-Z a-z 0-9 and _ - = @ , . ; are allowed")]
    BadCharacter,
    /// A `#` name other than `#server-to-user-{id}`.
    #[error("Invalid channel name: names starting with '#' are reserved")]
    Reserved,
}

/// What a channel is, decided by its longest matching prefix (PROTOCOL.md §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// No authorization.
    Public,
    /// `private-`: signed `socket_id:channel`.
    Private,
    /// `presence-`: signed `socket_id:channel:channel_data`, with members.
    Presence,
    /// `private-encrypted-`: like private, payloads are opaque ciphertext.
    Encrypted,
    /// `#server-to-user-{id}`: only the socket signed in as `id`.
    ServerToUser,
}

/// Returns true for the characters Pusher allows in channel names.
pub fn is_channel_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

impl ChannelName {
    /// Parses a channel name with the default length limit (200).
    pub fn parse(s: &str) -> Result<Self, ChannelNameError> {
        Self::parse_with_max(s, MAX_CHANNEL_NAME_LENGTH)
    }

    /// Parses a channel name with a length limit (never above 200).
    pub fn parse_with_max(s: &str, max: usize) -> Result<Self, ChannelNameError> {
        let max = max.min(MAX_CHANNEL_NAME_LENGTH);
        if s.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if s.len() > max {
            return Err(ChannelNameError::TooLong { max });
        }
        if let Some(rest) = s.strip_prefix('#') {
            let user = rest
                .strip_prefix(&SERVER_TO_USER_PREFIX[1..])
                .ok_or(ChannelNameError::Reserved)?;
            UserId::parse(user).map_err(|_| ChannelNameError::BadCharacter)?;
            return Ok(Self(s.into()));
        }
        if s.bytes().all(is_channel_char) {
            Ok(Self(s.into()))
        } else {
            Err(ChannelNameError::BadCharacter)
        }
    }

    /// The `#server-to-user-{id}` channel of a user.
    pub fn server_to_user(user: &UserId) -> Self {
        Self(format!("{SERVER_TO_USER_PREFIX}{user}").into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel's kind.
    pub fn kind(&self) -> ChannelKind {
        let s = &*self.0;
        if s.starts_with(SERVER_TO_USER_PREFIX) {
            ChannelKind::ServerToUser
        } else if s.starts_with("private-encrypted-") {
            ChannelKind::Encrypted
        } else if s.starts_with("private-") {
            ChannelKind::Private
        } else if s.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// True for the four cache prefixes (`cache-`, `private-cache-`,
    /// `private-encrypted-cache-`, `presence-cache-`).
    pub fn is_cache(&self) -> bool {
        let s = &*self.0;
        s.starts_with("cache-")
            || s.starts_with("private-cache-")
            || s.starts_with("private-encrypted-cache-")
            || s.starts_with("presence-cache-")
    }

    /// For `#server-to-user-{id}`, the user id.
    pub fn server_to_user_id(&self) -> Option<&str> {
        self.0.strip_prefix(SERVER_TO_USER_PREFIX)
    }
}

impl ChannelKind {
    /// Subscribing needs a signature from the app.
    pub fn requires_auth(self) -> bool {
        matches!(self, Self::Private | Self::Presence | Self::Encrypted)
    }

    /// Client events may be sent on this kind (private and presence only).
    pub fn allows_client_events(self) -> bool {
        matches!(self, Self::Private | Self::Presence)
    }

    /// Presence channels keep a member list.
    pub fn is_presence(self) -> bool {
        self == Self::Presence
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelName({})", &self.0)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validation_vectors() {
        assert_eq!(
            ChannelName::parse("private-foobar").unwrap().kind(),
            ChannelKind::Private
        );
        assert_eq!(
            ChannelName::parse("foo-bar_1234@=,.;").unwrap().kind(),
            ChannelKind::Public
        );
        assert_eq!(
            ChannelName::parse("private-a:b"),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(
            ChannelName::parse("presence-x y"),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(ChannelName::parse(""), Err(ChannelNameError::Empty));
        assert!(matches!(
            ChannelName::parse(&"a".repeat(201)),
            Err(ChannelNameError::TooLong { .. })
        ));
        assert!(ChannelName::parse(&"a".repeat(200)).is_ok());
        assert_eq!(
            ChannelName::parse("#other"),
            Err(ChannelNameError::Reserved)
        );
        assert_eq!(
            ChannelName::parse("#server-to-user-"),
            Err(ChannelNameError::BadCharacter)
        );
        assert_eq!(
            ChannelName::parse("#server-to-user-a:b"),
            Err(ChannelNameError::BadCharacter)
        );
        let c = ChannelName::parse("#server-to-user-123").unwrap();
        assert_eq!(c.kind(), ChannelKind::ServerToUser);
        assert_eq!(c.server_to_user_id(), Some("123"));
        // Unicode look-alikes: Cyrillic 'р' and a full-width hyphen.
        assert!(ChannelName::parse("\u{440}rivate-x").is_err());
        assert!(ChannelName::parse("private\u{ff0d}x").is_err());
        assert!(ChannelName::parse("private-x\n").is_err());
        assert!(ChannelName::parse_with_max(&"a".repeat(165), 164).is_err());
    }

    #[test]
    fn longest_prefix_classification() {
        let k = |s: &str| ChannelName::parse(s).unwrap();
        assert_eq!(k("private-encrypted-x").kind(), ChannelKind::Encrypted);
        assert!(!k("private-encrypted-x").is_cache());
        assert_eq!(
            k("private-encrypted-cache-x").kind(),
            ChannelKind::Encrypted
        );
        assert!(k("private-encrypted-cache-x").is_cache());
        assert_eq!(k("private-cache-x").kind(), ChannelKind::Private);
        assert!(k("private-cache-x").is_cache());
        assert_eq!(k("presence-cache-x").kind(), ChannelKind::Presence);
        assert!(k("presence-cache-x").is_cache());
        assert_eq!(k("cache-x").kind(), ChannelKind::Public);
        assert!(k("cache-x").is_cache());
        assert_eq!(k("foo-private-x").kind(), ChannelKind::Public);
        assert!(!k("foo-cache-x").is_cache());
        assert!(!ChannelKind::Encrypted.allows_client_events());
        assert!(!ChannelKind::Public.allows_client_events());
    }

    proptest! {
        #[test]
        fn parsed_names_never_hold_a_colon(s in "\\PC{0,40}") {
            if let Ok(c) = ChannelName::parse(&s) {
                prop_assert!(!c.as_str().contains(':'));
                prop_assert!(c.as_str().is_ascii());
            }
        }
    }
}
