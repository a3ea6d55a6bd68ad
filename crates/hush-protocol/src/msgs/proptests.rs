//! decode(encode(m)) == m for every message type, on generated messages
//! (escapes, control characters and any Unicode included).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            vec((any::<String>(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn raw() -> impl Strategy<Value = RawJson> {
    json_value().prop_map(|v| RawJson::from_string(v.to_string()).unwrap())
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

/// A name no decoder gives a meaning of its own.
fn unknown_pusher() -> impl Strategy<Value = String> {
    text()
        .prop_map(|s| format!("pusher:x{s}"))
        .prop_filter("known", |e| !known(e))
}

fn known(e: &str) -> bool {
    [
        names::PING,
        names::PONG,
        names::SUBSCRIBE,
        names::UNSUBSCRIBE,
        names::SIGNIN,
        names::CONNECTION_ESTABLISHED,
        names::ERROR,
        names::SUBSCRIPTION_ERROR,
        names::SIGNIN_SUCCESS,
        names::CACHE_MISS,
        names::SUBSCRIPTION_SUCCEEDED,
        names::MEMBER_ADDED,
        names::MEMBER_REMOVED,
        names::SUBSCRIPTION_COUNT,
        names::WATCHLIST_EVENTS,
        names::HUSH_REQUEST,
        names::HUSH_RESPONSE,
        names::HUSH_MAILBOX,
    ]
    .contains(&e)
}

fn app_event() -> impl Strategy<Value = String> {
    text().prop_filter("reserved", |e| {
        !names::is_pusher(e) && !e.starts_with(names::CLIENT_PREFIX) && !known(e)
    })
}

fn request_frame() -> impl Strategy<Value = RequestFrame> {
    // `"params":null` reads as no params (as it always has).
    let params = raw().prop_filter("null", |p| p.get() != "null");
    ("[ -~]{1,64}", text(), option::of(params)).prop_map(|(id, method, params)| RequestFrame {
        id,
        method,
        params,
    })
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        Just(ClientMessage::Ping),
        Just(ClientMessage::Pong),
        (text(), option::of(text()), option::of(text())).prop_map(
            |(channel, auth, channel_data)| ClientMessage::Subscribe(SubscribeData {
                channel,
                auth,
                channel_data,
            })
        ),
        text().prop_map(|channel| ClientMessage::Unsubscribe { channel }),
        (text(), text()).prop_map(|(auth, user_data)| ClientMessage::Signin { auth, user_data }),
        (text(), option::of(text()), option::of(raw())).prop_map(|(e, channel, data)| {
            ClientMessage::ClientEvent {
                event: format!("client-{e}"),
                channel,
                data,
            }
        }),
        request_frame().prop_map(ClientMessage::HushRequest),
        unknown_pusher().prop_map(ClientMessage::UnknownPusher),
        app_event().prop_map(ClientMessage::NotAllowed),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::UnknownMethod),
        Just(ErrorCode::NotSignedIn),
        Just(ErrorCode::Forbidden),
        Just(ErrorCode::InvalidRecord),
        Just(ErrorCode::Conflict),
        Just(ErrorCode::TooMany),
        Just(ErrorCode::NotFound),
        Just(ErrorCode::Unavailable),
        Just(ErrorCode::RateLimited),
        "x_[a-z_]{0,20}".prop_map(ErrorCode::Other),
    ]
}

fn response_frame() -> impl Strategy<Value = ResponseFrame> {
    (
        text(),
        prop_oneof![
            raw().prop_map(Ok),
            (error_code(), "\\PC{0,100}")
                .prop_map(|(code, message)| Err(HushError { code, message })),
        ],
    )
        .prop_map(|(id, result)| ResponseFrame { id, result })
}

fn presence() -> impl Strategy<Value = PresenceData> {
    (vec(text(), 0..4), vec((text(), raw()), 0..4), any::<u64>())
        .prop_map(|(ids, hash, count)| PresenceData { ids, hash, count })
}

fn sub_error_type() -> impl Strategy<Value = SubscriptionErrorType> {
    prop_oneof![
        Just(SubscriptionErrorType::AuthError),
        Just(SubscriptionErrorType::InvalidChannel),
        Just(SubscriptionErrorType::LimitReached),
    ]
}

fn watch_event() -> impl Strategy<Value = WatchlistEvent> {
    (
        prop_oneof![
            Just(WatchlistStatus::Online),
            Just(WatchlistStatus::Offline)
        ],
        vec(text(), 0..4),
    )
        .prop_map(|(status, user_ids)| WatchlistEvent { status, user_ids })
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    prop_oneof![
        (text(), any::<u64>()).prop_map(|(socket_id, activity_timeout)| {
            ServerMessage::ConnectionEstablished {
                socket_id,
                activity_timeout,
            }
        }),
        (option::of(any::<u16>()), text())
            .prop_map(|(code, message)| ServerMessage::Error { code, message }),
        Just(ServerMessage::Ping),
        Just(ServerMessage::Pong),
        (text(), option::of(presence())).prop_map(|(channel, presence)| {
            ServerMessage::SubscriptionSucceeded { channel, presence }
        }),
        (text(), sub_error_type(), text()).prop_map(|(channel, kind, error)| {
            ServerMessage::SubscriptionError {
                channel,
                kind,
                error,
            }
        }),
        (text(), text(), option::of(raw())).prop_map(|(channel, user_id, user_info)| {
            ServerMessage::MemberAdded {
                channel,
                user_id,
                user_info,
            }
        }),
        (text(), text())
            .prop_map(|(channel, user_id)| ServerMessage::MemberRemoved { channel, user_id }),
        (text(), any::<u64>())
            .prop_map(|(channel, count)| ServerMessage::SubscriptionCount { channel, count }),
        text().prop_map(|user_data| ServerMessage::SigninSuccess { user_data }),
        text().prop_map(|channel| ServerMessage::CacheMiss { channel }),
        vec(watch_event(), 0..3).prop_map(ServerMessage::WatchlistEvents),
        (app_event(), text(), text()).prop_map(|(event, channel, data)| {
            ServerMessage::ChannelEvent {
                event,
                channel,
                data,
            }
        }),
        (text(), text(), option::of(raw()), option::of(text())).prop_map(
            |(e, channel, data, user_id)| ServerMessage::ClientEvent {
                event: format!("client-{e}"),
                channel,
                data,
                user_id,
            }
        ),
        response_frame().prop_map(ServerMessage::HushResponse),
        (unknown_pusher(), option::of(text()), option::of(raw())).prop_map(
            |(event, channel, data)| ServerMessage::Other {
                event,
                channel,
                data,
            }
        ),
    ]
}

fn hush_request() -> impl Strategy<Value = HushRequest> {
    let n = || option::of(any::<u64>());
    prop_oneof![
        text().prop_map(|card| HushRequest::DirectoryPublish { card }),
        text().prop_map(|revocation| HushRequest::DirectoryRevoke { revocation }),
        vec(text(), 0..4).prop_map(|users| HushRequest::DirectoryLookup { users }),
        n().prop_map(|versions| HushRequest::DirectoryHistory { versions }),
        n().prop_map(|epoch| HushRequest::LogHead { epoch }),
        (any::<u64>(), any::<u64>()).prop_map(|(from, to)| HushRequest::LogAudit { from, to }),
    ]
}

proptest! {
    #[test]
    fn client_messages_round_trip(m in client_message()) {
        let wire = m.encode();
        prop_assert_eq!(ClientMessage::decode(&wire), Ok(m), "{}", wire);
    }

    #[test]
    fn server_messages_round_trip(m in server_message()) {
        let wire = m.encode();
        prop_assert_eq!(ServerMessage::decode(&wire), Ok(m), "{}", wire);
    }

    #[test]
    fn hush_requests_round_trip(r in hush_request(), id in "[ -~]{1,64}") {
        let m = ClientMessage::HushRequest(RequestFrame::new(id, &r));
        let ClientMessage::HushRequest(frame) = ClientMessage::decode(&m.encode()).unwrap() else {
            panic!("not a request");
        };
        prop_assert_eq!(HushRequest::from_frame(&frame), Ok(r));
    }
}
