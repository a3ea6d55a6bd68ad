//! The JSON pieces every message is built from: string escaping (the one
//! form every hush encoder writes), raw JSON kept as received, and an event's
//! `data` string held as its encoded literal.

use std::borrow::Cow;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// True if `json` is a JSON object (possibly after JSON whitespace): check it
/// before parsing a derived struct, which serde would also read from a JSON
/// array, field by field (`["pusher:ping"]` as `{"event":"pusher:ping"}`).
pub fn is_json_object(json: &[u8]) -> bool {
    json.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

/// Appends `s` as a JSON string literal. Runs of bytes that need no escaping
/// are copied at once; only `"`, `\\` and control characters are escaped.
pub fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if b != b'"' && b != b'\\' && b >= 0x20 {
            continue;
        }
        // `b` is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(c >> 4)]));
                out.push(char::from(HEX[usize::from(c & 0xf)]));
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `s` as a JSON string literal ([`push_json_str`]).
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    push_json_str(&mut o, s);
    o
}

/// True if `literal` (a valid JSON string literal, quotes included) is
/// exactly what [`push_json_str`] writes for its content: every escape is one
/// `push_json_str` would use, so copying it is the same as re-encoding it.
fn is_canonical_literal(literal: &[u8]) -> bool {
    let Some(inner) = literal
        .strip_prefix(b"\"")
        .and_then(|l| l.strip_suffix(b"\""))
    else {
        return false;
    };
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            b'\\' => match inner.get(i + 1) {
                Some(b'"' | b'\\' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let Some(&[b'0', b'0', hi, lo]) = inner.get(i + 2..i + 6) else {
                        return false;
                    };
                    let (Some(h), Some(l)) = (hex_lower(hi), hex_lower(lo)) else {
                        return false;
                    };
                    let c = h * 16 + l;
                    if c >= 0x20 || matches!(c, b'\n' | b'\r' | b'\t') {
                        return false;
                    }
                    i += 6;
                }
                _ => return false,
            },
            b'"' => return false,
            b if b < 0x20 => return false,
            _ => i += 1,
        }
    }
    true
}

fn hex_lower(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// JSON text kept exactly as received (an object, a string, `null`…),
/// compared by its text.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Validates `json` as one JSON value (kept as written, not normalised).
    pub fn from_string(json: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(json).map(Self)
    }

    /// `text` as a JSON string literal.
    pub fn string(text: &str) -> Self {
        // A literal push_json_str wrote is valid JSON.
        Self::from_string(json_str(text)).unwrap_or_else(|_| Self::null())
    }

    /// JSON `null`.
    pub fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The boxed raw value.
    pub fn into_inner(self) -> Box<RawValue> {
        self.0
    }

    /// True if the JSON is a string literal.
    pub fn is_string(&self) -> bool {
        self.get().starts_with('"')
    }

    /// The content of a JSON string, or the JSON text itself for any other
    /// value (how clients read `data` that may come in either encoding).
    pub fn text(&self) -> Cow<'_, str> {
        let t = self.get();
        if t.starts_with('"') {
            match serde_json::from_str::<Cow<'_, str>>(t) {
                Ok(s) => s,
                Err(_) => Cow::Borrowed(""),
            }
        } else {
            Cow::Borrowed(t)
        }
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> Self {
        Self(raw)
    }
}

impl Deref for RawJson {
    type Target = RawValue;
    fn deref(&self) -> &RawValue {
        &self.0
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for RawJson {}

/// An event's `data` string held as the JSON string literal that goes on
/// the wire, always in [`push_json_str`]'s form: a frame copies it as-is, so
/// an event published to many channels is escaped once, not once per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    literal: String,
}

/// `data` that is not a JSON string, or one that does not decode (a lone
/// surrogate escape); the message is serde_json's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidData(pub String);

impl EventData {
    /// The data `text`, escaped once.
    pub fn from_text(text: &str) -> Self {
        Self {
            literal: json_str(text),
        }
    }

    /// A JSON string literal as received (validated JSON): kept as it is when
    /// it is already in [`push_json_str`]'s form (the common case), decoded
    /// and re-escaped once otherwise (`\/`, `\u00e9`, `\b`…), so the frame's
    /// bytes are the same either way.
    pub fn from_literal(raw: &RawValue) -> Result<Self, InvalidData> {
        let lit = raw.get();
        if !lit.starts_with('"') {
            return Err(InvalidData("data must be a JSON string".into()));
        }
        if is_canonical_literal(lit.as_bytes()) {
            return Ok(Self {
                literal: lit.to_owned(),
            });
        }
        let text: String = serde_json::from_str(lit).map_err(|e| InvalidData(e.to_string()))?;
        Ok(Self::from_text(&text))
    }

    /// The JSON string literal, quotes included.
    pub fn literal(&self) -> &str {
        &self.literal
    }

    /// The data text (borrowed when nothing in it is escaped).
    pub fn text(&self) -> Cow<'_, str> {
        let inner = &self.literal[1..self.literal.len() - 1];
        if !inner.contains('\\') {
            return Cow::Borrowed(inner);
        }
        serde_json::from_str::<String>(&self.literal)
            .map(Cow::Owned)
            .unwrap_or(Cow::Borrowed(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_kept_or_canonicalised() {
        for (token, kept) in [
            (r#""plain {\"a\":1}""#, true),
            (r#""héllo ✓""#, true),
            (r#""a\nb\tc\r\\ \"""#, true),
            (r#""\u0001\u001f""#, true),
            (r#""\u001F""#, false),
            (r#""a\/b""#, false),
            (r#""caf\u00e9""#, false),
            (r#""\ud83d\ude00""#, false),
            (r#""\b\f""#, false),
            (r#""\u000a""#, false),
            (r#""""#, true),
        ] {
            let raw = RawValue::from_string(token.to_owned()).unwrap();
            let text: String = serde_json::from_str(token).unwrap();
            let d = EventData::from_literal(&raw).unwrap();
            assert_eq!(d, EventData::from_text(&text), "{token}");
            assert_eq!(d.literal() == token, kept, "{token}");
            assert_eq!(d.text(), text);
        }
        let raw = RawValue::from_string("{}".into()).unwrap();
        assert!(EventData::from_literal(&raw).is_err());
        // A lone surrogate is valid JSON syntax but no string: refused with
        // serde_json's message, as the API always did.
        let raw = RawValue::from_string(r#""\ud800""#.into()).unwrap();
        let err = serde_json::from_str::<String>(raw.get()).unwrap_err();
        assert_eq!(
            EventData::from_literal(&raw),
            Err(InvalidData(err.to_string()))
        );
    }

    #[test]
    fn raw_json_reads_both_encodings() {
        let s = RawJson::from_string(r#""{\"a\":1}""#.into()).unwrap();
        assert_eq!(s.text(), r#"{"a":1}"#);
        let o = RawJson::from_string(r#"{"a":1}"#.into()).unwrap();
        assert_eq!(o.text(), r#"{"a":1}"#);
        assert_ne!(s, o);
        assert_eq!(RawJson::string("x\"").get(), r#""x\"""#);
    }
}
