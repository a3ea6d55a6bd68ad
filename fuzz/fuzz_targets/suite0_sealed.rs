//! Suite 0 (Pusher-compatible encrypted channels) payloads and hush's sealed
//! events on top of them: the `{"nonce","ciphertext"[,"epoch"]}` string a
//! client receives (hush-crypto suite0/envelope.rs), the server's shape check
//! of it (hush-protocol encrypted.rs), the sealed-event plaintext
//! (sealed.rs) and the replay guard.
//!
//! Oracles: no panic on hostile strings or hostile plaintexts; what the
//! server's shape check passes, clients parse; an accepted envelope
//! re-encodes to an equal one; every envelope the library writes
//! passes the server's check; sealing then opening gives back exactly the
//! event and data, only on the channel and epoch it was sealed for; a
//! sealed event never opens as a plain suite 0 event under the channel key;
//! any changed byte of a sealed payload is refused; the replay guard never
//! accepts a (sender, sequence) pair twice and refuses replays only of
//! pairs it accepted (checked against a model).
#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::Arbitrary;
use hush_crypto::sealed::{self, Opened, ReplayGuard, SealedError, Sender};
use hush_crypto::{EncryptedData, MasterKey, shared_secret};
use hush_protocol::ChannelName;
use hush_protocol::encrypted::is_ciphertext_envelope;
use libfuzzer_sys::fuzz_target;

const MASTER: &str = "dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=";

#[derive(Arbitrary, Debug)]
struct Input {
    wire: String,
    plaintext: Vec<u8>,
    channel: String,
    epoch: u64,
    event: String,
    data: String,
    now_ms: u64,
    flip: (usize, u8),
    replays: Vec<(u8, u16, i32)>,
}

fn check_wire(wire: &str, channel: &ChannelName) {
    let master = MasterKey::from_base64(MASTER).expect("test master key");
    let key = shared_secret(channel, &master);
    // The server relays on encrypted channels only what clients can read.
    if is_ciphertext_envelope(wire) {
        assert!(
            EncryptedData::from_json(wire).is_ok(),
            "server passes an envelope clients refuse: {wire}"
        );
    }
    if let Ok(env) = EncryptedData::from_json(wire) {
        let again = EncryptedData::from_json(&env.to_json()).expect("re-encoded envelope parses");
        assert_eq!(again, env);
        assert!(is_ciphertext_envelope(&env.to_json()));
        let _ = env.open(&key);
        let _ = sealed::open(&key, channel, &env);
    }
}

fn check_plaintext(plaintext: &[u8], channel: &ChannelName, epoch: u64) {
    // A member holding the key can seal anything: the parser of the inner
    // JSON must hold up.
    let master = MasterKey::from_base64(MASTER).expect("test master key");
    let key = shared_secret(channel, &master);
    // Sealed events are boxed under the sealed-event key derived from it.
    let env = EncryptedData::seal(&sealed::sealed_key(&key), plaintext).with_epoch(epoch);
    assert_eq!(
        env.open(&sealed::sealed_key(&key)).as_deref(),
        Ok(plaintext)
    );
    if let Ok(opened) = sealed::open(&key, channel, &env) {
        assert_eq!(opened.epoch, epoch);
        assert_eq!(opened.sender.len(), 22);
        assert_eq!(opened.message_id.len(), 22);
        assert!(hush_protocol::EventName::parse_api(&opened.event).is_ok());
    }
}

fn check_seal(input: &Input, channel: &ChannelName) {
    let master = MasterKey::from_base64(MASTER).expect("test master key");
    let key = shared_secret(channel, &master);
    let mut sender = Sender::new();
    let wire = match sender.seal(
        &key,
        channel,
        input.epoch,
        &input.event,
        &input.data,
        input.now_ms,
    ) {
        Ok(w) => w,
        Err(SealedError::EventName | SealedError::TooLarge { .. }) => return,
        Err(e) => panic!("seal failed: {e}"),
    };
    assert!(
        is_ciphertext_envelope(&wire),
        "server refuses a real envelope: {wire}"
    );
    let env = EncryptedData::from_json(&wire).expect("own envelope parses");
    let opened = sealed::open(&key, channel, &env).expect("own sealed event opens");
    // Renamed into a plain event, it does not open under the channel key.
    assert!(
        env.open(&key).is_err(),
        "a sealed event opened as plain suite 0"
    );
    assert_eq!(opened.event, input.event);
    assert_eq!(opened.data, input.data);
    assert_eq!(opened.epoch, input.epoch);
    assert_eq!(opened.timestamp_ms, input.now_ms);
    assert_eq!(opened.sender, sender.id());
    assert_eq!(opened.seq, 1);
    // Another channel's key, or the right key on another channel, fails.
    if let Ok(other) = ChannelName::parse(&format!("{channel}x")) {
        assert!(sealed::open(&shared_secret(&other, &master), &other, &env).is_err());
        assert!(sealed::open(&key, &other, &env).is_err());
    }
    // Any changed byte of nonce or box is refused.
    let mut nonce = *env.nonce();
    let mut boxed = env.ciphertext().to_vec();
    let (at, xor) = (input.flip.0, input.flip.1.max(1));
    if at % 2 == 0 {
        nonce[at / 2 % nonce.len()] ^= xor;
    } else {
        let i = at / 2 % boxed.len();
        boxed[i] ^= xor;
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let forged = format!(
        r#"{{"nonce":"{}","ciphertext":"{}","epoch":{}}}"#,
        b64.encode(nonce),
        b64.encode(&boxed),
        input.epoch
    );
    let forged = EncryptedData::from_json(&forged).expect("forged envelope is well-formed");
    assert!(sealed::open(&key, channel, &forged).is_err());
    // The epoch label is bound to the plaintext.
    let relabelled = EncryptedData::from_json(&format!(
        r#"{{"nonce":"{}","ciphertext":"{}","epoch":{}}}"#,
        b64.encode(env.nonce()),
        b64.encode(env.ciphertext()),
        input.epoch.wrapping_add(1)
    ))
    .expect("relabelled envelope is well-formed");
    assert!(sealed::open(&key, channel, &relabelled).is_err());
}

fn check_replay(replays: &[(u8, u16, i32)], now_ms: u64) {
    const MAX_AGE: u64 = 300_000;
    let mut guard = ReplayGuard::new(MAX_AGE, 64);
    let mut accepted: HashSet<(u8, u64)> = HashSet::new();
    let mut highest: HashMap<u8, u64> = HashMap::new();
    for &(sender, seq, skew) in replays {
        let sender = sender % 8;
        let seq = u64::from(seq);
        let ts = now_ms.saturating_add_signed(i64::from(skew));
        let event = Opened {
            epoch: 0,
            sender: format!("{sender:0>22}"),
            seq,
            message_id: "A".repeat(22),
            timestamp_ms: ts,
            event: "e".into(),
            data: String::new(),
        };
        let verdict = guard.check(&event, now_ms);
        if ts.abs_diff(now_ms) > MAX_AGE {
            assert_eq!(verdict, Err(SealedError::Expired));
            continue;
        }
        match verdict {
            Ok(()) => {
                assert!(
                    accepted.insert((sender, seq)),
                    "replay accepted: {sender}/{seq}"
                );
                let h = highest.entry(sender).or_insert(seq);
                *h = (*h).max(seq);
            }
            Err(SealedError::Replayed) => assert!(accepted.contains(&(sender, seq))),
            Err(SealedError::Stale) => {
                let h = highest
                    .get(&sender)
                    .copied()
                    .expect("stale only for a known sender");
                assert!(h - seq >= sealed::REPLAY_WINDOW);
            }
            Err(e) => panic!("unexpected refusal {e}"),
        }
    }
}

fuzz_target!(|input: Input| {
    let channel = ChannelName::parse(&input.channel)
        .unwrap_or_else(|_| ChannelName::parse("private-encrypted-fuzz").expect("valid name"));
    check_wire(&input.wire, &channel);
    check_plaintext(&input.plaintext, &channel, input.epoch);
    check_seal(&input, &channel);
    check_replay(&input.replays, input.now_ms);
});
