//! Typed HTTP API responses (PROTOCOL.md §12). Unknown members are ignored,
//! so servers may add attributes.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What the API reports about one channel. Only the attributes asked for (and
/// `occupied` on single-channel queries) are present.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// Whether anyone is subscribed (single-channel queries).
    #[serde(default)]
    pub occupied: Option<bool>,
    /// Distinct users (presence channels).
    #[serde(default)]
    pub user_count: Option<u64>,
    /// Subscribed connections.
    #[serde(default)]
    pub subscription_count: Option<u64>,
    /// The cached event of a cache channel (`None` when absent or empty).
    #[serde(default)]
    pub cache: Option<CacheInfo>,
}

/// The last event of a cache channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct CacheInfo {
    /// The event's data string.
    pub data: String,
    /// Seconds it stays cached.
    pub ttl: u64,
}

/// Response of `GET /channels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ChannelsList {
    /// Occupied channels by name, with the attributes asked for.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelInfo>,
}

/// Response of a trigger: per-channel attributes when `info` was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct TriggerResponse {
    /// One entry per channel (empty without `info`).
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelInfo>,
}

/// Response of a batch trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BatchResponse {
    /// One entry per event, in order, when any event asked for `info`
    /// (empty otherwise).
    #[serde(default)]
    pub batch: Vec<ChannelInfo>,
}

/// A member of a presence channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct PresenceUser {
    /// The user id.
    pub id: String,
}

#[derive(Deserialize)]
pub(crate) struct UsersBody {
    pub users: Vec<PresenceUser>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_shapes() {
        let t: TriggerResponse = serde_json::from_str("{}").unwrap();
        assert!(t.channels.is_empty());
        let t: TriggerResponse = serde_json::from_str(
            r#"{"channels":{"presence-foobar":{"user_count":42,"subscription_count":51},"news":{"subscription_count":13}}}"#,
        )
        .unwrap();
        assert_eq!(t.channels["presence-foobar"].user_count, Some(42));
        assert_eq!(t.channels["news"].subscription_count, Some(13));
        let c: ChannelInfo = serde_json::from_str(
            r#"{"occupied":true,"subscription_count":3,"cache":{"data":"{\"lat\":1}","ttl":1200},"extra":1}"#,
        )
        .unwrap();
        assert_eq!(c.occupied, Some(true));
        assert_eq!(c.cache.unwrap().ttl, 1200);
        let c: ChannelInfo = serde_json::from_str(r#"{"occupied":false,"cache":null}"#).unwrap();
        assert_eq!(c.cache, None);
        let b: BatchResponse =
            serde_json::from_str(r#"{"batch":[{"subscription_count":1},{}]}"#).unwrap();
        assert_eq!(b.batch.len(), 2);
        let u: UsersBody = serde_json::from_str(r#"{"users":[{"id":"1"},{"id":"2"}]}"#).unwrap();
        assert_eq!(u.users[1].id, "2");
    }
}
