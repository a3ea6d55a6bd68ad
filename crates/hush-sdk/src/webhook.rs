//! Webhooks from hush (or Pusher) to the app: signature check and typed
//! events (PROTOCOL.md §13).
//!
//! Verify with the raw body bytes exactly as received, before any parsing:
//!
//! ```
//! let body = br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}"#;
//! let hook = hush_sdk::webhook::verify(
//!     "278d425bdf160c739803",
//!     b"7ad3773142a6692b25b8",
//!     "278d425bdf160c739803",                                              // X-Pusher-Key
//!     "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa", // X-Pusher-Signature
//!     body,
//! )?;
//! assert_eq!(hook.time_ms, 1327078148132);
//! # Ok::<(), hush_sdk::WebhookError>(())
//! ```

use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

/// A verified webhook request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Webhook {
    /// When the server created it, Unix milliseconds.
    pub time_ms: u64,
    /// The events, in the order sent.
    pub events: Vec<WebhookEvent>,
}

/// One webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// A channel got its first subscriber.
    ChannelOccupied {
        /// The channel.
        channel: String,
    },
    /// A channel lost its last subscriber.
    ChannelVacated {
        /// The channel.
        channel: String,
    },
    /// A user's first connection joined a presence channel.
    MemberAdded {
        /// The channel.
        channel: String,
        /// The user id.
        user_id: String,
    },
    /// A user's last connection left a presence channel.
    MemberRemoved {
        /// The channel.
        channel: String,
        /// The user id.
        user_id: String,
    },
    /// A client event was relayed.
    ClientEvent {
        /// The channel.
        channel: String,
        /// The event name (`client-…`).
        event: String,
        /// The event data as a string.
        data: String,
        /// The sender's socket id.
        socket_id: String,
        /// The sender's user id (presence channels).
        user_id: Option<String>,
    },
    /// Someone subscribed to a cache channel with nothing cached.
    CacheMiss {
        /// The channel.
        channel: String,
    },
    /// A channel's subscription count changed.
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// Subscribed connections.
        subscription_count: u64,
    },
    /// An event this SDK does not know (kept for forward compatibility).
    Other {
        /// Its `name`.
        name: String,
        /// The whole event object.
        raw: Value,
    },
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// `X-Pusher-Key` is not this app's key.
    #[error("webhook key does not match the app key")]
    WrongKey,
    /// `X-Pusher-Signature` does not match the body.
    #[error("invalid webhook signature")]
    BadSignature,
    /// Signed correctly, but not the webhook JSON shape.
    #[error("invalid webhook body: {0}")]
    Malformed(String),
}

/// Checks the key and the signature (HMAC-SHA256 of `body` under `secret`,
/// compared in constant time), then parses the body.
pub fn verify(
    app_key: &str,
    secret: &[u8],
    key_header: &str,
    signature_header: &str,
    body: &[u8],
) -> Result<Webhook, WebhookError> {
    let key_ok: bool = app_key.as_bytes().ct_eq(key_header.as_bytes()).into();
    let sig_ok = hush_protocol::webhook::verify_body(secret, body, signature_header.trim());
    if !key_ok {
        return Err(WebhookError::WrongKey);
    }
    if !sig_ok {
        return Err(WebhookError::BadSignature);
    }
    parse(body)
}

#[derive(Deserialize)]
struct RawBody {
    time_ms: u64,
    events: Vec<Value>,
}

#[derive(Deserialize)]
struct RawEvent {
    name: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    user_id: Option<Value>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    subscription_count: Option<Value>,
}

/// Parses a webhook body **without** checking its signature; use [`verify`]
/// on anything received from the network.
pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
    let raw: RawBody =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let events = raw
        .events
        .into_iter()
        .map(event)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Webhook {
        time_ms: raw.time_ms,
        events,
    })
}

fn event(value: Value) -> Result<WebhookEvent, WebhookError> {
    let e: RawEvent = serde_json::from_value(value.clone())
        .map_err(|err| WebhookError::Malformed(err.to_string()))?;
    let missing =
        |field: &str| WebhookError::Malformed(format!("{} event without {field}", e.name));
    let channel = || e.channel.clone().ok_or_else(|| missing("channel"));
    // user_id is documented as a string; accept a number as its decimal text.
    let user_id = || match &e.user_id {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(missing("user_id")),
    };
    Ok(match e.name.as_str() {
        "channel_occupied" => WebhookEvent::ChannelOccupied {
            channel: channel()?,
        },
        "channel_vacated" => WebhookEvent::ChannelVacated {
            channel: channel()?,
        },
        "member_added" => WebhookEvent::MemberAdded {
            channel: channel()?,
            user_id: user_id()?,
        },
        "member_removed" => WebhookEvent::MemberRemoved {
            channel: channel()?,
            user_id: user_id()?,
        },
        "client_event" => WebhookEvent::ClientEvent {
            channel: channel()?,
            event: e.event.clone().ok_or_else(|| missing("event"))?,
            // Documented as a string; an object is kept as its JSON text.
            data: match &e.data {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => return Err(missing("data")),
            },
            socket_id: e.socket_id.clone().ok_or_else(|| missing("socket_id"))?,
            user_id: user_id().ok(),
        },
        "cache_miss" => WebhookEvent::CacheMiss {
            channel: channel()?,
        },
        "subscription_count" => WebhookEvent::SubscriptionCount {
            channel: channel()?,
            // The docs show the count as a string placeholder; accept both.
            subscription_count: match &e.subscription_count {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| missing("subscription_count"))?,
        },
        _ => WebhookEvent::Other {
            name: e.name.clone(),
            raw: value,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &[u8] = b"7ad3773142a6692b25b8";
    const B1: &[u8] = br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}"#;
    const S1: &str = "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa";
    const B2: &[u8] = br#"{"time_ms":1530710011901,"events":[{"name":"client_event","channel":"private-my-channel","event":"client-event","data":"Unencrypted","socket_id":"240621.35780774"}]}"#;
    const S2: &str = "6a11f381b211b0ebbd9dbd3d74744392b06dca9f0a7d43adff26b68dd77db525";

    #[test]
    fn kat_17f() {
        let h = verify(KEY, SECRET, KEY, S1, B1).unwrap();
        assert_eq!(h.time_ms, 1327078148132);
        assert_eq!(
            h.events,
            vec![WebhookEvent::ChannelOccupied {
                channel: "test_channel".into()
            }]
        );
        let h = verify(KEY, SECRET, KEY, S2, B2).unwrap();
        assert_eq!(
            h.events,
            vec![WebhookEvent::ClientEvent {
                channel: "private-my-channel".into(),
                event: "client-event".into(),
                data: "Unencrypted".into(),
                socket_id: "240621.35780774".into(),
                user_id: None,
            }]
        );
        assert!(verify(KEY, SECRET, KEY, &S1.to_uppercase(), B1).is_ok());
    }

    #[test]
    fn refusals() {
        assert_eq!(
            verify(KEY, SECRET, "other", S1, B1),
            Err(WebhookError::WrongKey)
        );
        assert_eq!(verify(KEY, SECRET, "", S1, B1), Err(WebhookError::WrongKey));
        assert_eq!(
            verify(KEY, SECRET, KEY, S2, B1),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(KEY, b"other", KEY, S1, B1),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            verify(KEY, SECRET, KEY, "", B1),
            Err(WebhookError::BadSignature)
        );
        let mut tampered = B1.to_vec();
        tampered[12] ^= 1;
        assert_eq!(
            verify(KEY, SECRET, KEY, S1, &tampered),
            Err(WebhookError::BadSignature)
        );
        // Valid signature over something that is not a webhook.
        let body = b"[1,2]";
        let sig = hush_protocol::webhook::sign_body(SECRET, body).to_hex();
        assert!(matches!(
            verify(KEY, SECRET, KEY, &sig, body),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn all_event_kinds() {
        let body = br#"{"time_ms":1,"events":[
            {"name":"channel_vacated","channel":"a"},
            {"name":"member_added","channel":"presence-a","user_id":"7"},
            {"name":"member_removed","channel":"presence-a","user_id":8},
            {"name":"client_event","channel":"presence-a","event":"client-x","data":{"k":1},"socket_id":"1.2","user_id":"7"},
            {"name":"cache_miss","channel":"cache-a"},
            {"name":"subscription_count","channel":"a","subscription_count":3},
            {"name":"future_thing","channel":"a","x":1}
        ]}"#;
        let h = parse(body).unwrap();
        assert_eq!(
            h.events[..6],
            [
                WebhookEvent::ChannelVacated {
                    channel: "a".into()
                },
                WebhookEvent::MemberAdded {
                    channel: "presence-a".into(),
                    user_id: "7".into()
                },
                WebhookEvent::MemberRemoved {
                    channel: "presence-a".into(),
                    user_id: "8".into()
                },
                WebhookEvent::ClientEvent {
                    channel: "presence-a".into(),
                    event: "client-x".into(),
                    data: r#"{"k":1}"#.into(),
                    socket_id: "1.2".into(),
                    user_id: Some("7".into()),
                },
                WebhookEvent::CacheMiss {
                    channel: "cache-a".into()
                },
                WebhookEvent::SubscriptionCount {
                    channel: "a".into(),
                    subscription_count: 3
                },
            ]
        );
        assert!(matches!(&h.events[6], WebhookEvent::Other { name, .. } if name == "future_thing"));
        for bad in [
            &br#"{"time_ms":1,"events":[{"name":"member_added","channel":"a"}]}"#[..],
            br#"{"time_ms":1,"events":[{"name":"channel_occupied"}]}"#,
            br#"{"time_ms":1,"events":[{"channel":"a"}]}"#,
            br#"{"events":[]}"#,
            b"not json",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
