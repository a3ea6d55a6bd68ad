//! The mailbox survives `kill -9` of the server: a send that was answered is
//! in the store, and a device fetches every such message exactly once after
//! the restart; an acknowledgement that was answered is final (what was
//! acknowledged never comes back, what was not is still there).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use hush_crypto::identity::IdentityKey;
use hush_testkit::mailbox::{prove, seal_to};
use hush_testkit::{Client, ID, KEY, SECRET, new_device};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `hush serve` on the data directory `dir` (same store on every start).
async fn serve(dir: &Path) -> (tokio::process::Child, String) {
    let config = dir.join("hush.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhost = '127.0.0.1'\nport = 0\ndata_dir = '{d}'\n\
             [apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(dir)
        .env("HUSH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = common::listening_on(&mut out)
        .await
        .trim_start_matches("ws://")
        .to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    (child, addr)
}

/// SIGKILL: no shutdown, no flush, no goodbye.
async fn kill9(mut child: tokio::process::Child) {
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

async fn signed_in(addr: &str, user: &str) -> Client {
    let mut c = Client::connect(&format!("ws://{addr}/app/{KEY}?protocol=7")).await;
    c.established().await;
    let ev = c.signin(&json!({ "id": user }).to_string()).await;
    assert_eq!(ev["event"], "pusher:signin_success", "{ev}");
    c
}

fn ids_and_envelopes(page: &Value) -> Vec<(u64, String)> {
    page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_u64().unwrap(),
                m["envelope"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn fetch_all(c: &mut Client) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = c.request_ok("mailbox.fetch", json!({"after": after})).await;
        let got = ids_and_envelopes(&page);
        if let Some((last, _)) = got.last() {
            after = *last;
        }
        let more = page["more"] == true && !got.is_empty();
        all.extend(got);
        if !more {
            return all;
        }
    }
}

#[tokio::test]
async fn answered_sends_and_acknowledgements_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(dir.path()).await;
    let (alice_id, bob_id) = (IdentityKey::generate(), IdentityKey::generate());
    let (alice_keys, alice_card) = new_device("alice", &alice_id);
    let (bob_keys, bob_card) = new_device("bob", &bob_id);
    let mut alice = signed_in(&addr, "alice").await;
    let mut bob = signed_in(&addr, "bob").await;
    for (c, card) in [(&mut alice, &alice_card), (&mut bob, &bob_card)] {
        let b64 =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, card.to_bytes());
        c.request_ok("directory.publish", json!({"card": b64}))
            .await;
    }
    drop(bob);
    prove(&mut alice, "alice", &alice_keys).await;

    // 40 sends, each answered: each committed.
    let mut sent = Vec::new();
    for n in 1..=40 {
        let env = seal_to("alice", &alice_keys, &[&bob_card], n, &format!("m{n}"));
        let r = alice
            .request_ok("mailbox.send", json!({"users": ["bob"], "envelope": env}))
            .await;
        assert_eq!(r["devices"], 1);
        sent.push(env);
    }
    // Killed between the store and Bob's acknowledgement.
    kill9(server).await;

    let (server, addr) = serve(dir.path()).await;
    let mut bob = signed_in(&addr, "bob").await;
    let authed = prove(&mut bob, "bob", &bob_keys).await;
    assert_eq!(authed["pending"], 40, "{authed}");
    let got = fetch_all(&mut bob).await;
    let envelopes: Vec<&String> = got.iter().map(|(_, e)| e).collect();
    assert_eq!(
        envelopes,
        sent.iter().collect::<Vec<_>>(),
        "lost, reordered or doubled"
    );

    // Bob acknowledges the first half; the server dies right after answering.
    let half: Vec<u64> = got[..20].iter().map(|(id, _)| *id).collect();
    let r = bob.request_ok("mailbox.ack", json!({"ids": half})).await;
    assert_eq!(r["deleted"], 20);
    kill9(server).await;

    let (server, addr) = serve(dir.path()).await;
    let mut bob = signed_in(&addr, "bob").await;
    prove(&mut bob, "bob", &bob_keys).await;
    let rest = fetch_all(&mut bob).await;
    assert_eq!(
        rest,
        got[20..].to_vec(),
        "the acknowledged came back or the rest was lost"
    );
    let unique: BTreeSet<u64> = rest.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), 20);
    kill9(server).await;
}
