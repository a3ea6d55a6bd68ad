//! Channel authorization and user sign-in signatures (PROTOCOL.md §6).
//!
//! Every signed string is built here from typed values only: a [`SocketId`]
//! cannot contain `:`, a [`ChannelName`] cannot contain `:`, so the fields of
//! `socket_id:channel[:channel_data]` and `socket_id::user::user_data` cannot be
//! shifted by a crafted input.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{ChannelName, SocketId};

type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 32]);

impl Signature {
    /// Lower-case hex, as the Pusher SDKs write it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

/// Why an `auth` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `auth` value where one is needed.
    #[error("Auth info required to subscribe to {0}")]
    Missing(String),
    /// `auth` is not `key:64-hex-digits`.
    #[error("Invalid auth format: expected \"app_key:hex_signature\"")]
    Malformed,
    /// The key part is not this app's key.
    #[error("Invalid key in subscription auth data: '{0}'")]
    WrongKey(String),
    /// The MAC does not match. Carries the string that should have been signed
    /// (never the expected signature).
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {0}")]
    BadSignature(String),
}

/// HMAC-SHA256 of `message` under `secret`.
pub fn hmac_sha256(secret: &[u8], message: &[u8]) -> Signature {
    Signature(mac(secret, &[message]).finalize().into_bytes().into())
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    for p in parts {
        m.update(p);
    }
    m
}

/// Verifies `sig` over `message` in constant time.
pub fn verify_hmac(secret: &[u8], message: &[u8], sig: &[u8]) -> bool {
    mac(secret, &[message]).verify_slice(sig).is_ok()
}

/// The string signed to authorize `socket` on `channel`: `socket:channel` or,
/// for presence, `socket:channel:channel_data`.
pub fn channel_string_to_sign(
    socket: &SocketId,
    channel: &ChannelName,
    channel_data: Option<&str>,
) -> String {
    match channel_data {
        Some(d) => format!("{socket}:{channel}:{d}"),
        None => format!("{socket}:{channel}"),
    }
}

/// The string signed for a user sign-in: `socket::user::user_data`.
pub fn user_string_to_sign(socket: &SocketId, user_data: &str) -> String {
    format!("{socket}::user::{user_data}")
}

/// Signs a channel authorization.
pub fn sign_channel(
    secret: &[u8],
    socket: &SocketId,
    channel: &ChannelName,
    channel_data: Option<&str>,
) -> Signature {
    hmac_sha256(
        secret,
        channel_string_to_sign(socket, channel, channel_data).as_bytes(),
    )
}

/// Signs a user sign-in.
pub fn sign_user(secret: &[u8], socket: &SocketId, user_data: &str) -> Signature {
    hmac_sha256(secret, user_string_to_sign(socket, user_data).as_bytes())
}

/// The `auth` value sent by a client: `"{key}:{hex}"`.
pub fn auth_value(key: &str, sig: &Signature) -> String {
    format!("{key}:{}", sig.to_hex())
}

/// Splits an `auth` value at its first `:`, checks the key, and decodes the
/// 32-byte signature (hex of either case).
pub fn parse_auth(auth: &str, app_key: &str) -> Result<[u8; 32], AuthError> {
    let (key, hex_sig) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    if key != app_key {
        let shown: String = key.chars().take(64).collect();
        return Err(AuthError::WrongKey(shown));
    }
    let mut out = [0u8; 32];
    if hex_sig.len() != 64 {
        return Err(AuthError::Malformed);
    }
    hex::decode_to_slice(hex_sig, &mut out).map_err(|_| AuthError::Malformed)?;
    Ok(out)
}

/// Verifies a channel `auth` value for a socket (constant-time MAC check).
pub fn verify_channel(
    app_key: &str,
    secret: &[u8],
    auth: &str,
    socket: &SocketId,
    channel: &ChannelName,
    channel_data: Option<&str>,
) -> Result<(), AuthError> {
    if auth.is_empty() {
        return Err(AuthError::Missing(channel.to_string()));
    }
    let sig = parse_auth(auth, app_key)?;
    let to_sign = channel_string_to_sign(socket, channel, channel_data);
    if verify_hmac(secret, to_sign.as_bytes(), &sig) {
        Ok(())
    } else {
        Err(AuthError::BadSignature(to_sign))
    }
}

/// Verifies a `pusher:signin` `auth` value (constant-time MAC check).
pub fn verify_user(
    app_key: &str,
    secret: &[u8],
    auth: &str,
    socket: &SocketId,
    user_data: &str,
) -> Result<(), AuthError> {
    let sig = parse_auth(auth, app_key)?;
    let to_sign = user_string_to_sign(socket, user_data);
    if verify_hmac(secret, to_sign.as_bytes(), &sig) {
        Ok(())
    } else {
        Err(AuthError::BadSignature(to_sign))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &[u8] = b"7ad3773142a6692b25b8";

    fn sock() -> SocketId {
        "1234.1234".parse().unwrap()
    }

    #[test]
    fn kat_private() {
        let ch = ChannelName::parse("private-foobar").unwrap();
        let sig = sign_channel(SECRET, &sock(), &ch, None);
        assert_eq!(
            sig.to_hex(),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        let auth = auth_value(KEY, &sig);
        assert!(verify_channel(KEY, SECRET, &auth, &sock(), &ch, None).is_ok());
        assert!(
            verify_channel(
                KEY,
                SECRET,
                &auth.to_uppercase().replace(&KEY.to_uppercase(), KEY),
                &sock(),
                &ch,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn kat_presence() {
        let ch = ChannelName::parse("presence-foobar").unwrap();
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        let sig = sign_channel(SECRET, &sock(), &ch, Some(data));
        assert_eq!(
            sig.to_hex(),
            "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
        );
    }

    #[test]
    fn kat_encrypted_auth() {
        let ch = ChannelName::parse("private-encrypted-foo").unwrap();
        let sig = sign_channel(SECRET, &sock(), &ch, None);
        assert_eq!(
            sig.to_hex(),
            "e85caab4331194145d44feae15aea9539ea50631afacbc593a9555ceadc42357"
        );
    }

    #[test]
    fn kat_user() {
        let sig = sign_user(SECRET, &sock(), r#"{"id":"12345"}"#);
        assert_eq!(
            sig.to_hex(),
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
        );
        let sig = sign_user(
            SECRET,
            &sock(),
            r#"{"id":"12345","user_info":{"name":"Alice"}}"#,
        );
        assert_eq!(
            sig.to_hex(),
            "ce475882a5db9a1b8f065436323988ffd226a9efd61f91ec593a18533b21169f"
        );
    }

    #[test]
    fn kat_node_sdk_cross_check() {
        // pusher-http-node tests/integration/pusher/authenticate.js (PROTOCOL.md §17 c).
        let s: SocketId = "123.456".parse().unwrap();
        let sig = sign_user(b"tofu", &s, r#"{"id":"45678"}"#);
        assert_eq!(
            sig.to_hex(),
            "f4b1fdeea7c93e32648c7230e32b172057c5623cace6cfce791c6e7035e0babd"
        );
    }

    #[test]
    fn refusals() {
        let ch = ChannelName::parse("private-foobar").unwrap();
        let good = auth_value(KEY, &sign_channel(SECRET, &sock(), &ch, None));
        assert!(matches!(
            verify_channel(KEY, SECRET, "", &sock(), &ch, None),
            Err(AuthError::Missing(_))
        ));
        assert_eq!(
            verify_channel(KEY, SECRET, "nokey", &sock(), &ch, None),
            Err(AuthError::Malformed)
        );
        assert!(matches!(
            verify_channel("other", SECRET, &good, &sock(), &ch, None),
            Err(AuthError::WrongKey(_))
        ));
        assert_eq!(
            verify_channel(KEY, SECRET, &format!("{KEY}:zz"), &sock(), &ch, None),
            Err(AuthError::Malformed)
        );
        let other: SocketId = "1234.1235".parse().unwrap();
        assert!(matches!(
            verify_channel(KEY, SECRET, &good, &other, &ch, None),
            Err(AuthError::BadSignature(_))
        ));
        // The appended channel_data must not be accepted for a private channel.
        assert!(verify_channel(KEY, SECRET, &good, &sock(), &ch, Some("x")).is_err());
        // An error never reveals the expected signature.
        let err = verify_channel(
            KEY,
            SECRET,
            &format!("{KEY}:{}", "0".repeat(64)),
            &sock(),
            &ch,
            None,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("58df8b0c"));
    }

    #[test]
    fn injection_signature_cannot_be_reused() {
        // A signature an app produced for socket "1234.1234:private-victim" on
        // channel "x" signs the string "1234.1234:private-victim:x". It must not
        // verify for the victim channel from socket 1234.1234 — and the socket id
        // itself never parses, so no signer can be handed it.
        assert!("1234.1234:private-victim".parse::<SocketId>().is_err());
        let forged = hmac_sha256(SECRET, b"1234.1234:private-victim");
        let victim = ChannelName::parse("private-victim").unwrap();
        // Same bytes as a legitimate string: this is why the strict parsers matter.
        assert_eq!(forged, sign_channel(SECRET, &sock(), &victim, None));
    }
}
