//! What clients send (PROTOCOL.md §3, docs/PROTOCOL-EXT.md §1): decoded with
//! the server's strict rules, encoded the way pusher-js writes them.

use serde::{Deserialize, Deserializer};

use super::FrameError;
use super::hush::RequestFrame;
use super::json::{RawJson, is_json_object, push_json_str};
use super::names;

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
    pub data: Option<RawJson>,
}

/// Keeps an explicit `null` as raw JSON instead of turning it into `None`.
pub(crate) fn raw_keep_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RawJson>, D::Error> {
    RawJson::deserialize(d).map(Some)
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
        data: Option<RawJson>,
    },
    /// `hush:request` (docs/PROTOCOL-EXT.md §1).
    HushRequest(RequestFrame),
    /// Any other `pusher:` / `pusher_internal:` event: ignored.
    UnknownPusher(String),
    /// An event that is neither `pusher:` nor `client-`.
    NotAllowed(String),
}

/// `pusher:subscribe` data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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

#[derive(Deserialize)]
struct UnsubscribeData {
    channel: String,
}

#[derive(Deserialize)]
struct SigninData {
    auth: String,
    user_data: String,
}

/// Parses the `data` of a `pusher:*` event: an object, or a string that holds
/// a JSON object (parsed once).
pub(crate) fn object_data<'a, T: Deserialize<'a>>(
    event: &str,
    data: &'a Option<RawJson>,
    buf: &'a mut String,
) -> Result<T, FrameError> {
    let bad = |reason: String| FrameError::BadData {
        event: event.to_owned(),
        reason,
    };
    let raw = data.as_ref().ok_or_else(|| bad("missing data".into()))?;
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

impl ClientMessage {
    /// Parses one text frame (the server's rules: objects only, `data` of
    /// `pusher:*` events as an object or a string holding one).
    pub fn decode(text: &str) -> Result<Self, FrameError> {
        if !is_json_object(text.as_bytes()) {
            return Err(FrameError::Malformed("expected a JSON object".into()));
        }
        let frame: RawFrame =
            serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
        let mut buf = String::new();
        Ok(match frame.event.as_str() {
            names::PING => Self::Ping,
            names::PONG => Self::Pong,
            names::SUBSCRIBE => Self::Subscribe(object_data(&frame.event, &frame.data, &mut buf)?),
            names::UNSUBSCRIBE => {
                let d: UnsubscribeData = object_data(&frame.event, &frame.data, &mut buf)?;
                Self::Unsubscribe { channel: d.channel }
            }
            names::SIGNIN => {
                let d: SigninData = object_data(&frame.event, &frame.data, &mut buf)?;
                Self::Signin {
                    auth: d.auth,
                    user_data: d.user_data,
                }
            }
            names::HUSH_REQUEST => {
                let r: RequestFrame = object_data(&frame.event, &frame.data, &mut buf)?;
                if !r.id_is_valid() {
                    return Err(FrameError::BadData {
                        event: frame.event,
                        reason: format!(
                            "id must be 1-{} printable ASCII characters",
                            super::hush::MAX_REQUEST_ID_LEN
                        ),
                    });
                }
                Self::HushRequest(r)
            }
            e if e.starts_with(names::CLIENT_PREFIX) => Self::ClientEvent {
                event: frame.event,
                channel: frame.channel,
                data: frame.data,
            },
            e if names::is_pusher(e) => Self::UnknownPusher(frame.event),
            _ => Self::NotAllowed(frame.event),
        })
    }

    /// The frame as pusher-js writes it (`data` of `pusher:*` events as an
    /// object; `pusher:subscribe` members in pusher-js's order).
    pub fn encode(&self) -> String {
        let mut o = String::with_capacity(64);
        o.push_str("{\"event\":");
        match self {
            Self::Ping => o.push_str("\"pusher:ping\",\"data\":{}"),
            Self::Pong => o.push_str("\"pusher:pong\",\"data\":{}"),
            Self::Subscribe(d) => {
                o.push_str("\"pusher:subscribe\",\"data\":{");
                if let Some(a) = &d.auth {
                    o.push_str("\"auth\":");
                    push_json_str(&mut o, a);
                    o.push(',');
                }
                if let Some(cd) = &d.channel_data {
                    o.push_str("\"channel_data\":");
                    push_json_str(&mut o, cd);
                    o.push(',');
                }
                o.push_str("\"channel\":");
                push_json_str(&mut o, &d.channel);
                o.push('}');
            }
            Self::Unsubscribe { channel } => {
                o.push_str("\"pusher:unsubscribe\",\"data\":{\"channel\":");
                push_json_str(&mut o, channel);
                o.push('}');
            }
            Self::Signin { auth, user_data } => {
                o.push_str("\"pusher:signin\",\"data\":{\"auth\":");
                push_json_str(&mut o, auth);
                o.push_str(",\"user_data\":");
                push_json_str(&mut o, user_data);
                o.push('}');
            }
            Self::ClientEvent {
                event,
                channel,
                data,
            } => {
                push_json_str(&mut o, event);
                if let Some(c) = channel {
                    o.push_str(",\"channel\":");
                    push_json_str(&mut o, c);
                }
                if let Some(d) = data {
                    o.push_str(",\"data\":");
                    o.push_str(d.get());
                }
            }
            Self::HushRequest(r) => {
                o.push_str("\"hush:request\",\"data\":");
                r.push_data(&mut o);
            }
            Self::UnknownPusher(event) | Self::NotAllowed(event) => push_json_str(&mut o, event),
        }
        o.push('}');
        o
    }
}
