use super::*;
use crate::identity::{CardError, IdentityKey, UnsignedCard};
use chacha20::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// A user with an identity key and some devices, all from one seed.
struct User {
    id: UserId,
    identity: IdentityKey,
    devices: Vec<(DeviceId, DeviceKeys, DeviceCard)>,
}

impl User {
    fn new(name: &str, devices: usize, seed: u8) -> Self {
        let mut rng = ChaCha20Rng::from_seed([seed; 32]);
        let id = UserId::parse(name).unwrap();
        let identity = IdentityKey::generate_with_rng(&mut rng);
        let devices = (0..devices)
            .map(|_| {
                let keys = DeviceKeys::generate_with_rng(&mut rng);
                let device_id = keys.device_id();
                let body = UnsignedCard::new(
                    id.clone(),
                    &identity.public_key(),
                    &keys,
                    1_700_000_000,
                    1_800_000_000,
                    None,
                );
                let card = DeviceCard::issue(body, &keys, &identity).unwrap();
                (device_id, keys, card)
            })
            .collect();
        Self {
            id,
            identity,
            devices,
        }
    }

    fn recipients(&self) -> Vec<Recipient> {
        self.devices
            .iter()
            .map(|(_, _, c)| Recipient::from(c))
            .collect()
    }
}

fn channel() -> ChannelName {
    ChannelName::parse("private-chat-42").unwrap()
}
fn outer() -> EventName {
    EventName::parse_api("e2ee").unwrap()
}
fn inner() -> EventName {
    EventName::parse_api("message").unwrap()
}

const T0: u64 = 1_750_000_000_000;

fn seal_from(
    sender: &User,
    device: usize,
    recipients: &[Recipient],
    sequence: u64,
    plaintext: &[u8],
) -> String {
    let (device_id, keys, _) = &sender.devices[device];
    let (ch, ev, inn) = (channel(), outer(), inner());
    let req = SealRequest {
        sender_user: &sender.id,
        sender_device: *device_id,
        sender_keys: keys,
        channel: &ch,
        event: &ev,
        inner_event: &inn,
        timestamp_ms: T0,
        sequence,
        recipients,
        tree_head: None,
    };
    seal(&req, plaintext).unwrap()
}

fn open_as(
    data: &str,
    receiver: &User,
    device: usize,
    sender: &User,
    sender_device: usize,
    guard: &mut ReplayGuard,
) -> Result<Opened, OpenError> {
    let (_, keys, me) = &receiver.devices[device];
    let card = &sender.devices[sender_device].2;
    let identity = sender.identity.public_key();
    Envelope::from_data(data)?.open(
        me,
        keys,
        &TrustedSender {
            card,
            identity: &identity,
            revocations: &[],
        },
        guard,
        T0,
    )
}

#[test]
fn one_to_one() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let data = seal_from(&alice, 0, &bob.recipients(), 1, b"hello bob");
    assert!(data.starts_with("aHVzaA"));
    assert!(data.len() <= MAX_DATA_LEN);
    let opened = open_as(&data, &bob, 0, &alice, 0, &mut ReplayGuard::default()).unwrap();
    assert_eq!(opened.plaintext, b"hello bob");
    assert_eq!(opened.event, inner());
    assert_eq!(opened.header.sender_user, alice.id);
    assert_eq!(opened.header.channel, channel());
    assert_eq!(opened.header.event, outer());
    assert_eq!(opened.header.sequence, 1);
    assert_eq!(opened.header.timestamp_ms, T0);
    assert!(!format!("{opened:?}").contains("hello"));
    // The sender cannot open it unless she listed herself.
    assert_eq!(
        open_as(&data, &alice, 0, &alice, 0, &mut ReplayGuard::default()).unwrap_err(),
        OpenError::NotARecipient
    );
    // Empty plaintext works too.
    let data = seal_from(&alice, 0, &bob.recipients(), 2, b"");
    let opened = open_as(&data, &bob, 0, &alice, 0, &mut ReplayGuard::default()).unwrap();
    assert!(opened.plaintext.is_empty());
}

#[test]
fn one_to_many_devices_and_own_devices() {
    let alice = User::new("alice", 2, 1);
    let bob = User::new("bob", 3, 2);
    let mut recipients = bob.recipients();
    recipients.push(Recipient::from(&alice.devices[1].2));
    let data = seal_from(&alice, 0, &recipients, 7, b"to all of bob's devices");
    for d in 0..3 {
        let o = open_as(&data, &bob, d, &alice, 0, &mut ReplayGuard::default()).unwrap();
        assert_eq!(o.plaintext, b"to all of bob's devices");
    }
    // Alice's second device stays in sync.
    let o = open_as(&data, &alice, 1, &alice, 0, &mut ReplayGuard::default()).unwrap();
    assert_eq!(o.plaintext, b"to all of bob's devices");
    assert_eq!(Envelope::from_data(&data).unwrap().recipients().len(), 4);
}

#[test]
fn many_users() {
    let sender = User::new("sender", 1, 1);
    let users: Vec<User> = (0..6)
        .map(|i| User::new(&format!("user{i}"), 2, 10 + i))
        .collect();
    let recipients: Vec<Recipient> = users.iter().flat_map(User::recipients).collect();
    let data = seal_from(&sender, 0, &recipients, 1, &[0x5a; 700]);
    for u in &users {
        for d in 0..2 {
            let o = open_as(&data, u, d, &sender, 0, &mut ReplayGuard::default()).unwrap();
            assert_eq!(o.plaintext, vec![0x5a; 700]);
        }
    }
}

#[test]
fn every_flipped_bit_is_refused() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 2, 2);
    let data = seal_from(&alice, 0, &bob.recipients(), 1, b"tamper with me");
    let bytes = STANDARD.decode(&data).unwrap();
    // Header, both table entries, and the body: every byte, one bit each.
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1 << (i % 8);
        let result = Envelope::from_bytes(bad).and_then(|e| {
            let (_, keys, me) = &bob.devices[0];
            let identity = alice.identity.public_key();
            e.open(
                me,
                keys,
                &TrustedSender {
                    card: &alice.devices[0].2,
                    identity: &identity,
                    revocations: &[],
                },
                &mut ReplayGuard::default(),
                T0,
            )
        });
        assert!(result.is_err(), "byte {i} of {}", bytes.len());
    }
    // Truncated or extended.
    for bad in [
        &bytes[..bytes.len() - 1],
        &[bytes.as_slice(), &[0]].concat(),
    ] {
        let r = Envelope::from_bytes(bad.to_vec())
            .and_then(|e| {
                let (_, keys, me) = &bob.devices[0];
                let identity = alice.identity.public_key();
                e.open(
                    me,
                    keys,
                    &TrustedSender {
                        card: &alice.devices[0].2,
                        identity: &identity,
                        revocations: &[],
                    },
                    &mut ReplayGuard::default(),
                    T0,
                )
            })
            .unwrap_err();
        assert!(
            matches!(r, OpenError::Decrypt | OpenError::Malformed),
            "{r:?}"
        );
    }
}

fn header_len_of(bytes: &[u8]) -> usize {
    let mut r = Reader::new(bytes);
    Header::read(&mut r).unwrap().encoded_len()
}

#[test]
fn tampered_recipient_table_is_refused() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 2, 2);
    let carol = User::new("carol", 1, 3);
    let mut recipients = bob.recipients();
    recipients.extend(carol.recipients());
    let data = seal_from(&alice, 0, &recipients, 1, b"for bob and carol");
    let bytes = STANDARD.decode(&data).unwrap();
    let h = header_len_of(&bytes);
    let table = h + 2;
    let entry = |i: usize| table + i * RECIPIENT_ENTRY_LEN..table + (i + 1) * RECIPIENT_ENTRY_LEN;

    // Strip carol: remove her entry and fix the count.
    let mut stripped = bytes[..table].to_vec();
    stripped[h..h + 2].copy_from_slice(&2u16.to_be_bytes());
    stripped.extend_from_slice(&bytes[entry(0)]);
    stripped.extend_from_slice(&bytes[entry(1)]);
    stripped.extend_from_slice(&bytes[entry(2).end..]);
    // Reorder bob's two entries.
    let mut reordered = bytes[..table].to_vec();
    reordered.extend_from_slice(&bytes[entry(1)]);
    reordered.extend_from_slice(&bytes[entry(0)]);
    reordered.extend_from_slice(&bytes[entry(2).start..]);
    // Swap bob's wrapped key into carol's slot (re-address): device ids and
    // bindings swapped.
    let names = 0..DEVICE_ID_LEN + BINDING_LEN;
    let (bob0, carol0) = (entry(0).start, entry(2).start);
    let mut readdressed = bytes.clone();
    readdressed[bob0..bob0 + names.end].copy_from_slice(&bytes[carol0..carol0 + names.end]);
    readdressed[carol0..carol0 + names.end].copy_from_slice(&bytes[bob0..bob0 + names.end]);
    // Device ids only swapped: the entries under bob's first and carol's
    // device ids are bound to someone else.
    let mut ids_only = bytes.clone();
    ids_only[bob0..bob0 + 16].copy_from_slice(&carol.devices[0].0.0);
    ids_only[carol0..carol0 + 16].copy_from_slice(&bob.devices[0].0.0);
    let data = STANDARD.encode(&ids_only);
    for (who, d, got) in [
        (&bob, 0, OpenError::NotARecipient),
        (&bob, 1, OpenError::Decrypt),
        (&carol, 0, OpenError::NotARecipient),
    ] {
        assert_eq!(
            open_as(&data, who, d, &alice, 0, &mut ReplayGuard::default()),
            Err(got),
            "ids only, {} device {d}",
            who.id
        );
    }

    for (name, bad) in [
        ("stripped", stripped),
        ("reordered", reordered),
        ("readdressed", readdressed),
    ] {
        let data = STANDARD.encode(&bad);
        for d in 0..2 {
            assert_eq!(
                open_as(&data, &bob, d, &alice, 0, &mut ReplayGuard::default()),
                Err(OpenError::Decrypt),
                "{name}, bob device {d}"
            );
        }
        let carol_gets = if name == "stripped" {
            OpenError::NotARecipient
        } else {
            OpenError::Decrypt
        };
        assert_eq!(
            open_as(&data, &carol, 0, &alice, 0, &mut ReplayGuard::default()),
            Err(carol_gets),
            "{name}, carol"
        );
    }
}

#[test]
fn a_forged_signature_is_refused() {
    // Mallory holds a valid card of her own but claims to be Alice's device.
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let mallory = User::new("mallory", 1, 3);
    let (ch, ev, inn) = (channel(), outer(), inner());
    let req = SealRequest {
        sender_user: &alice.id,
        sender_device: alice.devices[0].0,
        sender_keys: &mallory.devices[0].1,
        channel: &ch,
        event: &ev,
        inner_event: &inn,
        timestamp_ms: T0,
        sequence: 1,
        recipients: &bob.recipients(),
        tree_head: None,
    };
    let data = seal(&req, b"i am alice").unwrap();
    assert_eq!(
        open_as(&data, &bob, 0, &alice, 0, &mut ReplayGuard::default()),
        Err(OpenError::BadSignature)
    );
}

#[test]
fn a_recipient_cannot_change_the_plaintext_under_the_senders_signature() {
    // Bob knows the content key (he is a recipient). He rewrites the body,
    // keeps Alice's signature and re-seals for Carol: Carol refuses it.
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let carol = User::new("carol", 1, 3);
    let mut recipients = bob.recipients();
    recipients.extend(carol.recipients());
    let (ch, ev, inn) = (channel(), outer(), inner());
    let req = SealRequest {
        sender_user: &alice.id,
        sender_device: alice.devices[0].0,
        sender_keys: &alice.devices[0].1,
        channel: &ch,
        event: &ev,
        inner_event: &inn,
        timestamp_ms: T0,
        sequence: 1,
        recipients: &recipients,
        tree_head: None,
    };
    let data = seal_with_rng(&req, b"pay bob 10", &mut ChaCha20Rng::from_seed([77; 32])).unwrap();
    // Recover the content key the way the seal drew it.
    let mut rng = ChaCha20Rng::from_seed([77; 32]);
    let mut skip = [0u8; 16];
    rng.fill_bytes(&mut skip);
    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);

    let bytes = STANDARD.decode(&data).unwrap();
    let body_start = header_len_of(&bytes) + 2 + 2 * RECIPIENT_ENTRY_LEN;
    let header = &bytes[..body_start];
    let cipher = ChaCha20Poly1305::new(&key.into());
    let mut body = cipher
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: &bytes[body_start..],
                aad: header,
            },
        )
        .unwrap();
    let pos = body.windows(10).position(|w| w == b"pay bob 10").unwrap();
    body[pos + 8..pos + 10].copy_from_slice(b"99");
    let resealed = cipher
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: &body,
                aad: header,
            },
        )
        .unwrap();
    let forged = [&bytes[..body_start], &resealed].concat();
    assert_eq!(
        open_as(
            &STANDARD.encode(&forged),
            &carol,
            0,
            &alice,
            0,
            &mut ReplayGuard::default()
        ),
        Err(OpenError::BadSignature)
    );
    // The untouched message opens.
    assert_eq!(
        open_as(&data, &carol, 0, &alice, 0, &mut ReplayGuard::default())
            .unwrap()
            .plaintext,
        b"pay bob 10"
    );
}

#[test]
fn replays_are_refused() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let mut guard = ReplayGuard::default();
    let first = seal_from(&alice, 0, &bob.recipients(), 5, b"one");
    open_as(&first, &bob, 0, &alice, 0, &mut guard).unwrap();
    assert_eq!(
        open_as(&first, &bob, 0, &alice, 0, &mut guard),
        Err(OpenError::Replay)
    );
    // A new message with an old sequence number.
    let old = seal_from(&alice, 0, &bob.recipients(), 5, b"two");
    assert_eq!(
        open_as(&old, &bob, 0, &alice, 0, &mut guard),
        Err(OpenError::Replay)
    );
    let next = seal_from(&alice, 0, &bob.recipients(), 6, b"three");
    open_as(&next, &bob, 0, &alice, 0, &mut guard).unwrap();
    // A forgery does not poison the window: the real message 7 still opens.
    let mallory = User::new("mallory", 1, 3);
    let (ch, ev, inn) = (channel(), outer(), inner());
    let forged = seal(
        &SealRequest {
            sender_user: &alice.id,
            sender_device: alice.devices[0].0,
            sender_keys: &mallory.devices[0].1,
            channel: &ch,
            event: &ev,
            inner_event: &inn,
            timestamp_ms: T0,
            sequence: 7,
            recipients: &bob.recipients(),
            tree_head: None,
        },
        b"forged",
    )
    .unwrap();
    assert_eq!(
        open_as(&forged, &bob, 0, &alice, 0, &mut guard),
        Err(OpenError::BadSignature)
    );
    let seven = seal_from(&alice, 0, &bob.recipients(), 7, b"seven");
    open_as(&seven, &bob, 0, &alice, 0, &mut guard).unwrap();
}

#[test]
fn unknown_and_revoked_senders_are_refused() {
    let alice = User::new("alice", 2, 1);
    let bob = User::new("bob", 1, 2);
    let data = seal_from(&alice, 0, &bob.recipients(), 1, b"hi");
    let env = Envelope::from_data(&data).unwrap();
    let (_, keys, me) = &bob.devices[0];
    let identity = alice.identity.public_key();
    let open = |card: &DeviceCard, identity: &IdentityPublicKey, revocations: &[Revocation]| {
        env.open(
            me,
            keys,
            &TrustedSender {
                card,
                identity,
                revocations,
            },
            &mut ReplayGuard::default(),
            T0,
        )
    };
    // The card of another device.
    assert_eq!(
        open(&alice.devices[1].2, &identity, &[]),
        Err(OpenError::UnknownSender)
    );
    // The right card, but the directory-trusted identity is another key.
    let other = IdentityKey::from_secret_bytes(&[9; 32]).public_key();
    assert_eq!(
        open(&alice.devices[0].2, &other, &[]),
        Err(OpenError::UnknownSender)
    );
    // An expired card (message time after expiry).
    let keys0 = &alice.devices[0].1;
    let body = UnsignedCard::new(
        alice.id.clone(),
        &identity,
        keys0,
        1_600_000_000,
        1_700_000_000,
        None,
    );
    let expired = DeviceCard::issue(body, keys0, &alice.identity).unwrap();
    assert_eq!(
        open(&expired, &identity, &[]),
        Err(OpenError::UnknownSender)
    );
    // Revoked device.
    let card = &alice.devices[0].2;
    let rev = Revocation::revoke_device(&alice.identity, card, 1_750_000_001).unwrap();
    assert_eq!(
        open(card, &identity, std::slice::from_ref(&rev)),
        Err(OpenError::RevokedSender)
    );
    // Revoking the other device does not affect this one.
    let rev1 = Revocation::revoke_device(&alice.identity, &alice.devices[1].2, 1).unwrap();
    assert!(open(card, &identity, &[rev1]).is_ok());
    // Identity rotated away.
    let new_identity = IdentityKey::from_secret_bytes(&[10; 32]);
    let rot =
        Revocation::rotate_identity(alice.id.clone(), &alice.identity, &new_identity, 5).unwrap();
    assert_eq!(open(card, &identity, &[rot]), Err(OpenError::RevokedSender));
    // A "revocation" by an unrelated identity is ignored.
    let bobs = Revocation::revoke_device(&bob.identity, &bob.devices[0].2, 1).unwrap();
    assert!(open(card, &identity, &[bobs]).is_ok());
}

#[test]
fn sizes_padding_and_the_pusher_limit() {
    let alice = User::new("alice", 1, 1);
    let users: Vec<User> = (0..100)
        .map(|i| User::new(&format!("u{i}"), 1, i as u8))
        .collect();
    let all: Vec<Recipient> = users.iter().flat_map(User::recipients).collect();
    let (ch, ev, inn) = (channel(), outer(), inner());
    let max = max_recipients(&alice.id, &ch, &ev, &inn, 1024);
    // The table in docs/E2EE-SUITE1.md §4.4.
    for (len, fits) in [
        (243, 56),
        (256, 54),
        (1011, 50),
        (1024, 42),
        (4083, 26),
        (6131, 10),
        (6144, 2),
        (7168, 0),
    ] {
        assert_eq!(
            max_recipients(&alice.id, &ch, &ev, &inn, len),
            fits,
            "{len}"
        );
    }
    assert_eq!(max_recipients(&alice.id, &ch, &ev, &inn, 8192), 0);
    macro_rules! req {
        ($r:expr) => {
            SealRequest {
                sender_user: &alice.id,
                sender_device: alice.devices[0].0,
                sender_keys: &alice.devices[0].1,
                channel: &ch,
                event: &ev,
                inner_event: &inn,
                timestamp_ms: T0,
                sequence: 1,
                recipients: $r,
                tree_head: None,
            }
        };
    }
    let msg = [7u8; 1024];
    let data = seal(&req!(&all[..max]), &msg).unwrap();
    assert!(data.len() <= MAX_DATA_LEN);
    assert!(data.len() + 4 * RECIPIENT_ENTRY_LEN / 3 > MAX_DATA_LEN);
    let err = seal(&req!(&all[..max + 1]), &msg).unwrap_err();
    assert_eq!(
        err,
        SealError::TooLarge {
            data_len: base64_len(STANDARD.decode(&data).unwrap().len() + RECIPIENT_ENTRY_LEN),
            max: MAX_DATA_LEN,
            max_recipients: max
        }
    );
    assert!(err.to_string().contains("at most"));
    let opened = open_as(
        &data,
        &users[max - 1],
        0,
        &alice,
        0,
        &mut ReplayGuard::default(),
    );
    assert_eq!(opened.unwrap().plaintext, msg);

    // Padding: lengths within a bucket give the same size. The bucket holds
    // str16("message") and the u32 length too: 13 bytes.
    let a = seal(&req!(&all[..1]), b"x").unwrap();
    let b = seal(&req!(&all[..1]), &[1u8; 256 - 13]).unwrap();
    let c = seal(&req!(&all[..1]), &[1u8; 256 - 12]).unwrap();
    assert_eq!(a.len(), b.len());
    assert!(c.len() > b.len());
    assert_eq!(padded_len(0), 256);
    assert_eq!(padded_len(4097), 5120);

    assert_eq!(seal(&req!(&[]), b"x"), Err(SealError::NoRecipients));
    // Without the Pusher limit (mailbox transport), 100 devices fit.
    let big = seal_with_limit(&req!(&all), &msg, 1 << 20).unwrap();
    assert!(big.len() > MAX_DATA_LEN);
    let opened = open_as(&big, &users[99], 0, &alice, 0, &mut ReplayGuard::default());
    assert_eq!(opened.unwrap().plaintext, msg);
    let dup = [all[0], all[1], all[0]];
    assert_eq!(
        seal(&req!(&dup), b"x"),
        Err(SealError::DuplicateRecipient(all[0].device_id))
    );
}

#[test]
fn malformed_data() {
    for bad in ["", "!!!!", "aHVzaA==", &"A".repeat(MAX_DATA_LEN + 4)] {
        assert_eq!(
            Envelope::from_data(bad).unwrap_err(),
            OpenError::Malformed,
            "{bad:.20}"
        );
    }
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let data = seal_from(&alice, 0, &bob.recipients(), 1, b"x");
    let bytes = STANDARD.decode(&data).unwrap();
    assert_eq!(bytes[4], VERSION);
    // Versions 1 (inner event name outside the padding), 2 (no gossiped
    // tree head) and 3 (recipients hash over device ids only) are no longer
    // read.
    for version in [1, 2, 3, 5] {
        let mut old = bytes.clone();
        old[4] = version;
        assert_eq!(
            Envelope::from_bytes(old).unwrap_err(),
            OpenError::Unsupported { version, suite: 1 }
        );
    }
}

/// Finding 4: a message stamped 400 days ago (or from the future) must not
/// open, whatever the replay guard remembers: the signed timestamp has to be
/// within the freshness window of the receiver's clock. An old message also
/// stays refused after its replay state was evicted.
#[test]
fn attack_suite1_message_from_400_days_ago_opens() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let (ch, ev, inn) = (channel(), outer(), inner());
    let recipients = bob.recipients();
    let sealed_at = |timestamp_ms: u64, sequence: u64| {
        seal(
            &SealRequest {
                sender_user: &alice.id,
                sender_device: alice.devices[0].0,
                sender_keys: &alice.devices[0].1,
                channel: &ch,
                event: &ev,
                inner_event: &inn,
                timestamp_ms,
                sequence,
                recipients: &recipients,
                tree_head: None,
            },
            b"stale",
        )
        .unwrap()
    };
    let day = 86_400_000;
    let (_, keys, me) = &bob.devices[0];
    let identity = alice.identity.public_key();
    let sender = TrustedSender {
        card: &alice.devices[0].2,
        identity: &identity,
        revocations: &[],
    };
    let open_at = |data: &str, now: u64, guard: &mut ReplayGuard| {
        Envelope::from_data(data)?.open(me, keys, &sender, guard, now)
    };
    for (age, seq) in [(400 * day, 1), (DEFAULT_MAX_AGE_MS + 1, 2)] {
        let old = sealed_at(T0 - age, seq);
        assert_eq!(
            open_at(&old, T0, &mut ReplayGuard::default()),
            Err(OpenError::Expired),
            "{age} ms old"
        );
    }
    let future = sealed_at(T0 + DEFAULT_MAX_AGE_MS + 1, 3);
    assert_eq!(
        open_at(&future, T0, &mut ReplayGuard::default()),
        Err(OpenError::Expired)
    );
    // At the edges of the window it opens; the window is configurable.
    for ts in [T0 - DEFAULT_MAX_AGE_MS, T0 + DEFAULT_MAX_AGE_MS] {
        open_at(&sealed_at(ts, 4), T0, &mut ReplayGuard::default()).unwrap();
    }
    let tight = || ReplayGuard::default().with_max_age_ms(1_000);
    assert_eq!(tight().max_age_ms(), 1_000);
    assert_eq!(
        open_at(&sealed_at(T0 - 1_001, 5), T0, &mut tight()),
        Err(OpenError::Expired)
    );
    open_at(&sealed_at(T0 - 1_000, 5), T0, &mut tight()).unwrap();

    // Accepted once; the guard forgets it (a restart without its state);
    // replayed after the window it is still refused.
    let msg = sealed_at(T0, 6);
    open_at(&msg, T0, &mut ReplayGuard::new(1)).unwrap();
    assert_eq!(
        open_at(&msg, T0 + DEFAULT_MAX_AGE_MS + 1, &mut ReplayGuard::new(1)),
        Err(OpenError::Expired)
    );
}

/// Finding 9: the relay must not learn the length of the inner (real)
/// event name: two envelopes with the same plaintext and names of different
/// lengths are the same size (before, the body grew byte for byte with the
/// name, which sat outside the padding).
#[test]
fn attack_suite1_inner_event_name_length_leaks() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let (ch, ev) = (channel(), outer());
    let recipients = bob.recipients();
    let sized = |inner: &str, plaintext: &[u8]| {
        let inner = EventName::parse_api(inner).unwrap();
        seal(
            &SealRequest {
                sender_user: &alice.id,
                sender_device: alice.devices[0].0,
                sender_keys: &alice.devices[0].1,
                channel: &ch,
                event: &ev,
                inner_event: &inner,
                timestamp_ms: T0,
                sequence: 1,
                recipients: &recipients,
                tree_head: None,
            },
            plaintext,
        )
        .unwrap()
        .len()
    };
    // (The name and the plaintext share the padding: only their total's
    // bucket shows, as for the plaintext alone before.)
    for plaintext in [&b"hi"[..], &[7u8; 150], &[7u8; 700]] {
        let short = sized("a", plaintext);
        for name in [
            "typing",
            "message",
            "call-offer-with-a-long-name",
            &"x".repeat(40),
        ] {
            assert_eq!(
                sized(name, plaintext),
                short,
                "{name}, {} bytes",
                plaintext.len()
            );
        }
    }
    // And the name still arrives.
    let inner = EventName::parse_api("call-offer-with-a-long-name").unwrap();
    let data = seal(
        &SealRequest {
            sender_user: &alice.id,
            sender_device: alice.devices[0].0,
            sender_keys: &alice.devices[0].1,
            channel: &ch,
            event: &ev,
            inner_event: &inner,
            timestamp_ms: T0,
            sequence: 1,
            recipients: &recipients,
            tree_head: None,
        },
        b"hi",
    )
    .unwrap();
    let opened = open_as(&data, &bob, 0, &alice, 0, &mut ReplayGuard::default()).unwrap();
    assert_eq!(opened.event, inner);
    assert_eq!(opened.plaintext, b"hi");
}

#[test]
fn seal_with_rng_is_deterministic() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let (ch, ev, inn) = (channel(), outer(), inner());
    let recipients = bob.recipients();
    let req = SealRequest {
        sender_user: &alice.id,
        sender_device: alice.devices[0].0,
        sender_keys: &alice.devices[0].1,
        channel: &ch,
        event: &ev,
        inner_event: &inn,
        timestamp_ms: T0,
        sequence: 1,
        recipients: &recipients,
        tree_head: None,
    };
    let a = seal_with_rng(&req, b"same", &mut ChaCha20Rng::from_seed([5; 32])).unwrap();
    let b = seal_with_rng(&req, b"same", &mut ChaCha20Rng::from_seed([5; 32])).unwrap();
    let c = seal(&req, b"same").unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

mod arbitrary_input {
    use super::*;
    use crate::identity::Revocation;
    use crate::transparency::{LogEntry, SignedTreeHead};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// No parser panics on arbitrary bytes, and none accepts garbage.
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Envelope::from_bytes(bytes.clone());
            let _ = Envelope::from_data(&STANDARD.encode(&bytes));
            prop_assert!(DeviceCard::from_bytes(&bytes).is_err());
            prop_assert!(Revocation::from_bytes(&bytes).is_err());
            prop_assert!(LogEntry::from_bytes(&bytes).is_err());
            let _ = SignedTreeHead::from_bytes(&bytes);
            prop_assert!(crate::backup::open_identity(&bytes, b"pw").is_err());
        }

    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random bytes rarely get past a format's magic; real encodings with
        /// a byte changed, cut short or extended reach the deeper parsing.
        /// No parser panics, and a signed record that was changed in any way
        /// is refused.
        #[test]
        fn altered_real_encodings_are_refused_without_panics(
            at in any::<usize>(),
            xor in 1u8..=255,
            cut in any::<usize>(),
            tail in proptest::collection::vec(any::<u8>(), 1..16),
        ) {
            static ENCODINGS: std::sync::OnceLock<[Vec<u8>; 3]> = std::sync::OnceLock::new();
            let encodings = ENCODINGS.get_or_init(|| {
                let alice = User::new("alice", 1, 1);
                let card = &alice.devices[0].2;
                [
                    card.to_bytes(),
                    Revocation::revoke_device(&alice.identity, card, 5).unwrap().to_bytes(),
                    LogEntry::Card(card.clone()).to_bytes(),
                ]
            });
            for original in encodings {
                let mut flipped = original.clone();
                let i = at % flipped.len();
                flipped[i] ^= xor;
                let shorter = &original[..cut % original.len()];
                let longer = [original.as_slice(), &tail].concat();
                for altered in [&flipped[..], shorter, &longer[..]] {
                    prop_assert!(DeviceCard::from_bytes(altered).is_err());
                    prop_assert!(Revocation::from_bytes(altered).is_err());
                    prop_assert!(LogEntry::from_bytes(altered).is_err());
                    let _ = SignedTreeHead::from_bytes(altered);
                    let _ = Envelope::from_bytes(altered.to_vec());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Envelopes with a valid prefix and a random tail never panic.
        #[test]
        fn truncated_and_extended_envelopes(cut in 0usize..2000, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let alice = User::new("alice", 1, 1);
            let bob = User::new("bob", 1, 2);
            let data = seal_from(&alice, 0, &bob.recipients(), 1, b"x");
            let mut bytes = STANDARD.decode(&data).unwrap();
            bytes.truncate(cut.min(bytes.len()));
            bytes.extend_from_slice(&tail);
            let r = open_as(&STANDARD.encode(&bytes), &bob, 0, &alice, 0, &mut ReplayGuard::default());
            if r.is_ok() {
                prop_assert_eq!(STANDARD.encode(&bytes), data);
            }
        }


        #[test]
        fn round_trip_any_plaintext(pt in proptest::collection::vec(any::<u8>(), 0..3000), seq in any::<u64>()) {
            let alice = User::new("alice", 1, 1);
            let bob = User::new("bob", 1, 2);
            let data = seal_from(&alice, 0, &bob.recipients(), seq, &pt);
            prop_assert!(data.len() <= MAX_DATA_LEN);
            let o = open_as(&data, &bob, 0, &alice, 0, &mut ReplayGuard::default()).unwrap();
            prop_assert_eq!(o.plaintext, pt);
            prop_assert_eq!(o.header.sequence, seq);
        }
    }
}

#[test]
fn works_on_every_channel_type() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let (ev, inn) = (outer(), inner());
    for name in [
        "chat",
        "private-room",
        "presence-room",
        "cache-news",
        "private-cache-x",
        "presence-cache-y",
    ] {
        let ch = ChannelName::parse(name).unwrap();
        let recipients = bob.recipients();
        let req = SealRequest {
            sender_user: &alice.id,
            sender_device: alice.devices[0].0,
            sender_keys: &alice.devices[0].1,
            channel: &ch,
            event: &ev,
            inner_event: &inn,
            timestamp_ms: T0,
            sequence: 1,
            recipients: &recipients,
            tree_head: None,
        };
        let data = seal(&req, b"any channel").unwrap();
        let o = open_as(&data, &bob, 0, &alice, 0, &mut ReplayGuard::default()).unwrap();
        assert_eq!(o.header.channel, ch, "{name}");
        assert_eq!(o.plaintext, b"any channel");
    }
}

/// `seal_from` with the signed timestamp `ts`.
fn seal_at(sender: &User, recipients: &[Recipient], sequence: u64, ts: u64, text: &[u8]) -> String {
    seal_by(sender, 0, &channel(), recipients, sequence, ts, text)
}

/// `sender`'s device `device` seals `text` to `recipients` on `ch`, with
/// `sequence` and the signed timestamp `ts`.
fn seal_by(
    sender: &User,
    device: usize,
    ch: &ChannelName,
    recipients: &[Recipient],
    sequence: u64,
    ts: u64,
    text: &[u8],
) -> String {
    let (device_id, keys, _) = &sender.devices[device];
    let (ev, inn) = (outer(), inner());
    seal(
        &SealRequest {
            sender_user: &sender.id,
            sender_device: *device_id,
            sender_keys: keys,
            channel: ch,
            event: &ev,
            inner_event: &inn,
            timestamp_ms: ts,
            sequence,
            recipients,
            tree_head: None,
        },
        text,
    )
    .unwrap()
}

/// A card of `user` (`keys`, `identity`) that names `device_id` instead of
/// the id derived from its signing key, with both signatures valid; `None`
/// when it is refused.
fn card_claiming(user: &User, keys: &DeviceKeys, device_id: DeviceId) -> Option<DeviceCard> {
    let mut body = UnsignedCard::new(
        user.id.clone(),
        &user.identity.public_key(),
        keys,
        1_700_000_000,
        1_800_000_000,
        None,
    );
    body.device_id = device_id;
    let own = body.self_sign(keys).ok()?;
    let cross = body.cross_sign(&user.identity).ok()?;
    DeviceCard::assemble(body, own, cross).ok()
}

/// Finding 3 (a): Mallory, a member, publishes a card of her own (her keys,
/// her identity) that names Carol's public device id, and sends Bob a
/// message with sequence `u64::MAX`. Before, replay streams were keyed by
/// device id alone, so every genuine message Carol sent Bob afterwards was
/// refused as a replay. Now such a card cannot be made (device ids are
/// derived from the signing key), and streams are keyed by (user, device,
/// channel) anyway.
#[test]
fn attack_copied_device_id_blocks_victim() {
    let bob = User::new("bob", 1, 2);
    let carol = User::new("carol", 1, 3);
    let mut mallory = User::new("mallory", 1, 4);
    let copied = carol.devices[0].0;
    let keys = mallory.devices[0].1.clone();
    let mut guard = ReplayGuard::default();
    if let Some(card) = card_claiming(&mallory, &keys, copied) {
        mallory.devices[0] = (copied, keys, card);
        let poison = seal_from(&mallory, 0, &bob.recipients(), u64::MAX, b"boo");
        open_as(&poison, &bob, 0, &mallory, 0, &mut guard).unwrap();
    }
    let genuine = seal_from(&carol, 0, &bob.recipients(), 1, b"hi bob");
    let opened = open_as(&genuine, &bob, 0, &carol, 0, &mut guard)
        .expect("Carol's genuine message is refused after Mallory's claim");
    assert_eq!(opened.plaintext, b"hi bob");
}

/// The fix for finding 3: a card whose device id is not derived from its
/// signing key is refused, however well signed; and a stream claimed under
/// another user's name does not touch the victim's.
#[test]
fn cards_must_carry_the_derived_device_id() {
    let carol = User::new("carol", 1, 3);
    let mallory = User::new("mallory", 1, 4);
    let keys = &mallory.devices[0].1;
    assert!(card_claiming(&mallory, keys, carol.devices[0].0).is_none());
    let mut body = mallory.devices[0].2.body().clone();
    body.device_id = carol.devices[0].0;
    let own = body.self_sign(keys).unwrap();
    let cross = body.cross_sign(&mallory.identity).unwrap();
    let wire = [body.to_bytes(), own.to_vec(), cross.to_vec()].concat();
    assert_eq!(
        DeviceCard::assemble(body, own, cross),
        Err(CardError::DeviceIdNotDerived)
    );
    // What the directory and clients parse: refused too.
    assert_eq!(
        DeviceCard::from_bytes(&wire),
        Err(CardError::DeviceIdNotDerived)
    );
    assert_eq!(mallory.devices[0].0, keys.device_id());
    let own = mallory.devices[0].2.to_bytes();
    assert_eq!(
        DeviceCard::from_bytes(&own).unwrap().device_id(),
        keys.device_id()
    );

    let mut guard = ReplayGuard::default();
    let ch = channel();
    let claim = StreamKey {
        user: mallory.id.clone(),
        device: carol.devices[0].0,
        channel: ch.clone(),
    };
    guard.commit(&claim, u64::MAX, T0, T0).unwrap();
    let real = StreamKey {
        user: carol.id.clone(),
        ..claim
    };
    assert!(guard.check(&real, 1));
}

/// What a recipient who holds the content key can do with an envelope:
/// unwrap the content key (entry `i`, as device `keys`) and decrypt the body.
fn unwrap_as(env: &Envelope, i: usize, keys: &DeviceKeys) -> (Zeroizing<[u8; 32]>, Vec<u8>) {
    let header = &env.bytes[..env.header_len];
    let entry = env.entry(i);
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(entry.enc).unwrap();
    let key: [u8; 32] = hpke::single_shot_open::<HpkeAead, HpkeKdf, Kem>(
        &OpModeR::Base,
        keys.encryption_key(),
        &enc,
        &hpke_info(&env.header.message_id),
        entry.wrapped,
        &wrap_aad(header, &entry.device_id, entry.binding),
    )
    .unwrap()
    .try_into()
    .unwrap();
    let body_start = env.table_start + env.count * RECIPIENT_ENTRY_LEN;
    let body = content_cipher(&key)
        .decrypt(
            &Nonce::default(),
            Payload {
                msg: &env.bytes[body_start..],
                aad: &env.bytes[..body_start],
            },
        )
        .unwrap();
    (Zeroizing::new(key), body)
}

/// Builds an envelope by hand from `env`'s signed header, one table entry
/// (`device ‖ entry_binding`, the content key wrapped for `to` under the
/// associated data `header ‖ device ‖ aad_binding`) and the decrypted
/// `body`, sealed again under the content key: what a recipient who
/// re-wraps a message for someone else sends on.
fn rewrap(
    env: &Envelope,
    key: &[u8; 32],
    body: &[u8],
    to: &EncryptionPublicKey,
    device: DeviceId,
    entry_binding: &[u8; BINDING_LEN],
    aad_binding: &[u8; BINDING_LEN],
) -> String {
    let header = &env.bytes[..env.header_len];
    let (enc, wrapped) = hpke::single_shot_seal_with_rng::<HpkeAead, HpkeKdf, Kem>(
        &OpModeS::Base,
        &to.to_hpke().unwrap(),
        &hpke_info(&env.header.message_id),
        key,
        &wrap_aad(header, &device, aad_binding),
        &mut os_rng(),
    )
    .unwrap();
    let mut out = header.to_vec();
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&device.0);
    out.extend_from_slice(entry_binding);
    out.extend_from_slice(&enc.to_bytes());
    out.extend_from_slice(&wrapped);
    let sealed = content_cipher(key)
        .encrypt(
            &Nonce::default(),
            Payload {
                msg: body,
                aad: &out,
            },
        )
        .unwrap();
    out.extend_from_slice(&sealed);
    STANDARD.encode(out)
}

/// Finding 3 (b): Alice writes to Bob, but the device id she was shown for
/// Bob's device is Carol's (a card with a copied id, as before ids were
/// derived, or from any client or directory that does not check the
/// derivation). Bob unwraps the content key and wraps it again for Carol's
/// X25519 key under Alice's signed header, in every way he can: keeping
/// his table entry, or rewriting its binding to Carol's. Before, the signed
/// recipient hash named only device ids, so Carol accepted the first as
/// Alice's message to her. Now each entry's binding names the user, the
/// device and the card Alice encrypted to, the signed hash covers it, and
/// Carol opens only an entry bound to herself and her card.
#[test]
fn attack_rewrapped_for_another_user_refused() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let carol = User::new("carol", 1, 3);
    let (_, bob_keys, bob_card) = &bob.devices[0];
    let (copied, _, carol_card) = &carol.devices[0];
    let copied = *copied;
    // Bob's card as Alice was shown it: Bob's user, keys and card, Carol's id.
    let to_bob = Recipient {
        device_id: copied,
        key: *bob_card.encryption_key(),
        binding: binding(&bob.id, &copied, &bob_card.id()),
    };
    let data = seal_from(&alice, 0, &[to_bob], 1, b"for bob only");
    let env = Envelope::from_data(&data).unwrap();
    let (key, body) = unwrap_as(&env, 0, bob_keys);
    assert!(
        body.windows(12).any(|w| w == b"for bob only"),
        "Bob reads it"
    );

    let carols = binding_of(carol_card);
    let forge = |entry: &[u8; BINDING_LEN], aad: &[u8; BINDING_LEN]| {
        let to = carol_card.encryption_key();
        rewrap(&env, &key, &body, to, copied, entry, aad)
    };
    let bobs = to_bob.binding;
    for (forged, why) in [
        (
            forge(&bobs, &carols),
            "Bob's entry, wrapped as Carol expects",
        ),
        (forge(&bobs, &bobs), "Bob's entry, wrapped as it was"),
        (forge(&carols, &carols), "the entry rebound to Carol"),
    ] {
        let got = open_as(&forged, &carol, 0, &alice, 0, &mut ReplayGuard::default());
        assert!(
            matches!(got, Err(OpenError::NotARecipient | OpenError::Decrypt)),
            "Carol accepted Bob's re-wrap of Alice's message to him ({why}): {got:?}"
        );
    }
}

/// The binding names the card, not only the device: an entry made for
/// another card of this device (one it has replaced, with another X25519
/// key) is not this device's, and one made for the same device id under
/// another user neither.
#[test]
fn entries_bind_user_device_and_card() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let (_, keys, card) = &bob.devices[0];
    let new_keys = keys.with_new_encryption_key();
    let renewed = DeviceCard::issue(
        UnsignedCard::renewal(card, &new_keys, 1_700_000_100, 1_800_000_000).unwrap(),
        &new_keys,
        &bob.identity,
    )
    .unwrap();
    assert_eq!(renewed.device_id(), card.device_id());
    assert_ne!(binding_of(&renewed), binding_of(card));
    let mallory = UserId::parse("mallory").unwrap();
    assert_ne!(
        binding(&mallory, &card.device_id(), &card.id()),
        binding_of(card)
    );
    // Sealed for the old card: the device holding the renewed card (same
    // device id) does not take the entry as its own.
    let data = seal_from(&alice, 0, &[Recipient::from(card)], 1, b"old card");
    let env = Envelope::from_data(&data).unwrap();
    let trusted = TrustedSender {
        card: &alice.devices[0].2,
        identity: &alice.identity.public_key(),
        revocations: &[],
    };
    let mut guard = ReplayGuard::default();
    assert_eq!(
        env.open(&renewed, &new_keys, &trusted, &mut guard, T0)
            .err(),
        Some(OpenError::NotARecipient)
    );
    assert!(env.open(card, keys, &trusted, &mut guard, T0).is_ok());
}

/// Finding 3 / 4: Bob accepted Alice's message; a flood of new sender
/// streams (new device cards, each sending one message) evicted Alice's
/// stream from the least-recently-used guard, and the captured message,
/// replayed within the freshness window, opened a second time. Now streams
/// are only forgotten once everything they accepted has expired.
#[test]
fn attack_replay_after_card_flood_evicts_state() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let mallory = User::new("mallory", 8, 4);
    let mut guard = ReplayGuard::new(4);
    let captured = seal_from(&alice, 0, &bob.recipients(), 1, b"pay mallory 10");
    open_as(&captured, &bob, 0, &alice, 0, &mut guard).unwrap();
    for d in 0..mallory.devices.len() {
        let m = seal_from(&mallory, d, &bob.recipients(), 1, b"flood");
        open_as(&m, &bob, 0, &mallory, d, &mut guard).unwrap();
    }
    assert_eq!(
        open_as(&captured, &bob, 0, &alice, 0, &mut guard).map(|o| o.plaintext),
        Err(OpenError::Replay),
        "the captured message opened again after the flood"
    );
    // Once the message is older than the freshness window the stream may
    // go: the replay is then refused as expired.
    let later = T0 + DEFAULT_MAX_AGE_MS + 1;
    let fresh = seal_at(&mallory, &bob.recipients(), 2, later, b"later");
    let env = Envelope::from_data(&fresh).unwrap();
    let (_, keys, me) = &bob.devices[0];
    let trusted = TrustedSender {
        card: &mallory.devices[0].2,
        identity: &mallory.identity.public_key(),
        revocations: &[],
    };
    env.open(me, keys, &trusted, &mut guard, later).unwrap();
    let env = Envelope::from_data(&captured).unwrap();
    let trusted = TrustedSender {
        card: &alice.devices[0].2,
        identity: &alice.identity.public_key(),
        revocations: &[],
    };
    assert!(matches!(
        env.open(me, keys, &trusted, &mut guard, later),
        Err(OpenError::Replay | OpenError::Expired)
    ));
}

/// `sender`'s device `device` writes `text` to `to` on channel `ch` at `ts`.
fn seal_on(sender: &User, device: usize, ch: &str, to: &User, ts: u64, text: &[u8]) -> String {
    let ch = ChannelName::parse(ch).unwrap();
    seal_by(sender, device, &ch, &to.recipients(), 1, ts, text)
}

/// Opens `data` from `sender`'s device `device` as Bob's first device at `now`.
fn open_from(
    data: &str,
    bob: &User,
    sender: &User,
    device: usize,
    guard: &mut ReplayGuard,
    now: u64,
) -> Result<Opened, OpenError> {
    let (_, keys, me) = &bob.devices[0];
    let trusted = TrustedSender {
        card: &sender.devices[device].2,
        identity: &sender.identity.public_key(),
        revocations: &[],
    };
    Envelope::from_data(data)?.open(me, keys, &trusted, guard, now)
}

/// Finding 4/10 follow-up: the replay state holds one stream per (sender
/// user, device, channel) that sent within the freshness window, and a
/// malicious member (inventing devices and channels) or server (inventing
/// users too) can make as many as it likes: each stream needs only one
/// verified message. Before, the guard grew without bound (it never drops a
/// live stream, so that the flood cannot reopen old messages). Now it holds
/// at most a cap of streams per sender user and in total: past a cap a new
/// stream is refused (`TooManyStreams`), streams already held are kept (the
/// captured message stays a replay; Alice's stream keeps working), and room
/// comes back only as streams expire.
#[test]
fn attack_replay_state_flood_bounded() {
    let (per_user, total) = (4, 10);
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let mallory = User::new("mallory", 6, 4);
    let mut guard = ReplayGuard::default().with_stream_limits(per_user, total);
    let captured = seal_from(&alice, 0, &bob.recipients(), 1, b"pay mallory 10");
    open_as(&captured, &bob, 0, &alice, 0, &mut guard).unwrap();

    // A member invents devices and channels: 6 devices x 3 channels.
    let mut refused = 0;
    for d in 0..mallory.devices.len() {
        for c in 0..3 {
            let m = seal_on(&mallory, d, &format!("private-flood-{c}"), &bob, T0, b"x");
            match open_from(&m, &bob, &mallory, d, &mut guard, T0) {
                Ok(_) => {}
                Err(OpenError::TooManyStreams(StreamLimit::PerUser(n))) => {
                    assert_eq!(n, per_user);
                    refused += 1;
                }
                Err(e) => panic!("{e}"),
            }
            assert!(guard.len() <= total, "{} streams", guard.len());
        }
    }
    assert_eq!(refused, 6 * 3 - per_user, "Mallory got more than her share");
    // A server invents users (identity keys of its own, as a directory that
    // is not yet caught would serve them).
    let invented: Vec<User> = (0..10)
        .map(|i| User::new(&format!("sybil{i}"), 1, 100 + i))
        .collect();
    let mut full = 0;
    for u in &invented {
        let m = seal_on(u, 0, "private-chat-42", &bob, T0, b"x");
        match open_from(&m, &bob, u, 0, &mut guard, T0) {
            Ok(_) => {}
            Err(OpenError::TooManyStreams(StreamLimit::Total(n))) => {
                assert_eq!(n, total);
                full += 1;
            }
            Err(e) => panic!("{e}"),
        }
        assert!(guard.len() <= total, "{} streams", guard.len());
    }
    assert_eq!(full, 10 - (total - 1 - per_user));
    assert_eq!(guard.len(), total);

    // Nothing held was evicted: the captured message is still a replay and
    // Alice's stream goes on.
    assert_eq!(
        open_as(&captured, &bob, 0, &alice, 0, &mut guard).map(|o| o.plaintext),
        Err(OpenError::Replay)
    );
    let next = seal_from(&alice, 0, &bob.recipients(), 2, b"second");
    assert_eq!(
        open_as(&next, &bob, 0, &alice, 0, &mut guard)
            .unwrap()
            .plaintext,
        b"second"
    );

    // Once the flood has left the freshness window its streams go and new
    // senders are accepted again; the captured message is then expired.
    let later = T0 + DEFAULT_MAX_AGE_MS + 1;
    let m = seal_on(&invented[9], 0, "private-chat-42", &bob, later, b"later");
    open_from(&m, &bob, &invented[9], 0, &mut guard, later).unwrap();
    assert!(guard.len() <= 2, "expired streams were swept");
    assert!(matches!(
        open_from(&captured, &bob, &alice, 0, &mut guard, later),
        Err(OpenError::Expired)
    ));
}

/// Finding 10 (a): the relay drops message 2 of 1, 2, 3. Before, sequence
/// numbers were millisecond clocks and nothing told the receiver a message
/// was missing. Now counters are contiguous and message 3 reports the gap.
#[test]
fn attack_server_drops_message_undetected() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let mut guard = ReplayGuard::default();
    let msgs: Vec<String> = (1..=3)
        .map(|s| seal_from(&alice, 0, &bob.recipients(), s, b"m"))
        .collect();
    let first = open_as(&msgs[0], &bob, 0, &alice, 0, &mut guard).unwrap();
    assert_eq!(first.missed, 0);
    let third = open_as(&msgs[2], &bob, 0, &alice, 0, &mut guard).unwrap();
    assert_eq!(third.missed, 1, "the dropped message went unnoticed");
    // If it was only late, it still opens (once).
    let second = open_as(&msgs[1], &bob, 0, &alice, 0, &mut guard).unwrap();
    assert_eq!(second.missed, 0);
    assert_eq!(
        open_as(&msgs[1], &bob, 0, &alice, 0, &mut guard),
        Err(OpenError::Replay)
    );
}

/// Finding 10 (b), at the envelope level: messages reordered within the
/// window open, once each, and one more than [`WINDOW`] behind is refused.
#[test]
fn reordering_within_the_window_is_accepted_once() {
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let mut guard = ReplayGuard::default();
    let at = |s| seal_from(&alice, 0, &bob.recipients(), s, b"m");
    let (early, late, too_late) = (at(2), at(WINDOW + 1), at(1));
    open_as(&late, &bob, 0, &alice, 0, &mut guard).unwrap();
    open_as(&early, &bob, 0, &alice, 0, &mut guard).unwrap();
    assert_eq!(
        open_as(&early, &bob, 0, &alice, 0, &mut guard),
        Err(OpenError::Replay)
    );
    assert_eq!(
        open_as(&too_late, &bob, 0, &alice, 0, &mut guard),
        Err(OpenError::Replay)
    );
}

/// The sender's tree head travels in the signed header (gossip) and comes
/// back unchanged; changing any byte of it in flight makes the envelope
/// refused (the header is the associated data of every wrapped key and of
/// the body, and the signature covers it).
#[test]
fn attack_tampered_gossiped_tree_head_is_refused() {
    use crate::transparency::{LogKey, TreeHead};
    let alice = User::new("alice", 1, 1);
    let bob = User::new("bob", 1, 2);
    let log = LogKey::from_secret_bytes(&[9; 32]);
    let head = log.sign(TreeHead {
        log_id: "app".into(),
        epoch: 5,
        root: [3; 32],
        timestamp: T0,
    });
    let (device_id, keys, _) = &alice.devices[0];
    let (ch, ev, inn) = (channel(), outer(), inner());
    let recipients = bob.recipients();
    let req = SealRequest {
        sender_user: &alice.id,
        sender_device: *device_id,
        sender_keys: keys,
        channel: &ch,
        event: &ev,
        inner_event: &inn,
        timestamp_ms: T0,
        sequence: 1,
        recipients: &recipients,
        tree_head: Some(&head),
    };
    let data = seal(&req, b"hi").unwrap();
    let opened = open_as(&data, &bob, 0, &alice, 0, &mut ReplayGuard::default()).unwrap();
    assert_eq!(opened.header.tree_head.as_ref(), Some(&head));
    opened
        .header
        .tree_head
        .as_ref()
        .unwrap()
        .verify(&log.public_key(), "app")
        .unwrap();

    // Where the head sits: right before the recipient table.
    let bytes = STANDARD.decode(&data).unwrap();
    let head_bytes = head.to_bytes();
    let end = Envelope::from_bytes(bytes.clone()).unwrap().header_len;
    assert_eq!(&bytes[end - head_bytes.len()..end], head_bytes.as_slice());
    // A relay that swaps in another (validly log-signed) head, or flips a
    // bit of the root or of the log's signature, is refused.
    let other = log.sign(TreeHead {
        root: [4; 32],
        ..head.head.clone()
    });
    let mut swapped = bytes.clone();
    swapped[end - head_bytes.len()..end].copy_from_slice(&other.to_bytes());
    let mut flipped_root = bytes.clone();
    flipped_root[end - 64 - 8 - 1] ^= 1;
    let mut flipped_sig = bytes.clone();
    flipped_sig[end - 1] ^= 1;
    for bad in [swapped, flipped_root, flipped_sig] {
        let env = Envelope::from_bytes(bad).unwrap();
        assert_ne!(env.header().tree_head.as_ref(), Some(&head));
        assert_eq!(
            open_as(
                &STANDARD.encode(env.bytes.clone()),
                &bob,
                0,
                &alice,
                0,
                &mut ReplayGuard::default()
            )
            .unwrap_err(),
            OpenError::Decrypt
        );
    }
    // A head that is not a tree head at all is malformed.
    let mut garbage = bytes;
    garbage[end - head_bytes.len()] ^= 0xff;
    assert_eq!(
        Envelope::from_bytes(garbage).unwrap_err(),
        OpenError::Malformed
    );
}
