//! The key directory over the WebSocket (`hush:request`) and the HTTP API:
//! publish, lookup with inclusion proofs a client verifies, revocations,
//! consistency across writes and restarts, and a forked log detected.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{
    DeviceCard, DeviceId, DeviceKeys, IdentityKey, Revocation, UnsignedCard,
};
use hush_crypto::transparency::{Hash, LogError, LogMonitor, LogPublicKey, SignedTreeHead};
use hush_protocol::UserId;
use serde_json::{Value, json};

use crate::common::*;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn new_card(user: &str, identity: &IdentityKey, previous: Option<&DeviceCard>) -> DeviceCard {
    let keys = DeviceKeys::generate();
    let device = previous.map_or_else(DeviceId::random, DeviceCard::device_id);
    let body = UnsignedCard::new(
        UserId::parse(user).unwrap(),
        device,
        &identity.public_key(),
        &keys,
        now_secs() - 10,
        now_secs() + 86_400,
        previous.map(DeviceCard::id),
    );
    DeviceCard::issue(body, &keys, identity).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| unb64(h).try_into().unwrap())
        .collect()
}

fn head(v: &Value) -> SignedTreeHead {
    SignedTreeHead::from_bytes(&unb64(v)).unwrap()
}

impl Client {
    async fn request(&mut self, id: &str, method: &str, params: Value) -> Value {
        self.send(json!({"event":"hush:request","data":{"id":id,"method":method,"params":params}}))
            .await;
        let m = self.expect("hush:response").await;
        let inner: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        assert_eq!(inner["id"], id, "{inner}");
        inner
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        let r = self.request("r", method, params).await;
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    async fn err(&mut self, method: &str, params: Value) -> String {
        let r = self.request("e", method, params).await;
        r["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_owned()
    }

    async fn signed_in(server: &TestServer, user: &str) -> Client {
        let mut c = server.client().await;
        let ev = c.signin(&json!({"id": user}).to_string()).await;
        assert_eq!(ev["event"], "pusher:signin_success", "{ev}");
        c
    }
}

/// Pins the log key from `log.head` and trusts its first head.
async fn monitor(c: &mut Client) -> LogMonitor {
    let r = c.ok("log.head", json!({})).await;
    let key: [u8; 32] = unb64(&r["key"]).try_into().unwrap();
    let mut m = LogMonitor::new(ID, LogPublicKey::from_bytes(&key).unwrap());
    m.update(&head(&r["head"]), &[]).unwrap();
    m
}

#[tokio::test]
async fn publish_lookup_revoke_with_verified_proofs() {
    let s = start(&app_toml("")).await;
    let mut alice = Client::signed_in(&s, "alice").await;
    let mut bob = Client::signed_in(&s, "bob").await;
    let mut bob_log = monitor(&mut bob).await;
    let alice_id = IdentityKey::generate();

    // Alice publishes two devices; each answer proves inclusion.
    let phone = new_card("alice", &alice_id, None);
    let laptop = new_card("alice", &alice_id, None);
    for (i, card) in [&phone, &laptop].into_iter().enumerate() {
        let r = alice
            .ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
            .await;
        assert_eq!(r["index"], i as u64);
        let sth = head(&r["head"]);
        assert_eq!(sth.head.size, i as u64 + 1);
    }

    // Bob looks her up (and an unknown user) from the size he trusts.
    let r = bob
        .ok(
            "directory.lookup",
            json!({"users": ["alice", "nobody"], "since": 0}),
        )
        .await;
    bob_log
        .update(&head(&r["head"]), &hashes(&r["consistency"]))
        .unwrap();
    let cards = r["users"]["alice"]["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 2);
    for entry in cards {
        let leaf = unb64(&entry["record"]);
        bob_log
            .verify_entry(
                &leaf,
                entry["index"].as_u64().unwrap(),
                &hashes(&entry["proof"]),
            )
            .unwrap();
        let card = DeviceCard::from_bytes(&leaf[1..]).unwrap();
        assert!([phone.id(), laptop.id()].contains(&card.id()));
    }
    assert_eq!(
        r["users"]["nobody"],
        json!({"cards": [], "revocations": []})
    );

    // A tampered proof does not verify.
    let entry = &cards[0];
    let mut proof = hashes(&entry["proof"]);
    proof[0][0] ^= 1;
    assert_eq!(
        bob_log.verify_entry(
            &unb64(&entry["record"]),
            entry["index"].as_u64().unwrap(),
            &proof
        ),
        Err(LogError::NotIncluded)
    );

    // Refusals, each with its stable code.
    let mallory = IdentityKey::generate();
    let forged = new_card("alice", &mallory, None);
    assert_eq!(
        alice
            .err(
                "directory.publish",
                json!({"card": b64(&forged.to_bytes())})
            )
            .await,
        "invalid_record"
    );
    let for_bob = new_card("bob", &alice_id, None);
    assert_eq!(
        alice
            .err(
                "directory.publish",
                json!({"card": b64(&for_bob.to_bytes())})
            )
            .await,
        "forbidden"
    );
    let mut bad = phone.to_bytes();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        alice
            .err("directory.publish", json!({"card": b64(&bad)}))
            .await,
        "invalid_record"
    );
    assert_eq!(
        alice.err("directory.publish", json!({"card": "%%%"})).await,
        "bad_request"
    );
    assert_eq!(
        alice.err("directory.nope", json!({})).await,
        "unknown_method"
    );
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    assert_eq!(
        bob.err("directory.lookup", json!({"users": many})).await,
        "too_many"
    );
    let mut anon = s.client().await;
    assert_eq!(
        anon.err("directory.lookup", json!({"users": ["alice"]}))
            .await,
        "not_signed_in"
    );

    // A rotated card must chain to the latest one; then the phone is revoked.
    let phone2 = new_card("alice", &alice_id, Some(&phone));
    alice
        .ok(
            "directory.publish",
            json!({"card": b64(&phone2.to_bytes())}),
        )
        .await;
    let rev = Revocation::revoke_device(&alice_id, &phone2, now_secs()).unwrap();
    alice
        .ok(
            "directory.revoke",
            json!({"revocation": b64(&rev.to_bytes())}),
        )
        .await;
    let size_before = bob_log.trusted().unwrap().size;
    let r = bob
        .ok(
            "directory.lookup",
            json!({"users": ["alice"], "since": size_before}),
        )
        .await;
    bob_log
        .update(&head(&r["head"]), &hashes(&r["consistency"]))
        .unwrap();
    let alice_entry = &r["users"]["alice"];
    assert_eq!(alice_entry["cards"].as_array().unwrap().len(), 1);
    assert_eq!(alice_entry["revocations"].as_array().unwrap().len(), 1);
    let rev_entry = &alice_entry["revocations"][0];
    bob_log
        .verify_entry(
            &unb64(&rev_entry["record"]),
            rev_entry["index"].as_u64().unwrap(),
            &hashes(&rev_entry["proof"]),
        )
        .unwrap();

    // The HTTP API serves the same log to backends and auditors.
    let (status, body) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/entries"),
            &[("start", "0"), ("end", "10")],
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"].as_array().unwrap().len(), 4);
    let (status, body) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/users"),
            &[("ids", "alice,bob")],
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["users"]["alice"]["cards"].as_array().unwrap().len(), 1);
    let (status, _) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/consistency"),
            &[("from", "9"), ("to", "2")],
            "",
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/head"),
            &[("bogus", "1")],
            "",
        )
        .await;
    assert_eq!(status, 400);
    s.stop().await;
}

#[tokio::test]
async fn the_log_survives_restarts_and_a_rewritten_history_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let config = |url: &str| {
        let mut c = hush_server::Config::from_toml(&app_toml("")).unwrap();
        c.store.url = Some(url.to_owned());
        c
    };
    let identity = IdentityKey::generate();

    let s = start_config(config(&url)).await;
    let mut alice = Client::signed_in(&s, "alice").await;
    for _ in 0..3 {
        let card = new_card("alice", &identity, None);
        alice
            .ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
            .await;
    }
    let mut bob = Client::signed_in(&s, "bob").await;
    let mut bob_log = monitor(&mut bob).await;
    assert_eq!(bob_log.trusted().unwrap().size, 3);
    s.stop().await;

    // Same store, new process: same log, same key, and it keeps growing.
    let s = start_config(config(&url)).await;
    let mut alice = Client::signed_in(&s, "alice").await;
    let card = new_card("alice", &identity, None);
    alice
        .ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
        .await;
    let mut bob = Client::signed_in(&s, "bob").await;
    let r = bob
        .ok("directory.lookup", json!({"users": ["alice"], "since": 3}))
        .await;
    bob_log
        .update(&head(&r["head"]), &hashes(&r["consistency"]))
        .unwrap();
    assert_eq!(bob_log.trusted().unwrap().size, 4);
    s.stop().await;

    // Someone with the database and the server's key rewrites history: the
    // second card is swapped for another valid card of Alice's. The rewritten
    // log obeys every rule and is signed with the right key, so the server
    // serves it; Bob's client, which trusted size 4, sees the fork.
    let store = hush_store::Store::open(&url, &Default::default())
        .await
        .unwrap();
    let mut leaves = store.directory_leaves(ID, 0, 100).await.unwrap();
    let key = store
        .server_key("directory-log-v1", || [0; 32])
        .await
        .unwrap();
    store.close().await;
    let swapped = new_card("alice", &identity, None);
    leaves[1] = [&[1u8][..], &swapped.to_bytes()].concat();
    let forged = format!("sqlite://{}/forged.sqlite3", dir.path().display());
    let store = hush_store::Store::open(&forged, &Default::default())
        .await
        .unwrap();
    store.server_key("directory-log-v1", || *key).await.unwrap();
    for (i, leaf) in leaves.iter().enumerate() {
        assert!(
            store
                .directory_append(ID, i as u64, leaf, "alice")
                .await
                .unwrap()
        );
    }
    store.close().await;

    let s = start_config(config(&forged)).await;
    let mut bob = Client::signed_in(&s, "bob").await;
    let r = bob
        .ok("directory.lookup", json!({"users": ["alice"], "since": 4}))
        .await;
    let forged_head = head(&r["head"]);
    assert_eq!(forged_head.head.size, 4);
    assert_eq!(
        bob_log.update(&forged_head, &hashes(&r["consistency"])),
        Err(LogError::Fork)
    );
    s.stop().await;
}
