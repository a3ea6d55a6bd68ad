//! Suite 1 envelopes (signed, multi-recipient, docs/E2EE-SUITE1.md): the
//! base64 `data` a client receives, parsed by `Envelope::from_data`, and
//! envelopes sealed by the real code for fuzzer-chosen plaintexts, event
//! names, channels, times and recipient sets, then altered.
//!
//! Oracles: hostile data never panics the parser or `open`; a sealed
//! envelope opens for each listed device (at a receiver clock equal to the
//! sealed timestamp) to exactly the plaintext, inner event and header that
//! were sealed (every other envelope gossiping a directory tree head), and for no other device; a second delivery is a replay; past
//! the freshness window it is `Expired`; any change to its bytes (one byte
//! flipped, cut short, extended, a range replaced) is refused for every
//! recipient.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, DeviceId, DeviceKeys, IdentityKey, UnsignedCard};
use hush_crypto::suite1::{
    self, Envelope, OpenError, Recipient, ReplayGuard, SealRequest, TrustedSender,
};
use hush_crypto::transparency::{LogKey, SignedTreeHead, TreeHead};
use hush_protocol::{ChannelName, EventName, UserId};
use libfuzzer_sys::fuzz_target;

struct Keys {
    sender_user: UserId,
    sender_device: DeviceId,
    sender_keys: DeviceKeys,
    identity: IdentityKey,
    card: DeviceCard,
    /// Bob's four devices: keys and cards.
    devices: Vec<(DeviceKeys, DeviceCard)>,
    /// A directory tree head the sender gossips (in every other envelope).
    head: SignedTreeHead,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let identity = IdentityKey::from_secret_bytes(&[1; 32]);
        let sender_keys = DeviceKeys::from_secret_bytes(&[2; 32], &[3; 32]);
        let sender_user = UserId::parse("alice").expect("user id");
        let sender_device = sender_keys.device_id();
        let body = UnsignedCard::new(
            sender_user.clone(),
            &identity.public_key(),
            &sender_keys,
            0,
            u64::MAX,
            None,
        );
        let card = DeviceCard::issue(body, &sender_keys, &identity).expect("sender card");
        let bob = UserId::parse("bob").expect("user id");
        let bob_identity = IdentityKey::from_secret_bytes(&[6; 32]);
        let devices = (0u8..4)
            .map(|i| {
                let keys = DeviceKeys::from_secret_bytes(&[0x20 + i; 32], &[0x30 + i; 32]);
                let body = UnsignedCard::new(
                    bob.clone(),
                    &bob_identity.public_key(),
                    &keys,
                    0,
                    u64::MAX,
                    None,
                );
                let card = DeviceCard::issue(body, &keys, &bob_identity).expect("bob's card");
                (keys, card)
            })
            .collect();
        let head = LogKey::from_secret_bytes(&[4; 32]).sign(TreeHead {
            log_id: "app".into(),
            epoch: 7,
            root: [5; 32],
            timestamp: 1_700_000_000_000,
        });
        Keys {
            head,
            sender_user,
            sender_device,
            sender_keys,
            identity,
            card,
            devices,
        }
    })
}

#[derive(Arbitrary, Debug)]
enum Change {
    Flip { at: usize, xor: u8 },
    Truncate { len: usize },
    Extend { tail: Vec<u8> },
    Splice { at: usize, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    hostile: String,
    plaintext: Vec<u8>,
    channel: String,
    event: String,
    inner_event: String,
    timestamp_ms: u64,
    sequence: u64,
    /// Which of the four devices receive it (bit i: device i).
    mask: u8,
    change: Change,
}

fn changed(bytes: &[u8], change: &Change) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match change {
        Change::Flip { at, xor } => {
            let i = at % out.len().max(1);
            if let Some(b) = out.get_mut(i) {
                *b ^= (*xor).max(1);
            }
        }
        Change::Truncate { len } => out.truncate(len % out.len().max(1)),
        Change::Extend { tail } => {
            out.extend_from_slice(tail);
            if tail.is_empty() {
                out.push(0);
            }
        }
        Change::Splice { at, bytes } => {
            let i = at % out.len().max(1);
            let end = (i + bytes.len()).min(out.len());
            out.splice(i..end, bytes.iter().copied());
        }
    }
    out
}

fn open_as(
    env: &Envelope,
    device: usize,
    guard: &mut ReplayGuard,
    now_ms: u64,
) -> Result<suite1::Opened, OpenError> {
    let k = keys();
    let (dk, me) = &k.devices[device];
    let sender = TrustedSender {
        card: &k.card,
        identity: &k.identity.public_key(),
        revocations: &[],
    };
    env.open(me, dk, &sender, guard, now_ms)
}

fn check(input: &Input) {
    // Hostile data: parse, and try to open it as every device.
    if let Ok(env) = Envelope::from_data(&input.hostile) {
        let _ = env.header();
        let _ = env.recipients();
        for d in 0..4 {
            let _ = open_as(&env, d, &mut ReplayGuard::new(4), input.timestamp_ms);
        }
    }

    let k = keys();
    let fallback = |s: &str, d: &str| EventName::parse_api(s).or_else(|_| EventName::parse_api(d));
    let (Ok(event), Ok(inner_event)) = (
        fallback(&input.event, "e2ee"),
        fallback(&input.inner_event, "message"),
    ) else {
        return;
    };
    let channel = ChannelName::parse(&input.channel)
        .unwrap_or_else(|_| ChannelName::parse("private-chat").expect("valid name"));
    let listed: Vec<usize> = (0..4).filter(|i| input.mask & (1 << i) != 0).collect();
    let recipients: Vec<Recipient> = listed
        .iter()
        .map(|&i| Recipient::from(&k.devices[i].1))
        .collect();
    let req = SealRequest {
        sender_user: &k.sender_user,
        sender_device: k.sender_device,
        sender_keys: &k.sender_keys,
        channel: &channel,
        event: &event,
        inner_event: &inner_event,
        timestamp_ms: input.timestamp_ms,
        sequence: input.sequence,
        recipients: &recipients,
        tree_head: (input.sequence % 2 == 0).then_some(&k.head),
    };
    let data = match suite1::seal(&req, &input.plaintext) {
        Ok(d) => d,
        Err(suite1::SealError::NoRecipients) => {
            assert!(listed.is_empty());
            return;
        }
        Err(suite1::SealError::TooLarge { .. }) => return,
        Err(e) => panic!("seal failed: {e}"),
    };
    assert!(data.len() <= suite1::MAX_DATA_LEN);
    let env = Envelope::from_data(&data).expect("own envelope parses");
    assert_eq!(
        env.recipients(),
        recipients.iter().map(|r| r.device_id).collect::<Vec<_>>()
    );
    for d in 0..4 {
        let now = input.timestamp_ms;
        if input.sequence == 0 {
            // Counters start at 1: sequence 0 is never accepted.
            assert_eq!(
                open_as(&env, d, &mut ReplayGuard::new(4), now).err(),
                Some(OpenError::Replay)
            );
            continue;
        }
        if let Some(late) = now.checked_add(suite1::DEFAULT_MAX_AGE_MS + 1) {
            let r = open_as(&env, d, &mut ReplayGuard::new(4), late);
            if listed.contains(&d) {
                assert_eq!(r.err(), Some(OpenError::Expired));
            }
        }
        let mut guard = ReplayGuard::new(4);
        let got = open_as(&env, d, &mut guard, now);
        if listed.contains(&d) {
            let opened = got.unwrap_or_else(|e| panic!("recipient {d} cannot open: {e}"));
            assert_eq!(opened.plaintext, input.plaintext);
            assert_eq!(opened.event, inner_event);
            assert_eq!(opened.header.channel, channel);
            assert_eq!(opened.header.event, event);
            assert_eq!(opened.header.timestamp_ms, input.timestamp_ms);
            assert_eq!(opened.header.sequence, input.sequence);
            assert_eq!(opened.header.sender_user, k.sender_user);
            assert_eq!(opened.header.tree_head.as_ref(), req.tree_head);
            assert_eq!(
                open_as(&env, d, &mut guard, now).err(),
                Some(OpenError::Replay)
            );
        } else {
            assert_eq!(got.err(), Some(OpenError::NotARecipient));
        }
    }
    let bytes = STANDARD.decode(&data).expect("base64");
    let tampered = changed(&bytes, &input.change);
    if tampered == bytes {
        return;
    }
    if let Ok(env) = Envelope::from_bytes(tampered) {
        for &d in &listed {
            assert!(
                open_as(&env, d, &mut ReplayGuard::new(4), input.timestamp_ms).is_err(),
                "altered envelope opened ({:?})",
                input.change
            );
        }
    }
}

fuzz_target!(|input: Input| check(&input));
