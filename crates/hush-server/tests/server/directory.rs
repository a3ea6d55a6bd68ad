//! The key directory over the WebSocket (`hush:request`) and the HTTP API:
//! publish, lookups with akd proofs a client verifies, revocations, epochs
//! across writes and restarts, and a forked directory detected.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::{IdentityKey, Revocation};
use hush_crypto::transparency::proofs::{VerifiedEntry, VrfPublicKey, verify_lookup};
use hush_crypto::transparency::{LogError, LogMonitor, LogPublicKey, SignedTreeHead};
use hush_protocol::UserId;
use serde_json::{Value, json};

use crate::common::*;

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

fn head(v: &Value) -> SignedTreeHead {
    SignedTreeHead::from_bytes(&unb64(v)).unwrap()
}

/// A client's view: pinned keys from `log.head`, trusting its first head.
async fn monitor(c: &mut Client) -> (LogMonitor, VrfPublicKey) {
    let r = c.request_ok("log.head", json!({})).await;
    let key: [u8; 32] = unb64(&r["key"]).try_into().unwrap();
    let vrf: [u8; 32] = unb64(&r["vrf"]).try_into().unwrap();
    let mut m = LogMonitor::new(ID, LogPublicKey::from_bytes(&key).unwrap());
    m.update(&head(&r["head"])).unwrap();
    (m, VrfPublicKey::from_bytes(&vrf).unwrap())
}

/// Verifies a lookup answer's head into `m` and `user`'s proof.
fn verified(m: &mut LogMonitor, vrf: &VrfPublicKey, r: &Value, user: &str) -> VerifiedEntry {
    let h = head(&r["head"]);
    m.update(&h).unwrap();
    let user = UserId::parse(user).unwrap();
    verify_lookup(vrf, &h.head, &user, &unb64(&r["users"][user.as_str()])).unwrap()
}

#[tokio::test]
async fn publish_lookup_revoke_with_verified_proofs() {
    let s = start(&app_toml("")).await;
    let mut alice = s.signed_in("alice").await;
    let mut bob = s.signed_in("bob").await;
    let (mut bob_log, vrf) = monitor(&mut bob).await;
    let alice_id = IdentityKey::generate();

    // Alice publishes two devices; each answer proves her new entry.
    let (phone_keys, phone) = new_device("alice", &alice_id);
    let laptop = new_card("alice", &alice_id);
    let me = UserId::parse("alice").unwrap();
    for (i, card) in [&phone, &laptop].into_iter().enumerate() {
        let r = alice
            .request_ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
            .await;
        let sth = head(&r["head"]);
        let v = verify_lookup(&vrf, &sth.head, &me, &unb64(&r["proof"])).unwrap();
        assert_eq!(v.version, i as u64 + 1);
        assert!(v.entry.cards.contains(card));
    }

    // Bob looks her up (and an unknown user).
    let r = bob
        .request_ok("directory.lookup", json!({"users": ["alice", "nobody"]}))
        .await;
    let v = verified(&mut bob_log, &vrf, &r, "alice");
    assert_eq!(v.entry.identity, alice_id.public_key());
    let mut ids = vec![phone.id(), laptop.id()];
    ids.sort();
    let mut got: Vec<_> = v.entry.cards.iter().map(|c| c.id()).collect();
    got.sort();
    assert_eq!(got, ids);
    assert!(r["users"].get("nobody").is_none(), "{r}");

    // A tampered proof does not verify.
    let mut proof = unb64(&r["users"]["alice"]);
    let mid = proof.len() / 2;
    proof[mid] ^= 1;
    assert!(
        verify_lookup(&vrf, &head(&r["head"]).head, &me, &proof).is_err(),
        "a flipped byte must not verify"
    );

    // Refusals, each with its stable code.
    let mallory = IdentityKey::generate();
    let forged = new_card("alice", &mallory);
    assert_eq!(
        alice
            .request_err(
                "directory.publish",
                json!({"card": b64(&forged.to_bytes())})
            )
            .await,
        "invalid_record"
    );
    let for_bob = new_card("bob", &alice_id);
    assert_eq!(
        alice
            .request_err(
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
            .request_err("directory.publish", json!({"card": b64(&bad)}))
            .await,
        "invalid_record"
    );
    assert_eq!(
        alice
            .request_err("directory.publish", json!({"card": "%%%"}))
            .await,
        "bad_request"
    );
    assert_eq!(
        alice.request_err("directory.nope", json!({})).await,
        "unknown_method"
    );
    // The enumeration methods of the chronological log are gone.
    assert_eq!(
        alice.request_err("log.entries", json!({})).await,
        "unknown_method"
    );
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    assert_eq!(
        bob.request_err("directory.lookup", json!({"users": many}))
            .await,
        "too_many"
    );
    let mut anon = s.client().await;
    assert_eq!(
        anon.request_err("directory.lookup", json!({"users": ["alice"]}))
            .await,
        "not_signed_in"
    );
    // History is the signed-in user's own, and bounded.
    assert_eq!(
        bob.request_err("directory.history", json!({"versions": 1}))
            .await,
        "not_found"
    );
    assert_eq!(
        alice
            .request_err("directory.history", json!({"versions": 65}))
            .await,
        "bad_request"
    );

    // A rotated card must chain to the latest one; then the phone is revoked.
    let phone2 = card_after("alice", &alice_id, Some((&phone, &phone_keys)));
    alice
        .request_ok(
            "directory.publish",
            json!({"card": b64(&phone2.to_bytes())}),
        )
        .await;
    let rev = Revocation::revoke_device(&alice_id, &phone2, now_secs()).unwrap();
    alice
        .request_ok(
            "directory.revoke",
            json!({"revocation": b64(&rev.to_bytes())}),
        )
        .await;
    let r = bob
        .request_ok("directory.lookup", json!({"users": ["alice"]}))
        .await;
    let v = verified(&mut bob_log, &vrf, &r, "alice");
    assert_eq!(v.entry.cards, vec![laptop.clone()]);
    assert_eq!(v.entry.revocations, vec![rev]);
    assert_eq!(v.version, 4);

    // The HTTP API serves the same directory to backends and auditors.
    let (status, body) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/users"),
            &[("ids", "alice,bob")],
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["users"]["alice"].is_string(), "{body}");
    let (status, body) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/audit"),
            &[("from", "1"), ("to", "2")],
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["heads"].as_array().unwrap().len(), 2);
    let (status, _) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/audit"),
            &[("from", "9"), ("to", "2")],
            "",
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/entries"),
            &[("start", "0")],
            "",
        )
        .await;
    assert_eq!(status, 404, "enumeration is gone from the HTTP API too");
    let (status, _) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/head"),
            &[("bogus", "1")],
            "",
        )
        .await;
    assert_eq!(status, 400);
    // More than 50 ids: the documented 400 with a Pusher-style error body;
    // 50 are fine.
    let ids = |n: usize| {
        (0..n)
            .map(|i| format!("u{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let users = format!("/apps/{ID}/directory/users");
    let (status, body) = s.api("GET", &users, &[("ids", &ids(51))], "").await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("{body}"));
    assert!(message.contains("at most 50"), "{message}");
    let (status, body) = s.api("GET", &users, &[("ids", &ids(50))], "").await;
    assert_eq!(status, 200, "{body}");
    s.stop().await;
}

#[tokio::test]
async fn the_directory_survives_restarts_and_a_rewritten_history_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let config = |url: &str| {
        let mut c = hush_server::Config::from_toml(&app_toml("")).unwrap();
        c.store.url = Some(url.to_owned());
        c
    };
    let identity = IdentityKey::generate();

    let s = start_config(config(&url)).await;
    let mut alice = s.signed_in("alice").await;
    for _ in 0..3 {
        let card = new_card("alice", &identity);
        alice
            .request_ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
            .await;
    }
    let mut bob = s.signed_in("bob").await;
    let (mut bob_log, vrf) = monitor(&mut bob).await;
    assert_eq!(bob_log.trusted().unwrap().epoch, 3);
    s.stop().await;

    // Same store, new process: same tree, same keys, and it keeps growing.
    let s = start_config(config(&url)).await;
    let mut alice = s.signed_in("alice").await;
    let card = new_card("alice", &identity);
    alice
        .request_ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
        .await;
    let mut bob = s.signed_in("bob").await;
    let r = bob
        .request_ok("directory.lookup", json!({"users": ["alice"]}))
        .await;
    let v = verified(&mut bob_log, &vrf, &r, "alice");
    assert_eq!(v.version, 4);
    assert_eq!(bob_log.trusted().unwrap().epoch, 4);
    s.stop().await;

    // Someone with the database and the server's keys rewrites history: the
    // second card is swapped for another valid card of Alice's. The
    // rewritten directory obeys every rule and is signed with the right
    // key, so the server serves it; Bob's client, which trusted epoch 4 at
    // another root, sees the fork (or a rollback: the forged tree is
    // rebuilt from the records in fewer epochs).
    let forged = format!("sqlite://{}/forged.sqlite3", dir.path().display());
    forge_directory_log(&url, &forged, 1, &new_card("alice", &identity)).await;

    let s = start_config(config(&forged)).await;
    let mut bob = s.signed_in("bob").await;
    let r = bob
        .request_ok("directory.lookup", json!({"users": ["alice"]}))
        .await;
    let forged_head = head(&r["head"]);
    let refused = bob_log.update(&forged_head);
    assert!(
        matches!(refused, Err(LogError::Fork | LogError::Rollback { .. })),
        "{refused:?}"
    );
    s.stop().await;
}

/// Past epochs' heads are what an audit returns, and an epoch beyond the
/// last one is not found (not an overflow or a store error).
#[tokio::test]
async fn past_heads_and_epochs_past_the_end() {
    let s = start(&app_toml("")).await;
    let mut alice = s.signed_in("alice").await;
    let card = new_card("alice", &IdentityKey::generate());
    alice
        .request_ok("directory.publish", json!({"card": b64(&card.to_bytes())}))
        .await;
    let card = new_card("alice", &IdentityKey::generate());
    assert_eq!(
        alice
            .request_err("directory.publish", json!({"card": b64(&card.to_bytes())}))
            .await,
        "invalid_record",
        "another identity's card"
    );
    let now = head(&alice.request_ok("log.head", json!({})).await["head"]);
    let past = head(&alice.request_ok("log.head", json!({"epoch": 1})).await["head"]);
    assert_eq!((past.head.epoch, past.head.root), (1, now.head.root));
    assert!(past.head.timestamp <= now.head.timestamp);
    assert_eq!(
        alice
            .request_err("log.audit", json!({"from": 1, "to": 1}))
            .await,
        "bad_request"
    );
    for params in [json!({"epoch": u64::MAX}), json!({"epoch": 2})] {
        for _ in 0..10 {
            assert_eq!(
                alice.request_err("log.head", params.clone()).await,
                "not_found",
                "{params}"
            );
        }
    }
    assert_eq!(
        alice
            .request_err("log.audit", json!({"from": 1, "to": u64::MAX}))
            .await,
        "bad_request"
    );
    s.stop().await;
}

/// The `hush:response`s of `c` until `n` have arrived: (id, error code).
async fn responses(c: &mut Client, n: usize) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = c.expect("hush:response").await;
        let inner: Value = serde_json::from_str(m["data"].as_str().unwrap()).unwrap();
        let code = inner["error"]["code"].as_str().map(str::to_owned);
        out.push((inner["id"].as_str().unwrap().to_owned(), code));
    }
    out
}

fn request_frame(id: &str) -> tokio_tungstenite::tungstenite::Message {
    let v = json!({"event":"hush:request","data":{"id":id,"method":"directory.nope","params":{}}});
    tokio_tungstenite::tungstenite::Message::Text(v.to_string().into())
}

/// Nine requests read before any is answered: the advertised 8 are answered,
/// the 9th gets `rate_limited`.
#[tokio::test]
async fn eight_requests_in_flight_are_answered_the_ninth_is_rate_limited() {
    use futures_util::SinkExt;
    let s = start(&app_toml("")).await;
    let mut c = s.signed_in("alice").await;
    // One write: the server reads all nine before its answering tasks run.
    for i in 1..=9 {
        c.ws.feed(request_frame(&format!("r{i}"))).await.unwrap();
    }
    c.ws.flush().await.unwrap();
    let got = responses(&mut c, 9).await;
    let limited: Vec<&str> = got
        .iter()
        .filter(|(_, code)| code.as_deref() == Some("rate_limited"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(limited, ["r9"], "{got:?}");
    assert_eq!(
        got.iter()
            .filter(|(_, code)| code.as_deref() == Some("unknown_method"))
            .count(),
        8,
        "{got:?}"
    );
    s.stop().await;
}

/// A client that keeps exactly 8 requests outstanding, sending the next one
/// as soon as an answer arrives, is never refused (the slot is freed before
/// the answer is sent; it used to be freed after, so the next request could
/// find 8 still counted). Two worker threads so answering tasks run beside
/// the connection's task; the ordering itself is pinned by the unit test
/// `session::tests::a_slot_is_free_before_its_answer_is_sent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_keeping_eight_in_flight_is_never_refused() {
    use futures_util::SinkExt;
    let s = start(&app_toml("")).await;
    let mut c = s.signed_in("alice").await;
    let total = 2000;
    let mut sent = 0;
    for _ in 0..8 {
        sent += 1;
        c.ws.send(request_frame(&format!("r{sent}"))).await.unwrap();
    }
    let mut answered = 0;
    while answered < total {
        let got = responses(&mut c, 1).await;
        answered += 1;
        assert_eq!(
            got[0].1.as_deref(),
            Some("unknown_method"),
            "{got:?} after {answered}"
        );
        if sent < total {
            sent += 1;
            c.ws.send(request_frame(&format!("r{sent}"))).await.unwrap();
        }
    }
    s.stop().await;
}

/// Two servers on one PostgreSQL database are one key directory: the same
/// pinned keys on both, a card published through one node proven through
/// the other, a revocation written through the second seen through the
/// first, and a client moving between nodes never sees the log go back.
#[tokio::test]
async fn two_nodes_on_one_postgres_serve_one_directory() {
    let url = tokio::task::spawn_blocking(hush_testkit::postgres::database)
        .await
        .unwrap();
    let config = || {
        let mut c = hush_server::Config::from_toml(&app_toml("")).unwrap();
        c.store.url = Some(url.clone());
        c
    };
    let (n1, n2) = (start_config(config()).await, start_config(config()).await);
    let mut bob1 = n1.signed_in("bob").await;
    let mut bob2 = n2.signed_in("bob").await;
    let (mut bob_log, vrf) = monitor(&mut bob1).await;
    let (_, vrf2) = monitor(&mut bob2).await;
    assert_eq!(vrf.to_bytes(), vrf2.to_bytes(), "one VRF key per cluster");

    let alice_id = IdentityKey::generate();
    let (_keys, phone) = new_device("alice", &alice_id);
    let laptop = new_card("alice", &alice_id);
    let mut alice1 = n1.signed_in("alice").await;
    let mut alice2 = n2.signed_in("alice").await;
    alice1
        .request_ok("directory.publish", json!({"card": b64(&phone.to_bytes())}))
        .await;
    alice2
        .request_ok(
            "directory.publish",
            json!({"card": b64(&laptop.to_bytes())}),
        )
        .await;
    // Bob's monitor (pinned on node 1) checks every head, from either node.
    let r = bob2
        .request_ok("directory.lookup", json!({"users": ["alice"]}))
        .await;
    let v = verified(&mut bob_log, &vrf, &r, "alice");
    assert_eq!(v.entry.cards.len(), 2);
    assert_eq!(v.version, 2);

    let rev = Revocation::revoke_device(&alice_id, &phone, now_secs()).unwrap();
    alice2
        .request_ok(
            "directory.revoke",
            json!({"revocation": b64(&rev.to_bytes())}),
        )
        .await;
    let r = bob1
        .request_ok("directory.lookup", json!({"users": ["alice"]}))
        .await;
    let v = verified(&mut bob_log, &vrf, &r, "alice");
    assert_eq!(v.entry.cards, vec![laptop.clone()]);
    assert_eq!(v.entry.revocations, vec![rev]);
    assert_eq!(v.version, 3);
    n1.stop().await;
    n2.stop().await;
}
