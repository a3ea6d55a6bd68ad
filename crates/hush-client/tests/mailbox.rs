//! The encrypted offline mailbox (issue 18) from hush-client against the
//! real server: offline delivery, a user's other devices, restarts, and a
//! malicious server (simulated by editing the server's SQLite store) that
//! drops, reorders, replays and duplicates queued envelopes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use hush_client::Client;
use hush_client::e2ee::{E2ee, KeyStore, MailboxEvent, MailboxMessage, StoreKey};
use serde_json::json;
use sqlx::Row;
use tokio::sync::broadcast;

/// A server with its own SQLite store in `dir`.
async fn start_in(dir: &tempfile::TempDir) -> Srv {
    let url = format!("sqlite://{}", db_file(dir).display());
    start_on(0, &format!("[store]\nurl = '{url}'\n")).await
}

fn db_file(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("hush.sqlite3")
}

/// The server's database, opened beside it (what a malicious operator can
/// do to the queue).
async fn db(dir: &tempfile::TempDir) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db_file(dir))
        .busy_timeout(Duration::from_secs(10));
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await
        .unwrap()
}

fn key_store(dir: &tempfile::TempDir, name: &str) -> KeyStore {
    KeyStore::new(
        dir.path().join(format!("{name}.hks")),
        StoreKey::from_bytes([9; 32]),
    )
}

struct Dev {
    client: Client,
    e2ee: E2ee,
}

async fn setup(e2ee: &E2ee) {
    e2ee.set_trust_on_first_use(true).await;
    e2ee.set_cache_ttl(Duration::ZERO).await;
}

/// A connected device with a new key store (published when `first`).
async fn new_device(
    srv: &Srv,
    dir: &tempfile::TempDir,
    user: &str,
    name: &str,
    first: bool,
) -> Dev {
    let client = client(srv, user);
    client.connected().await.unwrap();
    let e2ee = E2ee::create(client.clone(), key_store(dir, name), user, first).unwrap();
    setup(&e2ee).await;
    if first {
        e2ee.publish().await.unwrap();
    }
    Dev { client, e2ee }
}

/// The device again, from its key store, on a new connection.
async fn reopen(srv: &Srv, dir: &tempfile::TempDir, user: &str, name: &str) -> Dev {
    let client = client(srv, user);
    client.connected().await.unwrap();
    let e2ee = E2ee::open_store(client.clone(), key_store(dir, name)).unwrap();
    setup(&e2ee).await;
    Dev { client, e2ee }
}

/// Goes offline: the connection closes and the E2ee is dropped.
async fn offline(d: Dev) {
    d.client.disconnect().await;
    drop(d);
}

/// Every mailbox event until `n` messages arrived and then 1 s of quiet.
async fn collect(rx: &mut broadcast::Receiver<MailboxEvent>, n: usize) -> Vec<MailboxEvent> {
    let mut out = Vec::new();
    let mut got = 0;
    tokio::time::timeout(WAIT, async {
        while got < n {
            let e = rx.recv().await.unwrap();
            if matches!(e, MailboxEvent::Message(_)) {
                got += 1;
            }
            out.push(e);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out: {got} of {n} messages; events {out:?}"));
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
        out.push(e);
    }
    out
}

fn texts(events: &[MailboxEvent]) -> Vec<String> {
    messages(events)
        .iter()
        .map(|m| {
            m.message.data["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn messages(events: &[MailboxEvent]) -> Vec<&MailboxMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            MailboxEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

async fn say(d: &Dev, text: &str, to: &[&str]) -> hush_client::e2ee::SentMessage {
    d.e2ee
        .send_to_users("message", &json!({ "text": text }), to)
        .await
        .unwrap()
}

/// Bob's queue is empty: a fetch cycle returns nothing to acknowledge.
async fn queue_is_empty(d: &Dev) {
    assert_eq!(d.e2ee.mailbox_sync_step().await.unwrap(), Vec::<u64>::new());
}

/// alice (published) and bob (published, then offline).
async fn alice_and_offline_bob(srv: &Srv, dir: &tempfile::TempDir) -> Dev {
    let alice = new_device(srv, dir, "alice", "alice", true).await;
    let bob = new_device(srv, dir, "bob", "bob", true).await;
    offline(bob).await;
    alice
}

#[tokio::test]
async fn offline_delivery_in_order_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let alice = alice_and_offline_bob(&srv, &dir).await;
    let mut sent = Vec::new();
    for t in ["one", "two", "three"] {
        sent.push(say(&alice, t, &["bob"]).await);
    }
    assert_eq!(sent[0].devices, 1, "{sent:?}");
    assert_eq!(sent[0].online, 0);
    assert_eq!(
        sent.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let status = alice
        .e2ee
        .mailbox_status(&sent[0].message_id)
        .await
        .unwrap();
    assert_eq!(status.recipients, 1);
    assert_eq!(status.pending.len(), 1);
    assert_eq!(status.pending[0].user, "bob");

    // Bob comes back.
    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    let events = collect(&mut rx, 3).await;
    assert_eq!(texts(&events), ["one", "two", "three"], "{events:?}");
    assert_eq!(events.len(), 3, "nothing but the messages: {events:?}");
    let m = messages(&events)[0];
    assert_eq!(m.message.sender_user, "alice");
    assert_eq!(m.message.event, "message");
    assert_eq!(m.message.channel, sent[0].conversation);
    assert!(!m.late);
    // Persisted in the inbox, acknowledged: the queue is empty.
    let inbox = bob.e2ee.inbox().await;
    assert_eq!(inbox.len(), 3);
    assert_eq!(inbox[2].data["text"], "three");
    assert_eq!(inbox[0].message_id, sent[0].message_id);
    queue_is_empty(&bob).await;
    // Every device acknowledged it: the server deleted it (not_found).
    let e = alice
        .e2ee
        .mailbox_status(&sent[2].message_id)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, hush_client::e2ee::E2eeError::Directory(d)
            if d.code() == Some(&hush_client::ErrorCode::NotFound)),
        "{e}"
    );

    // Live: bob online now, the next one is pushed.
    let s = say(&alice, "four", &["bob"]).await;
    assert_eq!(s.online, 1);
    let events = collect(&mut rx, 1).await;
    assert_eq!(texts(&events), ["four"], "{events:?}");
    assert_eq!(events.len(), 1);
    queue_is_empty(&bob).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_users_other_devices_get_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let phone = new_device(&srv, &dir, "alice", "alice-phone", true).await;
    let laptop = new_device(&srv, &dir, "alice", "alice-laptop", false).await;
    let request = laptop.e2ee.card_request().await.unwrap();
    let card = phone.e2ee.approve_device(&request).await.unwrap();
    laptop.e2ee.install_card(card).await.unwrap();
    laptop.e2ee.publish().await.unwrap();
    let bob = new_device(&srv, &dir, "bob", "bob", true).await;
    let mut laptop_rx = laptop.e2ee.start_mailbox();
    let mut bob_rx = bob.e2ee.start_mailbox();

    let sent = say(&phone, "hello from the phone", &["bob"]).await;
    assert_eq!(sent.devices, 2, "bob's device and alice's laptop: {sent:?}");
    for rx in [&mut laptop_rx, &mut bob_rx] {
        let events = collect(rx, 1).await;
        assert_eq!(texts(&events), ["hello from the phone"], "{events:?}");
        let m = messages(&events)[0];
        assert_eq!(m.message.sender_user, "alice");
        assert_eq!(
            m.message.sender_device,
            phone.e2ee.device_id().await,
            "{events:?}"
        );
    }
    // A message to no one else reaches the user's own other devices.
    let sent = say(&laptop, "note to self", &[]).await;
    assert_eq!(sent.devices, 1);
    let mut phone_rx = phone.e2ee.start_mailbox();
    let events = collect(&mut phone_rx, 1).await;
    assert_eq!(texts(&events), ["note to self"]);
    srv.stop().await;
}

#[tokio::test]
async fn a_crash_between_saving_and_acknowledging_shows_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let alice = alice_and_offline_bob(&srv, &dir).await;
    for t in ["a", "b"] {
        say(&alice, t, &["bob"]).await;
    }
    // Bob opens and saves both, then "crashes" before acknowledging.
    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.mailbox_events();
    let ids = bob.e2ee.mailbox_sync_step().await.unwrap();
    assert_eq!(ids.len(), 2);
    let events = collect(&mut rx, 2).await;
    assert_eq!(texts(&events), ["a", "b"]);
    offline(bob).await;

    // Restarted: the same two come back from the server, are recognised
    // (guard and inbox) and acknowledged, and are not shown again.
    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    let mut events = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
        events.push(e);
    }
    assert!(messages(&events).is_empty(), "shown twice: {events:?}");
    let dups: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, MailboxEvent::Duplicate { in_inbox: true, .. }))
        .collect();
    assert_eq!(dups.len(), 2, "{events:?}");
    queue_is_empty(&bob).await;
    assert_eq!(bob.e2ee.inbox().await.len(), 2);
    // And the next message still arrives.
    say(&alice, "c", &["bob"]).await;
    assert_eq!(texts(&collect(&mut rx, 1).await), ["c"]);
    srv.stop().await;
}

/// The queue rows of bob's device, oldest first: (message row id, envelope).
/// What a malicious operator has in hand: the server (on a store in a
/// temporary directory), Alice connected, Bob offline with Alice's messages
/// queued for him, the server's database and Bob's queue in it (mailbox id,
/// envelope).
struct Queued {
    srv: Srv,
    alice: Dev,
    pool: sqlx::SqlitePool,
    queue: Vec<(i64, Vec<u8>)>,
}

/// Alice sends `texts` to Bob, who is offline: [`Queued`].
async fn queued_for_bob(dir: &tempfile::TempDir, texts: &[&str]) -> Queued {
    let srv = start_in(dir).await;
    let alice = alice_and_offline_bob(&srv, dir).await;
    for t in texts {
        say(&alice, t, &["bob"]).await;
    }
    let pool = db(dir).await;
    let queue = queued_for(&pool, "bob").await;
    Queued {
        srv,
        alice,
        pool,
        queue,
    }
}

/// `events` report message `sequence` as reordered, and no gap.
fn put_back_in_order(events: &[MailboxEvent], sequence: u64) {
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MailboxEvent::Reordered { sequence: s, .. } if *s == sequence)),
        "{events:?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, MailboxEvent::Gap { .. })),
        "{events:?}"
    );
}

async fn queued_for(pool: &sqlx::SqlitePool, user: &str) -> Vec<(i64, Vec<u8>)> {
    sqlx::query(
        "SELECT m.id, m.envelope FROM mailbox_queue q JOIN mailbox_messages m ON m.id = q.message \
         WHERE q.user_id = ? ORDER BY m.id",
    )
    .bind(user)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get::<i64, _>(0), r.get::<Vec<u8>, _>(1)))
    .collect()
}

/// Queues a copy of message row `from` (its envelope, or `envelope` if
/// given) for the same devices under a new id, as a malicious server could.
async fn requeue(pool: &sqlx::SqlitePool, from: i64, envelope: Option<&[u8]>) -> i64 {
    let mut message_id = [0u8; 16];
    message_id[..8].copy_from_slice(&rand_u64().to_le_bytes());
    let row = sqlx::query(
        "INSERT INTO mailbox_messages (app_id, message_id, sender_user, sender_device, envelope, \
         created_ms, expires_ms, recipients, remaining) \
         SELECT app_id, ?, sender_user, sender_device, COALESCE(?, envelope), created_ms, \
         expires_ms, recipients, recipients FROM mailbox_messages WHERE id = ? RETURNING id",
    )
    .bind(message_id.to_vec())
    .bind(envelope.map(<[u8]>::to_vec))
    .bind(from)
    .fetch_one(pool)
    .await
    .unwrap();
    let id: i64 = row.get(0);
    sqlx::query(
        "INSERT INTO mailbox_queue (app_id, user_id, device_id, message, size, delivered_ms) \
         SELECT app_id, user_id, device_id, ?, size, NULL FROM mailbox_queue WHERE message = ?",
    )
    .bind(id)
    .bind(from)
    .execute(pool)
    .await
    .unwrap();
    id
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(42);
    h.finish()
}

/// A message row's envelope (while queued).
async fn envelope_of(pool: &sqlx::SqlitePool, id: i64) -> Vec<u8> {
    sqlx::query("SELECT envelope FROM mailbox_messages WHERE id = ?")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn attack_mailbox_drop_is_reported_as_gap() {
    let dir = tempfile::tempdir().unwrap();
    let Queued {
        srv,
        alice: _alice,
        pool,
        queue: queued,
    } = queued_for_bob(&dir, &["one", "two", "three"]).await;
    // The server drops the middle one.
    assert_eq!(queued.len(), 3);
    sqlx::query("DELETE FROM mailbox_queue WHERE message = ?")
        .bind(queued[1].0)
        .execute(&pool)
        .await
        .unwrap();

    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    let events = collect(&mut rx, 2).await;
    assert_eq!(texts(&events), ["one", "three"], "{events:?}");
    let gaps: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MailboxEvent::Gap {
                stream,
                first,
                last,
            } => Some((stream.sender_user.clone(), *first, *last)),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, [("alice".to_owned(), 2, 2)], "{events:?}");
    // The gap is reported before the message after it.
    let gap_at = events
        .iter()
        .position(|e| matches!(e, MailboxEvent::Gap { .. }))
        .unwrap();
    let three_at = events
        .iter()
        .position(|e| matches!(e, MailboxEvent::Message(m) if m.message.sequence == 3))
        .unwrap();
    assert!(gap_at < three_at, "{events:?}");
    queue_is_empty(&bob).await;
    srv.stop().await;
}

#[tokio::test]
async fn attack_mailbox_reorder_is_put_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Queued {
        srv,
        alice,
        pool,
        queue: q,
    } = queued_for_bob(&dir, &["one", "two", "three"]).await;
    // The server swaps the first two envelopes: bob's queue now reads
    // two, one, three.
    for (id, env) in [(q[0].0, &q[1].1), (q[1].0, &q[0].1)] {
        sqlx::query("UPDATE mailbox_messages SET envelope = ? WHERE id = ?")
            .bind(env.clone())
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    let events = collect(&mut rx, 3).await;
    assert_eq!(texts(&events), ["one", "two", "three"], "{events:?}");
    put_back_in_order(&events, 1);
    queue_is_empty(&bob).await;
    say(&alice, "four", &["bob"]).await;
    assert_eq!(texts(&collect(&mut rx, 1).await), ["four"]);
    srv.stop().await;
}

#[tokio::test]
async fn attack_mailbox_replay_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Queued {
        srv,
        alice: _alice,
        pool,
        queue: q,
    } = queued_for_bob(&dir, &["pay 10 euros"]).await;
    let original = q[0].0;
    let envelope = envelope_of(&pool, original).await;

    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    assert_eq!(texts(&collect(&mut rx, 1).await), ["pay 10 euros"]);
    queue_is_empty(&bob).await;

    // The server re-queues the acknowledged envelope (a copy it kept)
    // under a new id.
    let bob_device = bob.e2ee.device_id().await;
    let replayed = insert_for(&pool, "bob", bob_device, &envelope).await;
    bob.e2ee.mailbox_sync().await.unwrap();
    let events = drain(&mut rx).await;
    assert!(messages(&events).is_empty(), "replay shown: {events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            MailboxEvent::Duplicate { mailbox_id, .. } if *mailbox_id == replayed as u64
        )),
        "{events:?}"
    );
    queue_is_empty(&bob).await;

    // After a restart too (the mailbox guard is persisted).
    offline(bob).await;
    let replayed = insert_for(&pool, "bob", bob_device, &envelope).await;
    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    let events = drain(&mut rx).await;
    assert!(
        messages(&events).is_empty(),
        "replay shown after a restart: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            MailboxEvent::Duplicate { mailbox_id, .. } if *mailbox_id == replayed as u64
        )),
        "{events:?}"
    );
    queue_is_empty(&bob).await;
    srv.stop().await;
}

/// Every event for 3 s.
async fn drain(rx: &mut broadcast::Receiver<MailboxEvent>) -> Vec<MailboxEvent> {
    let mut events = Vec::new();
    while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
        events.push(e);
    }
    events
}

/// Queues `envelope` for `user`'s `device` as a new message row (a
/// malicious server replaying a copy it kept). Returns its mailbox id.
async fn insert_for(
    pool: &sqlx::SqlitePool,
    user: &str,
    device: hush_crypto::identity::DeviceId,
    envelope: &[u8],
) -> i64 {
    let app = ID;
    let device = device.0.to_vec();
    let mut message_id = [7u8; 16];
    message_id[..8].copy_from_slice(&rand_u64().to_le_bytes());
    let now = hush_store::now_ms();
    let id: i64 = sqlx::query(
        "INSERT INTO mailbox_messages (app_id, message_id, sender_user, sender_device, envelope, \
         created_ms, expires_ms, recipients, remaining) VALUES (?, ?, 'alice', ?, ?, ?, ?, 1, 1) \
         RETURNING id",
    )
    .bind(app)
    .bind(message_id.to_vec())
    .bind(vec![0u8; 16])
    .bind(envelope.to_vec())
    .bind(now)
    .bind(now + 86_400_000)
    .fetch_one(pool)
    .await
    .unwrap()
    .get(0);
    sqlx::query(
        "INSERT INTO mailbox_queue (app_id, user_id, device_id, message, size, delivered_ms) \
         VALUES (?, ?, ?, ?, ?, NULL)",
    )
    .bind(app)
    .bind(user)
    .bind(device)
    .bind(id)
    .bind(i64::try_from(envelope.len()).unwrap())
    .execute(pool)
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn attack_mailbox_duplicate_is_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let Queued {
        srv,
        alice: _alice,
        pool,
        queue: q,
    } = queued_for_bob(&dir, &["only once", "after"]).await;
    // The server queues the first envelope twice more (new ids).
    let copies = [
        requeue(&pool, q[0].0, None).await,
        requeue(&pool, q[0].0, None).await,
    ];

    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    let events = collect(&mut rx, 2).await;
    assert_eq!(texts(&events), ["only once", "after"], "{events:?}");
    let dups: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            MailboxEvent::Duplicate { mailbox_id, .. } => Some(*mailbox_id),
            _ => None,
        })
        .collect();
    assert_eq!(dups, copies.map(|c| c as u64), "{events:?}");
    assert_eq!(bob.e2ee.inbox().await.len(), 2);
    queue_is_empty(&bob).await;
    srv.stop().await;
}

#[tokio::test]
async fn attack_channel_envelope_is_not_accepted_from_the_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let alice = alice_and_offline_bob(&srv, &dir).await;
    // An envelope alice sealed for a channel (where replays are refused
    // for minutes only), which the server captured and queues for bob as
    // if it were mail: it must not open from the mailbox.
    let sealed = alice
        .e2ee
        .seal(
            "private-room",
            hush_client::e2ee::CLIENT_EVENT,
            "message",
            r#"{"text":"channel only"}"#,
            &["bob"],
        )
        .await
        .unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&sealed)
        .unwrap();
    let pool = db(&dir).await;
    let bob_device = hush_client::e2ee::KeyStore::load(&key_store(&dir, "bob"))
        .unwrap()
        .device_id();
    let id = insert_for(&pool, "bob", bob_device, &raw).await;
    say(&alice, "mail", &["bob"]).await;

    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let mut rx = bob.e2ee.start_mailbox();
    let events = collect(&mut rx, 1).await;
    assert_eq!(texts(&events), ["mail"], "{events:?}");
    assert!(
        events.iter().any(|e| matches!(
            e,
            MailboxEvent::Rejected { mailbox_id, .. } if *mailbox_id == id as u64
        )),
        "{events:?}"
    );
    queue_is_empty(&bob).await;
    srv.stop().await;
}

#[tokio::test]
async fn device_authentication_is_redone_after_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let port = srv.addr.port();
    let alice = new_device(&srv, &dir, "alice", "alice", true).await;
    let bob = new_device(&srv, &dir, "bob", "bob", true).await;
    let mut rx = bob.e2ee.start_mailbox();
    say(&alice, "before", &["bob"]).await;
    assert_eq!(texts(&collect(&mut rx, 1).await), ["before"]);
    let first = bob.client.socket_id().unwrap();

    // The server restarts (same store, same port): both clients reconnect
    // on new sockets, where the old device proofs mean nothing.
    srv.stop().await;
    let url = format!("sqlite://{}", db_file(&dir).display());
    let srv = start_on(port, &format!("[store]\nurl = '{url}'\n")).await;
    let second = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(s) = bob.client.socket_id()
                && s != first
            {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_ne!(first, second);
    // Alice's send authenticates her device again; bob's mailbox task did
    // on its own, so the message is pushed (or fetched) to him.
    say(&alice, "after", &["bob"]).await;
    let events = collect(&mut rx, 1).await;
    assert_eq!(texts(&events), ["after"], "{events:?}");
    queue_is_empty(&bob).await;
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// Pushes: a malicious server in front of bob's connection (a WebSocket
// proxy) that drops or reorders `hush:mailbox` pushes.

use std::sync::{Arc, Mutex};

/// What the proxy does to the next `hush:mailbox` pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushEdit {
    Pass,
    /// Drops the next push.
    DropNext,
    /// Holds the next push back until the one after it has passed.
    SwapNextTwo,
}

fn is_push(m: &WsMessage) -> bool {
    match m {
        WsMessage::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str())
            .is_ok_and(|v| v["event"] == "hush:mailbox"),
        _ => false,
    }
}

/// A proxy in front of `srv` that edits pushes as `edit` says. Returns its
/// URL and the switch.
async fn push_proxy(srv: &Srv) -> (String, Arc<Mutex<PushEdit>>) {
    let edit = Arc::new(Mutex::new(PushEdit::Pass));
    let switch = edit.clone();
    let url = editing_ws_proxy(srv, move || {
        let edit = edit.clone();
        let mut held: Option<WsMessage> = None;
        move |m| {
            let mut out = vec![m];
            if is_push(&out[0]) {
                let mut e = edit.lock().unwrap();
                match *e {
                    PushEdit::Pass => {}
                    PushEdit::DropNext => {
                        *e = PushEdit::Pass;
                        out.clear();
                    }
                    PushEdit::SwapNextTwo => match held.take() {
                        None => held = out.pop(),
                        Some(first) => {
                            *e = PushEdit::Pass;
                            out.push(first);
                        }
                    },
                }
            }
            out
        }
    })
    .await;
    (url, switch)
}

/// Alice (direct) and bob behind a push-editing proxy, his mailbox started
/// and one message through.
async fn alice_and_bob_behind_proxy(
    srv: &Srv,
    dir: &tempfile::TempDir,
) -> (
    Dev,
    Dev,
    Arc<Mutex<PushEdit>>,
    broadcast::Receiver<MailboxEvent>,
) {
    let alice = new_device(srv, dir, "alice", "alice", true).await;
    let (url, edit) = push_proxy(srv).await;
    let client = Client::builder(KEY)
        .url(&url)
        .authorizer(authorizer(srv.sdk(), "bob", Arc::default()))
        .build()
        .unwrap();
    client.connected().await.unwrap();
    let e2ee = E2ee::create(client.clone(), key_store(dir, "bob"), "bob", true).unwrap();
    setup(&e2ee).await;
    e2ee.publish().await.unwrap();
    let bob = Dev { client, e2ee };
    let mut rx = bob.e2ee.start_mailbox();
    say(&alice, "one", &["bob"]).await;
    assert_eq!(texts(&collect(&mut rx, 1).await), ["one"]);
    (alice, bob, edit, rx)
}

#[tokio::test]
async fn attack_mailbox_push_reorder_is_put_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let (alice, bob, edit, mut rx) = alice_and_bob_behind_proxy(&srv, &dir).await;
    // The server pushes "three" before "two".
    *edit.lock().unwrap() = PushEdit::SwapNextTwo;
    say(&alice, "two", &["bob"]).await;
    say(&alice, "three", &["bob"]).await;
    let events = collect(&mut rx, 2).await;
    assert_eq!(texts(&events), ["two", "three"], "{events:?}");
    put_back_in_order(&events, 2);
    queue_is_empty(&bob).await;
    srv.stop().await;
}

#[tokio::test]
async fn attack_mailbox_push_dropped_is_a_gap_then_accepted_late_once() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let (alice, bob, edit, mut rx) = alice_and_bob_behind_proxy(&srv, &dir).await;
    // The push of "two" never reaches bob: "three" waits, then comes with
    // a gap.
    *edit.lock().unwrap() = PushEdit::DropNext;
    say(&alice, "two", &["bob"]).await;
    say(&alice, "three", &["bob"]).await;
    let started = std::time::Instant::now();
    let events = collect(&mut rx, 1).await;
    assert_eq!(texts(&events), ["three"], "{events:?}");
    assert!(
        started.elapsed() >= hush_client::e2ee::PUSH_REORDER_WAIT - Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            MailboxEvent::Gap {
                first: 2,
                last: 2,
                ..
            }
        )),
        "{events:?}"
    );
    // "two" is still queued (never acknowledged): the next fetch brings it,
    // late, accepted once and flagged.
    bob.e2ee.mailbox_sync().await.unwrap();
    let events = collect(&mut rx, 1).await;
    assert_eq!(texts(&events), ["two"], "{events:?}");
    assert!(messages(&events)[0].late, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MailboxEvent::Reordered { sequence: 2, .. })),
        "{events:?}"
    );
    queue_is_empty(&bob).await;
    let inbox = bob.e2ee.inbox().await;
    assert_eq!(
        inbox.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 3, 2]
    );
    assert!(inbox[2].late);
    srv.stop().await;
}

#[tokio::test]
async fn a_failed_save_leaves_the_message_queued_and_opens_it_later() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_in(&dir).await;
    let alice = new_device(&srv, &dir, "alice", "alice", true).await;
    let bob_dir = dir.path().join("bob-device");
    std::fs::create_dir(&bob_dir).unwrap();
    let store = || KeyStore::new(bob_dir.join("bob.hks"), StoreKey::from_bytes([5; 32]));
    {
        let client = client(&srv, "bob");
        client.connected().await.unwrap();
        let e2ee = E2ee::create(client.clone(), store(), "bob", true).unwrap();
        setup(&e2ee).await;
        e2ee.publish().await.unwrap();
        client.disconnect().await;
    }
    say(&alice, "kept", &["bob"]).await;

    let client = client(&srv, "bob");
    client.connected().await.unwrap();
    let bob = E2ee::open_store(client.clone(), store()).unwrap();
    setup(&bob).await;
    // Alice's cards are cached (opening needs no directory round trip, so
    // the save that fails is the one of the opened message).
    bob.set_cache_ttl(Duration::from_secs(3600)).await;
    bob.lookup(&["alice"]).await.unwrap();
    let mut rx = bob.mailbox_events();
    // The key store cannot be written: the message is opened but not
    // saved, so it is neither announced nor acknowledged.
    std::fs::remove_dir_all(&bob_dir).unwrap();
    bob.mailbox_sync().await.unwrap();
    let events = drain(&mut rx).await;
    assert!(events.is_empty(), "{events:?}");
    assert!(bob.inbox().await.is_empty());
    // The disk is back: the next fetch opens it (the guard was rolled back
    // with the failed save, so it is not taken for a replay).
    std::fs::create_dir(&bob_dir).unwrap();
    bob.mailbox_sync().await.unwrap();
    let events = collect(&mut rx, 1).await;
    assert_eq!(texts(&events), ["kept"], "{events:?}");
    assert_eq!(bob.inbox().await.len(), 1);
    assert_eq!(bob.mailbox_sync_step().await.unwrap(), Vec::<u64>::new());
    srv.stop().await;
}

/// Environment variable that turns [`sigkill_receiver_role`] into a
/// receiving device (`ADDR|KEY-STORE-PATH`); unset, that function returns
/// at once.
const RECEIVER_ROLE: &str = "HUSH_TEST_MAILBOX_RECEIVER";

/// Not a test on its own: the child process of
/// [`a_receiver_killed_with_sigkill_loses_nothing_and_keeps_nothing_twice`],
/// which runs this test binary again with [`RECEIVER_ROLE`] set (and
/// `--ignored`: it is not a test of its own). It opens Bob's key store,
/// starts the mailbox and prints each message it is given.
#[tokio::test]
#[ignore = "the child process of a_receiver_killed_with_sigkill_..., started by it"]
async fn sigkill_receiver_role() {
    let Ok(spec) = std::env::var(RECEIVER_ROLE) else {
        return;
    };
    let (addr, path) = spec.split_once('|').unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let client = Client::builder(KEY)
        .url(&format!("ws://{addr}"))
        .authorizer(authorizer(
            sdk_at_epoch(addr, 0),
            "bob",
            std::sync::Arc::default(),
        ))
        .build()
        .unwrap();
    client.connected().await.unwrap();
    let store = KeyStore::new(path, StoreKey::from_bytes([9; 32]));
    let e2ee = E2ee::open_store(client, store).unwrap();
    // The default card cache: one lookup of Alice, not one per message.
    e2ee.set_trust_on_first_use(true).await;
    let mut rx = e2ee.start_mailbox();
    loop {
        if let Ok(MailboxEvent::Message(m)) = rx.recv().await {
            println!("got {}", m.message.data["text"]);
        }
    }
}

/// `kill -9` of a receiving device at an arbitrary point (here: after its
/// third message, while it is still fetching, saving and acknowledging the
/// rest), then a restart on the same key store: every message ends up in
/// the device's inbox exactly once and the server's queue empties. Whether
/// the kill lands before a save (refetched), between a save and its
/// acknowledgement (refetched, known, acknowledged silently) or after, nothing
/// is lost and nothing is kept twice.
#[tokio::test]
async fn a_receiver_killed_with_sigkill_loses_nothing_and_keeps_nothing_twice() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let srv = start().await;
    let bob = new_device(&srv, &dir, "bob", "bob", true).await;
    offline(bob).await;
    let alice = new_device(&srv, &dir, "alice", "alice", true).await;
    alice.e2ee.set_cache_ttl(Duration::from_secs(60)).await;
    let mut sent = Vec::new();
    // (Each send looks Bob up with verified proofs: slow in a debug build.)
    for i in 0..24 {
        sent.push(say(&alice, &format!("line {i}"), &["bob"]).await.message_id);
    }
    let spec = format!("{}|{}", srv.addr, dir.path().join("bob.hks").display());
    let spawn = || {
        tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "sigkill_receiver_role",
                "--exact",
                "--nocapture",
                "--ignored",
            ])
            .env(RECEIVER_ROLE, &spec)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    // First run: SIGKILL after the third message.
    let mut first = spawn();
    let mut lines = tokio::io::BufReader::new(first.stdout.take().unwrap()).lines();
    let mut shown = 0;
    tokio::time::timeout(WAIT, async {
        while shown < 3 {
            let l = lines
                .next_line()
                .await
                .unwrap()
                .expect("the receiver ended");
            if l.starts_with("got ") {
                shown += 1;
            }
        }
    })
    .await
    .expect("the first receiver showed 3 messages");
    first.start_kill().unwrap();
    let _ = first.wait().await;
    // Second run: until the server holds nothing more for Bob.
    let mut second = spawn();
    let drained = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let mut waiting = 0;
            for id in &sent {
                if alice.e2ee.mailbox_status(id).await.is_ok() {
                    waiting += 1;
                }
            }
            if waiting == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    second.start_kill().unwrap();
    let _ = second.wait().await;
    assert!(drained.is_ok(), "the server still holds messages for Bob");
    // Bob's inbox: every message once.
    let bob = reopen(&srv, &dir, "bob", "bob").await;
    let inbox = bob.e2ee.inbox().await;
    for id in &sent {
        let n = inbox.iter().filter(|e| &e.message_id == id).count();
        assert_eq!(n, 1, "message {id} is in the inbox {n} times");
    }
    assert_eq!(inbox.len(), sent.len());
}
