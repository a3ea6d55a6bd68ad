//! `hush audit`, `hush verify` and `hush directory-key` as a user runs them:
//! the real binary against an in-process server whose key directory is
//! filled over the WebSocket, and a store whose history was rewritten with
//! the server's keys.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Output, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use hush_crypto::identity::{DeviceCard, IdentityKey};
use hush_crypto::safety::SafetyNumber;
use hush_crypto::transparency::SignedTreeHead;
use hush_protocol::UserId;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

async fn start(store_url: &str) -> TestServer {
    let mut config = hush_server::Config::from_toml(&app_toml("")).unwrap();
    config.store.url = Some(store_url.to_owned());
    TestServer::start_config(config).await
}

async fn hush(srv: &TestServer, args: &[&str]) -> Output {
    hush_with(&url(srv), args, None, &[]).await
}

/// Signs in as `user` and publishes `cards` to the key directory (each
/// acknowledged once an epoch publishes it).
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

/// The directory's current head (`log.head` over the WebSocket).
async fn head(srv: &TestServer) -> SignedTreeHead {
    let mut ws = srv.signed_in("watcher").await;
    let h = ws.request_ok("log.head", json!({})).await;
    SignedTreeHead::from_bytes(&STANDARD.decode(h["head"].as_str().unwrap()).unwrap()).unwrap()
}

fn saved(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn other_key() -> String {
    STANDARD.encode(
        hush_crypto::transparency::LogKey::generate()
            .public_key()
            .to_bytes(),
    )
}

#[tokio::test]
async fn audit_passes_an_honest_directory_and_catches_a_rewritten_history() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let state = dir.path().join("audit-state.json");
    let state_arg = state.to_str().unwrap();
    let alice = IdentityKey::generate();
    let bob = IdentityKey::generate();

    let srv = start(&url).await;
    // An empty directory audits fine.
    let o = hush(&srv, &["audit"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("directory at epoch 0"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("empty directory"), "{}", stdout(&o));

    let (a1, a2, a3) = (
        new_card("alice", &alice),
        new_card("alice", &alice),
        new_card("alice", &alice),
    );
    publish(&srv, "alice", &[&a1, &a2, &a3]).await;
    publish(&srv, "bob", &[&new_card("bob", &bob)]).await;
    let h = head(&srv).await.head;
    assert_eq!(h.epoch, 4);

    // Two epochs per request: the chunks 1..=3 and 3..=4 must join.
    let o = hush(&srv, &["audit", "--state", state_arg, "--chunk", "2"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("directory at epoch 4"), "{text}");
    assert!(
        text.contains("epochs 1..=4 verified append-only (2 audit proofs)"),
        "{text}"
    );
    assert!(text.ends_with("audit passed\n"), "{text}");
    let s = saved(&state);
    assert_eq!(
        (s["epoch"].clone(), s["app_id"].clone()),
        (json!(4), json!(ID))
    );
    assert_eq!(s["root"], hex::encode(h.root));

    // The directory grows; the next audit continues from epoch 4.
    publish(&srv, "bob", &[&new_card("bob", &bob)]).await;
    let o = hush(&srv, &["audit", "--state", state_arg, "--json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["resumed_from"], 4);
    assert_eq!(report["verified"], json!({"from": 4, "to": 5}));
    assert_eq!(report["proofs"], 1);
    assert_eq!(saved(&state)["epoch"], 5);
    let log_key = report["log_key"].as_str().unwrap().to_owned();
    let vrf_key = report["vrf_key"].as_str().unwrap().to_owned();
    // Nothing new: passes, the state unchanged.
    let o = hush(&srv, &["audit", "--state", state_arg]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("no new epoch since epoch 5"),
        "{}",
        stdout(&o)
    );

    // Pinned keys: the right ones pass, another fails.
    let o = hush(
        &srv,
        &["audit", "--pin-key", &log_key, "--pin-vrf", &vrf_key],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    for flag in ["--pin-key", "--pin-vrf"] {
        let o = hush(&srv, &["audit", flag, &other_key(), "--json"]).await;
        assert!(!o.status.success());
        assert!(stderr(&o).contains("not the pinned key"), "{}", stderr(&o));
        let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(report["ok"], false);
        let o = hush(&srv, &["audit", flag, "AAAA"]).await;
        assert!(!o.status.success());
        assert!(stderr(&o).contains(flag), "{}", stderr(&o));
    }
    srv.stop().await;

    // Someone with the database and the directory's keys rewrites history:
    // Alice's second card is swapped for another valid card, and the tree
    // is rebuilt. The forged directory is signed with the right keys.
    let forged = format!("sqlite://{}/forged.sqlite3", dir.path().display());
    let records = forge_directory_log(&url, &forged, 1, &new_card("alice", &alice)).await;
    assert_eq!(records, 5);

    let srv = start(&forged).await;
    // On its own the forged directory looks healthy…
    let o = hush(
        &srv,
        &["audit", "--pin-key", &log_key, "--pin-vrf", &vrf_key],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    // …but it is behind the epoch audited before…
    let before = std::fs::read_to_string(&state).unwrap();
    let o = hush(&srv, &["audit", "--state", state_arg]).await;
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("INCONSISTENT: rollback"),
        "{}",
        stdout(&o)
    );
    // …and once it has caught up, its epoch 5 is not the one audited.
    let carol = IdentityKey::generate();
    let mut n = 0;
    while head(&srv).await.head.epoch <= 5 {
        n += 1;
        assert!(n < 20, "the forged directory does not publish epochs");
        publish(&srv, "carol", &[&new_card("carol", &carol)]).await;
    }
    let o = hush(&srv, &["audit", "--state", state_arg]).await;
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("INCONSISTENT: fork: the root of epoch 5 changed"),
        "{}",
        stdout(&o)
    );
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
    // The same epoch as audited, with another root, is caught too.
    let mut at_latest: Value = serde_json::from_str(&before).unwrap();
    let latest = head(&srv).await.head.epoch;
    at_latest["epoch"] = json!(latest);
    std::fs::write(&state, at_latest.to_string()).unwrap();
    let o = hush(&srv, &["audit", "--state", state_arg]).await;
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains(&format!("fork: the root of epoch {latest} changed")),
        "{}",
        stdout(&o)
    );
    srv.stop().await;
}

/// Reads `child`'s next line of standard output (bounded).
async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("no line from hush audit --follow within 30 s")
        .unwrap()
        .expect("hush audit --follow ended")
}

fn audit_follow(srv: &TestServer, extra: &[&str]) -> tokio::process::Child {
    audit_follow_at(&url(srv), extra)
}

fn audit_follow_at(url: &str, extra: &[&str]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["audit", "--follow", "--interval", "1"])
        .args(extra)
        .env("HUSH_URL", url)
        .env("HUSH_APP_ID", ID)
        .env("HUSH_APP_KEY", KEY)
        .env("HUSH_APP_SECRET", SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn audit_follow_verifies_epochs_as_they_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("follow.json");
    let srv = start("sqlite::memory:").await;
    let alice = IdentityKey::generate();
    publish(&srv, "alice", &[&new_card("alice", &alice)]).await;

    let mut child = audit_follow(&srv, &["--state", state.to_str().unwrap()]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = next_line(&mut lines).await;
    assert!(first.starts_with("epoch 1 is the first"), "{first}");

    // Two more epochs while it runs: verified, one line per range, up to
    // the latest.
    publish(
        &srv,
        "alice",
        &[&new_card("alice", &alice), &new_card("alice", &alice)],
    )
    .await;
    let latest = head(&srv).await.head;
    assert_eq!(latest.epoch, 3);
    let mut upto = 1;
    while upto < 3 {
        let line = next_line(&mut lines).await;
        let prefix = format!("epochs {upto}..=");
        assert!(line.starts_with(&prefix), "{line}");
        assert!(line.contains("verified append-only"), "{line}");
        upto = line[prefix.len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
    }
    // The state follows the verified ranges.
    let mut n = 0;
    while saved(&state)["epoch"] != 3 {
        n += 1;
        assert!(n < 50, "the state file was not updated");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(saved(&state)["root"], hex::encode(latest.root));
    child.kill().await.unwrap();

    // A failure ends --follow with an error at once.
    let mut child = audit_follow(&srv, &["--pin-vrf", &other_key()]);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("hush audit --follow did not stop on a failure")
        .unwrap();
    assert!(!status.success());
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stdout.take().unwrap(), &mut out)
        .await
        .unwrap();
    assert!(
        out.starts_with("INCONSISTENT: the server's VRF key"),
        "{out}"
    );
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
    assert_eq!(v["epoch"], 3);

    // Both sides see the same number; the text form groups it.
    let o = hush(&srv, &["verify", "bob", "alice", "--qr", "base64"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let grouped = expected.display_grouped();
    assert_eq!(grouped.split(' ').count(), 12);
    assert!(text.contains(&grouped), "{text}");
    assert!(text.contains("QR payload (base64): "), "{text}");
    assert!(text.contains("at epoch 3"), "{text}");

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
    assert_eq!(v["epoch"], 5);

    // A user without an identity, bad ids and wrong pinned keys fail; the
    // right pinned keys pass.
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
    for (flag, what) in [("--pin-key", "log key"), ("--pin-vrf", "VRF key")] {
        let o = hush(&srv, &["verify", "alice", "bob", flag, &other_key()]).await;
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(&format!("the server's {what}")),
            "{}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("not the pinned key"), "{}", stderr(&o));
    }
    let mut ws = srv.signed_in("alice").await;
    let keys = ws.request_ok("log.head", json!({})).await;
    let (k, v) = (keys["key"].as_str().unwrap(), keys["vrf"].as_str().unwrap());
    let o = hush(
        &srv,
        &["verify", "alice", "bob", "--pin-key", k, "--pin-vrf", v],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    srv.stop().await;
}

/// `hush directory-key` prints, before any server ran, the keys the server
/// then signs its heads and evaluates its VRF with (what apps pin in their
/// clients), and the same keys on every later run.
#[tokio::test]
async fn directory_key_prints_the_keys_the_server_uses() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let config = dir.path().join("hush.toml");
    std::fs::write(&config, format!("[store]\nurl = '{url}'\n")).unwrap();
    let run = |json: bool| {
        let config = config.clone();
        async move {
            let mut args = vec!["directory-key", "--config", config.to_str().unwrap()];
            if json {
                args.push("--json");
            }
            let out = hush_with("http://127.0.0.1:1", &args, None, &[]).await;
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let printed = run(false).await;
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    let log_key = lines[0].strip_prefix("log-key: ").unwrap().to_owned();
    let vrf_key = lines[1].strip_prefix("vrf-key: ").unwrap().to_owned();
    for k in [&log_key, &vrf_key] {
        assert_eq!(STANDARD.decode(k).unwrap().len(), 32, "{printed}");
    }
    assert_ne!(log_key, vrf_key);

    let srv = start(&url).await;
    let mut ws = srv.signed_in("alice").await;
    let head = ws.request_ok("log.head", json!({})).await;
    assert_eq!(head["key"], log_key.as_str());
    assert_eq!(head["vrf"], vrf_key.as_str());
    srv.stop().await;
    assert_eq!(run(false).await, printed);
    let j: Value = serde_json::from_str(&run(true).await).unwrap();
    assert_eq!(j, json!({"log_key": log_key, "vrf_key": vrf_key}));
}

/// An unreachable server is a failure for one audit, but `--follow` keeps
/// retrying (an auditor outlives a server restart).
#[tokio::test]
async fn audit_follow_retries_an_unreachable_server() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let o = hush_with(&closed, &["audit"], None, &[]).await;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("fetching the directory head"),
        "{}",
        stderr(&o)
    );

    let mut child = audit_follow_at(&closed, &[]);
    let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(30), errors.next_line())
            .await
            .expect("no retry within 30 s")
            .unwrap()
            .expect("hush audit --follow ended");
        assert!(line.contains("retrying in 1 s"), "{line}");
    }
    assert!(child.try_wait().unwrap().is_none(), "--follow gave up");
    child.kill().await.unwrap();
}
