//! Webhook requests as an app receives them (hush-sdk `webhook::verify` /
//! `parse`, PROTOCOL.md §13), and the server's webhook event encoder
//! (`HookEvent::to_json`) feeding the SDK parser.
//!
//! Oracles: a hostile body never panics the parser; it verifies only with
//! its own HMAC and the app key; `verify` with the right signature gives
//! what `parse` gives; every event the server can encode comes out of the
//! SDK as the same typed event (same channel, user id, client event name,
//! data and socket id).
#![no_main]

use arbitrary::Arbitrary;
use hush_protocol::{ChannelName, SocketId, webhook};
use hush_sdk::webhook as sdk;
use hush_sdk::{WebhookError, WebhookEvent};
use hush_server::webhooks::HookEvent;
use libfuzzer_sys::fuzz_target;

const KEY: &str = "278d425bdf160c739803";
const SECRET: &[u8] = b"7ad3773142a6692b25b8";

#[derive(Arbitrary, Debug)]
enum Ev {
    Occupied(String),
    Vacated(String),
    Added(String, String),
    Removed(String, String),
    Client {
        channel: String,
        event: String,
        data: String,
        socket: (u64, u64),
        user_id: Option<String>,
    },
    CacheMiss(String),
    Count(String, usize),
}

#[derive(Arbitrary, Debug)]
struct Input {
    body: Vec<u8>,
    signature: String,
    time_ms: u64,
    events: Vec<Ev>,
}

fn hook(ev: &Ev) -> Option<(HookEvent, WebhookEvent)> {
    let ch = |s: &str| ChannelName::parse(s).ok();
    Some(match ev {
        Ev::Occupied(c) => (
            HookEvent::ChannelOccupied(ch(c)?),
            WebhookEvent::ChannelOccupied { channel: c.clone() },
        ),
        Ev::Vacated(c) => (
            HookEvent::ChannelVacated(ch(c)?),
            WebhookEvent::ChannelVacated { channel: c.clone() },
        ),
        Ev::Added(c, u) => (
            HookEvent::MemberAdded(ch(c)?, u.clone()),
            WebhookEvent::MemberAdded {
                channel: c.clone(),
                user_id: u.clone(),
            },
        ),
        Ev::Removed(c, u) => (
            HookEvent::MemberRemoved(ch(c)?, u.clone()),
            WebhookEvent::MemberRemoved {
                channel: c.clone(),
                user_id: u.clone(),
            },
        ),
        Ev::Client {
            channel,
            event,
            data,
            socket,
            user_id,
        } => {
            let socket_id = SocketId::from_parts(socket.0, socket.1);
            (
                HookEvent::ClientEvent {
                    channel: ch(channel)?,
                    event: event.clone(),
                    data: data.clone(),
                    socket_id: socket_id.clone(),
                    user_id: user_id.clone(),
                },
                WebhookEvent::ClientEvent {
                    channel: channel.clone(),
                    event: event.clone(),
                    data: data.clone(),
                    socket_id: socket_id.to_string(),
                    user_id: user_id.clone(),
                },
            )
        }
        Ev::CacheMiss(c) => (
            HookEvent::CacheMiss(ch(c)?),
            WebhookEvent::CacheMiss { channel: c.clone() },
        ),
        Ev::Count(c, n) => (
            HookEvent::SubscriptionCount(ch(c)?, *n),
            WebhookEvent::SubscriptionCount {
                channel: c.clone(),
                subscription_count: u64::try_from(*n).ok()?,
            },
        ),
    })
}

fn check(input: &Input) {
    // Hostile body and signature.
    let parsed = sdk::parse(&input.body);
    let good_sig = webhook::sign_body(SECRET, &input.body).to_hex();
    match sdk::verify(KEY, SECRET, KEY, &input.signature, &input.body) {
        Ok(h) => {
            assert!(input.signature.trim().eq_ignore_ascii_case(&good_sig));
            assert_eq!(Ok(h), parsed.clone());
        }
        Err(WebhookError::BadSignature) => {
            assert!(!input.signature.trim().eq_ignore_ascii_case(&good_sig));
        }
        Err(_) => {}
    }
    assert_eq!(
        sdk::verify(KEY, SECRET, KEY, &good_sig, &input.body),
        parsed
    );
    assert_eq!(
        sdk::verify(KEY, SECRET, "another-key", &good_sig, &input.body),
        Err(WebhookError::WrongKey)
    );

    // The server's encoder into the SDK's parser.
    let pairs: Vec<(HookEvent, WebhookEvent)> = input.events.iter().filter_map(hook).collect();
    let mut body = format!("{{\"time_ms\":{},\"events\":[", input.time_ms);
    for (i, (h, _)) in pairs.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&h.to_json());
    }
    body.push_str("]}");
    let sig = webhook::sign_body(SECRET, body.as_bytes()).to_hex();
    let got = sdk::verify(KEY, SECRET, KEY, &sig, body.as_bytes())
        .unwrap_or_else(|e| panic!("server webhook refused by the SDK ({e}): {body}"));
    assert_eq!(got.time_ms, input.time_ms);
    let want: Vec<WebhookEvent> = pairs.into_iter().map(|(_, w)| w).collect();
    assert_eq!(got.events, want);
}

fuzz_target!(|input: Input| check(&input));
