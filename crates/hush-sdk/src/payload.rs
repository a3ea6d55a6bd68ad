//! Trigger inputs and how they become request bodies: validation, the Node
//! SDK's JSON rules, and suite 0 encryption.

use hush_crypto::epoch::epoch_key;
use hush_crypto::{EncryptedData, MasterKey};
use hush_protocol::limits::{MAX_BATCH_EVENTS, MAX_CHANNELS_PER_TRIGGER, MAX_EVENT_DATA_BYTES};
use hush_protocol::{ChannelKind, ChannelName, EventName, SocketId, UserId};
use serde::{Serialize, Serializer};

use crate::error::{ValidationError, shown};

/// A channel attribute the HTTP API can report (`info=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attribute {
    /// Distinct users (presence channels only).
    UserCount,
    /// Subscribed connections.
    SubscriptionCount,
    /// The cached event (cache channels only; single-channel query).
    Cache,
}

impl Attribute {
    /// The wire name (`user_count`, `subscription_count`, `cache`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserCount => "user_count",
            Self::SubscriptionCount => "subscription_count",
            Self::Cache => "cache",
        }
    }
}

/// The comma list for `info`, or `None` when empty.
pub(crate) fn info_list(info: &[Attribute]) -> Option<String> {
    (!info.is_empty()).then(|| {
        info.iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Options of [`crate::Client::trigger`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerOptions {
    /// Exclude this connection from delivery (the sender's own socket).
    pub socket_id: Option<String>,
    /// Ask for channel attributes in the response.
    pub info: Vec<Attribute>,
}

/// Query of [`crate::Client::channels`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelsQuery {
    /// Only channels whose names start with this.
    pub filter_by_prefix: Option<String>,
    /// Attributes per channel (`user_count` needs a `presence-` prefix filter).
    pub info: Vec<Attribute>,
}

/// Event data as the app handed it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// JSON text of a serialized value.
    Json(String),
    /// A string to send (or seal) byte for byte.
    Raw(String),
    /// Already sealed (a sealed event's envelope): sent as is, and only to
    /// an encrypted channel.
    Sealed(String),
}

/// What an encrypted trigger is sealed with: the master key and the epoch.
#[derive(Clone, Copy)]
pub(crate) struct Sealing<'a> {
    pub(crate) master: &'a MasterKey,
    pub(crate) epoch: u64,
}

impl Data {
    pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, ValidationError> {
        serde_json::to_string(value)
            .map(Self::Json)
            .map_err(|e| ValidationError::Json(e.to_string()))
    }

    /// The `data` string for `channel`: sealed on encrypted channels (the JSON
    /// text, quotes included), else the JSON text — except that a JSON string
    /// goes out unquoted, as the Node SDK's `ensureJSON` does.
    pub(crate) fn wire(
        &self,
        channel: &ChannelName,
        sealing: Option<Sealing<'_>>,
    ) -> Result<String, ValidationError> {
        let data = if channel.kind() == ChannelKind::Encrypted {
            let Sealing { master, epoch } =
                sealing.ok_or_else(|| ValidationError::MasterKeyRequired(channel.to_string()))?;
            match self {
                Self::Json(text) | Self::Raw(text) => {
                    let key = epoch_key(channel, master, epoch);
                    EncryptedData::seal(&key, text.as_bytes())
                        .with_epoch(epoch)
                        .to_json()
                }
                Self::Sealed(text) => text.clone(),
            }
        } else {
            match self {
                Self::Json(text) if text.starts_with('"') => {
                    serde_json::from_str::<String>(text)
                        .map_err(|e| ValidationError::Json(e.to_string()))?
                }
                Self::Json(text) | Self::Raw(text) => text.clone(),
                Self::Sealed(_) => {
                    return Err(ValidationError::NotEncrypted(channel.to_string()));
                }
            }
        };
        if data.len() > MAX_EVENT_DATA_BYTES {
            return Err(ValidationError::DataTooLarge {
                size: data.len(),
                max: MAX_EVENT_DATA_BYTES,
            });
        }
        Ok(data)
    }
}

/// One event of [`crate::Client::trigger_batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchEvent {
    pub(crate) channel: String,
    pub(crate) name: String,
    pub(crate) data: Data,
    pub(crate) socket_id: Option<String>,
    pub(crate) info: Vec<Attribute>,
}

impl BatchEvent {
    /// An event whose data is `value` serialized to JSON (same rules as
    /// [`crate::Client::trigger`]).
    pub fn new<T: Serialize + ?Sized>(
        channel: impl Into<String>,
        name: impl Into<String>,
        value: &T,
    ) -> Result<Self, ValidationError> {
        Ok(Self::with_data(
            channel.into(),
            name.into(),
            Data::json(value)?,
        ))
    }

    /// An event whose data string is sent (or sealed) byte for byte.
    pub fn raw(
        channel: impl Into<String>,
        name: impl Into<String>,
        data: impl Into<String>,
    ) -> Self {
        Self::with_data(channel.into(), name.into(), Data::Raw(data.into()))
    }

    fn with_data(channel: String, name: String, data: Data) -> Self {
        Self {
            channel,
            name,
            data,
            socket_id: None,
            info: Vec::new(),
        }
    }

    /// Excludes a connection from delivery.
    pub fn socket_id(mut self, socket_id: impl Into<String>) -> Self {
        self.socket_id = Some(socket_id.into());
        self
    }

    /// Asks for channel attributes in the response.
    pub fn info(mut self, info: &[Attribute]) -> Self {
        self.info = info.to_vec();
        self
    }
}

pub(crate) fn parse_channel(name: &str) -> Result<ChannelName, ValidationError> {
    let channel = ChannelName::parse(name).map_err(|reason| ValidationError::Channel {
        name: shown(name),
        reason,
    })?;
    if channel.kind() == ChannelKind::ServerToUser {
        return Err(ValidationError::ServerToUserChannel(shown(name)));
    }
    Ok(channel)
}

pub(crate) fn parse_event(name: &str) -> Result<EventName, ValidationError> {
    EventName::parse_api(name).map_err(|reason| ValidationError::Event {
        name: shown(name),
        reason,
    })
}

pub(crate) fn parse_socket_id(s: &str) -> Result<SocketId, ValidationError> {
    SocketId::parse(s).map_err(|_| ValidationError::SocketId(shown(s)))
}

pub(crate) fn parse_user_id(s: &str) -> Result<UserId, ValidationError> {
    UserId::parse(s).map_err(|_| ValidationError::UserId(shown(s)))
}

fn serialize_info<S: Serializer>(info: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match info {
        Some(i) => s.serialize_str(i),
        None => s.serialize_none(),
    }
}

/// Body of `POST /events`.
#[derive(Debug, Serialize)]
pub(crate) struct EventBody {
    name: String,
    channels: Vec<String>,
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_info"
    )]
    info: Option<String>,
}

/// Body of `POST /batch_events`.
#[derive(Debug, Serialize)]
pub(crate) struct BatchBody {
    batch: Vec<BatchItem>,
}

#[derive(Debug, Serialize)]
struct BatchItem {
    channel: String,
    name: String,
    data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_info"
    )]
    info: Option<String>,
}

/// Validates a trigger and builds its body. `channels` were parsed by the
/// caller (so `send_to_user` can pass its `#server-to-user-` channel).
pub(crate) fn event_body(
    channels: &[ChannelName],
    event: &str,
    data: &Data,
    options: &TriggerOptions,
    sealing: Option<Sealing<'_>>,
) -> Result<EventBody, ValidationError> {
    let name = parse_event(event)?;
    if channels.is_empty() {
        return Err(ValidationError::NoChannels);
    }
    if channels.len() > MAX_CHANNELS_PER_TRIGGER {
        return Err(ValidationError::TooManyChannels {
            count: channels.len(),
            max: MAX_CHANNELS_PER_TRIGGER,
        });
    }
    if channels.len() > 1 && channels.iter().any(|c| c.kind() == ChannelKind::Encrypted) {
        return Err(ValidationError::EncryptedMultiChannel);
    }
    let socket_id = options
        .socket_id
        .as_deref()
        .map(parse_socket_id)
        .transpose()?;
    // One data string serves every channel: only encrypted triggers (always a
    // single channel) depend on the channel.
    let data = data.wire(&channels[0], sealing)?;
    Ok(EventBody {
        name: name.to_string(),
        channels: channels.iter().map(ToString::to_string).collect(),
        data,
        socket_id: socket_id.map(|s| s.to_string()),
        info: info_list(&options.info),
    })
}

pub(crate) fn batch_body(
    events: &[BatchEvent],
    sealing: Option<Sealing<'_>>,
) -> Result<BatchBody, ValidationError> {
    if events.is_empty() || events.len() > MAX_BATCH_EVENTS {
        return Err(ValidationError::BatchSize {
            count: events.len(),
            max: MAX_BATCH_EVENTS,
        });
    }
    let batch = events
        .iter()
        .map(|e| {
            let channel = parse_channel(&e.channel)?;
            let name = parse_event(&e.name)?;
            let socket_id = e.socket_id.as_deref().map(parse_socket_id).transpose()?;
            Ok(BatchItem {
                data: e.data.wire(&channel, sealing)?,
                channel: channel.to_string(),
                name: name.to_string(),
                socket_id: socket_id.map(|s| s.to_string()),
                info: info_list(&e.info),
            })
        })
        .collect::<Result<Vec<_>, ValidationError>>()?;
    Ok(BatchBody { batch })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::{ChannelKey, open, shared_secret};
    use serde_json::json;

    fn master() -> MasterKey {
        MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").unwrap()
    }

    fn at0(master: &MasterKey) -> Option<Sealing<'_>> {
        Some(Sealing { master, epoch: 0 })
    }

    #[test]
    fn later_epochs_use_the_epoch_key_and_say_so() {
        let ch = parse_channel("private-encrypted-foo").unwrap();
        let m = master();
        let sealed = Data::json("hello")
            .unwrap()
            .wire(
                &ch,
                Some(Sealing {
                    master: &m,
                    epoch: 4,
                }),
            )
            .unwrap();
        let envelope = EncryptedData::from_json(&sealed).unwrap();
        assert_eq!(envelope.epoch(), 4);
        assert_eq!(envelope.open(&epoch_key(&ch, &m, 4)).unwrap(), b"\"hello\"");
        assert!(open(&key_of("private-encrypted-foo"), &sealed).is_err());
        // Already-sealed data goes out untouched, and only to encrypted channels.
        let passthrough = Data::Sealed(sealed.clone()).wire(&ch, at0(&m)).unwrap();
        assert_eq!(passthrough, sealed);
        let news = parse_channel("news").unwrap();
        assert!(matches!(
            Data::Sealed(sealed).wire(&news, at0(&m)),
            Err(ValidationError::NotEncrypted(_))
        ));
    }

    fn chans(names: &[&str]) -> Vec<ChannelName> {
        names.iter().map(|n| parse_channel(n).unwrap()).collect()
    }

    fn key_of(channel: &str) -> ChannelKey {
        shared_secret(&ChannelName::parse(channel).unwrap(), &master())
    }

    #[test]
    fn json_rules_match_the_node_sdk() {
        let news = parse_channel("news").unwrap();
        let wire = |d: Data| d.wire(&news, None).unwrap();
        assert_eq!(wire(Data::json("hello").unwrap()), "hello");
        assert_eq!(wire(Data::json("say \"hi\"").unwrap()), "say \"hi\"");
        assert_eq!(wire(Data::json(&json!({"a": 1})).unwrap()), r#"{"a":1}"#);
        assert_eq!(wire(Data::json(&5).unwrap()), "5");
        assert_eq!(wire(Data::Raw("\"q\"".into())), "\"q\"");
    }

    #[test]
    fn encrypted_data_is_the_json_text() {
        let ch = parse_channel("private-encrypted-foo").unwrap();
        let k = key_of("private-encrypted-foo");
        let sealed = Data::json("hello")
            .unwrap()
            .wire(&ch, at0(&master()))
            .unwrap();
        assert_eq!(open(&k, &sealed).unwrap(), b"\"hello\"");
        let sealed = Data::Raw("hello".into()).wire(&ch, at0(&master())).unwrap();
        assert_eq!(open(&k, &sealed).unwrap(), b"hello");
        assert_eq!(
            Data::json("x").unwrap().wire(&ch, None),
            Err(ValidationError::MasterKeyRequired(
                "private-encrypted-foo".into()
            ))
        );
        // A key for one channel does not open another's data.
        assert!(open(&key_of("private-encrypted-bar"), &sealed).is_err());
    }

    #[test]
    fn size_limit_counts_the_wire_string() {
        let news = parse_channel("news").unwrap();
        assert!(Data::Raw("a".repeat(10_240)).wire(&news, None).is_ok());
        assert_eq!(
            Data::Raw("a".repeat(10_241)).wire(&news, None),
            Err(ValidationError::DataTooLarge {
                size: 10_241,
                max: 10_240
            })
        );
        // Sealing grows the data by a third plus 76 bytes: 7 619 bytes of
        // plaintext is the most that fits in an encrypted event.
        let enc = parse_channel("private-encrypted-x").unwrap();
        assert_eq!(
            Data::Raw("a".repeat(7_619))
                .wire(&enc, at0(&master()))
                .unwrap()
                .len(),
            10_240
        );
        assert_eq!(
            Data::Raw("a".repeat(7_620)).wire(&enc, at0(&master())),
            Err(ValidationError::DataTooLarge {
                size: 10_244,
                max: 10_240
            })
        );
        assert!(Data::Raw("a".repeat(7_620)).wire(&news, None).is_ok());
    }

    #[test]
    fn trigger_validation() {
        let d = Data::Raw("x".into());
        let opts = TriggerOptions::default();
        let body = event_body(&chans(&["a", "b"]), "ev", &d, &opts, None).unwrap();
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"name":"ev","channels":["a","b"],"data":"x"}"#
        );
        let with = TriggerOptions {
            socket_id: Some("123.456".into()),
            info: vec![Attribute::UserCount, Attribute::SubscriptionCount],
        };
        let body = event_body(&chans(&["presence-a"]), "ev", &d, &with, None).unwrap();
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"name":"ev","channels":["presence-a"],"data":"x","socket_id":"123.456","info":"user_count,subscription_count"}"#
        );
        assert_eq!(
            event_body(&[], "ev", &d, &opts, None).err(),
            Some(ValidationError::NoChannels)
        );
        let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            event_body(&chans(&many), "ev", &d, &opts, None).err(),
            Some(ValidationError::TooManyChannels {
                count: 101,
                max: 100
            })
        );
        assert!(event_body(&chans(&many[..100]), "ev", &d, &opts, None).is_ok());
        assert_eq!(
            event_body(
                &chans(&["private-encrypted-a", "news"]),
                "ev",
                &d,
                &opts,
                at0(&master())
            )
            .err(),
            Some(ValidationError::EncryptedMultiChannel)
        );
        assert_eq!(
            event_body(
                &chans(&["news", "private-encrypted-a"]),
                "ev",
                &d,
                &opts,
                at0(&master())
            )
            .err(),
            Some(ValidationError::EncryptedMultiChannel)
        );
        assert!(matches!(
            event_body(&chans(&["a"]), "pusher:x", &d, &opts, None),
            Err(ValidationError::Event { .. })
        ));
        assert!(matches!(
            event_body(&chans(&["a"]), &"e".repeat(201), &d, &opts, None),
            Err(ValidationError::Event { .. })
        ));
        for bad in ["1.1:private-x", "1.1\n", "\u{661}.\u{662}", "", "1"] {
            let o = TriggerOptions {
                socket_id: Some(bad.into()),
                ..TriggerOptions::default()
            };
            assert!(
                matches!(
                    event_body(&chans(&["a"]), "ev", &d, &o, None),
                    Err(ValidationError::SocketId(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn channel_parsing() {
        assert!(matches!(
            parse_channel("private-a:b"),
            Err(ValidationError::Channel { .. })
        ));
        assert!(matches!(
            parse_channel(""),
            Err(ValidationError::Channel { .. })
        ));
        assert!(matches!(
            parse_channel(&"a".repeat(201)),
            Err(ValidationError::Channel { .. })
        ));
        assert!(matches!(
            parse_channel("#server-to-user-1"),
            Err(ValidationError::ServerToUserChannel(_))
        ));
        let e = parse_channel("bad\nname").unwrap_err().to_string();
        assert!(e.contains(r"bad\nname"), "{e}");
    }

    #[test]
    fn batch_validation() {
        let ev = |c: &str| BatchEvent::raw(c, "ev", "d");
        assert_eq!(
            batch_body(&[], None).err(),
            Some(ValidationError::BatchSize { count: 0, max: 10 })
        );
        let eleven: Vec<BatchEvent> = (0..11).map(|_| ev("a")).collect();
        assert_eq!(
            batch_body(&eleven, None).err(),
            Some(ValidationError::BatchSize { count: 11, max: 10 })
        );
        assert!(batch_body(&eleven[..10], None).is_ok());
        let body = batch_body(
            &[
                ev("a")
                    .socket_id("1.2")
                    .info(&[Attribute::SubscriptionCount]),
                BatchEvent::new("private-encrypted-foo", "ev", &json!({"m": 1})).unwrap(),
            ],
            at0(&master()),
        )
        .unwrap();
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(
            v["batch"][0],
            json!({"channel":"a","name":"ev","data":"d","socket_id":"1.2","info":"subscription_count"})
        );
        let sealed = v["batch"][1]["data"].as_str().unwrap();
        assert_eq!(
            open(&key_of("private-encrypted-foo"), sealed).unwrap(),
            br#"{"m":1}"#
        );
        assert!(matches!(
            batch_body(&[ev("a").socket_id("1.1:private-x")], None),
            Err(ValidationError::SocketId(_))
        ));
        assert!(matches!(
            batch_body(&[ev("private-encrypted-a")], None),
            Err(ValidationError::MasterKeyRequired(_))
        ));
    }
}
