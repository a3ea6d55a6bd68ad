//! The server's encoders (PROTOCOL.md §4): one function per frame, each a
//! single string build with the exact `data` encoding Pusher documents. These
//! are the hot paths ([`channel_event`] runs once per published event and
//! channel); [`super::ServerMessage::encode`] is built on them.

use serde_json::value::RawValue;

use super::json::{EventData, json_str, push_json_str};

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

/// A channel event whose `data` literal was escaped once ([`EventData`]):
/// the same bytes as [`channel_event`] on its text, with the literal copied.
pub fn channel_event_data(event: &str, channel: &str, data: &EventData) -> String {
    let lit = data.literal();
    let mut o = String::with_capacity(event.len() + channel.len() + lit.len() + 40);
    o.push_str("{\"event\":");
    push_json_str(&mut o, event);
    o.push_str(",\"channel\":");
    push_json_str(&mut o, channel);
    o.push_str(",\"data\":");
    o.push_str(lit);
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

/// `hush:mailbox`: one queued message pushed to its device (`data` is a
/// JSON-encoded string, as for `hush:response`).
pub fn hush_mailbox(item: &super::hush::MailboxItem) -> String {
    let mut inner = String::with_capacity(item.envelope.len() + 64);
    inner.push_str("{\"envelope\":");
    push_json_str(&mut inner, &item.envelope);
    inner.push_str(",\"id\":");
    inner.push_str(&item.id.to_string());
    inner.push_str(",\"sent_ms\":");
    inner.push_str(&item.sent_ms.to_string());
    inner.push('}');
    let mut o = String::with_capacity(inner.len() + 48);
    o.push_str("{\"event\":\"hush:mailbox\",\"data\":");
    push_json_str(&mut o, &inner);
    o.push('}');
    o
}

/// `hush:response` around its `data` object (JSON text).
pub fn hush_response(inner: &str) -> String {
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

    /// The `type` on the wire.
    pub fn name(self) -> &'static str {
        self.parts().0
    }

    /// The `status` on the wire.
    pub fn status(self) -> u16 {
        self.parts().1
    }

    /// The kind of a wire `type`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::AuthError, Self::InvalidChannel, Self::LimitReached]
            .into_iter()
            .find(|k| k.name() == name)
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
    subscription_count_u64(channel, u64::try_from(count).unwrap_or(u64::MAX))
}

/// `pusher_internal:subscription_count` for a `u64` count.
pub fn subscription_count_u64(channel: &str, count: u64) -> String {
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
mod tests {
    use super::*;

    /// The HTTP API keeps `data` as the literal it received; the frame must
    /// be byte for byte the one built from the decoded text (as before).
    #[test]
    fn channel_event_from_a_literal_is_byte_identical() {
        for token in [
            r#""{\"id\":42}""#,
            r#""caf\u00e9 \u00E9 é ✓""#,
            r#""a\/b \\/ \\\/""#,
            r#""\b\f\n\r\t \u0000\u001f\u007f \u000A""#,
            r#""\ud83d\ude00 😀""#,
            r#""\"quoted\" \\ back""#,
            r#""""#,
        ] {
            let raw = RawValue::from_string(token.to_owned()).unwrap();
            let text: String = serde_json::from_str(token).unwrap();
            let data = EventData::from_literal(&raw).unwrap();
            let new = channel_event_data("ev\"", "private-c", &data);
            assert_eq!(new, channel_event("ev\"", "private-c", &text), "{token}");
            // And pusher-js reads back the same string.
            let v: serde_json::Value = serde_json::from_str(&new).unwrap();
            assert_eq!(v["data"].as_str(), Some(text.as_str()), "{token}");
        }
    }
}
