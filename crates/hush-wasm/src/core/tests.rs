//! The device core against hush-server's real key directory (in-process,
//! SQLite in a temp dir; no network): the same requests and answers the
//! browser exchanges over `hush:request`, with a hostile "network" in the
//! attack tests editing answers between directory and device.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::backup::BackupParams;
use hush_crypto::identity::{DeviceCard, IdentityKey, Revocation};
use hush_crypto::transparency::{LogKey, SignedTreeHead, TreeHead};
use hush_protocol::UserId;
use hush_protocol::msgs::HushRequest;
use hush_protocol::msgs::hush::{Lookup, RequestFrame};
use hush_server::config::DirectoryConfig;
use hush_server::directory::Directory;
use hush_store::Store;
use serde_json::Value;

use super::device::Device;
use super::error::CoreError;
use super::ops::{Op, Step};

const APP: &str = "app";
const LOG_SEED: [u8; 32] = [0x5a; 32];

struct Net {
    dir: Directory,
    _tmp: tempfile::TempDir,
}

/// An edit of the directory's answer (`method`, result JSON) on its way.
type Edit<'a> = &'a mut dyn FnMut(&str, &mut Value);

impl Net {
    async fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/d.sqlite3", tmp.path().display());
        let store = Store::open(&url, &Default::default()).await.unwrap();
        // The directory signs with a key the tests know (to forge heads).
        store
            .server_key("directory-log-v1", || LOG_SEED)
            .await
            .unwrap();
        let dir = Directory::open(store)
            .await
            .unwrap()
            .with_limits(DirectoryConfig {
                epoch_interval_ms: 20,
                ..DirectoryConfig::default()
            });
        Self { dir, _tmp: tmp }
    }

    fn device(&self, user: &str, first: bool) -> Device {
        let mut d = Device::create(user, first).unwrap();
        d.pin_directory_key(&self.dir.public_key()).unwrap();
        d.pin_vrf_key(&self.dir.vrf_public_key()).unwrap();
        d
    }

    async fn answer(&self, user: &str, req: &HushRequest) -> Result<Value, String> {
        let frame = RequestFrame::new("1", req);
        let user = UserId::parse(user).unwrap();
        match self.dir.handle(APP, Some(&user), &frame).await {
            Ok(r) => Ok(serde_json::from_str(r.to_json().get()).unwrap()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Drives `op` to the end with the real directory, answers edited by `edit`.
    async fn run_edit(
        &self,
        d: &mut Device,
        mut op: Op,
        now: u64,
        edit: Edit<'_>,
    ) -> Result<Value, CoreError> {
        let mut s = d.step(&mut op, None, now)?;
        loop {
            match s {
                Step::Done(v) => return Ok(v),
                Step::Request(req) => {
                    let user = d.user_id().to_owned();
                    s = match self.answer(&user, &req).await {
                        Ok(mut v) => {
                            edit(req.method().name(), &mut v);
                            d.step(&mut op, Some(&v.to_string()), now)?
                        }
                        Err(e) => d.fail(&mut op, "server", &e)?,
                    };
                }
            }
        }
    }

    async fn run(&self, d: &mut Device, op: Op) -> Result<Value, CoreError> {
        self.run_edit(d, op, now(), &mut |_, _| {}).await
    }

    async fn go(&self, d: &mut Device, f: impl FnOnce(&Device) -> Op) -> Result<Value, CoreError> {
        let op = f(d);
        self.run(d, op).await
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn users(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn pair(net: &Net) -> (Device, Device) {
    let mut alice = net.device("alice", true);
    let mut bob = net.device("bob", true);
    net.go(&mut alice, |d| d.publish_op()).await.unwrap();
    net.go(&mut bob, |d| d.publish_op()).await.unwrap();
    (alice, bob)
}

async fn send(net: &Net, from: &mut Device, to: &[&str], text: &str) -> Result<String, CoreError> {
    let op = from.seal_op(
        "private-chat",
        "client-hush-e2ee",
        "message",
        &serde_json::json!({ "text": text }).to_string(),
        &users(to),
    )?;
    let v = net.run(from, op).await?;
    Ok(v["data"].as_str().unwrap().to_owned())
}

async fn receive(net: &Net, d: &mut Device, data: &str) -> Result<Value, CoreError> {
    let op = d.open_op("private-chat", "client-hush-e2ee", data)?;
    net.run(d, op).await
}

fn code<T: std::fmt::Debug>(r: Result<T, CoreError>) -> &'static str {
    r.expect_err("must be refused").code()
}

#[tokio::test]
async fn two_devices_exchange_messages_through_the_real_directory() {
    let net = Net::new().await;
    let (mut alice, bob) = pair(&net).await;
    let data = send(&net, &mut alice, &["bob"], "hi bob").await.unwrap();
    // The state survives a save/load (the browser reloads from IndexedDB).
    let mut bob = Device::load(&bob.save().unwrap()).unwrap();
    let m = receive(&net, &mut bob, &data).await.unwrap();
    assert_eq!(m["data"]["text"], "hi bob");
    assert_eq!(m["event"], "message");
    assert_eq!(m["senderUser"], "alice");
    assert_eq!(m["senderDevice"], alice.device_id());
    assert_eq!(m["sequence"], 1);
    assert_eq!(m["gossip"], "consistent");
    assert_eq!(m["verifiedSender"], false);
    let reply = send(&net, &mut bob, &["alice"], "hi alice").await.unwrap();
    let m = receive(&net, &mut alice, &reply).await.unwrap();
    assert_eq!(m["data"]["text"], "hi alice");
    // Safety numbers agree on both sides, and the QR payloads compare.
    let a = net
        .go(&mut alice, |d| d.safety_number_op("bob").unwrap())
        .await
        .unwrap();
    let b = net
        .go(&mut bob, |d| d.safety_number_op("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(a["digits"], b["digits"]);
    assert_eq!(a["digits"].as_str().unwrap().len(), 60);
    let qr = STANDARD.decode(b["qr"].as_str().unwrap()).unwrap();
    assert!(alice.compare_scanned("bob", &qr).unwrap());
    // Lookup results.
    let l = net
        .go(&mut alice, |d| {
            d.lookup_op(&users(&["bob", "nobody"])).unwrap()
        })
        .await
        .unwrap();
    assert_eq!(l["users"][0]["devices"][0], bob.device_id());
    assert!(l["users"][1]["identity"].is_null());
}

#[tokio::test]
async fn a_linked_second_device_receives_and_owner_alarms_follow_acknowledgement() {
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    net.go(&mut alice, |d| d.lookup_op(&users(&["bob"])).unwrap())
        .await
        .unwrap();
    // Bob links a second device (CardRequest flow).
    let mut bob2 = net.device("bob", false);
    let r = net.go(&mut bob2, |d| d.card_request_op()).await.unwrap();
    let card = bob.approve_device(r["request"].as_str().unwrap()).unwrap();
    bob2.install_card(&card).unwrap();
    net.go(&mut bob2, |d| d.publish_op()).await.unwrap();
    // Bob's first device approved it: no alarm there.
    let v = net.go(&mut bob, |d| d.check_own_keys_op()).await.unwrap();
    assert_eq!(v["alarms"].as_array().unwrap().len(), 0, "{v}");
    // The second device does not know the first: an alarm until acknowledged.
    let v = net.go(&mut bob2, |d| d.check_own_keys_op()).await.unwrap();
    assert_eq!(v["alarms"][0]["kind"], "unknown-device");
    let first =
        hush_crypto::identity::DeviceId(hex::decode(bob.device_id()).unwrap().try_into().unwrap());
    bob2.acknowledge_own_devices(&[first]);
    let v = net.go(&mut bob2, |d| d.check_own_keys_op()).await.unwrap();
    assert_eq!(v["alarms"].as_array().unwrap().len(), 0);
    // Alice sees a key change (a device added) and reaches both devices.
    net.go(&mut alice, |d| d.lookup_op(&users(&["bob"])).unwrap())
        .await
        .unwrap();
    let data = send(&net, &mut alice, &["bob"], "to both").await.unwrap();
    let events = alice.take_events_json();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "key-changed" && e["added"][0] == bob2.device_id()),
        "{events:?}"
    );
    assert_eq!(
        receive(&net, &mut bob, &data).await.unwrap()["data"]["text"],
        "to both"
    );
    assert_eq!(
        receive(&net, &mut bob2, &data).await.unwrap()["data"]["text"],
        "to both"
    );
}

#[tokio::test]
async fn mailbox_messages_open_once_with_the_mailbox_guard() {
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    let op = alice
        .seal_for_users_op("message", r#"{"text":"later"}"#, &users(&["bob"]))
        .unwrap();
    let v = net.run(&mut alice, op).await.unwrap();
    assert_eq!(v["method"], "mailbox.send");
    assert_eq!(v["params"]["users"][0], "bob");
    let item = serde_json::json!({"envelope": v["params"]["envelope"], "id": 7, "sent_ms": now()})
        .to_string();
    let m = net
        .go(&mut bob, |d| d.open_mailbox_op(&item).unwrap())
        .await
        .unwrap();
    assert_eq!(m["data"]["text"], "later");
    assert_eq!(m["mailboxId"], 7);
    assert_eq!(
        code(
            net.go(&mut bob, |d| d.open_mailbox_op(&item).unwrap())
                .await
        ),
        "replay"
    );
    // A mailbox envelope is not a channel event.
    let env = v["params"]["envelope"].as_str().unwrap();
    assert_eq!(
        code(bob.open_op("private-chat", "client-hush-e2ee", env)),
        "wrong-channel"
    );
}

#[tokio::test]
async fn backup_restores_the_identity_on_a_new_device() {
    let net = Net::new().await;
    let (_, alice_phone) = {
        let mut a = net.device("alice", true);
        net.go(&mut a, |d| d.publish_op()).await.unwrap();
        ((), a)
    };
    let params = BackupParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let blob = alice_phone
        .backup(b"correct horse battery", params)
        .unwrap();
    let mut laptop = net.device("alice", false);
    let op = laptop
        .restore_identity_op(&blob, b"correct horse battery")
        .unwrap();
    net.run(&mut laptop, op).await.unwrap();
    assert!(laptop.has_identity_key());
    net.go(&mut laptop, |d| d.publish_op()).await.unwrap();
    assert!(laptop.card().is_some());
}

// ---- attacks ----

#[tokio::test]
async fn attack_wrong_password_or_tampered_backup_is_refused() {
    let net = Net::new().await;
    let mut a = net.device("alice", true);
    net.go(&mut a, |d| d.publish_op()).await.unwrap();
    let params = BackupParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let blob = a.backup(b"correct horse battery", params).unwrap();
    let laptop = net.device("alice", false);
    assert_eq!(
        code(laptop.restore_identity_op(&blob, b"wrong horse battery")),
        "backup"
    );
    let mut tampered = blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        code(laptop.restore_identity_op(&tampered, b"correct horse battery")),
        "backup"
    );
    // Another user's identity is refused by the directory check.
    let mut mallory = net.device("mallory", true);
    net.go(&mut mallory, |d| d.publish_op()).await.unwrap();
    let other = mallory.backup(b"correct horse battery", params).unwrap();
    let op = laptop
        .restore_identity_op(&other, b"correct horse battery")
        .unwrap();
    let mut laptop = laptop;
    assert_eq!(code(net.run(&mut laptop, op).await), "card");
    assert!(!laptop.has_identity_key());
}

#[tokio::test]
async fn attack_tampered_envelope_is_refused() {
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    let data = send(&net, &mut alice, &["bob"], "hi").await.unwrap();
    let mut bytes = STANDARD.decode(&data).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x01; // inside the body ciphertext
    let tampered = STANDARD.encode(&bytes);
    let c = code(receive(&net, &mut bob, &tampered).await);
    assert!(c == "decrypt" || c == "bad-envelope-signature", "{c}");
    // The genuine one still opens (nothing was recorded for the tampered one).
    assert_eq!(
        receive(&net, &mut bob, &data).await.unwrap()["data"]["text"],
        "hi"
    );
}

#[tokio::test]
async fn attack_replayed_envelope_is_refused_even_after_a_reload() {
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    let data = send(&net, &mut alice, &["bob"], "once").await.unwrap();
    receive(&net, &mut bob, &data).await.unwrap();
    assert_eq!(code(receive(&net, &mut bob, &data).await), "replay");
    let mut reloaded = Device::load(&bob.save().unwrap()).unwrap();
    assert_eq!(code(receive(&net, &mut reloaded, &data).await), "replay");
}

#[tokio::test]
async fn attack_identity_change_of_a_verified_contact_blocks_sealing_until_reverified() {
    let net = Net::new().await;
    let (mut alice, bob) = pair(&net).await;
    net.go(&mut alice, |d| d.mark_verified_op("bob").unwrap())
        .await
        .unwrap();
    assert!(alice.is_verified("bob"));
    send(&net, &mut alice, &["bob"], "verified").await.unwrap();
    // Bob's identity changes (a rotation: what a directory attack also looks like).
    let old = bob.data.identity.clone().unwrap();
    let new = IdentityKey::from_secret_bytes(&[9; 32]);
    let rev = Revocation::rotate_identity(UserId::parse("bob").unwrap(), &old, &new, now() / 1000)
        .unwrap();
    let req = HushRequest::DirectoryRevoke {
        revocation: STANDARD.encode(rev.to_bytes()),
    };
    net.answer("bob", &req).await.unwrap();
    let (keys, card) = hush_testkit::new_device("bob", &new);
    let req = HushRequest::DirectoryPublish {
        card: STANDARD.encode(card.to_bytes()),
    };
    net.answer("bob", &req).await.unwrap();
    let _ = keys;
    // Sealing to the verified contact is refused, with a key-change event.
    assert_eq!(
        code(send(&net, &mut alice, &["bob"], "blocked").await),
        "unverified-change"
    );
    let events = alice.take_events_json();
    assert!(
        events.iter().any(|e| e["type"] == "key-changed"
            && e["identityChanged"] == true
            && e["wasVerified"] == true),
        "{events:?}"
    );
    assert!(!alice.is_verified("bob"));
    // After comparing safety numbers again and re-verifying, it works.
    net.go(&mut alice, |d| d.mark_verified_op("bob").unwrap())
        .await
        .unwrap();
    send(&net, &mut alice, &["bob"], "again").await.unwrap();
}

/// A head for `epoch`/`root` signed by `key` (the directory's log id).
fn forge(key: &LogKey, epoch: u64, root: [u8; 32], timestamp: u64) -> String {
    let sth: SignedTreeHead = key.sign(TreeHead {
        log_id: APP.into(),
        epoch,
        root,
        timestamp,
    });
    STANDARD.encode(sth.to_bytes())
}

fn head_of(v: &Value) -> SignedTreeHead {
    SignedTreeHead::from_bytes(&STANDARD.decode(v["head"].as_str().unwrap()).unwrap()).unwrap()
}

#[tokio::test]
async fn attack_head_signed_by_another_key_is_refused() {
    let net = Net::new().await;
    let (mut alice, _bob) = pair(&net).await;
    let mallory = LogKey::from_secret_bytes(&[0x66; 32]);
    let mut edit = |m: &str, v: &mut Value| {
        if m == "directory.lookup" {
            let h = head_of(v);
            v["head"] = forge(&mallory, h.head.epoch, h.head.root, h.head.timestamp).into();
        }
    };
    let op = alice.lookup_op(&users(&["bob"])).unwrap();
    assert_eq!(
        code(net.run_edit(&mut alice, op, now(), &mut edit).await),
        "bad-signature"
    );
    // First contact with a directory serving another key than the pinned one.
    let mut fresh = net.device("carol", true);
    let mut edit = |m: &str, v: &mut Value| {
        if m == "log.head" {
            v["key"] = STANDARD.encode(mallory.public_key().to_bytes()).into();
        }
    };
    let op = fresh.publish_op();
    assert_eq!(
        code(net.run_edit(&mut fresh, op, now(), &mut edit).await),
        "untrusted-directory"
    );
}

#[tokio::test]
async fn attack_stale_head_is_refused() {
    let net = Net::new().await;
    let (mut alice, _bob) = pair(&net).await;
    // A replayed answer: its head was signed long ago (11 minutes before
    // "now"; the default bound is 10).
    let op = alice.lookup_op(&users(&["bob"])).unwrap();
    let later = now() + 11 * 60 * 1000;
    assert_eq!(
        code(net.run_edit(&mut alice, op, later, &mut |_, _| {}).await),
        "stale-head"
    );
    // A tighter bound set by the app, and an answer replayed 300 ms later.
    let old = net
        .answer(
            "alice",
            &HushRequest::DirectoryLookup {
                users: vec!["bob".into()],
            },
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    alice.set_max_head_age(200);
    let mut edit = |m: &str, v: &mut Value| {
        if m == "directory.lookup" {
            *v = old.clone();
        }
    };
    let op = alice.lookup_op(&users(&["bob"])).unwrap();
    assert_eq!(
        code(net.run_edit(&mut alice, op, now(), &mut edit).await),
        "stale-head"
    );
}

#[tokio::test]
async fn attack_another_root_for_a_seen_epoch_is_a_fork() {
    let net = Net::new().await;
    let (mut alice, _bob) = pair(&net).await;
    net.go(&mut alice, |d| d.lookup_op(&users(&["bob"])).unwrap())
        .await
        .unwrap();
    let seen = alice.data.trusted_signed_head().unwrap();
    // The directory's own key signs another root for the epoch alice saw.
    let key = LogKey::from_secret_bytes(&LOG_SEED);
    let mut edit = |m: &str, v: &mut Value| {
        if m == "directory.lookup" {
            let mut root = seen.head.root;
            root[0] ^= 0xff;
            v["head"] = forge(&key, seen.head.epoch, root, now()).into();
        }
    };
    let op = alice.lookup_op(&users(&["bob"])).unwrap();
    assert_eq!(
        code(net.run_edit(&mut alice, op, now(), &mut edit).await),
        "fork"
    );
}

#[tokio::test]
async fn attack_lookup_serving_an_older_version_or_omitting_a_revocation_is_refused() {
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    // Bob links a second device, then revokes it: the latest entry holds the revocation.
    let mut bob2 = net.device("bob", false);
    let r = net.go(&mut bob2, |d| d.card_request_op()).await.unwrap();
    let card = bob.approve_device(r["request"].as_str().unwrap()).unwrap();
    bob2.install_card(&card).unwrap();
    net.go(&mut bob2, |d| d.publish_op()).await.unwrap();
    // The proof of the entry with bob2 active (before the revocation).
    let old: Lookup = serde_json::from_value(
        net.answer(
            "alice",
            &HushRequest::DirectoryLookup {
                users: vec!["bob".into()],
            },
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let op = bob.revoke_device_op(&bob2.device_id()).unwrap();
    net.run(&mut bob, op).await.unwrap();
    // The directory serves its current head with the older entry's proof.
    let mut edit = |m: &str, v: &mut Value| {
        if m == "directory.lookup" {
            v["users"]["bob"] = old.users["bob"].clone().into();
        }
    };
    let op = alice.lookup_op(&users(&["bob"])).unwrap();
    assert_eq!(
        code(net.run_edit(&mut alice, op, now(), &mut edit).await),
        "bad-proof"
    );
    // Unedited, the revoked device is gone.
    let v = net
        .go(&mut alice, |d| d.lookup_op(&users(&["bob"])).unwrap())
        .await
        .unwrap();
    assert_eq!(v["users"][0]["devices"].as_array().unwrap().len(), 1);
    assert_eq!(v["users"][0]["revocations"], 1);
    // And an old head with its own (then valid) proof is a rollback.
    let mut edit = |m: &str, v: &mut Value| {
        if m == "directory.lookup" {
            *v = serde_json::to_value(&old).unwrap();
        }
    };
    let op = alice.lookup_op(&users(&["bob"])).unwrap();
    assert_eq!(
        code(net.run_edit(&mut alice, op, now(), &mut edit).await),
        "rollback"
    );
}

#[tokio::test]
async fn attack_gossiped_head_of_another_log_view_is_reported_as_a_fork() {
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    // Bob is shown another root for the epoch alice trusts (a forked view).
    net.go(&mut bob, |d| d.lookup_op(&users(&["alice"])).unwrap())
        .await
        .unwrap();
    net.go(&mut alice, |d| d.lookup_op(&users(&["bob"])).unwrap())
        .await
        .unwrap();
    let key = LogKey::from_secret_bytes(&LOG_SEED);
    let data = send(&net, &mut alice, &["bob"], "gossip").await.unwrap();
    // Bob's kept head for alice's gossiped epoch is replaced by a forked one.
    let env = hush_crypto::suite1::Envelope::from_data(&data).unwrap();
    let theirs = env.header().tree_head.clone().unwrap();
    let mut root = theirs.head.root;
    root[1] ^= 0x55;
    let forked = SignedTreeHead::from_bytes(
        &STANDARD
            .decode(forge(&key, theirs.head.epoch, root, theirs.head.timestamp))
            .unwrap(),
    )
    .unwrap();
    bob.heads.retain(|h| h.head.epoch != theirs.head.epoch);
    if bob.data.trusted_head().map(|h| h.epoch) == Some(theirs.head.epoch) {
        bob.data.log.as_mut().unwrap().signed = STANDARD.encode(forked.to_bytes());
        bob.data.log.as_mut().unwrap().root = STANDARD.encode(root);
    } else {
        bob.heads.push_back(forked);
    }
    let m = receive(&net, &mut bob, &data).await.unwrap();
    assert_eq!(m["gossip"], "fork");
    let events = bob.take_events_json();
    assert!(events.iter().any(|e| e["type"] == "fork"), "{events:?}");
}

#[test]
fn a_corrupted_state_is_refused() {
    let d = Device::create("alice", true).unwrap();
    let mut s = d.save().unwrap().to_vec();
    assert_eq!(code(Device::load(&s[..s.len() - 2])), "state");
    let text = String::from_utf8(s.clone()).unwrap();
    let other = Device::create("alice", true).unwrap();
    let id = other.device_id();
    s = text.replace(&d.device_id(), &id).into_bytes();
    assert_eq!(code(Device::load(&s)), "state");
    let _ = DeviceCard::from_bytes(&[]);
}

#[tokio::test]
async fn mailbox_items_are_opened_in_sequence_order_once_each() {
    use super::mailbox::MailboxReceiver;
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    let mut items = Vec::new();
    for (i, text) in ["one", "two", "three", "four"].iter().enumerate() {
        let data = serde_json::json!({ "text": text }).to_string();
        let op = alice
            .seal_for_users_op("message", &data, &users(&["bob"]))
            .unwrap();
        let v = net.run(&mut alice, op).await.unwrap();
        items.push(
            serde_json::json!({"envelope": v["params"]["envelope"], "id": 10 + i, "sent_ms": now()})
                .to_string(),
        );
    }
    let mut rx = MailboxReceiver::default();
    // A fetch page delivers them out of order: nothing opens before the flush.
    for i in [2usize, 0, 1] {
        assert!(rx.offer(&bob, &items[i], false, 0).unwrap().is_empty());
    }
    // The same id again is ignored while held.
    assert!(rx.offer(&bob, &items[0], false, 0).unwrap().is_empty());
    let out = rx.flush();
    let ids: Vec<u64> = out.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![10, 11, 12]);
    let mut texts = Vec::new();
    for r in &out {
        let m = net
            .go(&mut bob, |d| {
                d.open_mailbox_op(r["item"].as_str().unwrap()).unwrap()
            })
            .await
            .unwrap();
        assert_eq!(m["missed"], 0);
        texts.push(m["data"]["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(texts, ["one", "two", "three"]);
    // A push of a processed id is ignored; the next one opens at once.
    assert!(rx.offer(&bob, &items[1], true, 0).unwrap().is_empty());
    let out = rx.offer(&bob, &items[3], true, 0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["reordered"], false);
    // Not an envelope: handed back as rejected.
    let bad =
        serde_json::json!({"envelope": "bm90IGFuIGVudmVsb3Bl", "id": 99, "sent_ms": 1}).to_string();
    let out = rx.offer(&bob, &bad, true, 0).unwrap();
    assert!(
        out[0]["rejected"]
            .as_str()
            .unwrap()
            .starts_with("malformed")
    );
}

#[tokio::test]
async fn a_push_that_skips_ahead_waits_for_the_missing_one_or_its_deadline() {
    use super::mailbox::{MailboxReceiver, PUSH_REORDER_WAIT_MS};
    let net = Net::new().await;
    let (mut alice, mut bob) = pair(&net).await;
    let mut items = Vec::new();
    for i in 0..4u64 {
        let op = alice
            .seal_for_users_op("message", "{}", &users(&["bob"]))
            .unwrap();
        let v = net.run(&mut alice, op).await.unwrap();
        items.push(
            serde_json::json!({"envelope": v["params"]["envelope"], "id": 20 + i, "sent_ms": now()})
                .to_string(),
        );
    }
    let mut rx = MailboxReceiver::default();
    let first = rx.offer(&bob, &items[0], true, 0).unwrap();
    net.go(&mut bob, |d| {
        d.open_mailbox_op(first[0]["item"].as_str().unwrap())
            .unwrap()
    })
    .await
    .unwrap();
    // 3 arrives before 2: held until 2 comes, then both in order.
    assert!(rx.offer(&bob, &items[2], true, 5).unwrap().is_empty());
    let out = rx.offer(&bob, &items[1], true, 6).unwrap();
    let ids: Vec<u64> = out.iter().map(|r| r["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, vec![21, 22]);
    for r in &out {
        net.go(&mut bob, |d| {
            d.open_mailbox_op(r["item"].as_str().unwrap()).unwrap()
        })
        .await
        .unwrap();
    }
    // Skipping ahead with nothing to fill the gap: released at the deadline.
    let more = {
        let op = alice
            .seal_for_users_op("message", "{}", &users(&["bob"]))
            .unwrap();
        let v = net.run(&mut alice, op).await.unwrap();
        serde_json::json!({"envelope": v["params"]["envelope"], "id": 30, "sent_ms": now()})
            .to_string()
    };
    assert!(rx.offer(&bob, &more, true, 100).unwrap().is_empty());
    assert_eq!(rx.next_deadline(), Some(100 + PUSH_REORDER_WAIT_MS));
    assert!(rx.expire(100 + PUSH_REORDER_WAIT_MS - 1).is_empty());
    let out = rx.expire(100 + PUSH_REORDER_WAIT_MS);
    assert_eq!(out.len(), 1);
    let m = net
        .go(&mut bob, |d| {
            d.open_mailbox_op(out[0]["item"].as_str().unwrap()).unwrap()
        })
        .await
        .unwrap();
    assert_eq!(
        m["missed"], 1,
        "the gap (item 23, never delivered) is reported"
    );
}
