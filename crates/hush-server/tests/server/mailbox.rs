//! The encrypted mailbox over the WebSocket and the HTTP API: device
//! proofs, offline delivery, pushes, acknowledgements, status, limits, and
//! the attacks a member or a hostile client can try on it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, Revocation};
use hush_crypto::suite1::{Envelope, ReplayGuard, TrustedSender};
use hush_testkit::mailbox::{auth_params, challenge};
use serde_json::{Value, json};

use crate::common::*;

/// One device of a user: its connection (signed in and device-proven),
/// keys and card.
struct Dev {
    c: Client,
    user: String,
    identity: IdentityKey,
    keys: DeviceKeys,
    card: DeviceCard,
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn mailbox_toml(extra: &str) -> String {
    app_toml(extra)
}

async fn prove(c: &mut Client, user: &str, keys: &DeviceKeys) -> Value {
    hush_testkit::mailbox::prove(c, user, keys).await
}

/// A new device of `user` (under `identity`), published and proven.
async fn device(s: &TestServer, user: &str, identity: &IdentityKey) -> Dev {
    let mut c = s.signed_in(user).await;
    let (keys, card) = new_device(user, identity);
    c.request_ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
        .await;
    prove(&mut c, user, &keys).await;
    Dev {
        c,
        user: user.into(),
        identity: identity.clone(),
        keys,
        card,
    }
}

/// An envelope from `from` to `to`, sequence `n`.
fn seal(from: &Dev, to: &[&DeviceCard], n: u64, text: &str) -> String {
    hush_testkit::mailbox::seal_to(&from.user, &from.keys, to, n, text)
}

/// Opens `envelope` as `me`, from `from`.
fn open(me: &Dev, from: &Dev, envelope: &str, guard: &mut ReplayGuard) -> String {
    let env = Envelope::from_data(envelope).unwrap();
    let sender = TrustedSender {
        card: &from.card,
        identity: &from.identity.public_key(),
        revocations: &[],
    };
    let opened = env
        .open(&me.card, &me.keys, &sender, guard, now_secs() * 1000)
        .unwrap();
    String::from_utf8(opened.plaintext).unwrap()
}

async fn send(d: &mut Dev, users: &[&str], envelope: &str) -> Value {
    d.c.request_ok(
        "mailbox.send",
        json!({"users": users, "envelope": envelope}),
    )
    .await
}

fn ids(fetched: &Value) -> Vec<u64> {
    fetched["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

fn message_id(envelope: &str) -> String {
    hush_crypto::identity::DeviceId(Envelope::from_data(envelope).unwrap().header().message_id)
        .to_string()
}

#[tokio::test]
async fn offline_devices_get_their_messages_in_order_and_acknowledgements_delete_them() {
    let s = start(&mailbox_toml("")).await;
    let (alice_id, bob_id) = (IdentityKey::generate(), IdentityKey::generate());
    let mut alice = device(&s, "alice", &alice_id).await;
    let bob_phone = device(&s, "bob", &bob_id).await;
    let bob_laptop = device(&s, "bob", &bob_id).await;
    let (phone_card, laptop_card) = (bob_phone.card.clone(), bob_laptop.card.clone());
    // Bob goes offline with both devices.
    drop(bob_phone.c);
    drop(bob_laptop.c);

    let mut sent = Vec::new();
    for n in 1..=3 {
        let env = seal(
            &alice,
            &[&phone_card, &laptop_card],
            n,
            &format!("note {n}"),
        );
        let r = send(&mut alice, &["bob"], &env).await;
        assert_eq!(r["devices"], 2, "{r}");
        assert_eq!(r["online"], 0, "{r}");
        assert_eq!(r["message"], message_id(&env));
        sent.push(env);
    }
    // A retried send is the same message, not a second copy.
    let again = send(&mut alice, &["bob"], &sent[0]).await;
    assert_eq!(again["devices"], 2);

    // The phone comes back: three waiting, in order, intact.
    let mut phone = s.signed_in("bob").await;
    let authed = prove(&mut phone, "bob", &bob_phone.keys).await;
    assert_eq!(authed["pending"], 3, "{authed}");
    let page = phone.request_ok("mailbox.fetch", json!({"limit": 2})).await;
    assert_eq!(page["more"], true);
    let mut got = ids(&page);
    let rest = phone
        .request_ok("mailbox.fetch", json!({"after": got[1]}))
        .await;
    got.extend(ids(&rest));
    assert_eq!(got.len(), 3);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    let phone_dev = Dev {
        c: phone,
        ..bob_phone
    };
    let mut guard = ReplayGuard::new(64);
    let all: Vec<Value> = [page, rest]
        .iter()
        .flat_map(|p| p["messages"].as_array().unwrap().clone())
        .collect();
    for (n, m) in all.iter().enumerate() {
        let text = open(
            &phone_dev,
            &alice,
            m["envelope"].as_str().unwrap(),
            &mut guard,
        );
        assert_eq!(text, format!("note {}", n + 1));
    }
    let mut phone = phone_dev.c;

    // Status: the phone got them, the laptop not yet.
    let st = alice
        .c
        .request_ok("mailbox.status", json!({"message": message_id(&sent[0])}))
        .await;
    assert_eq!(st["recipients"], 2);
    assert_eq!(st["acknowledged"], 0);
    let states: Vec<&str> = st["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"delivered") && states.contains(&"queued"),
        "{st}"
    );

    // Acknowledged: gone for the phone, still there for the laptop.
    let r = phone.request_ok("mailbox.ack", json!({"ids": got})).await;
    assert_eq!(r["deleted"], 3);
    let empty = phone.request_ok("mailbox.fetch", json!({})).await;
    assert!(ids(&empty).is_empty());
    let st = alice
        .c
        .request_ok("mailbox.status", json!({"message": message_id(&sent[0])}))
        .await;
    assert_eq!(st["acknowledged"], 1, "{st}");

    // A connected device gets new messages pushed at once.
    let env = seal(&alice, &[&phone_card, &laptop_card], 4, "live");
    let r = send(&mut alice, &["bob"], &env).await;
    assert_eq!(r["online"], 1, "{r}");
    let push = phone.expect("hush:mailbox").await;
    let item: Value = serde_json::from_str(push["data"].as_str().unwrap()).unwrap();
    assert_eq!(item["envelope"], env.as_str());

    // The laptop still has all four; acknowledging them deletes the rest.
    let mut laptop = s.signed_in("bob").await;
    let authed = prove(&mut laptop, "bob", &bob_laptop.keys).await;
    assert_eq!(authed["pending"], 4);
    let page = laptop.request_ok("mailbox.fetch", json!({})).await;
    laptop
        .request_ok("mailbox.ack", json!({"ids": ids(&page)}))
        .await;
    let gone = alice
        .c
        .request_err("mailbox.status", json!({"message": message_id(&sent[0])}))
        .await;
    assert_eq!(gone, "not_found");
}

/// A member can neither read nor delete another device's mailbox: fetch and
/// ack need a device proof; a proof names the device's key, the user
/// signed in, the connection and a fresh nonce. The proof check is what
/// stops a connection signed in as Bob from claiming his laptop with his
/// phone's key (fails with `challenge.verify` removed from `device_auth`).
#[tokio::test]
async fn attack_member_cannot_read_or_delete_another_devices_mailbox() {
    let s = start(&mailbox_toml("")).await;
    let (alice_id, bob_id, mal_id) = (
        IdentityKey::generate(),
        IdentityKey::generate(),
        IdentityKey::generate(),
    );
    let mut alice = device(&s, "alice", &alice_id).await;
    let bob_phone = device(&s, "bob", &bob_id).await;
    let bob_laptop = device(&s, "bob", &bob_id).await;
    let laptop_card = bob_laptop.card.clone();
    let laptop_hex = bob_laptop.keys.device_id().to_string();
    drop(bob_laptop.c);
    let env = seal(&alice, &[&laptop_card], 1, "for the laptop only");
    send(&mut alice, &["bob"], &env).await;

    // Without a device proof: nothing.
    let mut mallory = s.signed_in("mallory").await;
    assert_eq!(
        mallory.request_err("mailbox.fetch", json!({})).await,
        "forbidden"
    );
    assert_eq!(
        mallory
            .request_err("mailbox.ack", json!({"ids": [1]}))
            .await,
        "forbidden"
    );
    // Claiming Bob's laptop from Mallory's sign-in: not her device.
    let nonce = challenge(&mut mallory).await;
    let sid = mallory.sid().to_owned();
    let claim = auth_params(&sid, "bob", &bob_laptop.keys, &laptop_hex, &nonce);
    assert_eq!(mallory.request_err("device.auth", claim).await, "forbidden");
    // A connection signed in as Bob (his phone's session) cannot claim the
    // laptop with the phone's key.
    let mut phone2 = s.signed_in("bob").await;
    let nonce = challenge(&mut phone2).await;
    let sid = phone2.sid().to_owned();
    let forged = auth_params(&sid, "bob", &bob_phone.keys, &laptop_hex, &nonce);
    assert_eq!(
        phone2.request_err("device.auth", forged).await,
        "forbidden",
        "a proof by another device's key was accepted"
    );
    // A real laptop proof made for another connection does not carry over
    // (and the nonce was spent by the failed attempt anyway).
    let mut real = s.signed_in("bob").await;
    let nonce = challenge(&mut real).await;
    let real_sid = real.sid().to_owned();
    let proof = auth_params(&real_sid, "bob", &bob_laptop.keys, &laptop_hex, &nonce);
    challenge(&mut phone2).await;
    assert_eq!(
        phone2.request_err("device.auth", proof.clone()).await,
        "forbidden",
        "a proof made for another connection was accepted"
    );
    assert_eq!(
        phone2.request_err("mailbox.fetch", json!({})).await,
        "forbidden"
    );

    // Mallory with a device of her own acknowledges Bob's ids: nothing.
    let mut mal = device(&s, "mallory", &mal_id).await;
    let stolen: Vec<u64> = (1..=50).collect();
    let r = mal
        .c
        .request_ok("mailbox.ack", json!({"ids": stolen}))
        .await;
    assert_eq!(r["deleted"], 0);
    assert!(ids(&mal.c.request_ok("mailbox.fetch", json!({})).await).is_empty());
    // And she cannot read its status (she is not its sender).
    assert_eq!(
        mal.c
            .request_err("mailbox.status", json!({"message": message_id(&env)}))
            .await,
        "not_found"
    );

    // The laptop, proven for real, still has its message.
    real.request_ok("device.auth", proof).await;
    let page = real.request_ok("mailbox.fetch", json!({})).await;
    assert_eq!(page["messages"][0]["envelope"], env.as_str());
}

/// A revoked device gets nothing more: its queue is purged at once, its
/// connection is no longer pushed to and cannot fetch, it cannot prove
/// itself again, and envelopes addressed to it are refused. Fails without
/// the purge (`Mailbox::revoked` not called after a revocation).
#[tokio::test]
async fn attack_revoked_device_gets_nothing_more() {
    let s = start(&mailbox_toml("")).await;
    let (alice_id, bob_id) = (IdentityKey::generate(), IdentityKey::generate());
    let mut alice = device(&s, "alice", &alice_id).await;
    let mut phone = device(&s, "bob", &bob_id).await;
    let mut stolen = device(&s, "bob", &bob_id).await;
    let stolen_card = stolen.card.clone();
    for n in 1..=2 {
        let env = seal(&alice, &[&phone.card, &stolen_card], n, "before");
        send(&mut alice, &["bob"], &env).await;
    }
    // The stolen tablet has two waiting; Bob revokes it from his phone.
    let rev = Revocation::revoke_device(&bob_id, &stolen_card, now_secs()).unwrap();
    phone
        .c
        .request_ok(
            "directory.revoke",
            json!({"revocation": b64(&rev.to_bytes())}),
        )
        .await;
    assert_eq!(
        stolen.c.request_err("mailbox.fetch", json!({})).await,
        "forbidden",
        "the revoked device's connection can still fetch"
    );
    let mut again = s.signed_in("bob").await;
    let nonce = challenge(&mut again).await;
    let sid = again.sid().to_owned();
    let stolen_hex = stolen.keys.device_id().to_string();
    let claim = auth_params(&sid, "bob", &stolen.keys, &stolen_hex, &nonce);
    assert_eq!(again.request_err("device.auth", claim).await, "forbidden");
    // New envelopes to it are refused; to the phone alone they go.
    let env = seal(&alice, &[&phone.card, &stolen_card], 3, "after");
    assert_eq!(
        alice
            .c
            .request_err("mailbox.send", json!({"users": ["bob"], "envelope": env}))
            .await,
        "bad_request"
    );
    let env = seal(&alice, &[&phone.card], 3, "after");
    let r = send(&mut alice, &["bob"], &env).await;
    assert_eq!(r["devices"], 1);
    stolen
        .c
        .expect_no("hush:mailbox", Duration::from_millis(300))
        .await;
    // Its queue is gone from the store: what waits, waits for the phone only.
    let page = phone.c.request_ok("mailbox.fetch", json!({})).await;
    for m in page["messages"].as_array().unwrap() {
        let id = m["id"].as_u64().unwrap();
        let env = m["envelope"].as_str().unwrap();
        let status = alice
            .c
            .request_ok("mailbox.status", json!({"message": message_id(env)}))
            .await;
        let pending: Vec<&str> = status["pending"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["device"].as_str().unwrap())
            .collect();
        assert_eq!(
            pending,
            [phone.keys.device_id().to_string()],
            "message {id} still waits for the revoked device"
        );
    }
}

/// The sender named in an envelope must be the connection's user and
/// device: Mallory cannot queue messages that claim to be Alice's (the
/// recipient would refuse them anyway; the server does not store them).
#[tokio::test]
async fn attack_forged_sender_is_not_queued() {
    let s = start(&mailbox_toml("")).await;
    let (alice_id, bob_id, mal_id) = (
        IdentityKey::generate(),
        IdentityKey::generate(),
        IdentityKey::generate(),
    );
    let alice = device(&s, "alice", &alice_id).await;
    let bob = device(&s, "bob", &bob_id).await;
    let mut mal = device(&s, "mallory", &mal_id).await;
    let env = seal(&alice, &[&bob.card], 1, "not from mallory");
    assert_eq!(
        mal.c
            .request_err("mailbox.send", json!({"users": ["bob"], "envelope": env}))
            .await,
        "forbidden"
    );
    // Garbage is a bad request, not a stored blob.
    for bad in ["", "aGVsbG8=", "!!!"] {
        assert_eq!(
            mal.c
                .request_err("mailbox.send", json!({"users": ["bob"], "envelope": bad}))
                .await,
            "bad_request",
            "{bad:?}"
        );
    }
    // Recipients outside the named users are refused.
    let env = seal(&mal, &[&bob.card], 1, "to bob, naming alice");
    assert_eq!(
        mal.c
            .request_err("mailbox.send", json!({"users": ["alice"], "envelope": env}))
            .await,
        "bad_request"
    );
    let r = send(&mut mal, &["bob"], &env).await;
    assert_eq!(r["devices"], 1);
}

#[tokio::test]
async fn limits_answer_with_clear_errors() {
    let s = start(&format!(
        "{}[mailbox]\nmax_messages_per_device = 2\nmax_message_bytes = 4000\n\
         sends_per_connection_per_minute = 4\nmaintenance_interval_ms = 100\n",
        mailbox_toml("mailbox_ttl_secs = 1")
    ))
    .await;
    let (alice_id, bob_id) = (IdentityKey::generate(), IdentityKey::generate());
    let mut alice = device(&s, "alice", &alice_id).await;
    let bob = device(&s, "bob", &bob_id).await;
    let bob_card = bob.card.clone();
    drop(bob.c);
    for n in 1..=2 {
        let env = seal(&alice, &[&bob_card], n, "x");
        send(&mut alice, &["bob"], &env).await;
    }
    // Quota: the third waits for nothing.
    let env = seal(&alice, &[&bob_card], 3, "x");
    let r = alice
        .c
        .request(
            "q",
            "mailbox.send",
            json!({"users": ["bob"], "envelope": env}),
        )
        .await;
    assert_eq!(r["error"]["code"], "too_many", "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("is full"),
        "{r}"
    );
    // Size.
    let big = seal(&alice, &[&bob_card], 3, &"y".repeat(5000));
    let r = alice
        .c
        .request(
            "b",
            "mailbox.send",
            json!({"users": ["bob"], "envelope": big}),
        )
        .await;
    assert_eq!(r["error"]["code"], "bad_request", "{r}");
    // Send rate: four a minute on this connection, the fifth refused.
    assert_eq!(
        alice
            .c
            .request_err("mailbox.send", json!({"users": ["bob"], "envelope": env}))
            .await,
        "rate_limited"
    );
    // Bad parameters.
    let mut bob2 = s.signed_in("bob").await;
    prove(&mut bob2, "bob", &bob.keys).await;
    for (m, p) in [
        ("mailbox.fetch", json!({"limit": 0})),
        ("mailbox.fetch", json!({"limit": 101})),
        ("mailbox.ack", json!({"ids": []})),
        (
            "mailbox.ack",
            json!({"ids": (0..257).collect::<Vec<u64>>()}),
        ),
        ("mailbox.status", json!({"message": "XY"})),
        ("device.auth", json!({"device": "00", "signature": "AA=="})),
    ] {
        assert_eq!(
            bob2.request_err(m, p.clone()).await,
            "bad_request",
            "{m} {p}"
        );
    }
    // TTL: after a second they are not handed out, and maintenance deletes
    // them (the quota is free again).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(ids(&bob2.request_ok("mailbox.fetch", json!({})).await).is_empty());
    let mut fresh = s.signed_in("alice").await;
    prove(&mut fresh, "alice", &alice.keys).await;
    fresh
        .request_ok(
            "mailbox.send",
            json!({"users": ["bob"], "envelope": seal(&alice, &[&bob_card], 4, "z")}),
        )
        .await;
}

#[tokio::test]
async fn a_backend_queues_through_the_http_api_and_the_mailbox_can_be_off() {
    let s = start(&mailbox_toml("")).await;
    let (svc_id, bob_id) = (IdentityKey::generate(), IdentityKey::generate());
    let svc = device(&s, "clinic-backend", &svc_id).await;
    let bob = device(&s, "bob", &bob_id).await;
    let bob_card = bob.card.clone();
    drop(bob.c);
    let env = seal(&svc, &[&bob_card], 1, "appointment moved");
    let body = json!({"users": ["bob"], "envelope": env}).to_string();
    let path = format!("/apps/{ID}/mailbox");
    let (status, r) = s.api("POST", &path, &[], &body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["devices"], 1);
    // Unsigned: refused.
    let (status, _) = s.raw_http("POST", &path, &body).await;
    assert_eq!(status, 401);
    // A sender device that is not the sender's: refused.
    let rogue = Dev {
        keys: DeviceKeys::generate(),
        ..svc
    };
    let env = seal(&rogue, &[&bob_card], 2, "rogue");
    let body = json!({"users": ["bob"], "envelope": env}).to_string();
    let (status, r) = s.api("POST", &path, &[], &body).await;
    assert_eq!(status, 403, "{r}");

    let off = start(&format!("{}[mailbox]\nenabled = false\n", mailbox_toml(""))).await;
    let mut c = off.signed_in("bob").await;
    assert_eq!(
        c.request_err("device.challenge", json!({})).await,
        "unknown_method"
    );
}

/// A device proof is good for one nonce, and a connection is one device:
/// a proof replayed against a later challenge on the same connection is
/// refused, an attempt with no fresh challenge is refused, and a
/// connection that proved one device cannot then claim another (even with
/// that device's valid proof). Fails with the one-device rule removed from
/// `device_auth`.
#[tokio::test]
async fn attack_device_proof_is_good_once_and_a_connection_is_one_device() {
    let s = start(&mailbox_toml("")).await;
    let bob_id = IdentityKey::generate();
    let phone = device(&s, "bob", &bob_id).await;
    let laptop = device(&s, "bob", &bob_id).await;
    let (phone_hex, laptop_hex) = (
        phone.keys.device_id().to_string(),
        laptop.keys.device_id().to_string(),
    );
    let mut c = s.signed_in("bob").await;
    let sid = c.sid().to_owned();
    let nonce = challenge(&mut c).await;
    let proof = auth_params(&sid, "bob", &phone.keys, &phone_hex, &nonce);
    c.request_ok("device.auth", proof.clone()).await;
    // The same proof again: no challenge pending, then a new nonce.
    assert_eq!(
        c.request_err("device.auth", proof.clone()).await,
        "bad_request"
    );
    challenge(&mut c).await;
    assert_eq!(c.request_err("device.auth", proof).await, "forbidden");
    // Proven as the phone: the laptop's own valid proof does not switch it.
    let nonce = challenge(&mut c).await;
    let other = auth_params(&sid, "bob", &laptop.keys, &laptop_hex, &nonce);
    assert_eq!(
        c.request_err("device.auth", other).await,
        "forbidden",
        "a connection proved a second device"
    );
}

/// Deletion is real on the running server: once every device acknowledged
/// a message, the maintenance round checkpoints the write-ahead log, and
/// no 64-byte run of the envelope is left in the database files. Fails
/// with the checkpoint left out of `Mailbox::maintain`.
#[tokio::test]
async fn acknowledged_envelopes_are_gone_from_the_servers_files() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hush.sqlite3");
    let s = start(&format!(
        "{}[store]\nurl = 'sqlite://{}'\n[mailbox]\nmaintenance_interval_ms = 100\n",
        mailbox_toml(""),
        db.display()
    ))
    .await;
    let (alice_id, bob_id) = (IdentityKey::generate(), IdentityKey::generate());
    let mut alice = device(&s, "alice", &alice_id).await;
    let mut bob = device(&s, "bob", &bob_id).await;
    let mut runs = Vec::new();
    for n in 1..=5 {
        let env = seal(&alice, &[&bob.card], n, &"x".repeat(2000));
        let bytes = STANDARD.decode(&env).unwrap();
        runs.push(bytes[bytes.len() - 64..].to_vec());
        send(&mut alice, &["bob"], &env).await;
    }
    let on_disk = |run: &[u8]| {
        std::fs::read_dir(dir.path()).unwrap().any(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            bytes.windows(run.len()).any(|w| w == run)
        })
    };
    assert!(
        runs.iter().all(|r| on_disk(r)),
        "positive control: the queued envelopes are on disk"
    );
    let page = bob.c.request_ok("mailbox.fetch", json!({})).await;
    bob.c
        .request_ok("mailbox.ack", json!({"ids": ids(&page)}))
        .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (i, r) in runs.iter().enumerate() {
        assert!(
            !on_disk(r),
            "envelope {i} is still on disk after its acknowledgement"
        );
    }
}
