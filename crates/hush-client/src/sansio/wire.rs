//! The core's side of hush-protocol's codec (`msgs`): the frames the client
//! writes, and reading what the server's typed messages carry the way
//! pusher-js does.

use hush_protocol::msgs::{
    ClientMessage, HushError, RawJson, ResponseFrame, SubscribeData, SubscriptionErrorType,
};
use hush_protocol::wire::RawFrame;
use serde_json::{Value, json};

use crate::error::Error;
use crate::event::decode_text;
use crate::request::DirectoryError;

/// `pusher:ping` as pusher-js sends it.
pub(super) fn ping() -> String {
    ClientMessage::Ping.encode()
}

/// `pusher:pong` as pusher-js sends it.
pub(super) fn pong() -> String {
    ClientMessage::Pong.encode()
}

/// `pusher:subscribe` (`auth` is empty for public channels, as pusher-js sends it).
pub(super) fn subscribe(channel: &str, auth: &str, channel_data: Option<&str>) -> String {
    ClientMessage::Subscribe(SubscribeData {
        channel: channel.to_owned(),
        auth: Some(auth.to_owned()),
        channel_data: channel_data.map(str::to_owned),
    })
    .encode()
}

/// `pusher:unsubscribe`.
pub(super) fn unsubscribe(channel: &str) -> String {
    ClientMessage::Unsubscribe {
        channel: channel.to_owned(),
    }
    .encode()
}

/// `pusher:signin`.
pub(super) fn signin(auth: &str, user_data: &str) -> String {
    ClientMessage::Signin {
        auth: auth.to_owned(),
        user_data: user_data.to_owned(),
    }
    .encode()
}

/// A client event; `data_json` must be JSON.
pub(super) fn client_event(event: &str, channel: &str, data_json: &str) -> Result<String, Error> {
    let data =
        RawJson::from_string(data_json.to_owned()).map_err(|e| Error::Data(e.to_string()))?;
    Ok(ClientMessage::ClientEvent {
        event: event.to_owned(),
        channel: Some(channel.to_owned()),
        data: Some(data),
    }
    .encode())
}

/// `data` as pusher-js reads it: a string holding JSON becomes that JSON,
/// any other string stays a string, an object stays itself; `null` when absent.
pub(super) fn data_value(data: Option<&RawJson>) -> Value {
    data.map_or(Value::Null, |d| decode_text(&d.text()))
}

/// `data` as text: a string's content, else the JSON text; empty when absent.
pub(super) fn data_text(data: Option<&RawJson>) -> String {
    data.map(|d| d.text().into_owned()).unwrap_or_default()
}

/// The `data` of `pusher:subscription_error`, as the server sends it.
pub(super) fn subscription_error_data(kind: SubscriptionErrorType, error: &str) -> Value {
    json!({"type": kind.name(), "error": error, "status": kind.status()})
}

/// A `pusher:subscription_error` the codec refused (another server's error
/// `type`): its channel and `data`, so the application still hears of it.
pub(super) fn lenient_subscription_error(text: &str) -> Option<(Option<String>, Value)> {
    let f: RawFrame = serde_json::from_str(text).ok()?;
    (f.event == hush_protocol::msgs::names::SUBSCRIPTION_ERROR)
        .then(|| (f.channel, data_value(f.data.as_ref())))
}

/// A `hush:response`'s request id and outcome.
pub(super) fn response(frame: ResponseFrame) -> (String, Result<Value, DirectoryError>) {
    let result = match frame.result {
        Ok(raw) => serde_json::from_str(raw.get())
            .map_err(|e| DirectoryError::BadResponse(format!("result: {e}"))),
        Err(HushError { code, message }) => Err(DirectoryError::Server { code, message }),
    };
    (frame.id, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_pusher_js() {
        assert_eq!(ping(), r#"{"event":"pusher:ping","data":{}}"#);
        assert_eq!(pong(), r#"{"event":"pusher:pong","data":{}}"#);
        assert_eq!(
            subscribe("news", "", None),
            r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"news"}}"#
        );
        let v: Value =
            serde_json::from_str(&subscribe("presence-a", "k:s", Some("{\"user_id\":\"1\"}")))
                .unwrap();
        assert_eq!(v["data"]["channel_data"], "{\"user_id\":\"1\"}");
        let v: Value = serde_json::from_str(&signin("k:s", "{\"id\":\"1\"}")).unwrap();
        assert_eq!(v["data"]["user_data"], "{\"id\":\"1\"}");
        assert_eq!(
            client_event("client-x", "private-a", r#"{"a":1}"#).unwrap(),
            r#"{"event":"client-x","channel":"private-a","data":{"a":1}}"#
        );
        assert!(client_event("client-x", "private-a", "{").is_err());
        let v: Value = serde_json::from_str(&unsubscribe("a")).unwrap();
        assert_eq!(v["data"]["channel"], "a");
    }

    #[test]
    fn reads_both_data_encodings() {
        let string = RawJson::string(r#"{"a":1}"#);
        let object = RawJson::from_string(r#"{"a":1}"#.into()).unwrap();
        assert_eq!(data_value(Some(&string)), json!({"a":1}));
        assert_eq!(data_value(Some(&object)), json!({"a":1}));
        assert_eq!(data_text(Some(&string)), r#"{"a":1}"#);
        assert_eq!(data_value(Some(&RawJson::string("plain"))), json!("plain"));
        assert_eq!(data_value(None), Value::Null);
        assert_eq!(data_text(None), "");
    }

    #[test]
    fn unknown_subscription_errors_are_still_read() {
        let (ch, d) = lenient_subscription_error(
            r#"{"event":"pusher:subscription_error","channel":"c","data":{"type":"Other","status":500}}"#,
        )
        .unwrap();
        assert_eq!(ch.as_deref(), Some("c"));
        assert_eq!(d["status"], 500);
        assert!(lenient_subscription_error(r#"{"event":"x","data":{}}"#).is_none());
    }
}
