//! The command line as an operator uses it: the API commands over https,
//! `hush health` for container health checks, errors in the user's words
//! (`--master-key`, the cause of a failed `listen`), and each command
//! offering only the flags that do something for it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::*;
use hush_crypto::identity::IdentityKey;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A server with a SQLite store at `store`, TLS with `cert`/`key` when given.
async fn server(store: &str, tls: Option<(&std::path::Path, &std::path::Path)>) -> TestServer {
    let extra = tls.map_or(String::new(), |(c, k)| {
        format!(
            "[server.tls]\ncert_file = '{}'\nkey_file = '{}'\n",
            c.display(),
            k.display()
        )
    });
    let mut config = hush_server::Config::from_toml(&format!("{extra}{}", app_toml(""))).unwrap();
    config.store.url = Some(store.to_owned());
    TestServer::start_config(config).await
}

#[tokio::test]
async fn api_commands_work_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    // Two users with identity keys in the directory, published over ws://.
    let plain = server(&store, None).await;
    for user in ["alice", "bob"] {
        let card = new_card(user, &IdentityKey::generate());
        let mut ws = plain.signed_in(user).await;
        ws.request_ok(
            "directory.publish",
            json!({"card": STANDARD.encode(card.to_bytes())}),
        )
        .await;
    }
    plain.stop().await;

    // The same store behind TLS with a certificate the CLI trusts through
    // SSL_CERT_FILE (read by rustls-native-certs).
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let srv = server(&store, Some((&cert, &key))).await;
    let https = format!("https://localhost:{}", srv.addr.port());
    let ca = cert.to_str().unwrap();
    let run = |args: Vec<&'static str>| {
        let https = https.clone();
        async move { hush_with(&https, &args, None, &[("SSL_CERT_FILE", ca)]).await }
    };

    let o = run(vec!["trigger", "-c", "news", "-e", "e", "-d", "1"]).await;
    assert!(o.status.success(), "trigger: {}", stderr(&o));
    let o = run(vec!["channels", "--json"]).await;
    assert!(o.status.success(), "channels: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["channels"].is_object(), "{v}");
    let o = run(vec!["users", "presence-room"]).await;
    assert!(o.status.success(), "users: {}", stderr(&o));
    let o = run(vec!["audit"]).await;
    assert!(o.status.success(), "audit: {}", stderr(&o));
    // Two publications, two epochs, kept in the store across the restart.
    assert!(
        stdout(&o).contains("directory at epoch 2"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("epochs 1..=2 verified append-only"),
        "{}",
        stdout(&o)
    );
    let o = run(vec!["verify", "alice", "bob", "--json"]).await;
    assert!(o.status.success(), "verify: {}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        v.to_string().chars().filter(char::is_ascii_digit).count() >= 60,
        "{v}"
    );
    let o = run(vec!["health"]).await;
    assert!(o.status.success(), "health: {}", stderr(&o));

    // Without trusting the certificate, https is refused (and says so).
    let o = hush_with(
        &https,
        &["channels"],
        None,
        &[("SSL_CERT_FILE", "/nonexistent")],
    )
    .await;
    assert!(!o.status.success());
    srv.stop().await;
}

#[tokio::test]
async fn health_is_an_exit_code() {
    let srv = TestServer::start(&app_toml("")).await;
    let o = hush_with(&url(&srv), &["health"], None, &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["status"], "up");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let o = hush_with(&url(&srv), &["health", "--ready"], None, &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ready"), "{}", stdout(&o));
    let addr = srv.addr;
    srv.stop().await;
    let o = hush_with(&format!("http://{addr}"), &["health"], None, &[]).await;
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("/up") && e.to_lowercase().contains("refused"),
        "{e}"
    );
}

#[tokio::test]
async fn trigger_on_an_encrypted_channel_asks_for_the_master_key() {
    let srv = TestServer::start(&app_toml("")).await;
    let o = hush_with(
        &url(&srv),
        &["trigger", "-c", "private-encrypted-x", "-e", "e", "-d", "1"],
        None,
        &[],
    )
    .await;
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("--master-key") && e.contains("HUSH_MASTER_KEY"),
        "{e}"
    );
    assert!(!e.contains("Config::"), "SDK words in a CLI error: {e}");
    srv.stop().await;
}

#[tokio::test]
async fn listen_to_a_closed_port_says_why() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["listen", "news", "--url", &format!("http://{closed}")])
        .env("HUSH_APP_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let l = lines.next_line().await.unwrap().expect("stderr ended");
            if l.contains("cannot reach") {
                return l;
            }
        }
    })
    .await
    .expect("no cause reported");
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(line.contains(&closed.to_string()), "{line}");
    let _ = child.kill().await;
}

#[tokio::test]
async fn commands_offer_only_flags_that_work_for_them() {
    let help = |cmd: &'static str| async move {
        let o = hush_with("http://127.0.0.1:1", &[cmd, "--help"], None, &[]).await;
        assert!(o.status.success());
        stdout(&o)
    };
    assert!(help("trigger").await.contains("--master-key"));
    assert!(help("trigger").await.contains("--epoch"));
    for cmd in ["channels", "users", "audit", "verify", "health"] {
        let h = help(cmd).await;
        assert!(!h.contains("--master-key"), "{cmd}: {h}");
        assert!(!h.contains("--epoch"), "{cmd}: {h}");
    }
}

#[tokio::test]
async fn chat_to_a_closed_port_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    let key_file = dir.path().join("alice.keys");
    let mut child = cmd
        .args([
            "chat",
            "--user",
            "alice",
            "--peer",
            "bob",
            "--json",
            "--trust-on-first-use",
            "--key-file",
        ])
        .arg(&key_file)
        .env("HUSH_URL", format!("http://{closed}"))
        .env("HUSH_APP_KEY", KEY)
        .env("HUSH_APP_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let l = lines.next_line().await.unwrap().expect("stdout ended");
            if l.contains("cannot reach") {
                return l;
            }
        }
    })
    .await
    .expect("no cause reported");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{v}"
    );
    let _ = child.kill().await;
}
