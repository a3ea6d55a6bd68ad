//! A client's WebSocket text frame, as the gateway hands it to the protocol
//! parser (`hush_protocol::wire::parse_client_frame`), and the server's frame
//! encoders fed the same hostile strings.
//!
//! Oracles: parsing never panics; what it accepts is a JSON object and agrees
//! with it (`event` is the frame's string `event`; a `pusher:` event's data
//! is an object, or a string holding one, with the fields the parser
//! returned; a `hush:request` id is 1-64 printable ASCII, and its typed
//! parameters write back to what was read); every encoder produces JSON that decodes back to exactly
//! the strings it was given.
#![no_main]

use std::collections::HashMap;

use hush_protocol::wire::{self, ClientMessage, MAX_REQUEST_ID_LEN};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use serde_json::value::RawValue;

fn decode_str(json: &str) -> String {
    serde_json::from_str::<String>(json)
        .unwrap_or_else(|e| panic!("push_json_str wrote invalid JSON ({e}): {json}"))
}

fn object(text: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        other => panic!("not a JSON object ({other:?}): {text}"),
    }
}

/// A JSON object read member by member as raw JSON: `Value` cannot hold the
/// lone-surrogate escapes (`"\ud800"`) JSON allows and serde_json passes in
/// values it only captures or skips.
type RawObject = HashMap<String, Box<RawValue>>;

fn raw_object(text: &str) -> RawObject {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON object ({e}): {text}"))
}

fn str_of(obj: &RawObject, name: &str) -> Option<String> {
    obj.get(name)
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
}

/// The `data` of a `pusher:` event as the client meant it: an object, or a
/// string holding one.
fn data_object(frame: &RawObject) -> RawObject {
    let data = frame.get("data").expect("pusher: events have data").get();
    match serde_json::from_str::<String>(data) {
        Ok(s) => raw_object(&s),
        Err(_) => raw_object(data),
    }
}

fn check_parse(text: &str) {
    let Ok(msg) = wire::parse_client_frame(text) else {
        return;
    };
    // Accepted: the frame is a JSON object with a string event, and the
    // variant is the one that event names.
    let frame = raw_object(text);
    let event = str_of(&frame, "event")
        .unwrap_or_else(|| panic!("accepted a frame without a string event: {text}"));
    let event = event.as_str();
    match &msg {
        ClientMessage::Ping => assert_eq!(event, "pusher:ping"),
        ClientMessage::Pong => assert_eq!(event, "pusher:pong"),
        ClientMessage::Subscribe(d) => {
            assert_eq!(event, "pusher:subscribe");
            assert_eq!(
                str_of(&data_object(&frame), "channel").as_ref(),
                Some(&d.channel)
            );
        }
        ClientMessage::Unsubscribe { channel } => {
            assert_eq!(event, "pusher:unsubscribe");
            assert_eq!(
                str_of(&data_object(&frame), "channel").as_ref(),
                Some(channel)
            );
        }
        ClientMessage::Signin { auth, .. } => {
            assert_eq!(event, "pusher:signin");
            assert_eq!(str_of(&data_object(&frame), "auth").as_ref(), Some(auth));
        }
        ClientMessage::HushRequest(r) => {
            assert_eq!(event, "hush:request");
            assert_eq!(str_of(&data_object(&frame), "id").as_ref(), Some(&r.id));
            assert!(!r.id.is_empty() && r.id.len() <= MAX_REQUEST_ID_LEN);
            assert!(r.id.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
            // The typed parameters (directory and mailbox methods): read
            // without panicking, and what is read writes back to itself.
            if let Ok(typed) = hush_protocol::msgs::HushRequest::from_frame(r) {
                let again = hush_protocol::msgs::HushRequest::from_params(
                    typed.method(),
                    &object(typed.params().get()),
                )
                .expect("typed parameters read back");
                assert_eq!(again, typed);
            }
        }
        ClientMessage::ClientEvent {
            event: e, channel, ..
        } => {
            assert_eq!(e, event);
            assert!(e.starts_with("client-"));
            assert_eq!(channel.clone(), str_of(&frame, "channel"));
        }
        ClientMessage::UnknownPusher(e) => {
            assert_eq!(e, event);
            assert!(e.starts_with("pusher:") || e.starts_with("pusher_internal:"));
        }
        ClientMessage::NotAllowed(e) => {
            assert_eq!(e, event);
            assert!(!e.starts_with("client-") && !e.starts_with("pusher:"));
        }
        other => panic!("a message this check does not know: {other:?}"),
    }
}

fn check_encoders(text: &str) {
    // Three hostile strings out of one input.
    let mut parts = text.splitn(3, '\u{1}');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("");
    let c = parts.next().unwrap_or("");

    let mut s = String::new();
    wire::push_json_str(&mut s, a);
    assert_eq!(decode_str(&s), a);

    let o = object(&wire::channel_event(a, b, c));
    assert_eq!(o["event"], a);
    assert_eq!(o["channel"], b);
    assert_eq!(o["data"], c);

    let o = object(&wire::error(Some(4009), a));
    assert_eq!(o["data"]["message"], a);

    let o = object(&wire::subscription_error(
        a,
        wire::SubscriptionErrorType::AuthError,
        b,
    ));
    assert_eq!(o["channel"], a);

    let o = object(&wire::member_removed(a, b));
    assert_eq!(o["channel"], a);
    let inner = object(o["data"].as_str().expect("member_removed data is a string"));
    assert_eq!(inner["user_id"], b);

    let o = object(&wire::hush_response_err(a, b, c));
    let inner = object(o["data"].as_str().expect("hush:response data is a string"));
    assert_eq!(inner["id"], a);

    let o = object(&wire::signin_success(a));
    assert_eq!(o["data"]["user_data"], a);

    let o = object(&wire::watchlist_events(&[a, b], &[c]));
    assert_eq!(o["event"], "pusher_internal:watchlist_events");

    // Relayed client event: data is forwarded as raw JSON when it is JSON.
    if let Ok(raw) = serde_json::from_str::<Box<RawValue>>(c) {
        let o = raw_object(&wire::client_event(a, b, Some(&raw), Some(a)));
        assert_eq!(str_of(&o, "event").as_deref(), Some(a));
        assert_eq!(str_of(&o, "user_id").as_deref(), Some(a));
        // Relayed byte for byte.
        assert_eq!(o["data"].get(), raw.get());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_parse(text);
    check_encoders(text);
});
