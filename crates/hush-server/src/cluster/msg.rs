//! The bus messages ([`ClusterMsg`]) and their codec: JSON text, one
//! [`Envelope`] per Redis message, checked field by field on the way in (a
//! bus is shared with whoever can reach Redis: a malformed, oversized or
//! unknown message is refused with [`BadMessage`], never a panic).

use std::time::Duration;

use hush_protocol::user::MAX_USER_ID_LENGTH;
use hush_protocol::{ChannelName, SocketId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::NodeId;
use crate::conn::Frame;

/// The codec version; a message of another version is refused.
pub const VERSION: u8 = 1;

/// The longest bus message accepted (bytes of JSON).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// What one node tells the others about an app.
#[derive(Debug, Clone)]
pub enum ClusterMsg {
    /// A channel event for the subscribers on every other node (a
    /// `#server-to-user-` channel: for the user's connections): the frame as
    /// encoded once by the publishing node, the socket it must not reach,
    /// and for cache channels the event's `data` and TTL, stored as the
    /// channel's last event.
    Event {
        /// The channel.
        channel: ChannelName,
        /// The encoded `channel_event` frame.
        frame: Frame,
        /// The publisher's socket.
        except: Option<SocketId>,
        /// Cache channels: the data and how long it is replayed.
        cache: Option<(String, Duration)>,
    },
    /// `node` now has `count` subscriptions (sockets) on `channel` (set, not
    /// added).
    Subscriptions {
        /// The node whose count this is.
        node: NodeId,
        /// The channel.
        channel: ChannelName,
        /// Its sockets subscribed to the channel.
        count: usize,
    },
    /// The first socket of `user_id` on `node` joined the presence channel.
    MemberJoined {
        /// The node.
        node: NodeId,
        /// The presence channel.
        channel: ChannelName,
        /// The member's user id.
        user_id: String,
        /// Its `user_info` JSON, as signed by the app's backend.
        user_info: Option<Box<RawValue>>,
    },
    /// The last socket of `user_id` on `node` left the presence channel.
    MemberLeft {
        /// The node.
        node: NodeId,
        /// The presence channel.
        channel: ChannelName,
        /// The member's user id.
        user_id: String,
    },
    /// `node`'s whole contribution to `channel` (replaces what it had:
    /// sent on resynchronisation, idempotent).
    NodeState {
        /// The node.
        node: NodeId,
        /// The channel.
        channel: ChannelName,
        /// Its sockets subscribed.
        count: usize,
        /// Its presence members, with their `user_info`.
        members: Vec<(String, Option<Box<RawValue>>)>,
    },
    /// A cache channel's live last event (answering a [`ClusterMsg::SyncRequest`]):
    /// stored where the channel has none, never delivered.
    Cached {
        /// The cache channel.
        channel: ChannelName,
        /// The encoded frame.
        frame: Frame,
        /// The event's data.
        data: String,
        /// What is left of its TTL.
        ttl: Duration,
    },
    /// Close every connection signed in as `user` (4009,
    /// `terminate_connections`).
    Terminate {
        /// The user.
        user: UserId,
    },
    /// The users whose first connection on `node` signed in (`online`) or
    /// whose last one signed out.
    Users {
        /// The node.
        node: NodeId,
        /// Signed in (true) or out.
        online: bool,
        /// The users.
        users: Vec<UserId>,
    },
    /// Every user signed in on `node` (replaces what it had; on
    /// resynchronisation).
    UsersState {
        /// The node.
        node: NodeId,
        /// Its signed-in users.
        users: Vec<UserId>,
    },
    /// `node` has `connections` open connections of the app (each
    /// heartbeat; the app connection quota adds them up).
    Load {
        /// The node.
        node: NodeId,
        /// Its open connections of the app.
        connections: usize,
    },
    /// `node` is gone (it announced its exit, or its lease expired): every
    /// count, member and user it held is dropped.
    NodeLeft {
        /// The node.
        node: NodeId,
    },
    /// A node (re)joined the bus: every node answers with its whole state
    /// ([`ClusterMsg::NodeState`], [`ClusterMsg::Cached`],
    /// [`ClusterMsg::UsersState`]).
    SyncRequest,
    /// The sender waits for every other node's [`ClusterMsg::SettleAck`]
    /// ([`crate::app::App::settle`]): each node answers after everything it
    /// queued before it saw the request, so when every answer is back the
    /// sender has applied every change any node had made before.
    SettleRequest {
        /// The sender's number for it (increasing per app bus).
        token: u64,
    },
    /// The answer to node `to`'s [`ClusterMsg::SettleRequest`] `token`;
    /// other nodes ignore it.
    SettleAck {
        /// The asking node.
        to: NodeId,
        /// Its request's token.
        token: u64,
    },
}

/// A bus message: the sender, the app, when it was sent and what.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The sending node.
    pub origin: NodeId,
    /// The app (must be the bus channel's).
    pub app: String,
    /// Milliseconds since the Unix epoch when it was sent (bus lag).
    pub sent_ms: u64,
    /// The message.
    pub msg: ClusterMsg,
}

/// Why a bus message was refused.
#[derive(Debug, thiserror::Error)]
pub enum BadMessage {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("bus message too large ({0} bytes)")]
    TooLarge(usize),
    /// Not the JSON of an envelope of a known message.
    #[error("bus message malformed: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Another codec version.
    #[error("bus message of unknown version {0}")]
    Version(u8),
    /// A field that does not hold what it must (channel name, socket id,
    /// user id).
    #[error("bus message invalid: {0}")]
    Invalid(&'static str),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnvelope<'a> {
    v: u8,
    node: u64,
    #[serde(borrow)]
    app: std::borrow::Cow<'a, str>,
    ts: u64,
    msg: Wire,
}

/// The JSON form: strings checked on decoding; the node of a membership
/// message is the envelope's (a node speaks only for itself).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Wire {
    Event {
        channel: String,
        frame: String,
        except: Option<String>,
        cache: Option<(String, u64)>,
    },
    Subscriptions {
        channel: String,
        count: usize,
    },
    MemberJoined {
        channel: String,
        user_id: String,
        user_info: Option<Box<RawValue>>,
    },
    MemberLeft {
        channel: String,
        user_id: String,
    },
    NodeState {
        channel: String,
        count: usize,
        members: Vec<(String, Option<Box<RawValue>>)>,
    },
    Cached {
        channel: String,
        frame: String,
        data: String,
        ttl_ms: u64,
    },
    Terminate {
        user: String,
    },
    Users {
        online: bool,
        users: Vec<String>,
    },
    UsersState {
        users: Vec<String>,
    },
    Load {
        connections: usize,
    },
    NodeLeft {
        node: u64,
    },
    SyncRequest,
    SettleRequest {
        token: u64,
    },
    SettleAck {
        to: u64,
        token: u64,
    },
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn users_out(users: &[UserId]) -> Vec<String> {
    users.iter().map(|u| u.as_str().to_owned()).collect()
}

impl Wire {
    fn of(msg: &ClusterMsg) -> Self {
        let ch = |c: &ChannelName| c.as_str().to_owned();
        match msg {
            ClusterMsg::Event {
                channel,
                frame,
                except,
                cache,
            } => Self::Event {
                channel: ch(channel),
                frame: frame.payload().to_owned(),
                except: except.as_ref().map(|s| s.as_str().to_owned()),
                cache: cache.as_ref().map(|(d, t)| (d.clone(), ms(*t))),
            },
            ClusterMsg::Subscriptions { channel, count, .. } => Self::Subscriptions {
                channel: ch(channel),
                count: *count,
            },
            ClusterMsg::MemberJoined {
                channel,
                user_id,
                user_info,
                ..
            } => Self::MemberJoined {
                channel: ch(channel),
                user_id: user_id.clone(),
                user_info: user_info.clone(),
            },
            ClusterMsg::MemberLeft {
                channel, user_id, ..
            } => Self::MemberLeft {
                channel: ch(channel),
                user_id: user_id.clone(),
            },
            ClusterMsg::NodeState {
                channel,
                count,
                members,
                ..
            } => Self::NodeState {
                channel: ch(channel),
                count: *count,
                members: members.clone(),
            },
            ClusterMsg::Cached {
                channel,
                frame,
                data,
                ttl,
            } => Self::Cached {
                channel: ch(channel),
                frame: frame.payload().to_owned(),
                data: data.clone(),
                ttl_ms: ms(*ttl),
            },
            ClusterMsg::Terminate { user } => Self::Terminate {
                user: user.as_str().to_owned(),
            },
            ClusterMsg::Users { online, users, .. } => Self::Users {
                online: *online,
                users: users_out(users),
            },
            ClusterMsg::UsersState { users, .. } => Self::UsersState {
                users: users_out(users),
            },
            ClusterMsg::Load { connections, .. } => Self::Load {
                connections: *connections,
            },
            ClusterMsg::NodeLeft { node } => Self::NodeLeft { node: node.0 },
            ClusterMsg::SyncRequest => Self::SyncRequest,
            ClusterMsg::SettleRequest { token } => Self::SettleRequest { token: *token },
            ClusterMsg::SettleAck { to, token } => Self::SettleAck {
                to: to.0,
                token: *token,
            },
        }
    }

    fn into_msg(self, origin: NodeId) -> Result<ClusterMsg, BadMessage> {
        let channel = |s: &str| ChannelName::parse(s).map_err(|_| BadMessage::Invalid("channel"));
        let user = |s: &str| UserId::parse(s).map_err(|_| BadMessage::Invalid("user id"));
        let users = |v: Vec<String>| v.iter().map(|u| user(u)).collect::<Result<Vec<_>, _>>();
        let member = |s: String| {
            let n = s.chars().count();
            if n == 0 || n > MAX_USER_ID_LENGTH || s.chars().any(char::is_control) {
                Err(BadMessage::Invalid("member user id"))
            } else {
                Ok(s)
            }
        };
        Ok(match self {
            Self::Event {
                channel: c,
                frame,
                except,
                cache,
            } => ClusterMsg::Event {
                channel: channel(&c)?,
                frame: frame.into(),
                except: except
                    .map(|s| SocketId::parse(&s).map_err(|_| BadMessage::Invalid("socket id")))
                    .transpose()?,
                cache: cache.map(|(d, t)| (d, Duration::from_millis(t))),
            },
            Self::Subscriptions { channel: c, count } => ClusterMsg::Subscriptions {
                node: origin,
                channel: channel(&c)?,
                count,
            },
            Self::MemberJoined {
                channel: c,
                user_id,
                user_info,
            } => ClusterMsg::MemberJoined {
                node: origin,
                channel: channel(&c)?,
                user_id: member(user_id)?,
                user_info,
            },
            Self::MemberLeft {
                channel: c,
                user_id,
            } => ClusterMsg::MemberLeft {
                node: origin,
                channel: channel(&c)?,
                user_id: member(user_id)?,
            },
            Self::NodeState {
                channel: c,
                count,
                members,
            } => ClusterMsg::NodeState {
                node: origin,
                channel: channel(&c)?,
                count,
                members: members
                    .into_iter()
                    .map(|(u, i)| Ok((member(u)?, i)))
                    .collect::<Result<_, BadMessage>>()?,
            },
            Self::Cached {
                channel: c,
                frame,
                data,
                ttl_ms,
            } => ClusterMsg::Cached {
                channel: channel(&c)?,
                frame: frame.into(),
                data,
                ttl: Duration::from_millis(ttl_ms),
            },
            Self::Terminate { user: u } => ClusterMsg::Terminate { user: user(&u)? },
            Self::Users { online, users: u } => ClusterMsg::Users {
                node: origin,
                online,
                users: users(u)?,
            },
            Self::UsersState { users: u } => ClusterMsg::UsersState {
                node: origin,
                users: users(u)?,
            },
            Self::Load { connections } => ClusterMsg::Load {
                node: origin,
                connections,
            },
            Self::NodeLeft { node } => ClusterMsg::NodeLeft { node: NodeId(node) },
            Self::SyncRequest => ClusterMsg::SyncRequest,
            Self::SettleRequest { token } => ClusterMsg::SettleRequest { token },
            Self::SettleAck { to, token } => ClusterMsg::SettleAck {
                to: NodeId(to),
                token,
            },
        })
    }
}

impl Envelope {
    /// The JSON text of this envelope.
    pub fn encode(&self) -> String {
        let w = WireEnvelope {
            v: VERSION,
            node: self.origin.0,
            app: self.app.as_str().into(),
            ts: self.sent_ms,
            msg: Wire::of(&self.msg),
        };
        // Strings, numbers and raw JSON only: serialising cannot fail.
        serde_json::to_string(&w).unwrap_or_default()
    }

    /// Parses and checks a bus message.
    pub fn decode(bytes: &[u8]) -> Result<Self, BadMessage> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(BadMessage::TooLarge(bytes.len()));
        }
        let w: WireEnvelope<'_> = serde_json::from_slice(bytes)?;
        if w.v != VERSION {
            return Err(BadMessage::Version(w.v));
        }
        let origin = NodeId(w.node);
        if origin == NodeId::LOCAL {
            return Err(BadMessage::Invalid("node"));
        }
        Ok(Self {
            origin,
            app: w.app.into_owned(),
            sent_ms: w.ts,
            msg: w.msg.into_msg(origin)?,
        })
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: ClusterMsg) -> ClusterMsg {
        let e = Envelope {
            origin: NodeId(9),
            app: "app".into(),
            sent_ms: 5,
            msg,
        };
        let d = Envelope::decode(e.encode().as_bytes()).unwrap();
        assert_eq!((d.origin, d.app.as_str(), d.sent_ms), (NodeId(9), "app", 5));
        d.msg
    }

    #[test]
    fn messages_round_trip_and_membership_speaks_for_the_origin() {
        let ch = ChannelName::parse("presence-x").unwrap();
        let m = roundtrip(ClusterMsg::MemberJoined {
            node: NodeId(3),
            channel: ch.clone(),
            user_id: "u".into(),
            user_info: Some(RawValue::from_string(r#"{"a":1}"#.into()).unwrap()),
        });
        match m {
            ClusterMsg::MemberJoined {
                node,
                user_id,
                user_info,
                ..
            } => {
                // The node is the envelope's, whatever the sender claimed.
                assert_eq!(node, NodeId(9));
                assert_eq!(user_id, "u");
                assert_eq!(user_info.unwrap().get(), r#"{"a":1}"#);
            }
            other => panic!("{other:?}"),
        }
        let m = roundtrip(ClusterMsg::Event {
            channel: ChannelName::parse("cache-y").unwrap(),
            frame: "{\"event\":\"e\"}".into(),
            except: Some(SocketId::parse("1.2").unwrap()),
            cache: Some(("d".into(), Duration::from_millis(1500))),
        });
        match m {
            ClusterMsg::Event {
                frame,
                except,
                cache,
                ..
            } => {
                assert_eq!(frame.payload(), "{\"event\":\"e\"}");
                assert_eq!(except.unwrap().as_str(), "1.2");
                assert_eq!(cache, Some(("d".into(), Duration::from_millis(1500))));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            roundtrip(ClusterMsg::NodeLeft { node: NodeId(4) }),
            ClusterMsg::NodeLeft { node: NodeId(4) }
        ));
    }

    #[test]
    fn attack_malformed_unknown_and_oversized_messages_are_refused() {
        let bad: &[&[u8]] = &[
            b"",
            b"garbage",
            b"{}",
            br#"{"v":2,"node":1,"app":"a","ts":0,"msg":"sync_request"}"#,
            br#"{"v":1,"node":0,"app":"a","ts":0,"msg":"sync_request"}"#,
            br#"{"v":1,"node":1,"app":"a","ts":0,"msg":"self_destruct"}"#,
            br#"{"v":1,"node":1,"app":"a","ts":0,"msg":"sync_request","x":1}"#,
            br#"{"v":1,"node":1,"app":"a","ts":0,"msg":{"subscriptions":{"channel":"bad channel","count":1}}}"#,
            br#"{"v":1,"node":1,"app":"a","ts":0,"msg":{"terminate":{"user":""}}}"#,
            br#"{"v":1,"node":1,"app":"a","ts":0,"msg":{"event":{"channel":"c","frame":"f","except":"x","cache":null}}}"#,
            br#"{"v":1,"node":1,"app":"a","ts":0,"msg":{"member_left":{"channel":"presence-c","user_id":""}}}"#,
        ];
        for b in bad {
            assert!(
                Envelope::decode(b).is_err(),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        let huge = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert!(matches!(
            Envelope::decode(&huge),
            Err(BadMessage::TooLarge(_))
        ));
        let ok = br#"{"v":1,"node":1,"app":"a","ts":0,"msg":"sync_request"}"#;
        assert!(Envelope::decode(ok).is_ok());
    }
}
