//! `hush:request` against the real server, and the E2EE layer
//! (`hush_client::e2ee`): key store, verified lookups, suite 1 envelopes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hush_client::{DirectoryError, ErrorCode};
use serde_json::json;

#[tokio::test]
async fn requests_reach_the_key_directory() {
    let srv = start().await;
    let c = client(&srv, "alice");
    c.connected().await.unwrap();
    let e = c.request("log.head", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::NotSignedIn), "{e}");
    c.signin().await.unwrap();
    let head = c.request("log.head", json!({})).await.unwrap();
    assert!(
        head["key"].is_string() && head["head"].is_string(),
        "{head}"
    );
    let e = c.request("directory.nope", json!({})).await.unwrap_err();
    assert!(
        matches!(
            &e,
            DirectoryError::Server {
                code: ErrorCode::UnknownMethod,
                ..
            }
        ),
        "{e}"
    );
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    let e = c
        .request("directory.lookup", json!({"users": many}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::TooMany));
    c.disconnect().await;
    assert_eq!(
        c.request("log.head", json!({})).await,
        Err(DirectoryError::Closed)
    );
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// hush_client::e2ee against the real server.

use std::time::Duration;

use hush_client::e2ee::{self, E2ee, E2eeError, KeyStore, StoreKey};
use hush_client::{Client, Event, EventStream};
use hush_crypto::backup::BackupParams;
use hush_crypto::identity::{DeviceKeys, RevocationKind};
use hush_crypto::suite1::{self, OpenError, Recipient, SealRequest};
use hush_protocol::{ChannelName, EventName, UserId};

const ROOM: &str = "private-room";

/// A server with its own SQLite store in `dir` (directories of different
/// tests must not mix).
async fn start_in(dir: &tempfile::TempDir) -> Srv {
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    start_on(0, &format!("[store]\nurl = '{url}'\n")).await
}

struct Device {
    client: Client,
    e2ee: E2ee,
    events: EventStream,
}

fn key_store(dir: &tempfile::TempDir, name: &str) -> KeyStore {
    KeyStore::new(
        dir.path().join(format!("{name}.hks")),
        StoreKey::from_bytes([7; 32]),
    )
}

/// A connected, signed-in device subscribed to ROOM, with its key store.
async fn device(srv: &Srv, dir: &tempfile::TempDir, user: &str, name: &str, first: bool) -> Device {
    let client = client(srv, user);
    let events = client.bind(e2ee::CLIENT_EVENT);
    let _room = subscribed(&client, ROOM).await;
    let e2ee = E2ee::create(client.clone(), key_store(dir, name), user, first).unwrap();
    e2ee.set_trust_on_first_use(true).await;
    e2ee.set_cache_ttl(Duration::ZERO).await;
    Device {
        client,
        e2ee,
        events,
    }
}

async fn send(d: &Device, event: &str, data: &serde_json::Value, to: &[&str]) {
    let room = d.client.subscribe(ROOM).await.unwrap();
    d.e2ee.send(&room, event, data, to).await.unwrap();
}

async fn next(d: &mut Device) -> Event {
    next_named(&mut d.events, e2ee::CLIENT_EVENT).await
}

async fn no_event(d: &mut Device) {
    assert!(
        tokio::time::timeout(Duration::from_secs(1), d.events.recv())
            .await
            .is_err(),
        "unexpected event"
    );
}

#[tokio::test]
async fn round_trips_one_to_one_to_many_devices_and_many_users() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let mut phone = device(&srv, &dir, "alice", "alice-phone", true).await;
    phone.e2ee.publish().await.unwrap();
    // Publishing again is a no-op.
    phone.e2ee.publish().await.unwrap();

    // Alice's laptop: a card request cross-signed by the phone.
    let mut laptop = device(&srv, &dir, "alice", "alice-laptop", false).await;
    assert!(matches!(
        laptop.e2ee.publish().await,
        Err(E2eeError::NoIdentityKey)
    ));
    let request = laptop.e2ee.card_request().await.unwrap();
    let request = e2ee::CardRequest::parse(&request.to_text()).unwrap();
    let card = phone.e2ee.approve_device(&request).await.unwrap();
    laptop.e2ee.install_card(card).await.unwrap();
    laptop.e2ee.publish().await.unwrap();

    let mut bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.publish().await.unwrap();
    let mut carol = device(&srv, &dir, "carol", "carol", true).await;
    carol.e2ee.publish().await.unwrap();

    let keys = bob.e2ee.lookup(&["alice", "nobody"]).await.unwrap();
    assert_eq!(keys[0].devices.len(), 2);
    assert!(keys[1].identity.is_none() && keys[1].devices.is_empty());

    // 1 → 1 (Bob to Alice reaches both of her devices).
    send(&bob, "message", &json!({"text": "hi alice"}), &["alice"]).await;
    for d in [&mut phone, &mut laptop] {
        let ev = next(d).await;
        let m = d.e2ee.open(&ev).await.unwrap();
        assert_eq!(m.event, "message");
        assert_eq!(m.data, json!({"text": "hi alice"}));
        assert_eq!(m.sender_user, "bob");
        assert_eq!(m.channel, ROOM);
    }
    // Carol got the client event too, but is not a recipient.
    let ev = next(&mut carol).await;
    assert!(matches!(
        carol.e2ee.open(&ev).await,
        Err(E2eeError::Open(OpenError::NotARecipient))
    ));

    // 1 → many users, and the sender's other device is kept in sync.
    send(&phone, "message", &json!("to everyone"), &["bob", "carol"]).await;
    for d in [&mut bob, &mut carol, &mut laptop] {
        let ev = next(d).await;
        let m = d.e2ee.open(&ev).await.unwrap();
        assert_eq!(m.data, json!("to everyone"));
        assert_eq!(m.sender_user, "alice");
        assert_eq!(m.sender_device, phone.e2ee.device_id().await);
    }

    // A backend-triggered envelope (hush-e2ee) on a public channel.
    let mut news = subscribed(&bob.client, "news").await;
    let data = phone
        .e2ee
        .seal("news", e2ee::SERVER_EVENT, "headline", "\"psst\"", &["bob"])
        .await
        .unwrap();
    srv.sdk()
        .trigger(&["news"], e2ee::SERVER_EVENT, &data, &Default::default())
        .await
        .unwrap();
    let ev = chan_next(&mut news, e2ee::SERVER_EVENT).await;
    let m = bob.e2ee.open(&ev).await.unwrap();
    assert_eq!((m.event.as_str(), m.data), ("headline", json!("psst")));

    // The state survives a restart of the device: same keys, same card.
    assert!(matches!(
        E2ee::open_or_create(bob.client.clone(), key_store(&dir, "bob"), "carol", true),
        Err(E2eeError::Invalid(_))
    ));
    let reopened =
        E2ee::open_or_create(bob.client.clone(), key_store(&dir, "bob"), "bob", true).unwrap();
    assert_eq!(reopened.device_id().await, bob.e2ee.device_id().await);
    assert!(
        reopened
            .with_data(|d| d.card().is_some() && d.trusted_head().is_some())
            .await
    );
    assert!(matches!(
        KeyStore::new(dir.path().join("bob.hks"), StoreKey::from_bytes([8; 32])).load(),
        Err(e2ee::StoreError::WrongKeyOrCorrupted(_))
    ));
    srv.stop().await;
}

#[tokio::test]
async fn tampered_replayed_forged_unknown_and_revoked_senders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let phone = device(&srv, &dir, "alice", "alice-phone", true).await;
    phone.e2ee.publish().await.unwrap();
    let mut bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.publish().await.unwrap();

    send(&phone, "message", &json!({"n": 1}), &["bob"]).await;
    let ev = next(&mut bob).await;
    let data = ev.data.as_str().unwrap().to_owned();
    let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &data).unwrap();
    let env = suite1::Envelope::from_data(&data).unwrap();
    assert_eq!(env.recipients(), vec![bob.e2ee.device_id().await]);
    let encode = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let with = |bytes: Vec<u8>| {
        let mut e = ev.clone();
        e.data = json!(encode(&bytes));
        e
    };
    // Header (message id), recipient table, body (tag): each refused,
    // before the genuine envelope is accepted once.
    let mid = 4 + 2 + 2 + "alice".len() + 16 + 2 + ROOM.len() + 2 + e2ee::CLIENT_EVENT.len();
    // The gossiped tree head (str16) sits between the recipients hash and
    // the table.
    let head = env.header().tree_head.as_ref().unwrap().to_bytes();
    let head_start = mid + 16 + 8 + 8 + 32 + 2;
    let table_start = head_start + head.len() + 2;
    // An altered head no longer carries the log's signature: refused
    // before opening.
    let mut t = raw.clone();
    t[head_start + head.len() - 80] ^= 0x40;
    let r = bob.e2ee.open(&with(t)).await;
    assert!(
        matches!(
            r,
            Err(E2eeError::Log(
                hush_crypto::transparency::LogError::BadSignature
            ))
        ),
        "{r:?}"
    );
    // The entry's binding (device id ‖ binding ‖ enc ‖ wrapped key): an
    // entry bound to someone else is not this device's.
    let mut t = raw.clone();
    t[table_start + 20] ^= 0x40;
    assert!(matches!(
        bob.e2ee.open(&with(t)).await,
        Err(E2eeError::Open(OpenError::NotARecipient))
    ));
    for pos in [mid + 3, table_start + 60, table_start + 100, raw.len() - 1] {
        let mut t = raw.clone();
        t[pos] ^= 0x40;
        let r = bob.e2ee.open(&with(t)).await;
        assert!(
            matches!(r, Err(E2eeError::Open(OpenError::Decrypt))),
            "byte {pos}: {r:?}"
        );
    }
    let mut truncated = raw.clone();
    truncated.truncate(40);
    assert!(matches!(
        bob.e2ee.open(&with(truncated)).await,
        Err(E2eeError::Open(OpenError::Malformed))
    ));
    let mut moved = ev.clone();
    moved.channel = Some("private-other".into());
    assert!(matches!(
        bob.e2ee.open(&moved).await,
        Err(E2eeError::WrongChannel)
    ));
    let m = bob.e2ee.open(&ev).await.unwrap();
    assert_eq!(m.data, json!({"n": 1}));
    assert!(matches!(
        bob.e2ee.open(&ev).await,
        Err(E2eeError::Open(OpenError::Replay))
    ));
    // Still refused after Bob's device restarts (the guard is persisted).
    let restarted = E2ee::open_store(bob.client.clone(), key_store(&dir, "bob")).unwrap();
    restarted.set_trust_on_first_use(true).await;
    assert!(matches!(
        restarted.open(&ev).await,
        Err(E2eeError::Open(OpenError::Replay))
    ));

    // A forged signature: Alice's device id, someone else's signing key.
    let bob_card = bob.e2ee.with_data(|d| d.card().unwrap().clone()).await;
    let forger = DeviceKeys::generate();
    let alice = UserId::parse("alice").unwrap();
    let room = ChannelName::parse(ROOM).unwrap();
    let outer = EventName::parse_api(e2ee::CLIENT_EVENT).unwrap();
    let inner = EventName::parse_api("message").unwrap();
    let forge = |user: &UserId, device| {
        let recipients = [Recipient::from(&bob_card)];
        let req = SealRequest {
            sender_user: user,
            sender_device: device,
            sender_keys: &forger,
            channel: &room,
            event: &outer,
            inner_event: &inner,
            timestamp_ms: 1_700_000_000_000,
            sequence: u64::MAX / 2,
            recipients: &recipients,
            tree_head: None,
        };
        let mut e = ev.clone();
        e.data = json!(suite1::seal(&req, b"\"forged\"").unwrap());
        e
    };
    let forged = forge(&alice, phone.e2ee.device_id().await);
    let r = bob.e2ee.open(&forged).await;
    assert!(
        matches!(r, Err(E2eeError::Open(OpenError::BadSignature))),
        "{r:?}"
    );
    // A sender the directory does not know.
    let mallory = UserId::parse("mallory").unwrap();
    let unknown = forge(&mallory, hush_crypto::identity::DeviceId([9; 16]));
    assert!(matches!(
        bob.e2ee.open(&unknown).await,
        Err(E2eeError::Open(OpenError::UnknownSender))
    ));
    // Not an envelope at all.
    let mut junk = ev.clone();
    junk.data = json!({"a": 1});
    assert!(matches!(
        bob.e2ee.open(&junk).await,
        Err(E2eeError::NotAnEnvelope)
    ));

    // Alice's laptop is lost: revoked from the phone; what it still sends
    // is refused.
    let laptop = device(&srv, &dir, "alice", "alice-laptop", false).await;
    let req = laptop.e2ee.card_request().await.unwrap();
    let card = phone.e2ee.approve_device(&req).await.unwrap();
    laptop.e2ee.install_card(card).await.unwrap();
    laptop.e2ee.publish().await.unwrap();
    send(&laptop, "message", &json!("before"), &["bob"]).await;
    let ev = next(&mut bob).await;
    assert_eq!(bob.e2ee.open(&ev).await.unwrap().data, json!("before"));
    phone
        .e2ee
        .revoke_device(laptop.e2ee.device_id().await)
        .await
        .unwrap();
    send(&laptop, "message", &json!("after"), &["bob"]).await;
    let ev = next(&mut bob).await;
    assert!(matches!(
        bob.e2ee.open(&ev).await,
        Err(E2eeError::Open(OpenError::RevokedSender))
    ));
    no_event(&mut bob).await;
    srv.stop().await;
}

/// The next key change of Alice (Bob's own device set changes are reported too).
async fn alice_change(
    rx: &mut tokio::sync::broadcast::Receiver<e2ee::KeyChanged>,
) -> e2ee::KeyChanged {
    loop {
        let c = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        if c.user == "alice" {
            return c;
        }
    }
}

#[tokio::test]
async fn key_changes_raise_events_and_block_sending_to_a_verified_contact() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let mut alice = device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();
    let bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.publish().await.unwrap();
    let mut changes = bob.e2ee.key_changes();

    // Both sides compute the same safety number; Bob marks Alice verified.
    let a = alice.e2ee.safety_number("bob").await.unwrap();
    let b = bob.e2ee.safety_number("alice").await.unwrap();
    assert_eq!(a.display(), b.display());
    assert_eq!(a.display().len(), 60);
    bob.e2ee.mark_verified("alice").await.unwrap();
    assert!(bob.e2ee.is_verified("alice").await);
    send(&bob, "m", &json!(1), &["alice"]).await;
    let ev = next(&mut alice).await;
    alice.e2ee.open(&ev).await.unwrap();

    // A new device under the same identity: an event, sending still allowed.
    let tablet = device(&srv, &dir, "alice", "alice-tablet", false).await;
    let blob = alice
        .e2ee
        .backup_identity(
            b"correct horse",
            BackupParams {
                m_cost_kib: 1024,
                t_cost: 1,
                p_cost: 1,
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        tablet.e2ee.restore_identity(&blob, b"wrong").await,
        Err(E2eeError::Backup(_))
    ));
    tablet
        .e2ee
        .restore_identity(&blob, b"correct horse")
        .await
        .unwrap();
    tablet.e2ee.publish().await.unwrap();
    bob.e2ee.lookup(&["alice"]).await.unwrap();
    let change = alice_change(&mut changes).await;
    assert_eq!(change.user, "alice");
    assert!(!change.identity_changed && change.was_verified);
    assert_eq!(change.added, vec![tablet.e2ee.device_id().await]);
    send(&bob, "m", &json!(2), &["alice"]).await;
    let ev = next(&mut alice).await;
    alice.e2ee.open(&ev).await.unwrap();

    // Alice rotates her identity: Bob is told, and sending is refused until
    // he compares safety numbers again.
    alice.e2ee.rotate_identity().await.unwrap();
    let room = bob.client.subscribe(ROOM).await.unwrap();
    let r = bob.e2ee.send(&room, "m", &json!(3), &["alice"]).await;
    assert!(
        matches!(&r, Err(E2eeError::KeyChangedSinceVerified(u)) if u == "alice"),
        "{r:?}"
    );
    let change = alice_change(&mut changes).await;
    assert!(change.identity_changed && change.was_verified);
    assert!(!bob.e2ee.is_verified("alice").await);
    let after = bob.e2ee.safety_number("alice").await.unwrap();
    assert_ne!(after.display(), b.display());
    bob.e2ee.mark_verified("alice").await.unwrap();
    send(&bob, "m", &json!(4), &["alice"]).await;
    let ev = next(&mut alice).await;
    assert_eq!(alice.e2ee.open(&ev).await.unwrap().data, json!(4));
    srv.stop().await;
}

#[tokio::test]
async fn a_forked_or_rolled_back_log_is_detected_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let extra = |url: &str| format!("[store]\nurl = '{url}'\n");

    let srv = start_on(port, &extra(&url)).await;
    let alice = device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();
    let bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.publish().await.unwrap();
    let keys = bob.e2ee.lookup(&["alice"]).await.unwrap();
    assert_eq!(keys[0].devices.len(), 1);
    let trusted = bob.e2ee.with_data(|d| d.trusted_head().unwrap()).await;
    assert_eq!(trusted.epoch, 2);
    // Gossip between two clients of the honest directory: consistent.
    let alice_head = alice
        .e2ee
        .with_data(|d| d.trusted_signed_head().unwrap())
        .await;
    assert_eq!(alice_head.head.epoch, 1);
    bob.e2ee.cross_check(&alice_head).await.unwrap();
    let bob_head = bob
        .e2ee
        .with_data(|d| d.trusted_signed_head().unwrap())
        .await;
    alice.client.disconnect().await;
    bob.client.disconnect().await;
    srv.stop().await;

    // Someone with the database and the log key rewrites history: Alice's
    // card is swapped for another valid-looking one.
    let mallory_identity = hush_crypto::identity::IdentityKey::generate();
    let swapped = hush_testkit::new_card("alice", &mallory_identity);
    let forged = format!("sqlite://{}/forged.sqlite3", dir.path().display());
    hush_testkit::forge_directory_log(&url, &forged, 0, &swapped).await;

    let srv = start_on(port, &extra(&forged)).await;
    let bob_client = client(&srv, "bob");
    let e2ee = E2ee::open_store(bob_client.clone(), key_store(&dir, "bob")).unwrap();
    e2ee.set_trust_on_first_use(true).await;
    // The forged tree is rebuilt from the records in fewer epochs: Bob
    // sees an older epoch than he trusts (or, had the forger published
    // more epochs, another root for one he saw).
    let r = e2ee.lookup(&["alice"]).await;
    assert!(
        matches!(
            r,
            Err(E2eeError::Log(
                hush_crypto::transparency::LogError::Fork
                    | hush_crypto::transparency::LogError::Rollback { .. }
            ))
        ),
        "{r:?}"
    );
    // The trusted head is unchanged, so the fork stays detected.
    assert_eq!(e2ee.with_data(|d| d.trusted_head().unwrap()).await, trusted);
    // A newcomer who only ever saw the forged log has no history to check,
    // but comparing heads with Bob (gossip) exposes the fork.
    let carol_dir = tempfile::tempdir().unwrap();
    let carol = device(&srv, &carol_dir, "carol", "carol", true).await;
    carol.e2ee.publish().await.unwrap();
    let r = carol.e2ee.cross_check(&bob_head).await;
    assert!(
        matches!(
            r,
            Err(E2eeError::Log(hush_crypto::transparency::LogError::Fork))
        ),
        "{r:?}"
    );
    carol.client.disconnect().await;
    bob_client.disconnect().await;
    srv.stop().await;

    // A directory that rolls back to an older, shorter log is detected too.
    let short = format!("sqlite://{}/short.sqlite3", dir.path().display());
    hush_testkit::rewrite_directory_log(&forged, &short, |leaves| leaves.truncate(1)).await;
    let srv = start_on(port, &extra(&short)).await;
    let bob_client = client(&srv, "bob");
    let e2ee = E2ee::open_store(bob_client.clone(), key_store(&dir, "bob")).unwrap();
    e2ee.set_trust_on_first_use(true).await;
    let r = e2ee.lookup(&["alice"]).await;
    assert!(
        matches!(
            r,
            Err(E2eeError::Log(
                hush_crypto::transparency::LogError::Rollback {
                    trusted: 2,
                    offered: 1
                }
            ))
        ),
        "{r:?}"
    );
    bob_client.disconnect().await;
    srv.stop().await;
}

#[tokio::test]
async fn directory_calls_fail_in_bounded_time_while_the_server_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::builder(KEY)
        .url(&format!("ws://127.0.0.1:{port}"))
        .authorizer(authorizer(
            hush_sdk::Client::new(hush_sdk::Config::new(ID, KEY, SECRET)).unwrap(),
            "alice",
            Default::default(),
        ))
        .request_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
        .build()
        .unwrap();
    let e2ee = E2ee::create(client.clone(), key_store(&dir, "alice"), "alice", true).unwrap();
    e2ee.set_trust_on_first_use(true).await;
    let started = std::time::Instant::now();
    let r = e2ee.lookup(&["bob"]).await;
    assert!(
        matches!(r, Err(E2eeError::Directory(DirectoryError::Timeout))),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    client.disconnect().await;
}

/// A rotation that could not be sent keeps its new identity key in the key
/// store (as pending), so calling again, even from a restarted device,
/// finishes the same rotation: one rotation record, a card under the new
/// key.
#[tokio::test]
async fn an_interrupted_identity_rotation_is_finished_by_calling_again() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let alice = device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();
    // Offline: the rotation cannot be sent; its new key is kept.
    alice.client.disconnect().await;
    assert!(!alice.e2ee.rotation_pending().await);
    assert!(alice.e2ee.rotate_identity().await.is_err(), "offline");
    assert!(alice.e2ee.rotation_pending().await);
    drop(alice);

    // The device restarts from its key store and calls again.
    let client = client(&srv, "alice");
    let _room = subscribed(&client, ROOM).await;
    let restarted = E2ee::open_store(client.clone(), key_store(&dir, "alice")).unwrap();
    restarted.set_trust_on_first_use(true).await;
    assert!(restarted.rotation_pending().await, "the new key was saved");
    let card = restarted.rotate_identity().await.unwrap();
    assert!(!restarted.rotation_pending().await);
    let bob = device(&srv, &dir, "bob", "bob", true).await;
    let keys = bob.e2ee.lookup(&["alice"]).await.unwrap();
    let rotations = keys[0]
        .revocations
        .iter()
        .filter(|r| matches!(r.kind(), RevocationKind::IdentityRotation { .. }))
        .count();
    assert_eq!(rotations, 1);
    assert_eq!(keys[0].devices, vec![card.clone()]);
    assert_eq!(keys[0].identity, Some(*card.identity_key()));
    srv.stop().await;
}

/// Issue 13, finding 5: a card renewal (here the new card after an identity
/// rotation) brings a new X25519 key, so a device key stolen before the
/// renewal does not open what is sent after it; the new key opens it.
#[tokio::test]
async fn attack_renewed_card_keeps_the_stolen_x25519_key() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let mut alice = device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();
    let bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.publish().await.unwrap();
    let keys = |d: &e2ee::DeviceData| {
        let c = d.card().unwrap();
        (*c.signing_key(), *c.encryption_key())
    };
    let (signing, before) = alice.e2ee.with_data(keys).await;

    let card = alice.e2ee.rotate_identity().await.unwrap();
    assert_eq!(*card.signing_key(), signing, "the signing key stays");
    assert_ne!(*card.encryption_key(), before, "a new X25519 key");
    assert_eq!(
        alice.e2ee.with_data(keys).await,
        (signing, *card.encryption_key())
    );
    // Saved: a restart keeps the new key.
    let restarted = E2ee::open_store(alice.client.clone(), key_store(&dir, "alice")).unwrap();
    restarted.set_trust_on_first_use(true).await;
    assert_eq!(restarted.with_data(keys).await.1, *card.encryption_key());

    send(&bob, "m", &json!("after the renewal"), &["alice"]).await;
    let ev = next(&mut alice).await;
    let env = suite1::Envelope::from_data(ev.data.as_str().unwrap()).unwrap();
    assert_eq!(env.recipients(), vec![alice.e2ee.device_id().await]);
    assert_eq!(
        alice.e2ee.open(&ev).await.unwrap().data,
        json!("after the renewal")
    );
    srv.stop().await;
}

/// Pinned trust is the default (issue 13, finding 2): a device that has not
/// seen the directory refuses to take its keys from the server's first
/// answer (a malicious server would hand it its own) unless the app pinned
/// both keys, as an operator gets them from `hush directory-key`, or asked
/// for trust on first use. Checked to fail with the check removed (the
/// publish then succeeds on keys nobody configured).
#[tokio::test]
async fn attack_unpinned_directory_is_not_trusted_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let alice_client = client(&srv, "alice");
    let e2ee = E2ee::create(
        alice_client.clone(),
        key_store(&dir, "alice"),
        "alice",
        true,
    )
    .unwrap();
    let r = e2ee.publish().await;
    assert!(matches!(r, Err(E2eeError::DirectoryNotPinned)), "{r:?}");
    let r = e2ee.lookup(&["bob"]).await;
    assert!(matches!(r, Err(E2eeError::DirectoryNotPinned)), "{r:?}");
    // One key pinned is not enough.
    let keys = srv.sdk().directory_log_head().await.unwrap();
    e2ee.pin_directory_key(&keys.key.to_bytes()).await.unwrap();
    assert!(matches!(
        e2ee.publish().await,
        Err(E2eeError::DirectoryNotPinned)
    ));
    // Both pinned, as the operator configured them: it works.
    e2ee.pin_directory_vrf_key(&keys.vrf.to_bytes())
        .await
        .unwrap();
    e2ee.publish().await.unwrap();
    // A device whose app asks for trust on first use works without pins.
    let bob_client = client(&srv, "bob");
    let bob = E2ee::create(bob_client.clone(), key_store(&dir, "bob"), "bob", true).unwrap();
    bob.set_trust_on_first_use(true).await;
    bob.publish().await.unwrap();
    assert_eq!(bob.lookup(&["alice"]).await.unwrap()[0].devices.len(), 1);
    alice_client.disconnect().await;
    bob_client.disconnect().await;
    srv.stop().await;
}

/// Pinned trust (issue 13, finding 2): a device configured with the
/// directory's log key refuses a directory signed by any other key (a
/// substituted or malicious server), where trust on first use would accept
/// whatever key the server shows.
#[tokio::test]
async fn attack_substituted_directory_key_is_refused_when_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    // Trust on first use (nothing pinned) takes the key the server shows.
    let carol = device(&srv, &dir, "carol", "carol", true).await;
    carol.e2ee.publish().await.unwrap();
    let genuine = carol.e2ee.with_data(|d| d.log_key().unwrap()).await;

    // Bob's app pinned another key: this server is not its directory.
    let other = hush_crypto::transparency::LogKey::generate()
        .public_key()
        .to_bytes();
    let bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.pin_directory_key(&other).await.unwrap();
    let r = bob.e2ee.publish().await;
    assert!(
        matches!(r, Err(E2eeError::UntrustedDirectory { .. })),
        "{r:?}"
    );
    let r = bob.e2ee.lookup(&["carol"]).await;
    assert!(
        matches!(r, Err(E2eeError::UntrustedDirectory { .. })),
        "{r:?}"
    );
    assert!(bob.e2ee.with_data(|d| d.log_key()).await.is_none());

    // Pinned to the genuine key, the same server is trusted; and a device
    // that trusts one key cannot be re-pinned to another.
    let dave = device(&srv, &dir, "dave", "dave", true).await;
    dave.e2ee.pin_directory_key(&genuine).await.unwrap();
    dave.e2ee.publish().await.unwrap();
    assert_eq!(
        dave.e2ee.lookup(&["carol"]).await.unwrap()[0].devices.len(),
        1
    );
    assert!(dave.e2ee.pin_directory_key(&other).await.is_err());
    assert!(carol.e2ee.pin_directory_key(&other).await.is_err());
    // The pin survives a restart of the device (kept in the key store).
    dave.client.disconnect().await;
    let c = client(&srv, "dave");
    let reopened = E2ee::open_store(c.clone(), key_store(&dir, "dave")).unwrap();
    reopened.set_trust_on_first_use(true).await;
    assert_eq!(reopened.pinned_directory_key().await, Some(genuine));
    c.disconnect().await;
    for d in [carol, bob] {
        d.client.disconnect().await;
    }
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// Issue 13: head freshness and owners watching themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hush_client::e2ee::OwnerAlarm;

/// Bob's device (published, trusting the directory on first use), connected
/// through `url` (a proxy in front of `srv`).
async fn bob_behind(url: &str, srv: &Srv, dir: &tempfile::TempDir) -> (Client, E2ee) {
    let bob_client = Client::builder(KEY)
        .url(url)
        .authorizer(authorizer(srv.sdk(), "bob", Arc::default()))
        .build()
        .unwrap();
    bob_client.connected().await.unwrap();
    let bob = E2ee::create(bob_client.clone(), key_store(dir, "bob"), "bob", true).unwrap();
    bob.set_trust_on_first_use(true).await;
    bob.publish().await.unwrap();
    (bob_client, bob)
}

/// Alice's first device and a tablet she approved, both published.
async fn alice_with_tablet(srv: &Srv, dir: &tempfile::TempDir) -> (Device, Device) {
    let alice = device(srv, dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();
    let tablet = device(srv, dir, "alice", "alice-tablet", false).await;
    let request = tablet.e2ee.card_request().await.unwrap();
    let card = alice.e2ee.approve_device(&request).await.unwrap();
    tablet.e2ee.install_card(card).await.unwrap();
    tablet.e2ee.publish().await.unwrap();
    (alice, tablet)
}

/// A malicious directory in front of the real server: relays the WebSocket
/// both ways, records the last `directory.lookup` answer about `user`, and
/// once `replay` is set answers every later lookup about `user` with that
/// recording (its old signed head and the proof it covered). Returns the
/// proxy's URL and the switch.
async fn replaying_proxy(srv: &Srv, user: &'static str) -> (String, Arc<AtomicBool>) {
    let (url, replay, _) = editing_proxy(srv, user).await;
    (url, replay)
}

/// [`replaying_proxy`] with a second switch, `splice`: while it is set (and
/// `replay` is not), every later lookup about `user` keeps the server's
/// fresh signed head but carries the recorded (older) proof for `user`: a
/// directory leaving out what changed since.
async fn editing_proxy(
    srv: &Srv,
    user: &'static str,
) -> (String, Arc<AtomicBool>, Arc<AtomicBool>) {
    let replay = Arc::new(AtomicBool::new(false));
    let splice = Arc::new(AtomicBool::new(false));
    let switches = (replay.clone(), splice.clone());
    let recorded = Arc::new(std::sync::Mutex::new(None::<serde_json::Value>));
    let url = editing_ws_proxy(srv, move || {
        let (replay, splice, recorded) = (replay.clone(), splice.clone(), recorded.clone());
        move |m| {
            vec![match m {
                WsMessage::Text(t) => {
                    WsMessage::Text(rewrite(t.as_str(), user, (&replay, &splice), &recorded).into())
                }
                other => other,
            }]
        }
    })
    .await;
    (url, switches.0, switches.1)
}

/// The proxy's edit of one server frame (see [`editing_proxy`]).
fn rewrite(
    text: &str,
    user: &str,
    (replay, splice): (&AtomicBool, &AtomicBool),
    recorded: &std::sync::Mutex<Option<serde_json::Value>>,
) -> String {
    let Ok(mut frame) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_owned();
    };
    if frame["event"] != "hush:response" {
        return text.to_owned();
    }
    let Some(mut data) = frame["data"]
        .as_str()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
    else {
        return text.to_owned();
    };
    if data["result"]["users"].get(user).is_none() {
        return text.to_owned();
    }
    let mut rec = recorded.lock().unwrap();
    if replay.load(Ordering::SeqCst) {
        if let Some(old) = rec.clone() {
            data["result"] = old;
        }
    } else if splice.load(Ordering::SeqCst) {
        if let Some(old) = rec.clone() {
            data["result"]["users"][user] = old["users"][user].clone();
        }
    } else {
        *rec = Some(data["result"].clone());
    }
    frame["data"] = serde_json::Value::String(data.to_string());
    frame.to_string()
}

/// Completeness (issue 13, finding 1): a directory that answers a lookup
/// without the revocation of Alice's stolen tablet (it serves her entry as
/// it was before the revocation, under its fresh head) is refused: the akd
/// lookup proof shows which version is the latest at that head, so the old
/// entry does not verify. On the chronological log of earlier versions the
/// same answer (old records with valid inclusion proofs) was accepted and
/// the revoked tablet kept reading and sending.
#[tokio::test]
async fn attack_lookup_omits_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let (alice, tablet) = alice_with_tablet(&srv, &dir).await;

    let (url, _replay, splice) = editing_proxy(&srv, "alice").await;
    let (bob_client, bob) = bob_behind(&url, &srv, &dir).await;
    assert_eq!(bob.lookup(&["alice"]).await.unwrap()[0].devices.len(), 2);

    // The tablet is stolen: Alice revokes it.
    let stolen = tablet.e2ee.with_data(|d| d.device_id()).await;
    alice.e2ee.revoke_device(stolen).await.unwrap();

    // The directory leaves the revocation out: refused.
    splice.store(true, Ordering::SeqCst);
    let r = bob.lookup(&["alice"]).await;
    assert!(
        matches!(
            r,
            Err(E2eeError::Log(
                hush_crypto::transparency::LogError::BadProof
            ))
        ),
        "{r:?}"
    );
    // Sending to Alice does not fall back on the stale cached set either:
    // the lookup it needs fails.
    assert!(
        bob.seal("news", e2ee::SERVER_EVENT, "m", "1", &["alice"])
            .await
            .is_err()
    );
    // The honest answer: the tablet is gone.
    splice.store(false, Ordering::SeqCst);
    let keys = bob.lookup(&["alice"]).await.unwrap();
    assert_eq!(keys[0].devices.len(), 1);
    assert!(keys[0].devices.iter().all(|c| c.device_id() != stolen));
    bob_client.disconnect().await;
    for d in [alice, tablet] {
        d.client.disconnect().await;
    }
    srv.stop().await;
}

/// Head freshness (issue 13, finding 1): a directory that replays an old
/// signed head (and the answer it covered) freezes a victim on an old view:
/// here Bob keeps seeing one device of Alice's after she added another. The
/// client refuses a head older than the configured bound.
#[tokio::test]
async fn attack_stale_head_freezes_victim() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let alice = device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();

    let (url, replay) = replaying_proxy(&srv, "alice").await;
    let (bob_client, bob) = bob_behind(&url, &srv, &dir).await;
    bob.set_max_head_age(Duration::from_secs(3)).await;
    // Fresh heads pass the check.
    assert_eq!(bob.lookup(&["alice"]).await.unwrap()[0].devices.len(), 1);

    // Alice adds a device; the head Bob saw grows old.
    let tablet = device(&srv, &dir, "alice", "alice-tablet", false).await;
    let request = tablet.e2ee.card_request().await.unwrap();
    let card = alice.e2ee.approve_device(&request).await.unwrap();
    tablet.e2ee.install_card(card).await.unwrap();
    tablet.e2ee.publish().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // The directory replays the old answer: refused, not a frozen view.
    replay.store(true, Ordering::SeqCst);
    let r = bob.lookup(&["alice"]).await;
    assert!(matches!(r, Err(E2eeError::StaleHead { .. })), "{r:?}");
    // The honest directory's fresh answer shows both devices.
    replay.store(false, Ordering::SeqCst);
    assert_eq!(bob.lookup(&["alice"]).await.unwrap()[0].devices.len(), 2);
    bob_client.disconnect().await;
    for d in [alice, tablet] {
        d.client.disconnect().await;
    }
    srv.stop().await;
}

/// Owners watch themselves (issue 13, finding 2): a card added for Alice by
/// someone else (here a thief of her identity key backup; a server with a
/// forged record looks the same to her device) raises an owner alarm on her
/// device, from the periodic watch and on demand; her own publish and the
/// devices she approved or acknowledged raise none. The watch stops when
/// the last handle is dropped.
#[tokio::test]
async fn attack_server_adds_card_for_owner_unnoticed() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let Device {
        client: alice_client,
        e2ee: alice,
        ..
    } = device(&srv, &dir, "alice", "alice", true).await;
    let mut alarms = alice.owner_alarms();
    alice.publish().await.unwrap();
    assert_eq!(alice.check_own_keys().await.unwrap(), vec![]);
    // A device Alice approves herself raises no alarm either.
    let tablet = device(&srv, &dir, "alice", "alice-tablet", false).await;
    let request = tablet.e2ee.card_request().await.unwrap();
    let card = alice.approve_device(&request).await.unwrap();
    tablet.e2ee.install_card(card).await.unwrap();
    let tablet_card = tablet.e2ee.publish().await.unwrap();
    assert_eq!(alice.check_own_keys().await.unwrap(), vec![]);
    alice
        .set_owner_check_interval(Duration::from_millis(200))
        .await;

    // Mallory restores Alice's identity from a stolen backup and adds a
    // device of his own.
    let blob = alice
        .backup_identity(
            b"correct horse",
            BackupParams {
                m_cost_kib: 1024,
                t_cost: 1,
                p_cost: 1,
            },
        )
        .await
        .unwrap();
    let mallory = device(&srv, &dir, "alice", "mallory", false).await;
    mallory
        .e2ee
        .restore_identity(&blob, b"correct horse")
        .await
        .unwrap();
    let planted = mallory.e2ee.publish().await.unwrap();
    let expected = OwnerAlarm::UnknownDevice {
        device: planted.device_id(),
        card: planted.id(),
    };
    // The periodic watch raises the alarm without the app asking.
    let raised = tokio::time::timeout(WAIT, alarms.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raised, expected);
    assert_eq!(
        alice.check_own_keys().await.unwrap(),
        vec![expected.clone()]
    );

    // A revocation Alice did not make is named too.
    mallory
        .e2ee
        .revoke_device(tablet_card.device_id())
        .await
        .unwrap();
    let found = alice.check_own_keys().await.unwrap();
    assert_eq!(
        found,
        vec![
            expected,
            OwnerAlarm::UnknownRevocation {
                device: tablet_card.device_id()
            }
        ]
    );
    // The user confirms (say Mallory's "device" was a new phone of hers):
    // no more alarms, and the acknowledgement is kept in the key store.
    alice
        .acknowledge_own_devices(&[planted.device_id(), tablet_card.device_id()])
        .await
        .unwrap();
    assert_eq!(alice.check_own_keys().await.unwrap(), vec![]);
    let c = client(&srv, "alice");
    let reopened = E2ee::open_store(c.clone(), key_store(&dir, "alice")).unwrap();
    reopened.set_trust_on_first_use(true).await;
    c.connected().await.unwrap();
    assert_eq!(reopened.check_own_keys().await.unwrap(), vec![]);
    c.disconnect().await;
    drop(reopened);

    // Dropping the last handle stops the watch (it held no handle: the
    // alarm channel closes).
    drop(alice);
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match alarms.recv().await {
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the owner watch outlived its E2ee");
    alice_client.disconnect().await;
    for d in [tablet, mallory] {
        d.client.disconnect().await;
    }
    srv.stop().await;
}

/// Issue 13, gossip: a directory shows Alice and Bob two different trees
/// from one epoch on (each consistent in itself, so neither client's own
/// checks notice). Alice's envelope carries her signed epoch head; Bob
/// compares it with his own and reports the fork from the envelope alone,
/// with both signed heads as evidence. The message is still returned,
/// flagged.
#[tokio::test]
async fn attack_forked_directory_detected_by_gossip() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}/{name}.sqlite3", dir.path().display());
    let extra = |url: &str| format!("[store]\nurl = '{url}'\n");
    // The honest start: Alice and Bob publish (epochs 1 and 2).
    let srv = start_on(0, &extra(&url("bobs"))).await;
    let alice = device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();
    let bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.publish().await.unwrap();
    alice.client.disconnect().await;
    bob.client.disconnect().await;
    srv.stop().await;
    // The server splits its directory in two from here on: the same
    // database (records, tree, keys) behind two servers.
    let file = |name: &str| dir.path().join(format!("{name}.sqlite3"));
    std::fs::copy(file("bobs"), file("alices")).unwrap();
    let bobs = start_on(0, &extra(&url("bobs"))).await;
    let alices = start_on(0, &extra(&url("alices"))).await;
    // In Bob's tree epoch 3 adds Carol's card; in Alice's, Dave's.
    let carol = device(&bobs, &dir, "carol", "carol", true).await;
    carol.e2ee.publish().await.unwrap();
    let dave = device(&alices, &dir, "dave", "dave", true).await;
    dave.e2ee.publish().await.unwrap();

    let bob_client = client(&bobs, "bob");
    let bob = E2ee::open_store(bob_client.clone(), key_store(&dir, "bob")).unwrap();
    bob.set_trust_on_first_use(true).await;
    bob.lookup(&["alice"]).await.unwrap();
    let ours = bob.with_data(|d| d.trusted_signed_head().unwrap()).await;
    assert_eq!(ours.head.epoch, 3);
    let alice_client = client(&alices, "alice");
    let alice = E2ee::open_store(alice_client.clone(), key_store(&dir, "alice")).unwrap();
    alice.set_trust_on_first_use(true).await;
    let data = alice
        .seal(
            "news",
            e2ee::SERVER_EVENT,
            "message",
            "\"hi bob\"",
            &["bob"],
        )
        .await
        .unwrap();
    let theirs = alice.with_data(|d| d.trusted_signed_head().unwrap()).await;
    assert_eq!(theirs.head.epoch, 3);
    assert_ne!(theirs.head.root, ours.head.root);

    // The envelope travels through Bob's server.
    let mut forks = bob.forks();
    let mut news = subscribed(&bob_client, "news").await;
    bobs.sdk()
        .trigger(&["news"], e2ee::SERVER_EVENT, &data, &Default::default())
        .await
        .unwrap();
    let ev = chan_next(&mut news, e2ee::SERVER_EVENT).await;
    let m = bob.open(&ev).await.unwrap();
    assert_eq!(m.data, json!("hi bob"));
    assert_eq!(m.gossip, e2ee::GossipCheck::Fork);
    let fork = forks.try_recv().expect("a ForkDetected event");
    // (Heads are re-signed as time passes: compare what they commit to.)
    let commits = |h: &hush_crypto::transparency::SignedTreeHead| (h.head.epoch, h.head.root);
    assert_eq!(commits(&fork.ours), commits(&ours));
    assert_eq!(commits(&fork.theirs), commits(&theirs));
    assert_eq!(
        (fork.sender.as_str(), fork.channel.as_str()),
        ("alice", "news")
    );
    // The evidence stands alone: both heads are signed by the directory's
    // key, same epoch, different roots.
    let key = hush_crypto::transparency::LogPublicKey::from_bytes(
        &bob.with_data(|d| d.log_key().unwrap()).await,
    )
    .unwrap();
    fork.ours.verify(&key, &fork.ours.head.log_id).unwrap();
    fork.theirs.verify(&key, &fork.ours.head.log_id).unwrap();

    // On one log, the same exchange is consistent and raises nothing.
    let carol_data = carol
        .e2ee
        .seal("news", e2ee::SERVER_EVENT, "message", "\"hi\"", &["bob"])
        .await
        .unwrap();
    bobs.sdk()
        .trigger(
            &["news"],
            e2ee::SERVER_EVENT,
            &carol_data,
            &Default::default(),
        )
        .await
        .unwrap();
    let ev = chan_next(&mut news, e2ee::SERVER_EVENT).await;
    let m = bob.open(&ev).await.unwrap();
    assert_eq!(m.gossip, e2ee::GossipCheck::Consistent);
    assert!(forks.try_recv().is_err());

    // A head of an epoch Bob has not seen is compared with the directory's
    // own head of that epoch (one round trip, the state unlocked). Bob's
    // directory moves on (Erin publishes); Carol, cached by Bob, now gossips
    // epoch 4 while Bob still trusts 3: consistent.
    let erin = device(&bobs, &dir, "erin", "erin", true).await;
    erin.e2ee.publish().await.unwrap();
    let carol_data = carol
        .e2ee
        .seal("news", e2ee::SERVER_EVENT, "message", "\"again\"", &["bob"])
        .await
        .unwrap();
    bobs.sdk()
        .trigger(
            &["news"],
            e2ee::SERVER_EVENT,
            &carol_data,
            &Default::default(),
        )
        .await
        .unwrap();
    let ev = chan_next(&mut news, e2ee::SERVER_EVENT).await;
    let m = bob.open(&ev).await.unwrap();
    assert_eq!(bob.with_data(|d| d.trusted_head().unwrap().epoch).await, 3);
    assert_eq!(m.gossip, e2ee::GossipCheck::Consistent);
    assert!(forks.try_recv().is_err());
    // Bob moves to epoch 4; Alice, still on her epoch-3 fork, writes again:
    // Bob still holds his own head of epoch 3, whose root differs.
    bob.lookup(&["erin"]).await.unwrap();
    let data = alice
        .seal(
            "news",
            e2ee::SERVER_EVENT,
            "message",
            "\"still me\"",
            &["bob"],
        )
        .await
        .unwrap();
    bobs.sdk()
        .trigger(&["news"], e2ee::SERVER_EVENT, &data, &Default::default())
        .await
        .unwrap();
    let ev = chan_next(&mut news, e2ee::SERVER_EVENT).await;
    let m = bob.open(&ev).await.unwrap();
    assert_eq!(m.gossip, e2ee::GossipCheck::Fork);
    let fork = forks.try_recv().expect("a ForkDetected event");
    assert_eq!((fork.ours.head.epoch, fork.theirs.head.epoch), (3, 3));
    assert_eq!(commits(&fork.ours), commits(&ours));
    assert_eq!(fork.theirs.head.root, theirs.head.root);

    for c in [
        &bob_client,
        &alice_client,
        &carol.client,
        &dave.client,
        &erin.client,
    ] {
        c.disconnect().await;
    }
    bobs.stop().await;
    alices.stop().await;
}

/// The entry a malicious operator writes for Alice: her identity and card,
/// plus (when `rogue` is given) a card of a device she never approved.
fn alice_entry(
    own: &hush_crypto::identity::DeviceCard,
    rogue: Option<&hush_crypto::identity::DeviceCard>,
) -> hush_crypto::transparency::proofs::UserEntry {
    let mut cards: Vec<_> = std::iter::once(own.clone()).chain(rogue.cloned()).collect();
    cards.sort_by_key(hush_crypto::identity::DeviceCard::device_id);
    hush_crypto::transparency::proofs::UserEntry {
        identity: *own.identity_key(),
        cards,
        revocations: Vec::new(),
    }
}

/// Owners watch their history (issue 13, finding 2): someone holding the
/// server's database and keys puts an impostor identity and device under
/// "alice" for one epoch (long enough to be served to a chosen victim) and
/// restores her real entry in the next, so every lookup made after that
/// (hers included) looks honest. Her device's owner check walks the
/// verified history since its last clean check and raises the alarms for
/// what came and went. Checked to fail with the history walk removed (only
/// the latest entry compared).
#[tokio::test]
async fn attack_transient_impostor_caught_by_owner_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let extra = format!("[store]\nurl = '{url}'\n");
    let srv = start_on(0, &extra).await;
    let alice = device(&srv, &dir, "alice", "alice", true).await;
    let own = alice.e2ee.publish().await.unwrap();
    assert_eq!(alice.e2ee.check_own_keys().await.unwrap(), vec![]);
    alice.client.disconnect().await;
    srv.stop().await;

    // The operator's two epochs: the impostor, then Alice's entry again.
    let mallory = hush_crypto::identity::IdentityKey::generate();
    let (_keys, impostor) = hush_testkit::new_device("alice", &mallory);
    hush_testkit::forge_directory_entry(&url, "alice", &alice_entry(&impostor, None)).await;
    hush_testkit::forge_directory_entry(&url, "alice", &alice_entry(&own, None)).await;

    let srv = start_on(0, &extra).await;
    let client = client(&srv, "alice");
    let e2ee = E2ee::open_store(client.clone(), key_store(&dir, "alice")).unwrap();
    e2ee.set_trust_on_first_use(true).await;
    // Today's entry looks honest...
    let now = e2ee.lookup(&["alice"]).await.unwrap();
    assert_eq!(now[0].devices, vec![own.clone()]);
    // ...but the history shows what came and went.
    let alarms = e2ee.check_own_keys().await.unwrap();
    assert!(
        alarms.contains(&OwnerAlarm::UnknownDevice {
            device: impostor.device_id(),
            card: impostor.id(),
        }),
        "{alarms:?}"
    );
    assert!(
        alarms.iter().any(|a| matches!(
            a,
            OwnerAlarm::IdentityChanged { found, .. } if *found == mallory.public_key()
        )),
        "{alarms:?}"
    );
    // Raised again on the next check (the watch does not move past it).
    assert!(!e2ee.check_own_keys().await.unwrap().is_empty());
    client.disconnect().await;
    srv.stop().await;
}

/// One tree for everyone (issue 13, finding 2): an operator who puts an
/// impostor identity and card under "alice" for Bob has to put them in the
/// one tree every lookup is proven against, so Alice's own device sees the
/// same entry and raises the identity alarm; with the chronological log the
/// server could answer Bob with the impostor and Alice with her own records.
#[tokio::test]
async fn attack_impostor_identity_is_seen_by_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let extra = format!("[store]\nurl = '{url}'\n");
    let srv = start_on(0, &extra).await;
    let alice = device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.publish().await.unwrap();
    let bob = device(&srv, &dir, "bob", "bob", true).await;
    bob.e2ee.publish().await.unwrap();
    alice.client.disconnect().await;
    bob.client.disconnect().await;
    srv.stop().await;

    let mallory = hush_crypto::identity::IdentityKey::generate();
    let (_keys, impostor) = hush_testkit::new_device("alice", &mallory);
    hush_testkit::forge_directory_entry(&url, "alice", &alice_entry(&impostor, None)).await;

    let srv = start_on(0, &extra).await;
    let bob_client = client(&srv, "bob");
    let bob = E2ee::open_store(bob_client.clone(), key_store(&dir, "bob")).unwrap();
    bob.set_trust_on_first_use(true).await;
    let seen = bob.lookup(&["alice"]).await.unwrap();
    assert_eq!(seen[0].identity, Some(mallory.public_key()));
    let alice_client = client(&srv, "alice");
    let alice = E2ee::open_store(alice_client.clone(), key_store(&dir, "alice")).unwrap();
    alice.set_trust_on_first_use(true).await;
    let alarms = alice.check_own_keys().await.unwrap();
    assert!(
        alarms.iter().any(|a| matches!(
            a,
            OwnerAlarm::IdentityChanged { found, .. } if *found == mallory.public_key()
        )),
        "{alarms:?}"
    );
    bob_client.disconnect().await;
    alice_client.disconnect().await;
    srv.stop().await;
}
