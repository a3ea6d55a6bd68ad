//! Reading the frames a soak connection receives.

use hush_protocol::msgs::names;

use crate::ws::extract_num;

/// Event name of the API publishes.
pub const API_EVENT: &str = "soak";
/// Event name of the client events.
pub const CLIENT_EVENT: &str = "client-soak";

/// What a frame from the server means to a soak connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A soak event (API publish or client event) with its sequence number
    /// and send time (µs since the epoch).
    Event {
        /// Channel.
        channel: String,
        /// Sequence number in its stream.
        seq: u64,
        /// Send time.
        sent_us: u64,
        /// A client event (not an API publish).
        client: bool,
    },
    /// `pusher_internal:subscription_succeeded`, with the presence member
    /// ids when it is a presence channel.
    Subscribed {
        /// Channel.
        channel: String,
        /// Presence member ids.
        members: Option<Vec<String>>,
    },
    /// A presence member joined (`true`) or left.
    Member {
        /// Channel.
        channel: String,
        /// Its user id.
        user: String,
        /// Joined rather than left.
        added: bool,
    },
    /// `pusher:ping`: answer with a pong.
    Ping,
    /// `pusher:pong`: everything written before it has arrived.
    Pong,
    /// `pusher:error` or `pusher:subscription_error`.
    Error(String),
    /// Anything else.
    Other,
}

fn data_object(v: &serde_json::Value) -> Option<serde_json::Value> {
    match &v["data"] {
        serde_json::Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

/// Classifies one text frame.
pub fn parse(text: &str) -> Incoming {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return Incoming::Error(format!("not JSON: {text}"));
    };
    let event = v["event"].as_str().unwrap_or_default();
    let channel = || v["channel"].as_str().unwrap_or_default().to_owned();
    match event {
        API_EVENT | CLIENT_EVENT => match (extract_num(text, "s"), extract_num(text, "t")) {
            (Some(seq), Some(sent_us)) => Incoming::Event {
                channel: channel(),
                seq,
                sent_us,
                client: event == CLIENT_EVENT,
            },
            _ => Incoming::Error(format!("soak event without s and t: {text}")),
        },
        names::SUBSCRIPTION_SUCCEEDED => {
            let members = data_object(&v).and_then(|d| {
                d["presence"]["ids"].as_array().map(|ids| {
                    ids.iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect()
                })
            });
            Incoming::Subscribed {
                channel: channel(),
                members,
            }
        }
        names::MEMBER_ADDED | names::MEMBER_REMOVED => {
            let user = data_object(&v)
                .and_then(|d| d["user_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Incoming::Member {
                channel: channel(),
                user,
                added: event == names::MEMBER_ADDED,
            }
        }
        names::PING => Incoming::Ping,
        names::PONG => Incoming::Pong,
        names::ERROR | names::SUBSCRIPTION_ERROR => Incoming::Error(text.to_owned()),
        _ => Incoming::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        assert_eq!(
            parse(r#"{"event":"soak","channel":"soak-0-1","data":"{\"t\":10,\"s\":3}"}"#),
            Incoming::Event {
                channel: "soak-0-1".into(),
                seq: 3,
                sent_us: 10,
                client: false
            }
        );
        assert_eq!(
            parse(
                r#"{"event":"client-soak","channel":"private-x","data":{"t":11,"s":0},"user_id":"u"}"#
            ),
            Incoming::Event {
                channel: "private-x".into(),
                seq: 0,
                sent_us: 11,
                client: true
            }
        );
        assert_eq!(
            parse(
                r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-a","data":"{\"presence\":{\"ids\":[\"u1\",\"u2\"],\"hash\":{},\"count\":2}}"}"#
            ),
            Incoming::Subscribed {
                channel: "presence-a".into(),
                members: Some(vec!["u1".into(), "u2".into()])
            }
        );
        assert_eq!(
            parse(
                r#"{"event":"pusher_internal:subscription_succeeded","channel":"a","data":"{}"}"#
            ),
            Incoming::Subscribed {
                channel: "a".into(),
                members: None
            }
        );
        assert_eq!(
            parse(
                r#"{"event":"pusher_internal:member_removed","channel":"presence-a","data":"{\"user_id\":\"c1\"}"}"#
            ),
            Incoming::Member {
                channel: "presence-a".into(),
                user: "c1".into(),
                added: false
            }
        );
        assert_eq!(
            parse(r#"{"event":"pusher:pong","data":{}}"#),
            Incoming::Pong
        );
        assert_eq!(
            parse(r#"{"event":"pusher:ping","data":{}}"#),
            Incoming::Ping
        );
        assert!(matches!(parse("nope"), Incoming::Error(_)));
        assert!(matches!(
            parse(r#"{"event":"soak","channel":"a","data":"{}"}"#),
            Incoming::Error(_)
        ));
        assert_eq!(parse(r#"{"event":"x"}"#), Incoming::Other);
    }
}
