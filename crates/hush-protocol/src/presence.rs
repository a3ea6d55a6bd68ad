//! Presence `channel_data` and sign-in `user_data` (PROTOCOL.md §8.1, §3.3).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::UserId;
use crate::user::MAX_USER_ID_LENGTH;

/// A presence member as announced by the app: user id plus optional info.
#[derive(Debug, Clone)]
pub struct PresenceMember {
    /// The user id, always as a string (a JSON number: its text exactly as sent).
    pub user_id: String,
    /// The raw JSON of `user_info`, or `None`.
    pub user_info: Option<Box<RawValue>>,
}

impl PresenceMember {
    /// `user_info` as JSON text, `{}` when absent.
    pub fn info_json(&self) -> &str {
        self.user_info.as_deref().map(RawValue::get).unwrap_or("{}")
    }
}

/// Why `channel_data` or `user_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberDataError {
    /// Not one JSON object of the expected shape.
    #[error("Invalid {what}: {reason}")]
    Malformed {
        /// `channel_data` or `user_data`.
        what: &'static str,
        /// Parser message.
        reason: String,
    },
    /// The user id is empty, too long or holds control characters.
    #[error("Invalid user_id: must be a non-empty string of at most 128 characters")]
    BadUserId,
    /// `user_info` is larger than allowed.
    #[error("user_info is larger than {max} bytes")]
    InfoTooLarge {
        /// The limit in force.
        max: usize,
    },
}

#[derive(Deserialize)]
struct RawChannelData {
    /// Kept as written: a number's text is the id (as Pusher does), never
    /// re-printed through `f64` (which merged distinct long ids and turned
    /// `1e2` into `100.0`).
    user_id: Box<RawValue>,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
}

/// Refuses anything but a JSON object: serde's derived structs would also
/// read a JSON array field by field (`[1]` as `{"user_id":1}`).
fn require_object(what: &'static str, data: &str) -> Result<(), MemberDataError> {
    if crate::wire::is_json_object(data.as_bytes()) {
        Ok(())
    } else {
        Err(MemberDataError::Malformed {
            what,
            reason: "expected a JSON object".into(),
        })
    }
}

/// Parses presence `channel_data` strictly: one JSON object, `user_id` string
/// or number, `user_info` at most `max_info_bytes` serialized.
pub fn parse_channel_data(
    data: &str,
    max_info_bytes: usize,
) -> Result<PresenceMember, MemberDataError> {
    require_object("channel_data", data)?;
    let raw: RawChannelData =
        serde_json::from_str(data).map_err(|e| MemberDataError::Malformed {
            what: "channel_data",
            reason: e.to_string(),
        })?;
    let user_id = user_id_text(&raw.user_id)?;
    if user_id.is_empty()
        || user_id.chars().count() > MAX_USER_ID_LENGTH
        || user_id.chars().any(char::is_control)
    {
        return Err(MemberDataError::BadUserId);
    }
    let user_info = normalize_info(raw.user_info);
    check_info(&user_info, max_info_bytes)?;
    Ok(PresenceMember { user_id, user_info })
}

/// The id a `user_id` value stands for: a string's contents, or a number's
/// JSON text exactly as sent (`10` is `"10"`, `1e2` is `"1e2"`, a 30-digit id
/// keeps all its digits). Anything else is refused.
fn user_id_text(value: &RawValue) -> Result<String, MemberDataError> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str(text).map_err(|_| MemberDataError::BadUserId),
        // The parser already checked that this is one JSON number.
        Some(b'-' | b'0'..=b'9') => Ok(text.to_owned()),
        _ => Err(MemberDataError::BadUserId),
    }
}

fn normalize_info(info: Option<Box<RawValue>>) -> Option<Box<RawValue>> {
    info.filter(|v| v.get() != "null")
}

fn check_info(info: &Option<Box<RawValue>>, max: usize) -> Result<(), MemberDataError> {
    match info {
        Some(v) if v.get().len() > max => Err(MemberDataError::InfoTooLarge { max }),
        _ => Ok(()),
    }
}

/// A parsed sign-in `user_data`.
#[derive(Debug, Clone)]
pub struct UserData {
    /// The user's id.
    pub id: UserId,
    /// Raw `user_info`, if any.
    pub user_info: Option<Box<RawValue>>,
    /// Watched user ids (unvalidated strings are dropped).
    pub watchlist: Vec<String>,
}

#[derive(Deserialize)]
struct RawUserData {
    id: String,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
    #[serde(default)]
    watchlist: Option<Vec<String>>,
}

/// Parses sign-in `user_data` strictly: `id` must be a valid [`UserId`].
pub fn parse_user_data(data: &str, max_info_bytes: usize) -> Result<UserData, MemberDataError> {
    require_object("user_data", data)?;
    let raw: RawUserData = serde_json::from_str(data).map_err(|e| MemberDataError::Malformed {
        what: "user_data",
        reason: e.to_string(),
    })?;
    let id = UserId::parse(&raw.id).map_err(|_| MemberDataError::BadUserId)?;
    let user_info = normalize_info(raw.user_info);
    check_info(&user_info, max_info_bytes)?;
    Ok(UserData {
        id,
        user_info,
        watchlist: raw.watchlist.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data() {
        let m = parse_channel_data(
            r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#,
            1024,
        )
        .unwrap();
        assert_eq!(m.user_id, "10");
        assert_eq!(m.info_json(), r#"{"name":"Mr. Channels"}"#);
        let m = parse_channel_data(r#"{"user_id":"a"}"#, 1024).unwrap();
        assert_eq!(m.info_json(), "{}");
        assert!(parse_channel_data(r#"{"user_id":"a"} x"#, 1024).is_err());
        assert!(parse_channel_data(r#"{"user_id":"a","user_id":"b"}"#, 1024).is_err());
        assert!(parse_channel_data(r#"{"user_info":{}}"#, 1024).is_err());
        let err = |s: &str| parse_channel_data(s, 1024).err();
        assert_eq!(err(r#"{"user_id":""}"#), Some(MemberDataError::BadUserId));
        assert_eq!(err(r#"{"user_id":null}"#), Some(MemberDataError::BadUserId));
        assert_eq!(
            err(&format!(r#"{{"user_id":"{}"}}"#, "a".repeat(129))),
            Some(MemberDataError::BadUserId)
        );
        let big = format!(
            r#"{{"user_id":"a","user_info":{{"x":"{}"}}}}"#,
            "a".repeat(2000)
        );
        assert_eq!(err(&big), Some(MemberDataError::InfoTooLarge { max: 1024 }));
        assert!(parse_channel_data("\"foo\"", 1024).is_err());
        assert_eq!(err(r#"{"user_id":true}"#), Some(MemberDataError::BadUserId));
        assert_eq!(
            err(r#"{"user_id":["a"]}"#),
            Some(MemberDataError::BadUserId)
        );
        assert_eq!(
            err(r#"{"user_id":{"a":1}}"#),
            Some(MemberDataError::BadUserId)
        );
    }

    #[test]
    fn numeric_user_ids_keep_their_json_text() {
        let id = |s: &str| parse_channel_data(s, 1024).unwrap().user_id;
        // Two ids beyond f64's precision stay two ids.
        let a = "123456789012345678901234567890";
        let b = "123456789012345678901234567891";
        assert_eq!(id(&format!(r#"{{"user_id":{a}}}"#)), a);
        assert_eq!(id(&format!(r#"{{"user_id": {b} }}"#)), b);
        assert_eq!(id(r#"{"user_id":1e2}"#), "1e2");
        assert_eq!(id(r#"{"user_id":-7.50}"#), "-7.50");
        assert_eq!(
            id(r#"{"user_id":18446744073709551616}"#),
            "18446744073709551616"
        );
        assert_eq!(id(r#"{"user_id":"x\u00e9\"y"}"#), "x\u{e9}\"y");
        assert!(parse_channel_data(r#"{"user_id":01}"#, 1024).is_err());
        assert!(parse_channel_data(r#"{"user_id":1e}"#, 1024).is_err());
    }

    #[test]
    fn only_objects_are_member_data() {
        // Found by fuzzing (fuzz/fuzz_targets/presence_data.rs): serde's
        // derived structs also read JSON arrays, field by field, so `[1]`
        // passed as `{"user_id":1}`.
        let err = |s: &str| parse_channel_data(s, 1024).err();
        for s in [r#"[1]"#, r#"["u1",{"name":"x"}]"#, r#" ["u1"]"#] {
            assert!(
                matches!(err(s), Some(MemberDataError::Malformed { .. })),
                "{s}"
            );
        }
        assert!(parse_user_data(r#"["u1"]"#, 1024).is_err());
        assert!(parse_user_data(r#"["u1",null,["u2"]]"#, 1024).is_err());
        // Leading JSON whitespace before an object is still fine.
        assert!(parse_channel_data(" \n{\"user_id\":\"a\"}", 1024).is_ok());
        assert!(parse_user_data("\t{\"id\":\"a\"}", 1024).is_ok());
    }

    #[test]
    fn user_data() {
        let u = parse_user_data(r#"{"id":"12345","watchlist":["1","2"]}"#, 1024).unwrap();
        assert_eq!(u.id.as_str(), "12345");
        assert_eq!(u.watchlist, vec!["1", "2"]);
        assert!(parse_user_data(r#"{"id":""}"#, 1024).is_err());
        assert!(parse_user_data(r#"{"id":"a:b"}"#, 1024).is_err());
        assert!(parse_user_data(r#"{"id":12}"#, 1024).is_err());
        assert!(parse_user_data(r#"{"id":"1"}{}"#, 1024).is_err());
    }
}
