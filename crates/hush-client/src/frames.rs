//! The client side of the wire (PROTOCOL.md §3, §4): parsing what the server
//! sends, encoding what the client sends. hush-protocol's `wire` module is the
//! server side; the JSON string escaping is shared from it.

use hush_protocol::wire::push_json_str;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A frame from the server.
#[derive(Debug, Deserialize)]
pub(crate) struct ServerFrame {
    pub event: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
    #[serde(default)]
    pub user_id: Option<String>,
}

impl ServerFrame {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// `data` as text: the string's content when it is a JSON string, the raw
    /// JSON otherwise (an object relayed as sent), `""` when absent.
    pub(crate) fn data_text(&self) -> String {
        match self.data.as_deref() {
            None => String::new(),
            Some(raw) => {
                let t = raw.get();
                if t.starts_with('"') {
                    serde_json::from_str::<String>(t).unwrap_or_default()
                } else {
                    t.to_owned()
                }
            }
        }
    }

    /// `data` decoded as JSON, accepting both encodings (object, or a string
    /// holding JSON); `Value::Null` when absent or undecodable.
    pub(crate) fn data_json(&self) -> Value {
        match self.data.as_deref() {
            None => Value::Null,
            Some(raw) => {
                let t = raw.get();
                if t.starts_with('"') {
                    crate::event::decode_text(&self.data_text())
                } else {
                    serde_json::from_str(t).unwrap_or(Value::Null)
                }
            }
        }
    }
}

/// `pusher:subscribe`.
pub(crate) fn subscribe(channel: &str, auth: &str, channel_data: Option<&str>) -> String {
    let mut o = String::from(r#"{"event":"pusher:subscribe","data":{"auth":"#);
    push_json_str(&mut o, auth);
    if let Some(cd) = channel_data {
        o.push_str(r#","channel_data":"#);
        push_json_str(&mut o, cd);
    }
    o.push_str(r#","channel":"#);
    push_json_str(&mut o, channel);
    o.push_str("}}");
    o
}

/// `pusher:unsubscribe`.
pub(crate) fn unsubscribe(channel: &str) -> String {
    let mut o = String::from(r#"{"event":"pusher:unsubscribe","data":{"channel":"#);
    push_json_str(&mut o, channel);
    o.push_str("}}");
    o
}

/// `pusher:signin`.
pub(crate) fn signin(auth: &str, user_data: &str) -> String {
    let mut o = String::from(r#"{"event":"pusher:signin","data":{"auth":"#);
    push_json_str(&mut o, auth);
    o.push_str(r#","user_data":"#);
    push_json_str(&mut o, user_data);
    o.push_str("}}");
    o
}

/// A client event; `data_json` is already JSON.
pub(crate) fn client_event(event: &str, channel: &str, data_json: &str) -> String {
    let mut o = String::from(r#"{"event":"#);
    push_json_str(&mut o, event);
    o.push_str(r#","channel":"#);
    push_json_str(&mut o, channel);
    o.push_str(r#","data":"#);
    o.push_str(data_json);
    o.push('}');
    o
}

/// `pusher:ping` as pusher-js sends it.
pub(crate) const PING: &str = r#"{"event":"pusher:ping","data":{}}"#;
/// `pusher:pong` as pusher-js sends it.
pub(crate) const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_like_pusher_js() {
        let v: Value =
            serde_json::from_str(&subscribe("presence-a", "k:s", Some("{\"user_id\":\"1\"}")))
                .unwrap();
        assert_eq!(v["data"]["channel_data"], "{\"user_id\":\"1\"}");
        assert_eq!(v["data"]["channel"], "presence-a");
        let v: Value = serde_json::from_str(&subscribe("news", "", None)).unwrap();
        assert_eq!(
            v,
            json!({"event":"pusher:subscribe","data":{"auth":"","channel":"news"}})
        );
        let v: Value = serde_json::from_str(&signin("k:s", "{\"id\":\"1\"}")).unwrap();
        assert_eq!(v["data"]["user_data"], "{\"id\":\"1\"}");
        let v: Value =
            serde_json::from_str(&client_event("client-x", "private-a", "{\"a\":1}")).unwrap();
        assert_eq!(v["data"]["a"], 1);
        let v: Value = serde_json::from_str(&unsubscribe("a")).unwrap();
        assert_eq!(v["data"]["channel"], "a");
    }

    #[test]
    fn reads_both_data_encodings() {
        let f = ServerFrame::parse(r#"{"event":"e","channel":"c","data":"{\"a\":1}"}"#).unwrap();
        assert_eq!(f.data_json(), json!({"a":1}));
        assert_eq!(f.data_text(), "{\"a\":1}");
        let f = ServerFrame::parse(r#"{"event":"e","data":{"a":1},"user_id":"9"}"#).unwrap();
        assert_eq!(f.data_json(), json!({"a":1}));
        assert_eq!(f.user_id.as_deref(), Some("9"));
        let f = ServerFrame::parse(r#"{"event":"e"}"#).unwrap();
        assert_eq!(f.data_json(), Value::Null);
        assert!(ServerFrame::parse("[1]").is_none());
    }
}
