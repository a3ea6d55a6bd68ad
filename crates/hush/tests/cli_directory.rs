//! `hush audit` and `hush verify` as a user runs them: the real binary
//! against an in-process server whose key directory is filled over the
//! WebSocket, and a store whose history was rewritten with the server's key.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use hush_crypto::identity::{DeviceCard, IdentityKey};
use hush_crypto::safety::SafetyNumber;
use hush_protocol::UserId;
use serde_json::{Value, json};

async fn start(store_url: &str) -> TestServer {
    let mut config = hush_server::Config::from_toml(&app_toml("")).unwrap();
    config.store.url = Some(store_url.to_owned());
    TestServer::start_config(config).await
}

async fn hush(srv: &TestServer, args: &[&str]) -> Output {
    hush_with(&url(srv), args, None, &[]).await
}

/// Signs in as `user` and publishes `cards` to the key directory.
async fn publish(srv: &TestServer, user: &str, cards: &[&DeviceCard]) {
    let requests: Vec<(&str, Value)> = cards
        .iter()
        .map(|c| {
            (
                "directory.publish",
                json!({"card": STANDARD.encode(c.to_bytes())}),
            )
        })
        .collect();
    requests_as(srv, user, &requests).await;
}

/// Signs in as `user` and sends directory requests, each of which must
/// succeed.
async fn requests_as(srv: &TestServer, user: &str, requests: &[(&str, Value)]) {
    let mut ws = srv.signed_in(user).await;
    for (method, params) in requests {
        ws.request_ok(method, params.clone()).await;
    }
}

#[tokio::test]
async fn audit_passes_a_healthy_log_and_catches_a_rewritten_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let state = dir.path().join("audit-state.json");
    let state_arg = state.to_str().unwrap();
    let alice = IdentityKey::generate();
    let bob = IdentityKey::generate();

    let srv = start(&url).await;
    // An empty log audits fine.
    let o = hush(&srv, &["audit"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("log of 0 entries"), "{}", stdout(&o));

    let (a1, a2, a3) = (
        new_card("alice", &alice),
        new_card("alice", &alice),
        new_card("alice", &alice),
    );
    publish(&srv, "alice", &[&a1, &a2, &a3]).await;
    publish(&srv, "bob", &[&new_card("bob", &bob)]).await;

    let o = hush(&srv, &["audit", "--state", state_arg]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("log of 4 entries"), "{text}");
    assert!(text.contains("2 users, 4 cards, 0 revocations"), "{text}");
    assert!(text.contains("no rule violations"), "{text}");
    assert!(text.ends_with("audit passed\n"), "{text}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["size"], 4);

    // The log grows; the next audit proves it only grew.
    publish(&srv, "bob", &[&new_card("bob", &bob)]).await;
    let o = hush(&srv, &["audit", "--state", state_arg, "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["consistent_since"], 4);
    assert_eq!(report["entries"], 5);
    assert_eq!(report["cards"], 5);
    assert_eq!(report["violations"], json!([]));
    let log_key = report["log_key"].as_str().unwrap().to_owned();
    // Paged 2 by 2 (three requests, the last one short): the same report.
    let o = hush(&srv, &["audit", "--json", "--page-size", "2"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let paged: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (
            paged["entries"].clone(),
            paged["cards"].clone(),
            paged["root"].clone()
        ),
        (json!(5), json!(5), report["root"].clone())
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["size"], 5);

    // Pinned keys: the right one passes, another fails.
    let o = hush(&srv, &["audit", "--pin-key", &log_key]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let other = STANDARD.encode(
        hush_crypto::transparency::LogKey::generate()
            .public_key()
            .to_bytes(),
    );
    let o = hush(&srv, &["audit", "--pin-key", &other, "--json"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not the pinned key"), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["ok"], false);
    let o = hush(&srv, &["audit", "--pin-key", "AAAA"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--pin-key"), "{}", stderr(&o));
    srv.stop().await;

    // Someone with the database and the log key rewrites history: Alice's
    // second card is swapped for another valid card. The forged log obeys
    // every rule and is signed with the right key.
    let forged = format!("sqlite://{}/forged.sqlite3", dir.path().display());
    let leaves = forge_directory_log(&url, &forged, 1, &new_card("alice", &alice)).await;
    assert_eq!(leaves, 5);

    let srv = start(&forged).await;
    // On its own the forged log looks healthy…
    let o = hush(&srv, &["audit", "--pin-key", &log_key]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    // …but not against the head saved by the last audit.
    let before = std::fs::read_to_string(&state).unwrap();
    let o = hush(&srv, &["audit", "--state", state_arg]).await;
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stdout(&o).contains("INCONSISTENT: fork"), "{}", stdout(&o));
    assert!(stdout(&o).ends_with("audit FAILED\n"), "{}", stdout(&o));
    assert!(stderr(&o).contains("inconsistent"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), before);
    let o = hush(&srv, &["audit", "--state", state_arg, "--json"]).await;
    assert!(!o.status.success());
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["problems"][0].as_str().unwrap().starts_with("fork"),
        "{report}"
    );

    // A log that shrank is a rollback.
    let mut shrunk: Value = serde_json::from_str(&before).unwrap();
    shrunk["size"] = json!(9);
    std::fs::write(&state, shrunk.to_string()).unwrap();
    let o = hush(&srv, &["audit", "--state", state_arg]).await;
    assert!(!o.status.success());
    assert!(stdout(&o).contains("rollback"), "{}", stdout(&o));
    srv.stop().await;
}

#[tokio::test]
async fn verify_prints_the_safety_number_of_two_users() {
    let srv = start("sqlite::memory:").await;
    let alice = IdentityKey::generate();
    let bob = IdentityKey::generate();
    publish(
        &srv,
        "alice",
        &[&new_card("alice", &alice), &new_card("alice", &alice)],
    )
    .await;
    publish(&srv, "bob", &[&new_card("bob", &bob)]).await;

    let expected = SafetyNumber::for_users(
        &UserId::parse("alice").unwrap(),
        &alice.public_key(),
        &UserId::parse("bob").unwrap(),
        &bob.public_key(),
    );
    let o = hush(&srv, &["verify", "alice", "bob", "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["safety_number"], expected.display());
    assert_eq!(v["safety_number"].as_str().unwrap().len(), 60);
    assert_eq!(v["qr_hex"], hex::encode(expected.scannable()));
    assert_eq!(v["qr_base64"], STANDARD.encode(expected.scannable()));
    assert_eq!(
        v["identity_keys"]["bob"],
        STANDARD.encode(bob.public_key().to_bytes())
    );
    assert_eq!(v["log_size"], 3);

    // Both sides see the same number; the text form groups it.
    let o = hush(&srv, &["verify", "bob", "alice", "--qr", "base64"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let grouped = expected.display_grouped();
    assert_eq!(grouped.split(' ').count(), 12);
    assert!(text.contains(&grouped), "{text}");
    assert!(text.contains("QR payload (base64): "), "{text}");

    // Bob rotates his identity key: the number changes with it.
    let bob2 = IdentityKey::generate();
    let rotation = hush_crypto::identity::Revocation::rotate_identity(
        UserId::parse("bob").unwrap(),
        &bob,
        &bob2,
        now_secs(),
    )
    .unwrap();
    requests_as(
        &srv,
        "bob",
        &[(
            "directory.revoke",
            json!({"revocation": STANDARD.encode(rotation.to_bytes())}),
        )],
    )
    .await;
    let rotated = SafetyNumber::for_users(
        &UserId::parse("alice").unwrap(),
        &alice.public_key(),
        &UserId::parse("bob").unwrap(),
        &bob2.public_key(),
    );
    let o = hush(&srv, &["verify", "alice", "bob", "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["safety_number"], rotated.display());
    assert_ne!(rotated.display(), expected.display());
    publish(&srv, "bob", &[&new_card("bob", &bob2)]).await;
    let o = hush(&srv, &["verify", "alice", "bob", "--json"]).await;
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["safety_number"], rotated.display());
    assert_eq!(v["log_size"], 5);

    // A user without an identity, bad ids and a wrong pinned key fail.
    let o = hush(&srv, &["verify", "alice", "carol"]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("user carol has no identity key"),
        "{}",
        stderr(&o)
    );
    let o = hush(&srv, &["verify", "alice", "a b"]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("user id"), "{}", stderr(&o));
    let other = STANDARD.encode(
        hush_crypto::transparency::LogKey::generate()
            .public_key()
            .to_bytes(),
    );
    let o = hush(&srv, &["verify", "alice", "bob", "--pin-key", &other]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not the pinned key"), "{}", stderr(&o));
    srv.stop().await;
}

/// `hush directory-key` prints, before any server ran, the key the server
/// then signs its directory with (what apps pin in their clients), and the
/// same key on every later run.
#[tokio::test]
async fn directory_key_prints_the_key_the_server_signs_with() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let config = dir.path().join("hush.toml");
    std::fs::write(&config, format!("[store]\nurl = '{url}'\n")).unwrap();
    let run = || async {
        let out = hush_with(
            "http://127.0.0.1:1",
            &["directory-key", "--config", config.to_str().unwrap()],
            None,
            &[],
        )
        .await;
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let printed = run().await;
    assert_eq!(STANDARD.decode(&printed).unwrap().len(), 32, "{printed}");

    let srv = start(&url).await;
    let mut ws = srv.signed_in("alice").await;
    let head = ws.request_ok("log.head", json!({})).await;
    assert_eq!(head["key"], printed.as_str());
    srv.stop().await;
    assert_eq!(run().await, printed);
}
