//! Frames on the WebSocket: parsing what clients send (§3) and encoding what
//! the server sends (§4), with the exact `data` encodings Pusher documents.

use serde::Deserialize;
use serde_json::value::RawValue;

/// A frame received from a client, before its event is interpreted.
#[derive(Debug, Deserialize)]
pub struct RawFrame {
    /// The event name.
    pub event: String,
    /// Channel, for channel-scoped events.
    #[serde(default)]
    pub channel: Option<String>,
    /// `data`, exactly as received (object, string, `null` or anything);
    /// `None` only when the frame has no `data` member.
    #[serde(default, deserialize_with = "raw_keep_null")]
    pub data: Option<Box<RawValue>>,
}

/// Keeps an explicit `null` as raw JSON instead of turning it into `None`.
fn raw_keep_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// What a client asked for.
#[derive(Debug)]
pub enum ClientMessage {
    /// `pusher:ping`.
    Ping,
    /// `pusher:pong`.
    Pong,
    /// `pusher:subscribe`.
    Subscribe(SubscribeData),
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel name as sent (validated by the caller).
        channel: String,
    },
    /// `pusher:signin`.
    Signin {
        /// `key:signature`.
        auth: String,
        /// The user data string, exactly as sent.
        user_data: String,
    },
    /// A `client-*` event.
    ClientEvent {
        /// Event name as sent.
        event: String,
        /// Channel as sent.
        channel: Option<String>,
        /// Data exactly as sent.
        data: Option<Box<RawValue>>,
    },
    /// `hush:request` (docs/PROTOCOL-EXT.md §1).
    HushRequest(HushRequest),
    /// Any other `pusher:` / `pusher_internal:` event: ignored.
    UnknownPusher(String),
    /// An event that is neither `pusher:` nor `client-`.
    NotAllowed(String),
}

/// `pusher:subscribe` data.
#[derive(Debug, Deserialize)]
pub struct SubscribeData {
    /// Channel name as sent.
    pub channel: String,
    /// `key:signature`, or empty/absent for public channels.
    #[serde(default)]
    pub auth: Option<String>,
    /// Presence `channel_data`, the raw JSON string.
    #[serde(default)]
    pub channel_data: Option<String>,
}

/// A `hush:request`: a method call answered by one `hush:response`.
#[derive(Debug, Deserialize)]
pub struct HushRequest {
    /// Chosen by the client (1–64 printable ASCII characters), echoed back.
    pub id: String,
    /// The method name.
    pub method: String,
    /// The parameters (an object), if any.
    #[serde(default)]
    pub params: Option<Box<RawValue>>,
}

/// Longest `hush:request` id.
pub const MAX_REQUEST_ID_LEN: usize = 64;

#[derive(Deserialize)]
struct UnsubscribeData {
    channel: String,
}

#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

/// Why a frame was refused (answered with `pusher:error`, code `null`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, or no string `event`.
    #[error("Invalid message format: {0}")]
    Malformed(String),
    /// `data` of a `pusher:` event has the wrong shape.
    #[error("Invalid data for {event}: {reason}")]
    BadData {
        /// Which event.
        event: String,
        /// Why.
        reason: String,
    },
}

/// True if `json` is a JSON object (possibly after JSON whitespace): check it
/// before parsing a derived struct, which serde would also read from a JSON
/// array, field by field (`["pusher:ping"]` as `{"event":"pusher:ping"}`).
pub fn is_json_object(json: &[u8]) -> bool {
    json.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

/// Parses the `data` of a `pusher:*` event: an object, or a string that holds
/// a JSON object (parsed once).
fn pusher_data<'a, T: Deserialize<'a>>(
    event: &str,
    data: &'a Option<Box<RawValue>>,
    buf: &'a mut String,
) -> Result<T, FrameError> {
    let bad = |reason: String| FrameError::BadData {
        event: event.to_owned(),
        reason,
    };
    let raw = data.as_deref().ok_or_else(|| bad("missing data".into()))?;
    let text = raw.get();
    let not_object = || bad("data must be a JSON object".into());
    if text.starts_with('"') {
        *buf = serde_json::from_str::<String>(text).map_err(|e| bad(e.to_string()))?;
        if !is_json_object(buf.as_bytes()) {
            return Err(not_object());
        }
        serde_json::from_str(buf).map_err(|e| bad(e.to_string()))
    } else {
        if !is_json_object(text.as_bytes()) {
            return Err(not_object());
        }
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))
    }
}

/// Parses one text frame.
pub fn parse_client_frame(text: &str) -> Result<ClientMessage, FrameError> {
    if !is_json_object(text.as_bytes()) {
        return Err(FrameError::Malformed("expected a JSON object".into()));
    }
    let frame: RawFrame =
        serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let mut buf = String::new();
    Ok(match frame.event.as_str() {
        "pusher:ping" => ClientMessage::Ping,
        "pusher:pong" => ClientMessage::Pong,
        "pusher:subscribe" => {
            ClientMessage::Subscribe(pusher_data(&frame.event, &frame.data, &mut buf)?)
        }
        "pusher:unsubscribe" => {
            let d: UnsubscribeData = pusher_data(&frame.event, &frame.data, &mut buf)?;
            ClientMessage::Unsubscribe { channel: d.channel }
        }
        "pusher:signin" => {
            let d: SigninData = pusher_data(&frame.event, &frame.data, &mut buf)?;
            ClientMessage::Signin {
                auth: d.auth,
                user_data: d.user_data,
            }
        }
        "hush:request" => {
            let r: HushRequest = pusher_data(&frame.event, &frame.data, &mut buf)?;
            let id_ok = !r.id.is_empty()
                && r.id.len() <= MAX_REQUEST_ID_LEN
                && r.id.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if !id_ok {
                return Err(FrameError::BadData {
                    event: frame.event,
                    reason: format!("id must be 1-{MAX_REQUEST_ID_LEN} printable ASCII characters"),
                });
            }
            ClientMessage::HushRequest(r)
        }
        e if e.starts_with("client-") => ClientMessage::ClientEvent {
            event: frame.event,
            channel: frame.channel,
            data: frame.data,
        },
        e if e.starts_with("pusher:") || e.starts_with("pusher_internal:") => {
            ClientMessage::UnknownPusher(frame.event)
        }
        _ => ClientMessage::NotAllowed(frame.event),
    })
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
                const HEX: &[u8; 16] = b"0123456789abcdef";
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

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    push_json_str(&mut o, s);
    o
}

/// `{"event":E,"channel":C,"data":"<data as a JSON string>"}` — a channel event
/// whose `data` string is forwarded byte-for-byte.
pub fn channel_event(event: &str, channel: &str, data: &str) -> String {
    let mut o = String::with_capacity(event.len() + channel.len() + data.len() + 40);
    o.push_str("{\"event\":");
    push_json_str(&mut o, event);
    o.push_str(",\"channel\":");
    push_json_str(&mut o, channel);
    o.push_str(",\"data\":");
    push_json_str(&mut o, data);
    o.push('}');
    o
}

/// A relayed client event: `data` kept as received; `user_id` on presence.
pub fn client_event(
    event: &str,
    channel: &str,
    data: Option<&RawValue>,
    user_id: Option<&str>,
) -> String {
    let mut o = String::with_capacity(64 + data.map_or(0, |d| d.get().len()));
    o.push_str("{\"event\":");
    push_json_str(&mut o, event);
    o.push_str(",\"channel\":");
    push_json_str(&mut o, channel);
    if let Some(d) = data {
        o.push_str(",\"data\":");
        o.push_str(d.get());
    }
    if let Some(u) = user_id {
        o.push_str(",\"user_id\":");
        push_json_str(&mut o, u);
    }
    o.push('}');
    o
}

/// `pusher:connection_established` (data is a JSON string).
pub fn connection_established(socket_id: &str, activity_timeout: u64) -> String {
    let inner = format!(
        "{{\"socket_id\":{},\"activity_timeout\":{activity_timeout}}}",
        json_str(socket_id)
    );
    format!(
        "{{\"event\":\"pusher:connection_established\",\"data\":{}}}",
        json_str(&inner)
    )
}

/// `pusher:error` with an object `data` (`code` may be `null`).
pub fn error(code: Option<u16>, message: &str) -> String {
    let code = code.map_or_else(|| "null".to_owned(), |c| c.to_string());
    format!(
        "{{\"event\":\"pusher:error\",\"data\":{{\"code\":{code},\"message\":{}}}}}",
        json_str(message)
    )
}

/// `hush:response` with a result (`result_json` is JSON text). Like Pusher's
/// own server events, `data` is a JSON-encoded string.
pub fn hush_response_ok(id: &str, result_json: &str) -> String {
    let mut inner = String::with_capacity(id.len() + result_json.len() + 24);
    inner.push_str("{\"id\":");
    push_json_str(&mut inner, id);
    inner.push_str(",\"result\":");
    inner.push_str(result_json);
    inner.push('}');
    hush_response(&inner)
}

/// `hush:response` with an error code and message.
pub fn hush_response_err(id: &str, code: &str, message: &str) -> String {
    let mut inner = String::with_capacity(id.len() + message.len() + 48);
    inner.push_str("{\"id\":");
    push_json_str(&mut inner, id);
    inner.push_str(",\"error\":{\"code\":");
    push_json_str(&mut inner, code);
    inner.push_str(",\"message\":");
    push_json_str(&mut inner, message);
    inner.push_str("}}");
    hush_response(&inner)
}

fn hush_response(inner: &str) -> String {
    let mut o = String::with_capacity(inner.len() + 48);
    o.push_str("{\"event\":\"hush:response\",\"data\":");
    push_json_str(&mut o, inner);
    o.push('}');
    o
}

/// `pusher:pong`.
pub const PONG: &str = r#"{"event":"pusher:pong","data":"{}"}"#;
/// `pusher:ping` from the server.
pub const PING: &str = r#"{"event":"pusher:ping","data":"{}"}"#;

/// `pusher_internal:subscription_succeeded` with a JSON `data` string.
pub fn subscription_succeeded(channel: &str, data_json: &str) -> String {
    format!(
        "{{\"event\":\"pusher_internal:subscription_succeeded\",\"channel\":{},\"data\":{}}}",
        json_str(channel),
        json_str(data_json)
    )
}

/// The presence `data` of `subscription_succeeded`: `{"presence":{ids,hash,count}}`.
pub fn presence_data<'a>(members: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut ids = String::from("[");
    let mut hash = String::from("{");
    let mut count = 0usize;
    for (id, info) in members {
        if count > 0 {
            ids.push(',');
            hash.push(',');
        }
        push_json_str(&mut ids, id);
        push_json_str(&mut hash, id);
        hash.push(':');
        hash.push_str(info);
        count += 1;
    }
    ids.push(']');
    hash.push('}');
    format!("{{\"presence\":{{\"ids\":{ids},\"hash\":{hash},\"count\":{count}}}}}")
}

/// Kinds of subscription refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionErrorType {
    /// Bad or missing signature, or not allowed (status 401).
    AuthError,
    /// Bad channel name (status 400).
    InvalidChannel,
    /// Member limit or size limit (status 4100).
    LimitReached,
}

impl SubscriptionErrorType {
    fn parts(self) -> (&'static str, u16) {
        match self {
            Self::AuthError => ("AuthError", 401),
            Self::InvalidChannel => ("InvalidChannel", 400),
            Self::LimitReached => ("LimitReached", 4100),
        }
    }
}

/// `pusher:subscription_error` (object `data`).
pub fn subscription_error(channel: &str, kind: SubscriptionErrorType, error: &str) -> String {
    let (t, status) = kind.parts();
    format!(
        "{{\"event\":\"pusher:subscription_error\",\"channel\":{},\"data\":{{\"type\":\"{t}\",\"error\":{},\"status\":{status}}}}}",
        json_str(channel),
        json_str(error)
    )
}

/// `pusher_internal:member_added`.
pub fn member_added(channel: &str, user_id: &str, info_json: &str) -> String {
    let inner = format!(
        "{{\"user_id\":{},\"user_info\":{info_json}}}",
        json_str(user_id)
    );
    format!(
        "{{\"event\":\"pusher_internal:member_added\",\"channel\":{},\"data\":{}}}",
        json_str(channel),
        json_str(&inner)
    )
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id: &str) -> String {
    let inner = format!("{{\"user_id\":{}}}", json_str(user_id));
    format!(
        "{{\"event\":\"pusher_internal:member_removed\",\"channel\":{},\"data\":{}}}",
        json_str(channel),
        json_str(&inner)
    )
}

/// `pusher_internal:subscription_count`.
pub fn subscription_count(channel: &str, count: usize) -> String {
    let inner = format!("{{\"subscription_count\":{count}}}");
    format!(
        "{{\"event\":\"pusher_internal:subscription_count\",\"channel\":{},\"data\":{}}}",
        json_str(channel),
        json_str(&inner)
    )
}

/// `pusher:signin_success` echoing the exact `user_data` string.
pub fn signin_success(user_data: &str) -> String {
    format!(
        "{{\"event\":\"pusher:signin_success\",\"data\":{{\"user_data\":{}}}}}",
        json_str(user_data)
    )
}

/// `pusher:cache_miss`.
pub fn cache_miss(channel: &str) -> String {
    format!(
        "{{\"event\":\"pusher:cache_miss\",\"channel\":{},\"data\":\"{{}}\"}}",
        json_str(channel)
    )
}

/// `pusher_internal:watchlist_events` with `online` / `offline` entries (empty ones skipped).
pub fn watchlist_events(online: &[&str], offline: &[&str]) -> String {
    let mut events = Vec::new();
    for (name, ids) in [("online", online), ("offline", offline)] {
        if !ids.is_empty() {
            let list: Vec<String> = ids.iter().map(|i| json_str(i)).collect();
            events.push(format!(
                "{{\"name\":\"{name}\",\"user_ids\":[{}]}}",
                list.join(",")
            ));
        }
    }
    format!(
        "{{\"event\":\"pusher_internal:watchlist_events\",\"data\":{{\"events\":[{}]}}}}",
        events.join(",")
    )
}

#[cfg(test)]
mod hush_request_tests {
    use super::*;

    #[test]
    fn requests_and_responses() {
        let m = parse_client_frame(
            r#"{"event":"hush:request","data":{"id":"r1","method":"log.head","params":{"a":1}}}"#,
        )
        .unwrap();
        let ClientMessage::HushRequest(r) = m else {
            panic!("{m:?}")
        };
        assert_eq!((r.id.as_str(), r.method.as_str()), ("r1", "log.head"));
        assert_eq!(r.params.unwrap().get(), r#"{"a":1}"#);
        // String data (as pusher-js would send it) works too; params optional.
        let m = parse_client_frame(
            r#"{"event":"hush:request","data":"{\"id\":\"x\",\"method\":\"m\"}"}"#,
        )
        .unwrap();
        assert!(matches!(
            m,
            ClientMessage::HushRequest(HushRequest { params: None, .. })
        ));
        for bad in [
            r#"{"event":"hush:request","data":{"id":"","method":"m"}}"#,
            r#"{"event":"hush:request","data":{"id":"a\u0000","method":"m"}}"#,
            r#"{"event":"hush:request","data":{"method":"m"}}"#,
            r#"{"event":"hush:request"}"#,
        ] {
            assert!(parse_client_frame(bad).is_err(), "{bad}");
        }
        let long = format!(
            r#"{{"event":"hush:request","data":{{"id":"{}","method":"m"}}}}"#,
            "a".repeat(65)
        );
        assert!(parse_client_frame(&long).is_err());

        let ok: serde_json::Value =
            serde_json::from_str(&hush_response_ok("r\"1", r#"{"n":1}"#)).unwrap();
        assert_eq!(ok["event"], "hush:response");
        let inner: serde_json::Value = serde_json::from_str(ok["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner, serde_json::json!({"id":"r\"1","result":{"n":1}}));
        let err: serde_json::Value =
            serde_json::from_str(&hush_response_err("r", "bad_request", "no \"x\"")).unwrap();
        let inner: serde_json::Value = serde_json::from_str(err["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            inner,
            serde_json::json!({"id":"r","error":{"code":"bad_request","message":"no \"x\""}})
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn v(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn frames_and_their_data_are_objects() {
        // Found by fuzzing (fuzz/fuzz_targets/client_frame.rs): serde's
        // derived structs also read JSON arrays, so `["pusher:ping"]` was a
        // ping and `["private-x","key:sig"]` a subscription's data.
        for text in [
            r#"["pusher:ping"]"#,
            r#"["client-x","private-x",{}]"#,
            r#" ["pusher:subscribe",{"channel":"x"}]"#,
        ] {
            assert!(
                matches!(parse_client_frame(text), Err(FrameError::Malformed(_))),
                "{text}"
            );
        }
        for text in [
            r#"{"event":"pusher:subscribe","data":["my-channel"]}"#,
            r#"{"event":"pusher:subscribe","data":"[\"my-channel\"]"}"#,
            r#"{"event":"pusher:unsubscribe","data":["my-channel"]}"#,
            r#"{"event":"pusher:signin","data":["key:sig","{}"]}"#,
            r#"{"event":"hush:request","data":["1","log.head"]}"#,
        ] {
            assert!(
                matches!(parse_client_frame(text), Err(FrameError::BadData { .. })),
                "{text}"
            );
        }
        // Objects, with JSON whitespace around them, still parse.
        assert!(matches!(
            parse_client_frame(
                " {\"event\":\"pusher:subscribe\",\"data\":\" {\\\"channel\\\":\\\"a\\\"}\"}"
            ),
            Ok(ClientMessage::Subscribe(_))
        ));
    }

    #[test]
    fn parses_client_frames() {
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:ping","data":{}}"#),
            Ok(ClientMessage::Ping)
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:ping"}"#),
            Ok(ClientMessage::Ping)
        ));
        match parse_client_frame(
            r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"news"}}"#,
        )
        .unwrap()
        {
            ClientMessage::Subscribe(d) => assert_eq!(d.channel, "news"),
            m => panic!("{m:?}"),
        }
        // data as a JSON-encoded string is accepted too.
        match parse_client_frame(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"news\"}"}"#)
            .unwrap()
        {
            ClientMessage::Subscribe(d) => assert_eq!(d.channel, "news"),
            m => panic!("{m:?}"),
        }
        match parse_client_frame(
            r#"{"event":"client-x","channel":"private-a","data":{"a":1},"user_id":"forged"}"#,
        )
        .unwrap()
        {
            ClientMessage::ClientEvent { data, .. } => {
                assert_eq!(data.unwrap().get(), r#"{"a":1}"#)
            }
            m => panic!("{m:?}"),
        }
        assert!(matches!(
            parse_client_frame("nope"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"data":{}}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":1}"#),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(FrameError::BadData { .. })
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:subscribe"}"#),
            Err(FrameError::BadData { .. })
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"pusher:whatever"}"#),
            Ok(ClientMessage::UnknownPusher(_))
        ));
        assert!(matches!(
            parse_client_frame(r#"{"event":"hello"}"#),
            Ok(ClientMessage::NotAllowed(_))
        ));
    }

    #[test]
    fn encodes_with_documented_encodings() {
        let f = v(&connection_established("1.2", 120));
        let inner: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner["socket_id"], "1.2");
        assert_eq!(inner["activity_timeout"], 120);
        assert_eq!(v(&error(None, "x"))["data"]["code"], Value::Null);
        assert_eq!(v(&error(Some(4001), "x"))["data"]["code"], 4001);
        let f = v(&channel_event("e\"", "c", "{\"a\":\"\\n\"}"));
        assert_eq!(f["data"].as_str().unwrap(), "{\"a\":\"\\n\"}");
        assert_eq!(f["event"], "e\"");
        let d = presence_data([("10", r#"{"name":"x"}"#), ("11", "{}")].into_iter());
        assert_eq!(
            v(&d),
            v(r#"{"presence":{"ids":["10","11"],"hash":{"10":{"name":"x"},"11":{}},"count":2}}"#)
        );
        let f = v(&subscription_error(
            "private-a",
            SubscriptionErrorType::AuthError,
            "bad",
        ));
        assert_eq!(f["data"]["status"], 401);
        assert_eq!(f["channel"], "private-a");
        let raw = RawValue::from_string("\"s\"".into()).unwrap();
        let f = v(&client_event(
            "client-a",
            "presence-x",
            Some(&raw),
            Some("7"),
        ));
        assert_eq!(f["data"], "s");
        assert_eq!(f["user_id"], "7");
        let f = v(&member_added("presence-x", "7", r#"{"a":1}"#));
        let inner: Value = serde_json::from_str(f["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner["user_info"]["a"], 1);
        let f = v(&signin_success(r#"{"id":"1"}"#));
        assert_eq!(f["data"]["user_data"], r#"{"id":"1"}"#);
        let f = v(&watchlist_events(&["1"], &["2", "3"]));
        assert_eq!(f["data"]["events"][1]["user_ids"][1], "3");
        v(&cache_miss("cache-x"));
        v(&subscription_count("x", 3));
        v(PING);
        v(PONG);
        // Control characters are escaped; everything round-trips.
        for s in [
            "\u{1}\u{1f}",
            "a\"b\\c\nd\re\tf",
            "héllo ✓ \u{7f}",
            "",
            "\"\"",
        ] {
            let mut o = String::new();
            push_json_str(&mut o, s);
            assert_eq!(serde_json::from_str::<String>(&o).unwrap(), s);
            assert_eq!(o, serde_json::to_string(s).unwrap());
        }
    }
}
