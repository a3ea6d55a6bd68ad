//! Socket identifiers: two ASCII decimal numbers joined by one dot.

use std::fmt;
use std::str::FromStr;

/// Most digits accepted in each half of a socket id (a `u64` has 20).
pub const MAX_PART_DIGITS: usize = 20;

/// A connection's socket id, e.g. `123456.7891011`.
///
/// The only way to build one is [`SocketId::from_parts`] or parsing, which
/// accepts exactly `[0-9]{1,20}\.[0-9]{1,20}` (ASCII digits only, no sign, no
/// whitespace, no trailing newline), so a socket id can never carry a `:` into a
/// signed string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(String);

/// Why a string is not a socket id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid socket id: expected two ASCII decimal numbers joined by '.', e.g. 1234.5678")]
pub struct SocketIdError;

impl SocketId {
    /// Builds a socket id from its two numeric halves.
    pub fn from_parts(a: u64, b: u64) -> Self {
        Self(format!("{a}.{b}"))
    }

    /// Parses a socket id strictly.
    pub fn parse(s: &str) -> Result<Self, SocketIdError> {
        let (a, b) = s.split_once('.').ok_or(SocketIdError)?;
        let ok = |p: &str| {
            !p.is_empty() && p.len() <= MAX_PART_DIGITS && p.bytes().all(|c| c.is_ascii_digit())
        };
        if ok(a) && ok(b) {
            Ok(Self(s.to_owned()))
        } else {
            Err(SocketIdError)
        }
    }

    /// The socket id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SocketId {
    type Err = SocketIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SocketId({})", self.0)
    }
}

impl AsRef<str> for SocketId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_valid() {
        for s in [
            "1234.1234",
            "0.0",
            "18446744073709551615.1",
            "1.12345678901234567890",
        ] {
            assert!(SocketId::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn rejects_vectors_from_protocol_md() {
        for s in [
            "1234.1234:private-victim",
            "1234.1234\n",
            "\u{661}\u{662}\u{663}.\u{664}\u{665}\u{666}",
            "1234",
            ".1",
            "1.",
            "1.1.1",
            "+1.1",
            " 1.1",
            "1.1 ",
            "",
            "-1.1",
            "1.123456789012345678901",
            "１.１",
        ] {
            assert!(SocketId::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn from_parts_round_trips() {
        let id = SocketId::from_parts(u64::MAX, 7);
        assert_eq!(SocketId::parse(id.as_str()).unwrap(), id);
    }

    proptest! {
        #[test]
        fn parsed_ids_hold_only_digits_and_one_dot(s in "\\PC{0,30}") {
            if let Ok(id) = SocketId::parse(&s) {
                prop_assert_eq!(id.as_str().bytes().filter(|&b| b == b'.').count(), 1);
                prop_assert!(id.as_str().bytes().all(|b| b == b'.' || b.is_ascii_digit()));
            }
        }

        #[test]
        fn anything_with_a_colon_is_refused(a in 0u64.., b in 0u64.., tail in "[ -~]{0,20}") {
            let s = format!("{a}.{b}:{tail}");
            prop_assert!(SocketId::parse(&s).is_err());
        }
    }
}
