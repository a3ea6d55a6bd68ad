//! [`E2ee`](super::E2ee) against a scripted server whose key directory never
//! answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use hush_crypto::identity::{DeviceCard, UnsignedCard};
use hush_crypto::suite1::{self, Recipient, SealRequest};
use hush_crypto::transparency::SignedTreeHead;
use hush_protocol::{ChannelName, EventName, UserId};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::store::CachedUser;
use super::{CLIENT_EVENT, DeviceData, E2ee, E2eeError, KeyChanged, KeyStore, Message, StoreKey};
use crate::client::{Channel, Client};
use crate::event::Event;
use crate::{FnAuthorizer, SocketId};

/// The handle and its futures can move across tasks (`tokio::spawn`).
#[allow(dead_code, clippy::extra_unused_type_parameters)]
fn handles_and_futures_are_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<E2ee>();
    send_sync::<KeyChanged>();
    send_sync::<Message>();
    let f = |e: &E2ee, ev: &Event, ch: &Channel| {
        send(&e.open(ev));
        send(&e.send(ch, "m", &1, &["bob"]));
        send(&e.lookup(&["bob"]));
        send(&e.publish());
        send(&e.rotate_identity());
        send(&e.restore_identity(&[], &[]));
        send(&e.cross_check(&SignedTreeHead::from_bytes(&[]).unwrap()));
        send(&e.send_to_users("m", &1, &["bob"]));
        send(&e.mailbox_status("00"));
        send(&e.mailbox_sync());
        send(&e.mailbox_sync_step());
        send(&e.mailbox_ack(&[1]));
        send(&e.authenticate_device());
        send(&e.inbox());
    };
    send_sync::<super::MailboxEvent>();
    send_sync::<super::InboxEntry>();
    let _ = f;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .try_into()
        .unwrap()
}

/// A device of `user` holding the identity key, with its card issued.
fn device(user: &str) -> (DeviceData, DeviceCard) {
    let d = DeviceData::generate(UserId::parse(user).unwrap(), true);
    let identity = d.identity.as_ref().unwrap();
    let now = now_ms() / 1000;
    let body = UnsignedCard::new(
        d.user.clone(),
        &identity.public_key(),
        &d.keys,
        now - 60,
        now + 3600,
        None,
    );
    let card = DeviceCard::issue(body, &d.keys, identity).unwrap();
    (d, card)
}

/// A `client-hush-e2ee` event from `from` to the device of `to`.
fn envelope(from: &DeviceData, to: &DeviceCard, text: &str) -> Event {
    envelope_seq(from, to, 1, text)
}

/// [`envelope`] with sequence number `sequence`.
fn envelope_seq(from: &DeviceData, to: &DeviceCard, sequence: u64, text: &str) -> Event {
    envelope_head(from, to, sequence, text, None)
}

/// [`envelope_seq`] gossiping tree head `head`.
fn envelope_head(
    from: &DeviceData,
    to: &DeviceCard,
    sequence: u64,
    text: &str,
    head: Option<&SignedTreeHead>,
) -> Event {
    let channel = ChannelName::parse("private-room").unwrap();
    let outer = EventName::parse_api(CLIENT_EVENT).unwrap();
    let inner = EventName::parse_api("message").unwrap();
    let req = SealRequest {
        sender_user: &from.user,
        sender_device: from.device_id,
        sender_keys: &from.keys,
        channel: &channel,
        event: &outer,
        inner_event: &inner,
        timestamp_ms: now_ms(),
        sequence,
        recipients: &[Recipient::from(to)],
        tree_head: head,
    };
    let data =
        suite1::seal_with_limit(&req, json!({"text": text}).to_string().as_bytes(), 9000).unwrap();
    Event::new(Some("private-room"), CLIENT_EVENT, Value::String(data))
}

/// A server that signs anyone in and reports every `hush:request` method on
/// `seen`, never answering one.
async fn silent_directory(seen: mpsc::Sender<String>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let data = json!({"socket_id": "1.2", "activity_timeout": 120}).to_string();
                let est = json!({"event": "pusher:connection_established", "data": data});
                ws.send(WsMessage::Text(est.to_string().into()))
                    .await
                    .unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    let WsMessage::Text(t) = m else { continue };
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["event"].as_str() {
                        Some("pusher:signin") => {
                            let data = json!({"user_data": v["data"]["user_data"]}).to_string();
                            let ok = json!({"event": "pusher:signin_success", "data": data});
                            let _ = ws.send(WsMessage::Text(ok.to_string().into())).await;
                        }
                        Some("hush:request") => {
                            let method = v["data"]["method"].as_str().unwrap_or("").to_owned();
                            let _ = seen.send(method).await;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    url
}

/// With the old single mutex held across directory round trips, the second
/// `open` waited for the stalled lookup (and this test timed out).
#[tokio::test]
async fn a_stalled_lookup_does_not_block_opening_a_known_sender() {
    let (seen_tx, mut seen) = mpsc::channel(16);
    let url = silent_directory(seen_tx).await;
    let auth = format!("key:{}", "a".repeat(64));
    let authorizer = FnAuthorizer::new(|_: SocketId, _: ChannelName| async {
        Err::<String, _>("no channels here")
    })
    .with_user(move |_: SocketId| {
        let body = json!({"auth": auth, "user_data": json!({"id": "bob"}).to_string()});
        async move { Ok::<_, String>(body.to_string()) }
    });
    let client = Client::builder("key")
        .url(&url)
        .authorizer(authorizer)
        .build()
        .unwrap();

    let (mut bob, bob_card) = device("bob");
    let (alice, alice_card) = device("alice");
    let (carol, _) = device("carol");
    bob.card = Some(bob_card.clone());
    // Alice is cached (looked up a moment ago); Carol is unknown.
    bob.contacts.insert(
        "alice".into(),
        CachedUser {
            identity: STANDARD.encode(alice_card.identity_key().to_bytes()),
            cards: vec![STANDARD.encode(alice_card.to_bytes())],
            revocations: Vec::new(),
            fetched_ms: now_ms(),
            verified: None,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::new(dir.path().join("bob.hks"), StoreKey::generate());
    store.create(&bob).unwrap();
    let e2ee = E2ee::open_store(client, store).unwrap();
    e2ee.set_trust_on_first_use(true).await;

    let from_carol = envelope(&carol, &bob_card, "who am I");
    let stalled = tokio::spawn({
        let e2ee = e2ee.clone();
        async move { e2ee.open(&from_carol).await }
    });
    // Carol's lookup reached the directory, which does not answer.
    let method = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("no directory request")
        .unwrap();
    assert_eq!(method, "log.head");

    let from_alice = envelope(&alice, &bob_card, "hi");
    let m = tokio::time::timeout(Duration::from_secs(3), e2ee.open(&from_alice))
        .await
        .expect("open() of a known sender waited for another sender's lookup")
        .unwrap();
    assert_eq!(m.sender_user, "alice");
    assert_eq!(m.data, json!({"text": "hi"}));
    assert!(!stalled.is_finished());
    stalled.abort();
}

/// A client for `bob` that never reaches a server (opening messages from
/// cached senders needs none).
fn offline_client() -> Client {
    Client::builder("key")
        .url("ws://127.0.0.1:9")
        .build()
        .unwrap()
}

/// What `user`'s cache entry looks like after a verified lookup of `card`.
fn cached(card: &DeviceCard) -> CachedUser {
    CachedUser {
        identity: STANDARD.encode(card.identity_key().to_bytes()),
        cards: vec![STANDARD.encode(card.to_bytes())],
        revocations: Vec::new(),
        fetched_ms: now_ms(),
        verified: None,
    }
}

/// Bob's device with `senders` cached, its store in `dir`.
fn bob_knowing(
    dir: &std::path::Path,
    senders: &[(&str, &DeviceCard)],
) -> (E2ee, KeyStore, DeviceCard) {
    let (mut bob, bob_card) = device("bob");
    bob.card = Some(bob_card.clone());
    for (user, card) in senders {
        bob.contacts.insert((*user).into(), cached(card));
    }
    let store = KeyStore::new(dir.join("bob.hks"), StoreKey::generate());
    store.create(&bob).unwrap();
    let e2ee = E2ee::open_store(offline_client(), store.clone()).unwrap();
    (e2ee, store, bob_card)
}

fn is_replay(r: Result<Message, E2eeError>) -> bool {
    matches!(
        r,
        Err(E2eeError::Open(hush_crypto::suite1::OpenError::Replay))
    )
}

/// Finding 10 (b): Alice sends two messages 200 ms apart and the relay
/// delivers them in the other order. Before, the sequence number was the
/// sender's millisecond clock, 200 above the first, outside the guard's
/// 128-number window: the older message was refused as a replay. Now the
/// counters are contiguous and the window is counted in messages.
#[tokio::test]
async fn attack_reordered_message_refused_as_replay() {
    let (mut alice, alice_card) = device("alice");
    let dir = tempfile::tempdir().unwrap();
    let (bob, _, bob_card) = bob_knowing(dir.path(), &[("alice", &alice_card)]);
    let ch = ChannelName::parse("private-room").unwrap();
    let first = alice.next_sequence(&ch);
    alice.record_sequence(&ch, first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = alice.next_sequence(&ch);
    alice.record_sequence(&ch, second);
    let (a, b) = (
        envelope_seq(&alice, &bob_card, first, "first"),
        envelope_seq(&alice, &bob_card, second, "second"),
    );
    assert_eq!(bob.open(&b).await.unwrap().data, json!({"text": "second"}));
    let late = bob
        .open(&a)
        .await
        .expect("the reordered older message was refused");
    assert_eq!(late.data, json!({"text": "first"}));
    assert!(is_replay(bob.open(&a).await), "but only once");
    assert!(is_replay(bob.open(&b).await));
}

/// Finding 10 (a), end to end: the relay drops Alice's second message;
/// Bob's client reports the gap on the third.
#[tokio::test]
async fn client_reports_a_dropped_message_as_a_gap() {
    let (alice, alice_card) = device("alice");
    let dir = tempfile::tempdir().unwrap();
    let (bob, _, bob_card) = bob_knowing(dir.path(), &[("alice", &alice_card)]);
    let one = bob
        .open(&envelope_seq(&alice, &bob_card, 1, "one"))
        .await
        .unwrap();
    assert_eq!((one.sequence, one.missed), (1, 0));
    let three = bob
        .open(&envelope_seq(&alice, &bob_card, 3, "three"))
        .await
        .unwrap();
    assert_eq!((three.sequence, three.missed), (3, 1));
}

/// Finding 4 / 3: before, only the last 1024 accepted message ids survived
/// a restart; 1024 messages from another sender pushed Alice's out, and
/// after a restart her captured message (still fresh) opened again. Now
/// each sender stream's high-water mark and window are saved.
#[tokio::test]
async fn attack_replay_after_restart() {
    let (alice, alice_card) = device("alice");
    let (carol, carol_card) = device("carol");
    let dir = tempfile::tempdir().unwrap();
    let (bob, store, bob_card) = bob_knowing(
        dir.path(),
        &[("alice", &alice_card), ("carol", &carol_card)],
    );
    let captured = envelope_seq(&alice, &bob_card, 1, "pay carol 10");
    bob.open(&captured).await.unwrap();
    for seq in 1..=1025 {
        bob.open(&envelope_seq(&carol, &bob_card, seq, "chatter"))
            .await
            .unwrap();
    }
    drop(bob);
    let restarted = E2ee::open_store(offline_client(), store).unwrap();
    restarted.set_trust_on_first_use(true).await;
    assert!(
        is_replay(restarted.open(&captured).await),
        "the captured message opened again after the restart"
    );
    // Carol's stream came back too.
    assert!(is_replay(
        restarted
            .open(&envelope_seq(&carol, &bob_card, 1000, "chatter"))
            .await
    ));
}

/// Gossip: the tree head inside an envelope must be signed by the log this
/// device pinned. A sender's head signed by another key (even under the
/// sender's valid signature) refuses the envelope, before its sequence
/// number is recorded; a same-size head with another root is a fork,
/// detected locally (no directory: this client is offline) and reported
/// with both heads while the message is still returned, flagged.
#[tokio::test]
async fn attack_gossiped_head_with_bad_log_signature_is_refused() {
    use hush_crypto::transparency::{LogError, LogKey, TreeHead};
    let (mut bob, bob_card) = device("bob");
    let (alice, alice_card) = device("alice");
    bob.card = Some(bob_card.clone());
    bob.contacts.insert("alice".into(), cached(&alice_card));
    let log = LogKey::generate();
    let head = |root: u8, by: &LogKey| {
        by.sign(TreeHead {
            log_id: "app".into(),
            epoch: 7,
            root: [root; 32],
            timestamp: now_ms(),
        })
    };
    let ours = head(1, &log);
    bob.log = Some(super::store::LogPin {
        log_id: "app".into(),
        key: STANDARD.encode(log.public_key().to_bytes()),
        vrf: STANDARD.encode([9; 32]),
        epoch: 7,
        root: STANDARD.encode([1; 32]),
        timestamp: ours.head.timestamp,
        signed: STANDARD.encode(ours.to_bytes()),
    });
    let dir = tempfile::tempdir().unwrap();
    let store = KeyStore::new(dir.path().join("bob.hks"), StoreKey::generate());
    store.create(&bob).unwrap();
    let e2ee = E2ee::open_store(offline_client(), store).unwrap();
    e2ee.set_trust_on_first_use(true).await;
    let mut forks = e2ee.forks();

    // Alice's head, re-signed by a key that is not the log's.
    let forged = head(1, &LogKey::generate());
    let r = e2ee
        .open(&envelope_head(&alice, &bob_card, 1, "x", Some(&forged)))
        .await;
    assert!(
        matches!(r, Err(E2eeError::Log(LogError::BadSignature))),
        "{r:?}"
    );
    // Nothing was recorded: the same sequence number opens with her honest
    // head, which agrees with Bob's.
    let m = e2ee
        .open(&envelope_head(&alice, &bob_card, 1, "y", Some(&ours)))
        .await
        .unwrap();
    assert_eq!(m.gossip, super::GossipCheck::Consistent);
    assert!(forks.try_recv().is_err());
    // A head for another log is refused too.
    let other_log = log.sign(TreeHead {
        log_id: "other".into(),
        ..ours.head.clone()
    });
    let r = e2ee
        .open(&envelope_head(&alice, &bob_card, 2, "z", Some(&other_log)))
        .await;
    assert!(
        matches!(r, Err(E2eeError::Log(LogError::WrongLog))),
        "{r:?}"
    );
    // Same size, another root, signed by the log: a fork, seen offline.
    let split = head(2, &log);
    let m = e2ee
        .open(&envelope_head(&alice, &bob_card, 3, "w", Some(&split)))
        .await
        .unwrap();
    assert_eq!(m.gossip, super::GossipCheck::Fork);
    assert_eq!(m.data, json!({"text": "w"}));
    let fork = forks.try_recv().unwrap();
    assert_eq!((fork.ours, fork.theirs), (ours, split));
    // No head (a backend's envelope): unchecked.
    let m = e2ee
        .open(&envelope_seq(&alice, &bob_card, 4, "v"))
        .await
        .unwrap();
    assert_eq!(m.gossip, super::GossipCheck::Unchecked);
}
