//! Channel authorization and user authentication: what the app's
//! `/pusher/auth` and `/pusher/user-auth` endpoints return (PROTOCOL.md §6.1).

use std::fmt;

use hush_crypto::epoch::epoch_key;
use hush_protocol::limits::MAX_PRESENCE_USER_INFO_BYTES;
use hush_protocol::presence::{parse_channel_data, parse_user_data};
use hush_protocol::{ChannelKind, auth};
use serde::Serialize;
use serde_json::value::RawValue;
use zeroize::Zeroize;

use crate::config::Config;
use crate::error::{ValidationError, shown};
use crate::payload::{parse_channel, parse_socket_id};

/// Why an authorization was refused. Nothing is signed in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The socket id, or the channel name, does not parse strictly.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Presence data given for a channel that is not `presence-`.
    #[error("{0} is not a presence channel: channel_data is signed only for presence channels")]
    NotPresence(String),
    /// The presence `channel_data` or sign-in `user_data` would be refused by
    /// the server (user id rules, `user_info` over 1 KiB, not JSON).
    #[error("invalid {what}: {reason}")]
    MemberData {
        /// `channel_data` or `user_data`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// An encrypted channel, but no master key in the config.
    #[error("{0} is an encrypted channel: set Config::encryption_master_key")]
    MasterKeyRequired(String),
}

/// A presence member as the app announces it: `channel_data`.
#[derive(Debug, Clone, Serialize)]
pub struct PresenceData {
    /// The user's id (non-empty, ≤ 128 characters, no control characters).
    pub user_id: String,
    /// Optional JSON about the user (≤ 1 KiB), kept as given (member order
    /// included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_info: Option<Box<RawValue>>,
}

impl PresenceData {
    /// A member without `user_info`.
    pub fn new(user_id: impl Into<String>) -> Self {
        Self {
            user_id: user_id.into(),
            user_info: None,
        }
    }

    /// Adds `user_info`, serialized to JSON.
    pub fn with_info<T: Serialize + ?Sized>(mut self, info: &T) -> Result<Self, AuthError> {
        self.user_info =
            Some(
                serde_json::value::to_raw_value(info).map_err(|e| AuthError::MemberData {
                    what: "channel_data",
                    reason: e.to_string(),
                })?,
            );
        Ok(self)
    }
}

/// A signed-in user as the app announces it: `user_data`.
#[derive(Debug, Clone, Serialize)]
pub struct UserData {
    /// The user's id: 1–128 characters of `A-Z a-z 0-9 _ - = @ , . ;` (it
    /// names the user's `#server-to-user-{id}` channel).
    pub id: String,
    /// Optional JSON about the user (≤ 1 KiB), kept as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_info: Option<Box<RawValue>>,
    /// Users whose online status this user may watch (at most 100 are used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchlist: Option<Vec<String>>,
}

impl UserData {
    /// A user with just an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            user_info: None,
            watchlist: None,
        }
    }

    /// Adds `user_info`, serialized to JSON.
    pub fn with_info<T: Serialize + ?Sized>(mut self, info: &T) -> Result<Self, AuthError> {
        self.user_info =
            Some(
                serde_json::value::to_raw_value(info).map_err(|e| AuthError::MemberData {
                    what: "user_data",
                    reason: e.to_string(),
                })?,
            );
        Ok(self)
    }

    /// Adds a watchlist.
    pub fn with_watchlist(mut self, ids: Vec<String>) -> Self {
        self.watchlist = Some(ids);
        self
    }
}

/// The JSON body the app's channel auth endpoint returns to pusher-js.
///
/// `shared_secret` (encrypted channels) is the channel's key: `Debug` hides it
/// and it is wiped on drop.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ChannelAuth {
    /// `"{key}:{hex signature}"`.
    pub auth: String,
    /// Presence channels: the exact `channel_data` that was signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
    /// Encrypted channels: the channel key, standard base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<String>,
    /// Encrypted channels with key epochs (hush extension): the epoch of
    /// `shared_secret`. Absent for epoch 0, so the body is Pusher's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
}

impl ChannelAuth {
    /// The response body, e.g. `{"auth":"key:…","channel_data":"…"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("strings always serialize"))
    }
}

impl Drop for ChannelAuth {
    fn drop(&mut self) {
        if let Some(s) = self.shared_secret.as_mut() {
            s.zeroize();
        }
    }
}

impl fmt::Debug for ChannelAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelAuth")
            .field("auth", &self.auth)
            .field("channel_data", &self.channel_data)
            .field(
                "shared_secret",
                &self.shared_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The JSON body the app's user authentication endpoint returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAuth {
    /// `"{key}:{hex signature}"`.
    pub auth: String,
    /// The exact `user_data` that was signed.
    pub user_data: String,
}

impl UserAuth {
    /// The response body, `{"auth":"key:…","user_data":"…"}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("strings always serialize"))
    }
}

fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<String, AuthError> {
    serde_json::to_string(value).map_err(|e| AuthError::MemberData {
        what,
        reason: e.to_string(),
    })
}

pub(crate) fn authorize_channel(
    config: &Config,
    socket_id: &str,
    channel: &str,
    presence: Option<&PresenceData>,
) -> Result<ChannelAuth, AuthError> {
    let socket = parse_socket_id(socket_id)?;
    let channel = parse_channel(channel)?;
    let channel_data = match presence {
        None => None,
        Some(_) if channel.kind() != ChannelKind::Presence => {
            return Err(AuthError::NotPresence(shown(channel.as_str())));
        }
        Some(p) => {
            let data = to_json("channel_data", p)?;
            parse_channel_data(&data, MAX_PRESENCE_USER_INFO_BYTES).map_err(|e| {
                AuthError::MemberData {
                    what: "channel_data",
                    reason: e.to_string(),
                }
            })?;
            Some(data)
        }
    };
    let (shared_secret, epoch) = match channel.kind() {
        ChannelKind::Encrypted => {
            let master = config
                .encryption_master_key
                .as_ref()
                .ok_or_else(|| AuthError::MasterKeyRequired(channel.to_string()))?;
            let epoch = config.current_epoch();
            let key = epoch_key(&channel, master, epoch).to_base64();
            (Some(key), (epoch != 0).then_some(epoch))
        }
        _ => (None, None),
    };
    let sig = auth::sign_channel(
        config.secret.as_bytes(),
        &socket,
        &channel,
        channel_data.as_deref(),
    );
    Ok(ChannelAuth {
        auth: auth::auth_value(&config.key, &sig),
        channel_data,
        shared_secret,
        epoch,
    })
}

pub(crate) fn authenticate_user(
    config: &Config,
    socket_id: &str,
    user: &UserData,
) -> Result<UserAuth, AuthError> {
    let socket = parse_socket_id(socket_id)?;
    let user_data = to_json("user_data", user)?;
    parse_user_data(&user_data, MAX_PRESENCE_USER_INFO_BYTES).map_err(|e| {
        AuthError::MemberData {
            what: "user_data",
            reason: e.to_string(),
        }
    })?;
    let sig = auth::sign_user(config.secret.as_bytes(), &socket, &user_data);
    Ok(UserAuth {
        auth: auth::auth_value(&config.key, &sig),
        user_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_crypto::MasterKey;
    use serde_json::json;

    const KEY: &str = "278d425bdf160c739803";

    fn config() -> Config {
        Config::new("3", KEY, "7ad3773142a6692b25b8").with_master_key(
            MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").unwrap(),
        )
    }

    #[test]
    fn epoch_in_the_auth_response() {
        let plain =
            authorize_channel(&config(), "1234.1234", "private-encrypted-foo", None).unwrap();
        assert_eq!(plain.epoch, None);
        assert_eq!(
            plain.shared_secret.as_deref(),
            Some("3x0KbqI7rIgm1LH1vj0MbmQu3a1H1t0DYjzwM8+rKlc=")
        );
        let config = config().with_key_epochs(crate::EpochPolicy::Fixed(7));
        let at7 = authorize_channel(&config, "1234.1234", "private-encrypted-foo", None).unwrap();
        assert_eq!(at7.epoch, Some(7));
        // The signature is Pusher's: it does not cover the key or the epoch.
        assert_eq!(at7.auth, plain.auth);
        let master = config.encryption_master_key.as_ref().unwrap();
        let channel = hush_protocol::ChannelName::parse("private-encrypted-foo").unwrap();
        assert_eq!(
            at7.shared_secret.as_deref(),
            Some(epoch_key(&channel, master, 7).to_base64().as_str())
        );
    }

    #[test]
    fn periodic_epochs() {
        use std::time::Duration;
        let p = crate::EpochPolicy::Periodic {
            origin_unix_secs: 1_000,
            period: Duration::from_secs(100),
        };
        assert_eq!(p.epoch_at(0), 1);
        assert_eq!(p.epoch_at(1_099), 1);
        assert_eq!(p.epoch_at(1_100), 2);
        assert_eq!(crate::EpochPolicy::default().epoch_at(5_000), 0);
    }

    #[test]
    fn kat_private_17a() {
        let a = authorize_channel(&config(), "1234.1234", "private-foobar", None).unwrap();
        assert_eq!(
            a.to_json(),
            r#"{"auth":"278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"}"#
        );
    }

    #[test]
    fn kat_presence_17b_with_a_string_user_id() {
        // (b) itself uses the number 10; the SDK always sends a string id, so
        // check the signature over the exact channel_data it produced.
        let p = PresenceData::new("10")
            .with_info(&json!({"name": "Mr. Channels"}))
            .unwrap();
        let a = authorize_channel(&config(), "1234.1234", "presence-foobar", Some(&p)).unwrap();
        let cd = a.channel_data.clone().unwrap();
        assert_eq!(
            cd,
            r#"{"user_id":"10","user_info":{"name":"Mr. Channels"}}"#
        );
        let sig = a.auth.strip_prefix("278d425bdf160c739803:").unwrap();
        assert_eq!(sig, hex_hmac(&format!("1234.1234:presence-foobar:{cd}")));
    }

    #[test]
    fn user_info_member_order_is_kept() {
        let info: Box<RawValue> = serde_json::from_str(r#"{"z":1,"a":2}"#).unwrap();
        let p = PresenceData {
            user_id: "u".into(),
            user_info: Some(info),
        };
        let a = authorize_channel(&config(), "1.1", "presence-x", Some(&p)).unwrap();
        assert_eq!(
            a.channel_data.as_deref(),
            Some(r#"{"user_id":"u","user_info":{"z":1,"a":2}}"#)
        );
    }

    fn hex_hmac(s: &str) -> String {
        hush_protocol::auth::hmac_sha256(b"7ad3773142a6692b25b8", s.as_bytes()).to_hex()
    }

    #[test]
    fn kat_encrypted_17c() {
        let a = authorize_channel(&config(), "1234.1234", "private-encrypted-foo", None).unwrap();
        assert_eq!(
            a.to_json(),
            r#"{"auth":"278d425bdf160c739803:e85caab4331194145d44feae15aea9539ea50631afacbc593a9555ceadc42357","shared_secret":"3x0KbqI7rIgm1LH1vj0MbmQu3a1H1t0DYjzwM8+rKlc="}"#
        );
        assert!(!format!("{a:?}").contains("3x0Kbq"));
        let no_key = Config::new("3", KEY, "7ad3773142a6692b25b8");
        assert_eq!(
            authorize_channel(&no_key, "1234.1234", "private-encrypted-foo", None),
            Err(AuthError::MasterKeyRequired("private-encrypted-foo".into()))
        );
    }

    #[test]
    fn kat_user_17b2() {
        let u = authenticate_user(&config(), "1234.1234", &UserData::new("12345")).unwrap();
        assert_eq!(
            u.to_json(),
            r#"{"auth":"278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba","user_data":"{\"id\":\"12345\"}"}"#
        );
        let u = authenticate_user(
            &config(),
            "1234.1234",
            &UserData::new("12345")
                .with_info(&json!({"name": "Alice"}))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            u.auth,
            "278d425bdf160c739803:ce475882a5db9a1b8f065436323988ffd226a9efd61f91ec593a18533b21169f"
        );
        let node = Config::new("1", "f00d", "tofu");
        let u = authenticate_user(&node, "123.456", &UserData::new("45678")).unwrap();
        assert_eq!(
            u.auth,
            "f00d:f4b1fdeea7c93e32648c7230e32b172057c5623cace6cfce791c6e7035e0babd"
        );
    }

    #[test]
    fn refuses_injection_and_lookalikes() {
        let c = config();
        for bad in [
            "1.1:private-x",
            "1.1\n",
            "\u{661}\u{662}\u{663}.\u{664}\u{665}\u{666}",
            "１.１",
            " 1.1",
            "1.1 ",
            "",
            "1",
            "1.1.1",
        ] {
            assert!(
                matches!(
                    authorize_channel(&c, bad, "private-x", None),
                    Err(AuthError::Invalid(ValidationError::SocketId(_)))
                ),
                "{bad:?}"
            );
            assert!(
                matches!(
                    authenticate_user(&c, bad, &UserData::new("1")),
                    Err(AuthError::Invalid(ValidationError::SocketId(_)))
                ),
                "{bad:?}"
            );
        }
        for bad in [
            "private-a:b",
            "private-x\n",
            "",
            "\u{440}rivate-x",
            "#server-to-user-1",
        ] {
            assert!(
                matches!(
                    authorize_channel(&c, "1.1", bad, None),
                    Err(AuthError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn member_data_rules() {
        let c = config();
        assert!(matches!(
            authorize_channel(&c, "1.1", "private-x", Some(&PresenceData::new("1"))),
            Err(AuthError::NotPresence(_))
        ));
        assert!(matches!(
            authorize_channel(&c, "1.1", "presence-x", Some(&PresenceData::new(""))),
            Err(AuthError::MemberData { .. })
        ));
        assert!(matches!(
            authorize_channel(
                &c,
                "1.1",
                "presence-x",
                Some(&PresenceData::new("a".repeat(129)))
            ),
            Err(AuthError::MemberData { .. })
        ));
        let big = PresenceData::new("1").with_info(&"x".repeat(2000)).unwrap();
        assert!(matches!(
            authorize_channel(&c, "1.1", "presence-x", Some(&big)),
            Err(AuthError::MemberData { .. })
        ));
        // Presence through sign-in: no channel_data, signs socket:channel.
        let a = authorize_channel(&c, "1.1", "presence-x", None).unwrap();
        assert_eq!(a.channel_data, None);
        for bad in ["", "a:b", "a b", "ü"] {
            assert!(
                matches!(
                    authenticate_user(&c, "1.1", &UserData::new(bad)),
                    Err(AuthError::MemberData { .. })
                ),
                "{bad:?}"
            );
        }
        let w = UserData::new("1").with_watchlist(vec!["2".into(), "3".into()]);
        let u = authenticate_user(&c, "1.1", &w).unwrap();
        assert_eq!(u.user_data, r#"{"id":"1","watchlist":["2","3"]}"#);
    }
}
