//! What the server sends (PROTOCOL.md §4, docs/PROTOCOL-EXT.md §1): encoded
//! with the documented `data` encodings ([`super::encode`]), decoded
//! accepting both encodings of `data` as pusher-js does.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::client::{object_data, raw_keep_null};
use super::encode::{self, SubscriptionErrorType};
use super::hush::{MailboxItem, ResponseFrame};
use super::json::{RawJson, push_json_str};
use super::{FrameError, names};

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// `pusher:connection_established`.
    ConnectionEstablished {
        /// The socket id.
        socket_id: String,
        /// Seconds of silence before the client should ping.
        activity_timeout: u64,
    },
    /// `pusher:error`.
    Error {
        /// A close code (4000–4399), or `None` for `null`.
        code: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// `pusher:ping`.
    Ping,
    /// `pusher:pong`.
    Pong,
    /// `pusher_internal:subscription_succeeded`.
    SubscriptionSucceeded {
        /// The channel.
        channel: String,
        /// The members, on presence channels.
        presence: Option<PresenceData>,
    },
    /// `pusher:subscription_error`.
    SubscriptionError {
        /// The channel, as the client sent it.
        channel: String,
        /// The kind (and so the `status`).
        kind: SubscriptionErrorType,
        /// Why.
        error: String,
    },
    /// `pusher_internal:member_added`.
    MemberAdded {
        /// The presence channel.
        channel: String,
        /// The member.
        user_id: String,
        /// Its `user_info`, as the member gave it.
        user_info: Option<RawJson>,
    },
    /// `pusher_internal:member_removed`.
    MemberRemoved {
        /// The presence channel.
        channel: String,
        /// The member.
        user_id: String,
    },
    /// `pusher_internal:subscription_count`.
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// Its subscriptions.
        count: u64,
    },
    /// `pusher:signin_success`.
    SigninSuccess {
        /// The `user_data` string exactly as the client sent it.
        user_data: String,
    },
    /// `pusher:cache_miss`.
    CacheMiss {
        /// The cache channel.
        channel: String,
    },
    /// `pusher_internal:watchlist_events`.
    WatchlistEvents(Vec<WatchlistEvent>),
    /// An event published through the HTTP API (`data` is a string).
    ChannelEvent {
        /// Event name.
        event: String,
        /// Channel.
        channel: String,
        /// The data string (when another server sends a non-string, its
        /// JSON text).
        data: String,
    },
    /// A relayed `client-*` event.
    ClientEvent {
        /// Event name.
        event: String,
        /// Channel.
        channel: String,
        /// Data exactly as the sender sent it.
        data: Option<RawJson>,
        /// The sender, on presence channels.
        user_id: Option<String>,
    },
    /// `hush:response`.
    HushResponse(ResponseFrame),
    /// `hush:mailbox`: a message queued for this connection's device.
    HushMailbox(MailboxItem),
    /// Any other frame (an unknown `pusher:` event, or an event without a
    /// channel), kept as received.
    Other {
        /// Event name.
        event: String,
        /// Channel, if any.
        channel: Option<String>,
        /// Data, if any.
        data: Option<RawJson>,
    },
}

/// The presence `data` of `subscription_succeeded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceData {
    /// Member ids.
    pub ids: Vec<String>,
    /// Member id → `user_info`, in the order sent.
    pub hash: Vec<(String, RawJson)>,
    /// Number of members.
    pub count: u64,
}

impl PresenceData {
    /// The data of a channel whose members are `(id, user_info)`.
    pub fn from_members(members: Vec<(String, RawJson)>) -> Self {
        Self {
            ids: members.iter().map(|(id, _)| id.clone()).collect(),
            count: u64::try_from(members.len()).unwrap_or(u64::MAX),
            hash: members,
        }
    }

    /// The JSON text (`{"presence":{"ids","hash","count"}}`).
    pub fn to_json(&self) -> String {
        let mut o = String::from("{\"presence\":{\"ids\":[");
        for (i, id) in self.ids.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_json_str(&mut o, id);
        }
        o.push_str("],\"hash\":{");
        for (i, (id, info)) in self.hash.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            push_json_str(&mut o, id);
            o.push(':');
            o.push_str(info.get());
        }
        o.push_str("},\"count\":");
        o.push_str(&self.count.to_string());
        o.push_str("}}");
        o
    }
}

/// `online` or `offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WatchlistStatus {
    /// Came online.
    Online,
    /// Went offline.
    Offline,
}

impl WatchlistStatus {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

/// One entry of `watchlist_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchlistEvent {
    /// What happened.
    pub status: WatchlistStatus,
    /// To whom.
    pub user_ids: Vec<String>,
}

/// Members of a JSON object in the order written.
struct Ordered(Vec<(String, RawJson)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, RawJson>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default, deserialize_with = "raw_keep_null")]
    data: Option<RawJson>,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct Established {
    socket_id: String,
    activity_timeout: u64,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: String,
}

/// A user id as another Pusher server may send it: a JSON string, or a
/// number kept as its JSON text (as hush's own presence parser keeps it), so
/// that a member with a numeric id is not dropped.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserIdJson {
    Text(String),
    Number(serde_json::Number),
}

impl From<UserIdJson> for String {
    fn from(id: UserIdJson) -> Self {
        match id {
            UserIdJson::Text(s) => s,
            UserIdJson::Number(n) => n.to_string(),
        }
    }
}

fn user_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    UserIdJson::deserialize(d).map(String::from)
}

fn user_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Vec::<UserIdJson>::deserialize(d).map(|v| v.into_iter().map(String::from).collect())
}

#[derive(Deserialize)]
struct Presence {
    #[serde(deserialize_with = "user_ids")]
    ids: Vec<String>,
    hash: Ordered,
    count: u64,
}

#[derive(Deserialize)]
struct Succeeded {
    #[serde(default)]
    presence: Option<Presence>,
}

#[derive(Deserialize)]
struct SubError {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct Member {
    #[serde(deserialize_with = "user_id")]
    user_id: String,
    #[serde(default, deserialize_with = "raw_keep_null")]
    user_info: Option<RawJson>,
}

#[derive(Deserialize)]
struct Count {
    subscription_count: u64,
}

#[derive(Deserialize)]
struct Signin {
    user_data: String,
}

#[derive(Deserialize)]
struct Watchlist {
    events: Vec<WatchEntry>,
}

#[derive(Deserialize)]
struct WatchEntry {
    name: String,
    user_ids: Vec<String>,
}

impl ServerMessage {
    /// Reads one frame from the server.
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        if !super::json::is_json_object(text.as_bytes()) {
            return Err(FrameError::Malformed("expected a JSON object".into()));
        }
        let f: Envelope =
            serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
        let bad = |reason: &str| FrameError::BadData {
            event: f.event.clone(),
            reason: reason.to_owned(),
        };
        let channel = || f.channel.clone().ok_or_else(|| bad("missing channel"));
        let mut buf = String::new();
        Ok(match f.event.as_str() {
            names::CONNECTION_ESTABLISHED => {
                let d: Established = object_data(&f.event, &f.data, &mut buf)?;
                Self::ConnectionEstablished {
                    socket_id: d.socket_id,
                    activity_timeout: d.activity_timeout,
                }
            }
            names::ERROR => {
                let d: ErrorData = object_data(&f.event, &f.data, &mut buf)?;
                Self::Error {
                    code: d.code,
                    message: d.message,
                }
            }
            names::PING => Self::Ping,
            names::PONG => Self::Pong,
            names::SUBSCRIPTION_SUCCEEDED => {
                let channel = channel()?;
                let presence = match &f.data {
                    None => None,
                    Some(_) => {
                        let d: Succeeded = object_data(&f.event, &f.data, &mut buf)?;
                        d.presence.map(|p| PresenceData {
                            ids: p.ids,
                            hash: p.hash.0,
                            count: p.count,
                        })
                    }
                };
                Self::SubscriptionSucceeded { channel, presence }
            }
            names::SUBSCRIPTION_ERROR => {
                let channel = channel()?;
                let d: SubError = object_data(&f.event, &f.data, &mut buf)?;
                Self::SubscriptionError {
                    channel,
                    kind: SubscriptionErrorType::from_name(&d.kind)
                        .ok_or_else(|| bad("unknown subscription error type"))?,
                    error: d.error,
                }
            }
            names::MEMBER_ADDED => {
                let channel = channel()?;
                let d: Member = object_data(&f.event, &f.data, &mut buf)?;
                Self::MemberAdded {
                    channel,
                    user_id: d.user_id,
                    user_info: d.user_info,
                }
            }
            names::MEMBER_REMOVED => {
                let channel = channel()?;
                let d: Member = object_data(&f.event, &f.data, &mut buf)?;
                Self::MemberRemoved {
                    channel,
                    user_id: d.user_id,
                }
            }
            names::SUBSCRIPTION_COUNT => {
                let channel = channel()?;
                let d: Count = object_data(&f.event, &f.data, &mut buf)?;
                Self::SubscriptionCount {
                    channel,
                    count: d.subscription_count,
                }
            }
            names::SIGNIN_SUCCESS => {
                let d: Signin = object_data(&f.event, &f.data, &mut buf)?;
                Self::SigninSuccess {
                    user_data: d.user_data,
                }
            }
            names::CACHE_MISS => Self::CacheMiss {
                channel: channel()?,
            },
            names::WATCHLIST_EVENTS => {
                let d: Watchlist = object_data(&f.event, &f.data, &mut buf)?;
                let events = d
                    .events
                    .into_iter()
                    .map(|e| {
                        let status = match e.name.as_str() {
                            "online" => WatchlistStatus::Online,
                            "offline" => WatchlistStatus::Offline,
                            _ => return Err(bad("unknown watchlist event name")),
                        };
                        Ok(WatchlistEvent {
                            status,
                            user_ids: e.user_ids,
                        })
                    })
                    .collect::<Result<_, _>>()?;
                Self::WatchlistEvents(events)
            }
            names::HUSH_RESPONSE => {
                let raw = f.data.as_ref().ok_or_else(|| bad("missing data"))?;
                let r = ResponseFrame::from_data_json(&raw.text()).map_err(|e| bad(&e))?;
                Self::HushResponse(r)
            }
            names::HUSH_MAILBOX => {
                let raw = f.data.as_ref().ok_or_else(|| bad("missing data"))?;
                let item: MailboxItem =
                    serde_json::from_str(&raw.text()).map_err(|e| bad(&e.to_string()))?;
                Self::HushMailbox(item)
            }
            e if names::is_pusher(e) || f.channel.is_none() => Self::Other {
                event: f.event,
                channel: f.channel,
                data: f.data,
            },
            e if e.starts_with(names::CLIENT_PREFIX) => Self::ClientEvent {
                channel: channel()?,
                event: f.event,
                data: f.data,
                user_id: f.user_id,
            },
            _ => Self::ChannelEvent {
                channel: channel()?,
                data: f
                    .data
                    .as_ref()
                    .map(|d| d.text().into_owned())
                    .unwrap_or_default(),
                event: f.event,
            },
        })
    }

    /// The frame's text, exactly as the server sends it.
    pub fn encode(&self) -> String {
        match self {
            Self::ConnectionEstablished {
                socket_id,
                activity_timeout,
            } => encode::connection_established(socket_id, *activity_timeout),
            Self::Error { code, message } => encode::error(*code, message),
            Self::Ping => encode::PING.to_owned(),
            Self::Pong => encode::PONG.to_owned(),
            Self::SubscriptionSucceeded { channel, presence } => match presence {
                Some(p) => encode::subscription_succeeded(channel, &p.to_json()),
                None => encode::subscription_succeeded(channel, "{}"),
            },
            Self::SubscriptionError {
                channel,
                kind,
                error,
            } => encode::subscription_error(channel, *kind, error),
            Self::MemberAdded {
                channel,
                user_id,
                user_info,
            } => match user_info {
                Some(info) => encode::member_added(channel, user_id, info.get()),
                None => {
                    let mut inner = String::from("{\"user_id\":");
                    push_json_str(&mut inner, user_id);
                    inner.push('}');
                    let mut o =
                        String::from("{\"event\":\"pusher_internal:member_added\",\"channel\":");
                    push_json_str(&mut o, channel);
                    o.push_str(",\"data\":");
                    push_json_str(&mut o, &inner);
                    o.push('}');
                    o
                }
            },
            Self::MemberRemoved { channel, user_id } => encode::member_removed(channel, user_id),
            Self::SubscriptionCount { channel, count } => {
                encode::subscription_count_u64(channel, *count)
            }
            Self::SigninSuccess { user_data } => encode::signin_success(user_data),
            Self::CacheMiss { channel } => encode::cache_miss(channel),
            Self::WatchlistEvents(events) => {
                let mut o = String::from(
                    "{\"event\":\"pusher_internal:watchlist_events\",\"data\":{\"events\":[",
                );
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        o.push(',');
                    }
                    o.push_str("{\"name\":\"");
                    o.push_str(e.status.name());
                    o.push_str("\",\"user_ids\":[");
                    for (j, id) in e.user_ids.iter().enumerate() {
                        if j > 0 {
                            o.push(',');
                        }
                        push_json_str(&mut o, id);
                    }
                    o.push_str("]}");
                }
                o.push_str("]}}");
                o
            }
            Self::ChannelEvent {
                event,
                channel,
                data,
            } => encode::channel_event(event, channel, data),
            Self::ClientEvent {
                event,
                channel,
                data,
                user_id,
            } => encode::client_event(event, channel, data.as_deref(), user_id.as_deref()),
            Self::HushResponse(r) => match &r.result {
                Ok(result) => encode::hush_response_ok(&r.id, result.get()),
                Err(e) => encode::hush_response_err(&r.id, e.code.as_str(), &e.message),
            },
            Self::HushMailbox(item) => encode::hush_mailbox(item),
            Self::Other {
                event,
                channel,
                data,
            } => {
                let mut o = String::from("{\"event\":");
                push_json_str(&mut o, event);
                if let Some(c) = channel {
                    o.push_str(",\"channel\":");
                    push_json_str(&mut o, c);
                }
                if let Some(d) = data {
                    o.push_str(",\"data\":");
                    o.push_str(d.get());
                }
                o.push('}');
                o
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another Pusher server may send numeric user ids: the member is read
    /// with the number's text as its id, not dropped.
    #[test]
    fn numeric_member_ids_are_read_as_their_text() {
        let added = r#"{"event":"pusher_internal:member_added","channel":"presence-a","data":"{\"user_id\":42,\"user_info\":null}"}"#;
        match ServerMessage::decode(added) {
            Ok(ServerMessage::MemberAdded { user_id, .. }) => assert_eq!(user_id, "42"),
            other => panic!("{other:?}"),
        }
        let ok = r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-a","data":"{\"presence\":{\"ids\":[7,\"b\"],\"hash\":{\"7\":null,\"b\":null},\"count\":2}}"}"#;
        match ServerMessage::decode(ok) {
            Ok(ServerMessage::SubscriptionSucceeded {
                presence: Some(p), ..
            }) => assert_eq!(p.ids, ["7", "b"]),
            other => panic!("{other:?}"),
        }
        let bad = r#"{"event":"pusher_internal:member_removed","channel":"presence-a","data":"{\"user_id\":true}"}"#;
        assert!(ServerMessage::decode(bad).is_err());
    }
}
