//! Issue 13, finding 12: one signed-in user must not stall the key
//! directory. Each test acts as a hostile signed-in client against the real
//! server (docs/KEY-TRANSPARENCY.md, "Limits").

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use hush_crypto::identity::{DeviceCard, DeviceKeys, IdentityKey, Revocation, UnsignedCard};
use hush_crypto::transparency::proofs::{UserEntry, VrfPublicKey, verify_lookup};
use hush_crypto::transparency::{LogEntry, SignedTreeHead};
use hush_protocol::UserId;
use hush_protocol::api::{QueryParams, signed_query};
use hush_protocol::msgs::names;
use serde_json::{Value, json};

use crate::common::*;

/// Directory writes without rate caps, so a test reaches the other limits.
const NO_WRITE_RATES: &str =
    "[directory]\nwrites_per_user_per_minute = 0\nwrites_per_connection_per_minute = 0\n";

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

async fn publish(c: &mut Client, card: &DeviceCard) -> Value {
    c.request(
        "p",
        "directory.publish",
        json!({"card": b64(&card.to_bytes())}),
    )
    .await
}

fn code(r: &Value) -> &str {
    r["error"]["code"].as_str().unwrap_or("ok")
}

/// A card of a new device of `user` created at `created` and expiring at
/// `expires` (Unix seconds).
fn card_with_times(user: &str, identity: &IdentityKey, created: u64, expires: u64) -> DeviceCard {
    let keys = DeviceKeys::generate();
    let body = UnsignedCard::new(
        UserId::parse(user).unwrap(),
        &identity.public_key(),
        &keys,
        created,
        expires,
        None,
    );
    DeviceCard::issue(body, &keys, identity).unwrap()
}

/// `user` signed in with `devices` new devices published; returns the
/// connection and the cards.
async fn user_with_devices(
    s: &TestServer,
    user: &str,
    devices: usize,
) -> (Client, IdentityKey, Vec<(DeviceKeys, DeviceCard)>) {
    let mut c = s.signed_in(user).await;
    let id = IdentityKey::generate();
    let mut cards = Vec::new();
    for _ in 0..devices {
        let (keys, card) = new_device(user, &id);
        assert_eq!(code(&publish(&mut c, &card).await), "ok");
        cards.push((keys, card));
    }
    (c, id, cards)
}

/// A lookup's result JSON exactly as it arrived (inside `hush:response`),
/// and parsed.
async fn lookup_text(c: &mut Client, users: &[&str]) -> (String, Value) {
    let frame = json!({"event": "hush:request", "data": {
        "id": "l", "method": "directory.lookup", "params": {"users": users}}});
    c.send(frame).await;
    let m = c.expect(names::HUSH_RESPONSE).await;
    let inner = m["data"].as_str().unwrap().to_owned();
    let v: Value = serde_json::from_str(&inner).unwrap();
    assert!(v.get("error").is_none(), "{v}");
    (inner, v["result"].clone())
}

/// `user`'s entry in a lookup answer `r`, verified with the directory's VRF
/// key (from `log.head` on `c`).
async fn entry(c: &mut Client, r: &Value, user: &str) -> UserEntry {
    let h = c.request("h", "log.head", json!({})).await;
    let vrf: [u8; 32] = STANDARD
        .decode(h["result"]["vrf"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let vrf = VrfPublicKey::from_bytes(&vrf).unwrap();
    let head =
        SignedTreeHead::from_bytes(&STANDARD.decode(r["head"].as_str().unwrap()).unwrap()).unwrap();
    let proof = STANDARD.decode(r["users"][user].as_str().unwrap()).unwrap();
    verify_lookup(&vrf, &head.head, &UserId::parse(user).unwrap(), &proof)
        .unwrap()
        .entry
}

#[tokio::test]
async fn attack_directory_card_flood_is_capped() {
    // Finding: one connection published 20,000 cards for one user.
    let s = start(&(app_toml("") + NO_WRITE_RATES)).await;
    let (mut mallory, id, cards) = user_with_devices(&s, "mallory", 16).await;
    for _ in 0..3 {
        let r = publish(&mut mallory, &new_card("mallory", &id)).await;
        assert_eq!(code(&r), "too_many", "{r}");
    }
    // At the cap, a device still renews its card, and revoking one device
    // makes room for another.
    let renewed = card_after("mallory", &id, Some((&cards[0].1, &cards[0].0)));
    assert_eq!(code(&publish(&mut mallory, &renewed).await), "ok");
    let rev = Revocation::revoke_device(&id, &cards[1].1, now_secs()).unwrap();
    let r = mallory
        .request(
            "v",
            "directory.revoke",
            json!({"revocation": b64(&rev.to_bytes())}),
        )
        .await;
    assert_eq!(code(&r), "ok", "{r}");
    assert_eq!(
        code(&publish(&mut mallory, &new_card("mallory", &id)).await),
        "ok"
    );
    assert_eq!(
        code(&publish(&mut mallory, &new_card("mallory", &id)).await),
        "too_many"
    );
    let (_, r) = lookup_text(&mut mallory, &["mallory"]).await;
    assert_eq!(entry(&mut mallory, &r, "mallory").await.cards.len(), 16);
}

#[tokio::test]
async fn attack_directory_write_flood_is_rate_limited() {
    let s = start(
        &(app_toml("")
            + "[directory]\nwrites_per_user_per_minute = 12\nwrites_per_connection_per_minute = 5\n"
            // Writes answered at once (the default epoch interval would let
            // the buckets refill during the test).
            + "epoch_interval_ms = 1\n"),
    )
    .await;
    let id = IdentityKey::generate();
    let mut outcomes = Vec::new();
    let started = Instant::now();
    for _ in 0..3 {
        let mut c = s.signed_in("mallory").await;
        for _ in 0..6 {
            outcomes.push(code(&publish(&mut c, &new_card("mallory", &id)).await).to_owned());
        }
    }
    let ok = |range: std::ops::Range<usize>| {
        outcomes[range]
            .iter()
            .filter(|c| c.as_str() == "ok")
            .count()
    };
    // Five per connection, then the connection's cap.
    assert_eq!(ok(0..6), 5, "{outcomes:?}");
    assert_eq!(outcomes[5], "rate_limited");
    assert_eq!(ok(6..12), 5, "{outcomes:?}");
    // Twelve for the user over all connections, plus what the bucket
    // refilled while the test ran (one write per 5 s: each write waits for
    // its epoch, which takes a while in a debug build on a busy machine).
    let refilled = usize::try_from(started.elapsed().as_secs() / 5).unwrap_or(usize::MAX);
    let third = ok(12..18);
    assert!(
        (2..=2 + refilled).contains(&third),
        "{third} ok after {refilled} refills: {outcomes:?}"
    );
    assert_eq!(outcomes[17], "rate_limited");
    // Other users are not affected.
    let mut bob = s.signed_in("bob").await;
    let bob_id = IdentityKey::generate();
    assert_eq!(
        code(&publish(&mut bob, &new_card("bob", &bob_id)).await),
        "ok"
    );
}

#[tokio::test]
async fn attack_unbounded_expiry_refused() {
    // Finding: `expires_at = 2^64 - 1` was accepted.
    let s = start(&app_toml("")).await;
    let mut mallory = s.signed_in("mallory").await;
    let id = IdentityKey::generate();
    let now = now_secs();
    let forever = card_with_times("mallory", &id, now - 10, u64::MAX);
    let r = publish(&mut mallory, &forever).await;
    assert_eq!(code(&r), "invalid_record", "{r}");
    // Two years and a day is too long; created in the future too.
    let day = 86_400;
    let too_long = card_with_times("mallory", &id, now - 10, now - 10 + 731 * day);
    assert_eq!(
        code(&publish(&mut mallory, &too_long).await),
        "invalid_record"
    );
    let future = card_with_times("mallory", &id, now + 30 * day, now + 60 * day);
    assert_eq!(
        code(&publish(&mut mallory, &future).await),
        "invalid_record"
    );
    // Exactly the longest lifetime is fine.
    let longest = card_with_times("mallory", &id, now - 10, now - 10 + 730 * day);
    let r = publish(&mut mallory, &longest).await;
    assert_eq!(code(&r), "ok", "{r}");
}

#[tokio::test]
async fn attack_lookup_duplicate_ids_deduplicated() {
    // Finding: 50 copies of one id were each looked up (7.9 s).
    // An answer bound that holds one copy of the user's records, not two.
    let s = start(&(app_toml("") + NO_WRITE_RATES + "max_lookup_bytes = 12000\n")).await;
    let (mut mallory, _, _) = user_with_devices(&s, "mallory", 16).await;
    let (once, _) = lookup_text(&mut mallory, &["mallory"]).await;
    assert!(once.len() > 6_000 && once.len() < 12_000, "{}", once.len());
    let (fifty, r) = lookup_text(&mut mallory, &["mallory"; 50]).await;
    // Answered once: the same size as one copy, nothing left for `more`
    // (a second copy of 16 cards would not fit in the answer's byte bound).
    assert_eq!(fifty.len(), once.len());
    assert!(r.get("more").is_none(), "{:?}", r.get("more"));
    assert_eq!(r["users"].as_object().unwrap().len(), 1);
    assert_eq!(entry(&mut mallory, &r, "mallory").await.cards.len(), 16);
}

#[tokio::test]
async fn attack_lookup_answer_is_bounded_and_paged() {
    // Finding: one lookup returned a 22.5 MB frame.
    const BOUND: usize = 30_000;
    let s =
        start(&(app_toml("") + NO_WRITE_RATES + &format!("max_lookup_bytes = {BOUND}\n"))).await;
    let users = ["u1", "u2", "u3", "u4", "u5"];
    for u in users {
        user_with_devices(&s, u, 16).await;
    }
    let mut c = s.signed_in("reader").await;
    let mut wanted: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
    let mut answered = Vec::new();
    let mut pages = 0;
    while !wanted.is_empty() {
        pages += 1;
        assert!(pages <= users.len(), "no progress: {wanted:?}");
        let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
        let (text, r) = lookup_text(&mut c, &names).await;
        assert!(text.len() <= BOUND + 1024, "answer of {} bytes", text.len());
        for user in r["users"].as_object().unwrap().keys() {
            assert_eq!(entry(&mut c, &r, user).await.cards.len(), 16);
            answered.push(user.clone());
        }
        wanted = r["more"]
            .as_array()
            .map(|m| m.iter().map(|u| u.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
    }
    assert!(pages > 1, "everything fit in one answer: raise the load");
    answered.sort();
    assert_eq!(answered, users);
}

/// App B of the stall test.
const B_ID: &str = "4";
const B_KEY: &str = "b0b0b0b0b0b0b0b0b0b0";
const B_SECRET: &str = "b1b1b1b1b1b1b1b1b1b1";

/// A store holding `cards` device cards of one user (`heavy`) in the test
/// app's log: a history written before the device cap (or by a node with
/// other limits). Returns the store URL.
async fn store_with_card_flood(dir: &std::path::Path, cards: usize) -> String {
    let url = format!("sqlite://{}", dir.join("hush.sqlite3").display());
    let store = hush_store::Store::open(&url, &Default::default())
        .await
        .unwrap();
    let identity = IdentityKey::generate();
    let now = now_secs();
    for i in 0..cards {
        // A device of its own per card (a device id is its signing key's).
        let keys = DeviceKeys::generate();
        let body = UnsignedCard::new(
            UserId::parse("heavy").unwrap(),
            &identity.public_key(),
            &keys,
            now - 10,
            now + 86_400,
            None,
        );
        let card = DeviceCard::issue(body, &keys, &identity).unwrap();
        let leaf = LogEntry::Card(card).to_bytes();
        assert!(
            store
                .directory_append(ID, i as u64, &leaf, "heavy")
                .await
                .unwrap()
        );
    }
    store.close().await;
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn attack_directory_lookups_do_not_stall_other_apps() {
    // Finding: eight pipelined lookups on one app pushed another app's
    // publish-to-delivery from 1 ms to 6.4 s (a user with thousands of
    // cards, named 50 times per lookup; proofs computed under the app's
    // lock on a runtime worker).
    const CARDS: usize = 400;
    const ATTACKERS: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let url = store_with_card_flood(dir.path(), CARDS).await;
    eprintln!("store of {CARDS} cards written in {:?}", t.elapsed());
    let toml = app_toml("")
        + &format!("[apps.b]\nid = '{B_ID}'\nkey = '{B_KEY}'\nsecret = '{B_SECRET}'\n")
        + &format!("[store]\nurl = '{url}'\n");
    let s = start(&toml).await;

    // App B: a subscriber and a backend publishing to it.
    let mut sub = s
        .connect_path(&format!(
            "/app/{B_KEY}?protocol=7&client=rust-test&version=0"
        ))
        .await;
    sub.established().await;
    sub.subscribe_ok("news").await;
    let trigger = |n: usize| {
        let body = json!({"name": "tick", "channels": ["news"], "data": n.to_string()}).to_string();
        let path = format!("/apps/{B_ID}/events");
        let q = signed_query(
            B_KEY,
            B_SECRET.as_bytes(),
            "POST",
            &path,
            QueryParams::from_pairs(std::iter::empty::<(&str, &str)>()),
            body.as_bytes(),
            now_secs(),
        );
        (format!("{path}?{q}"), body)
    };

    // App A: attackers, each keeping 8 heavy lookups in flight (the heavy
    // user named 50 times). The log is loaded first.
    let users = vec!["heavy"; 50];
    let mut first = s.signed_in("attacker").await;
    let t = Instant::now();
    first
        .send(json!({"event": "hush:request", "data": {
            "id": "w", "method": "directory.lookup", "params": {"users": ["heavy"]}}}))
        .await;
    // Loading verifies every stored signature: slow in debug builds.
    match first.next_within(Duration::from_secs(120)).await {
        Some(Next::Frame(v)) => assert_eq!(v["event"], names::HUSH_RESPONSE, "{v}"),
        _ => panic!("the log did not load"),
    }
    eprintln!("log loaded and looked up in {:?}", t.elapsed());
    let request = json!({"event": "hush:request", "data": {
        "id": "x", "method": "directory.lookup", "params": {"users": users}}})
    .to_string();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for i in 0..ATTACKERS {
        let mut c = s.signed_in(&format!("attacker{i}")).await;
        let request = request.clone();
        let answered = answered.clone();
        attackers.push(tokio::spawn(async move {
            for _ in 0..8 {
                c.send_text(&request).await;
            }
            // Raw frames, never parsed: the test's own CPU goes to the server.
            while let Some(Ok(m)) = c.ws.next().await {
                if m.is_text() {
                    answered.fetch_add(1, Ordering::Relaxed);
                    c.send_text(&request).await;
                }
            }
        }));
    }
    // Let the lookups pile up.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut worst = Duration::ZERO;
    for n in 0..20 {
        let (path, body) = trigger(n);
        let sent = Instant::now();
        let (status, _) = s.raw_http("POST", &path, &body).await;
        assert_eq!(status, 200);
        let ev = sub.expect("tick").await;
        assert_eq!(ev["data"], n.to_string());
        worst = worst.max(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for a in &attackers {
        a.abort();
    }
    let answered = answered.load(Ordering::Relaxed);
    eprintln!("app B worst publish-to-delivery {worst:?}; app A lookups answered {answered}");
    // The attack ran: answers kept coming.
    assert!(answered >= ATTACKERS, "only {answered} lookups answered");
    assert!(
        worst < Duration::from_secs(1),
        "app B's publish-to-delivery took {worst:?} while app A was flooded with lookups"
    );
}

#[tokio::test]
async fn attack_audit_over_the_websocket_is_bounded() {
    // A signed-in end user asking for the append-only proof of epochs that
    // hold every user of the app (one epoch after an upgrade) makes the
    // server build a proof as large as the directory; over the WebSocket it
    // is bounded by records, while auditors with the app's credentials use
    // the HTTP API.
    let s =
        start(&(app_toml("") + NO_WRITE_RATES + "epoch_interval_ms = 1\nmax_audit_records = 2\n"))
            .await;
    for u in ["u1", "u2", "u3", "u4"] {
        user_with_devices(&s, u, 1).await;
    }
    let mut c = s.signed_in("reader").await;
    let ok = c
        .request("a", "log.audit", json!({"from": 1, "to": 3}))
        .await;
    assert_eq!(code(&ok), "ok", "{ok}");
    let r = c
        .request("b", "log.audit", json!({"from": 1, "to": 4}))
        .await;
    assert_eq!(code(&r), "too_many", "{r}");
    let (status, body) = s
        .api(
            "GET",
            &format!("/apps/{ID}/directory/log/audit"),
            &[("from", "1"), ("to", "4")],
            "",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["heads"].as_array().map(Vec::len), Some(4));
}
