//! What a client puts in a subscription or sign-in (PROTOCOL.md §8): socket
//! ids, channel names, user ids, event names and `key:signature` auth values,
//! through the validating parsers and the signers.
//!
//! Oracles: every accepted identifier prints back exactly as given and holds
//! only the characters its rules allow; the signed strings are unambiguous
//! (two different accepted (socket, channel, channel_data) triples never give
//! the same string, and no channel string equals a sign-in string — the 2015
//! `socket_id` injection); an auth value made for one triple verifies for
//! that triple and for no other; `parse_auth` inverts `auth_value`.
#![no_main]

use arbitrary::Arbitrary;
use hush_protocol::auth::{self, Signature};
use hush_protocol::channel::is_channel_char;
use hush_protocol::{ChannelKind, ChannelName, EventName, SocketId, UserId};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "278d425bdf160c739803";
const SECRET: &[u8] = b"7ad3773142a6692b25b8";

#[derive(Arbitrary, Debug)]
struct Triple {
    socket: String,
    channel: String,
    channel_data: Option<String>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    a: Triple,
    b: Triple,
    auth: String,
    user_data: String,
}

type Parsed = (SocketId, ChannelName, Option<String>);

fn parse(t: &Triple) -> Option<Parsed> {
    let socket = SocketId::parse(&t.socket);
    let channel = ChannelName::parse(&t.channel);
    if let Ok(s) = &socket {
        assert_eq!(s.as_str(), t.socket);
        let (x, y) = t.socket.split_once('.').expect("a socket id has a dot");
        assert!(!x.is_empty() && !y.is_empty());
        assert!(x.bytes().chain(y.bytes()).all(|c| c.is_ascii_digit()));
    }
    if let Ok(c) = &channel {
        assert_eq!(c.as_str(), t.channel);
        assert!(!c.as_str().contains(':'), "':' in a channel name: {c}");
        match c.kind() {
            ChannelKind::ServerToUser => {
                let id = c.server_to_user_id().expect("server-to-user id");
                assert!(UserId::parse(id).is_ok());
            }
            _ => assert!(c.as_str().bytes().all(is_channel_char)),
        }
    }
    if let Ok(u) = UserId::parse(&t.channel) {
        assert_eq!(u.as_str(), t.channel);
        assert!(ChannelName::parse(ChannelName::server_to_user(&u).as_str()).is_ok());
    }
    if let Ok(e) = EventName::parse_client(&t.channel) {
        assert!(e.as_str().starts_with("client-"));
        assert!(EventName::parse_api(&t.channel).is_ok());
    }
    if let Ok(e) = EventName::parse_api(&t.channel) {
        assert!(!e.as_str().starts_with("pusher:"));
        assert!(!e.as_str().chars().any(char::is_control));
    }
    Some((socket.ok()?, channel.ok()?, t.channel_data.clone()))
}

fn check(input: &Input) {
    // The auth value parser on hostile input: no panic, and anything it
    // accepts is the key, a colon and 64 hex digits.
    if let Ok(sig) = auth::parse_auth(&input.auth, KEY) {
        let lower = auth::auth_value(KEY, &Signature(sig));
        assert!(input.auth.eq_ignore_ascii_case(&lower));
    }
    let (Some(a), Some(b)) = (parse(&input.a), parse(&input.b)) else {
        return;
    };
    let string_a = auth::channel_string_to_sign(&a.0, &a.1, a.2.as_deref());
    let string_b = auth::channel_string_to_sign(&b.0, &b.1, b.2.as_deref());
    let same = a.0 == b.0 && a.1 == b.1 && a.2 == b.2;
    assert_eq!(string_a == string_b, same, "ambiguous: {string_a:?}");
    assert_ne!(
        auth::user_string_to_sign(&b.0, &input.user_data),
        string_a,
        "a channel string equals a sign-in string"
    );

    let sig = auth::sign_channel(SECRET, &a.0, &a.1, a.2.as_deref());
    let value = auth::auth_value(KEY, &sig);
    assert_eq!(auth::parse_auth(&value, KEY), Ok(sig.0));
    assert!(auth::verify_channel(KEY, SECRET, &value, &a.0, &a.1, a.2.as_deref()).is_ok());
    assert_eq!(
        auth::verify_channel(KEY, SECRET, &value, &b.0, &b.1, b.2.as_deref()).is_ok(),
        same
    );
    // A sign-in signature never passes as a channel authorization.
    let user_sig = auth::sign_user(SECRET, &a.0, &input.user_data);
    let user_value = auth::auth_value(KEY, &user_sig);
    assert!(auth::verify_user(KEY, SECRET, &user_value, &a.0, &input.user_data).is_ok());
    assert!(auth::verify_channel(KEY, SECRET, &user_value, &b.0, &b.1, b.2.as_deref()).is_err());
    // The hostile auth value verifies only if it is the right signature.
    if auth::verify_channel(KEY, SECRET, &input.auth, &a.0, &a.1, a.2.as_deref()).is_ok() {
        assert!(input.auth.eq_ignore_ascii_case(&value));
    }
}

fuzz_target!(|input: Input| check(&input));
