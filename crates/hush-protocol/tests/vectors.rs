//! Replays `vectors/frames.json`: every frame decodes to its message and
//! encodes back to its exact wire text; every refused frame is refused.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use hush_protocol::msgs::{
    ClientMessage, ErrorCode, FrameError, HushError, PresenceData, RawJson, RequestFrame,
    ResponseFrame, ServerMessage, SubscribeData, SubscriptionErrorType, WatchlistEvent,
    WatchlistStatus,
};
use serde_json::Value;

const VECTORS: &str = include_str!("../vectors/frames.json");

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

fn opt_s(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .map(|x| x.as_str().unwrap_or_else(|| panic!("{k}")).to_owned())
}

fn opt_raw(v: &Value, k: &str) -> Option<RawJson> {
    v.get(k)
        .map(|x| RawJson::from_string(x.to_string()).unwrap())
}

fn n(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn client(m: &Value) -> ClientMessage {
    match s(m, "type").as_str() {
        "ping" => ClientMessage::Ping,
        "pong" => ClientMessage::Pong,
        "subscribe" => ClientMessage::Subscribe(SubscribeData {
            channel: s(m, "channel"),
            auth: opt_s(m, "auth"),
            channel_data: opt_s(m, "channel_data"),
        }),
        "unsubscribe" => ClientMessage::Unsubscribe {
            channel: s(m, "channel"),
        },
        "signin" => ClientMessage::Signin {
            auth: s(m, "auth"),
            user_data: s(m, "user_data"),
        },
        "client_event" => ClientMessage::ClientEvent {
            event: s(m, "event"),
            channel: opt_s(m, "channel"),
            data: opt_raw(m, "data"),
        },
        "hush_request" => ClientMessage::HushRequest(RequestFrame {
            id: s(m, "id"),
            method: s(m, "method"),
            params: opt_raw(m, "params"),
        }),
        "unknown_pusher" => ClientMessage::UnknownPusher(s(m, "event")),
        "not_allowed" => ClientMessage::NotAllowed(s(m, "event")),
        t => panic!("unknown client message type {t}"),
    }
}

fn server(m: &Value) -> ServerMessage {
    let channel = || s(m, "channel");
    match s(m, "type").as_str() {
        "connection_established" => ServerMessage::ConnectionEstablished {
            socket_id: s(m, "socket_id"),
            activity_timeout: n(m, "activity_timeout"),
        },
        "error" => ServerMessage::Error {
            code: m["code"].as_u64().map(|c| u16::try_from(c).unwrap()),
            message: s(m, "message"),
        },
        "ping" => ServerMessage::Ping,
        "pong" => ServerMessage::Pong,
        "subscription_succeeded" => ServerMessage::SubscriptionSucceeded {
            channel: channel(),
            presence: m.get("presence").map(|p| PresenceData {
                ids: p["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_owned())
                    .collect(),
                hash: p["hash"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|pair| {
                        (
                            pair[0].as_str().unwrap().to_owned(),
                            RawJson::from_string(pair[1].to_string()).unwrap(),
                        )
                    })
                    .collect(),
                count: n(p, "count"),
            }),
        },
        "subscription_error" => ServerMessage::SubscriptionError {
            channel: channel(),
            kind: SubscriptionErrorType::from_name(&s(m, "error_type")).unwrap(),
            error: s(m, "error"),
        },
        "member_added" => ServerMessage::MemberAdded {
            channel: channel(),
            user_id: s(m, "user_id"),
            user_info: opt_raw(m, "user_info"),
        },
        "member_removed" => ServerMessage::MemberRemoved {
            channel: channel(),
            user_id: s(m, "user_id"),
        },
        "subscription_count" => ServerMessage::SubscriptionCount {
            channel: channel(),
            count: n(m, "count"),
        },
        "signin_success" => ServerMessage::SigninSuccess {
            user_data: s(m, "user_data"),
        },
        "cache_miss" => ServerMessage::CacheMiss { channel: channel() },
        "watchlist_events" => ServerMessage::WatchlistEvents(
            m["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| WatchlistEvent {
                    status: match e["name"].as_str().unwrap() {
                        "online" => WatchlistStatus::Online,
                        _ => WatchlistStatus::Offline,
                    },
                    user_ids: e["user_ids"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i.as_str().unwrap().to_owned())
                        .collect(),
                })
                .collect(),
        ),
        "channel_event" => ServerMessage::ChannelEvent {
            event: s(m, "event"),
            channel: channel(),
            data: s(m, "data"),
        },
        "client_event" => ServerMessage::ClientEvent {
            event: s(m, "event"),
            channel: channel(),
            data: opt_raw(m, "data"),
            user_id: opt_s(m, "user_id"),
        },
        "hush_response" => ServerMessage::HushResponse(ResponseFrame {
            id: s(m, "id"),
            result: match m.get("error") {
                Some(e) => Err(HushError {
                    code: ErrorCode::parse(&s(e, "code")),
                    message: s(e, "message"),
                }),
                None => Ok(opt_raw(m, "result").unwrap()),
            },
        }),
        "hush_mailbox" => ServerMessage::HushMailbox(hush_protocol::msgs::MailboxItem {
            envelope: s(m, "envelope"),
            id: m["id"].as_u64().unwrap(),
            sent_ms: m["sent_ms"].as_u64().unwrap(),
        }),
        "other" => ServerMessage::Other {
            event: s(m, "event"),
            channel: opt_s(m, "channel"),
            data: opt_raw(m, "data"),
        },
        t => panic!("unknown server message type {t}"),
    }
}

#[test]
fn frames_replay_both_ways() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let frames = doc["frames"].as_array().unwrap();
    assert!(frames.len() >= 30);
    for f in frames {
        let name = s(f, "name");
        let wire = s(f, "wire");
        let both = f.get("only").is_none();
        match s(f, "direction").as_str() {
            "client" => {
                let m = client(&f["message"]);
                assert_eq!(ClientMessage::decode(&wire).as_ref(), Ok(&m), "{name}");
                if both {
                    assert_eq!(m.encode(), wire, "{name}");
                }
            }
            "server" => {
                let m = server(&f["message"]);
                assert_eq!(ServerMessage::decode(&wire).as_ref(), Ok(&m), "{name}");
                if both {
                    assert_eq!(m.encode(), wire, "{name}");
                }
            }
            d => panic!("{name}: direction {d}"),
        }
    }
}

#[test]
fn refused_frames_are_refused() {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    for f in doc["refused"].as_array().unwrap() {
        let name = s(f, "name");
        let wire = s(f, "wire");
        let err = match s(f, "direction").as_str() {
            "client" => ClientMessage::decode(&wire).map(|_| ()),
            _ => ServerMessage::decode(&wire).map(|_| ()),
        };
        let kind = match err {
            Err(FrameError::Malformed(_)) => "malformed",
            Err(FrameError::BadData { .. }) => "bad_data",
            Ok(()) => "accepted",
        };
        assert_eq!(kind, s(f, "error"), "{name}");
    }
}

#[test]
fn hush_methods_read_and_write_the_same_text() {
    use hush_protocol::msgs::{HushRequest, HushResponse, Method};
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    let cases = doc["hush_methods"].as_array().unwrap();
    let mut seen = Vec::new();
    for c in cases {
        let method = Method::from_name(&s(c, "method")).unwrap();
        seen.push(method);
        let params = s(c, "params");
        let Value::Object(map) = serde_json::from_str(&params).unwrap() else {
            panic!("params of {method} is not an object");
        };
        let request = HushRequest::from_params(method, &map).unwrap();
        assert_eq!(request.method(), method);
        assert_eq!(request.params().get(), params, "{method}");
        let result = s(c, "result");
        let response = HushResponse::decode(method, &result).unwrap();
        assert_eq!(response.method(), method);
        assert_eq!(response.encode(), result, "{method}");
    }
    for m in Method::ALL {
        assert!(seen.contains(&m), "no vector for {m}");
    }
}
