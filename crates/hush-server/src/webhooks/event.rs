//! Webhook events as the server produces them, and their Pusher JSON form.

use hush_protocol::{ChannelName, SocketId};
use serde::Serialize;

use crate::config::WebhookEventType;

/// One webhook event (small: built only when some endpoint of the app wants it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEvent {
    /// First subscriber of a channel.
    ChannelOccupied(ChannelName),
    /// Last subscriber of a channel left.
    ChannelVacated(ChannelName),
    /// A user's first socket joined a presence channel.
    MemberAdded(ChannelName, String),
    /// A user's last socket left a presence channel.
    MemberRemoved(ChannelName, String),
    /// A client event was relayed.
    ClientEvent {
        /// The channel.
        channel: ChannelName,
        /// The `client-*` event name.
        event: String,
        /// The data as a string (an object is serialized to compact JSON).
        data: String,
        /// The sender.
        socket_id: SocketId,
        /// The sender's presence user id (presence channels only).
        user_id: Option<String>,
    },
    /// A subscription to a cache channel found nothing cached.
    CacheMiss(ChannelName),
    /// The subscription count of a (non-presence) channel changed.
    SubscriptionCount(ChannelName, usize),
}

#[derive(Serialize)]
struct Wire<'a> {
    name: &'static str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<usize>,
}

impl HookEvent {
    /// Its type.
    pub fn kind(&self) -> WebhookEventType {
        match self {
            Self::ChannelOccupied(_) => WebhookEventType::ChannelOccupied,
            Self::ChannelVacated(_) => WebhookEventType::ChannelVacated,
            Self::MemberAdded(..) => WebhookEventType::MemberAdded,
            Self::MemberRemoved(..) => WebhookEventType::MemberRemoved,
            Self::ClientEvent { .. } => WebhookEventType::ClientEvent,
            Self::CacheMiss(_) => WebhookEventType::CacheMiss,
            Self::SubscriptionCount(..) => WebhookEventType::SubscriptionCount,
        }
    }

    /// The channel it concerns.
    pub fn channel(&self) -> &ChannelName {
        match self {
            Self::ChannelOccupied(c)
            | Self::ChannelVacated(c)
            | Self::MemberAdded(c, _)
            | Self::MemberRemoved(c, _)
            | Self::CacheMiss(c)
            | Self::SubscriptionCount(c, _)
            | Self::ClientEvent { channel: c, .. } => c,
        }
    }

    /// The event object of a webhook body, with exactly Pusher's fields.
    pub fn to_json(&self) -> String {
        let mut w = Wire {
            name: self.kind().name(),
            channel: self.channel().as_str(),
            event: None,
            data: None,
            socket_id: None,
            user_id: None,
            subscription_count: None,
        };
        match self {
            Self::MemberAdded(_, u) | Self::MemberRemoved(_, u) => w.user_id = Some(u),
            Self::SubscriptionCount(_, n) => w.subscription_count = Some(*n),
            Self::ClientEvent {
                event,
                data,
                socket_id,
                user_id,
                ..
            } => {
                w.event = Some(event);
                w.data = Some(data);
                w.socket_id = Some(socket_id.as_str());
                w.user_id = user_id.as_deref();
            }
            Self::ChannelOccupied(_) | Self::ChannelVacated(_) | Self::CacheMiss(_) => {}
        }
        // Serializing borrowed strings and integers cannot fail.
        serde_json::to_string(&w).unwrap_or_default()
    }
}

/// The `data` of a client event as the webhook carries it: a JSON string is
/// passed through (unescaped), anything else becomes compact JSON.
pub fn client_event_data(raw: Option<&serde_json::value::RawValue>) -> String {
    let Some(raw) = raw else {
        return String::new();
    };
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => raw.get().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    #[test]
    fn pusher_fields_exactly() {
        assert_eq!(
            HookEvent::ChannelOccupied(ch("test_channel")).to_json(),
            r#"{"name":"channel_occupied","channel":"test_channel"}"#
        );
        assert_eq!(
            HookEvent::MemberRemoved(ch("presence-a"), "7".into()).to_json(),
            r#"{"name":"member_removed","channel":"presence-a","user_id":"7"}"#
        );
        assert_eq!(
            HookEvent::SubscriptionCount(ch("a"), 3).to_json(),
            r#"{"name":"subscription_count","channel":"a","subscription_count":3}"#
        );
        assert_eq!(
            HookEvent::ClientEvent {
                channel: ch("private-my-channel"),
                event: "client-event".into(),
                data: "Unencrypted".into(),
                socket_id: SocketId::parse("240621.35780774").unwrap(),
                user_id: None,
            }
            .to_json(),
            r#"{"name":"client_event","channel":"private-my-channel","event":"client-event","data":"Unencrypted","socket_id":"240621.35780774"}"#
        );
    }

    #[test]
    fn client_data_is_always_a_string() {
        let raw = |s: &str| serde_json::value::RawValue::from_string(s.into()).unwrap();
        assert_eq!(client_event_data(Some(&raw(r#""hi \"x\"""#))), r#"hi "x""#);
        assert_eq!(
            client_event_data(Some(&raw(r#"{ "a" : [1, 2] }"#))),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(client_event_data(None), "");
    }
}
