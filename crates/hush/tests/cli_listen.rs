//! `hush listen` as a user runs it: the real binary against an in-process
//! server on loopback, events triggered through hush-sdk.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use hush_sdk::{MasterKey, TriggerOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ID: &str = "3";
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const MASTER: &str = "dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=";
const WAIT: Duration = Duration::from_secs(20);

async fn start() -> (std::net::SocketAddr, hush_server::RunningServer) {
    let toml = format!("[apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\n");
    let mut config = hush_server::Config::from_toml(&toml).unwrap();
    // In memory unless the test names a store: tests never write one into
    // the repository.
    config
        .store
        .url
        .get_or_insert_with(|| "sqlite::memory:".into());
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.shutdown_timeout = 1;
    let running = hush_server::Server::bind(config).await.unwrap().spawn();
    (running.local_addr(), running)
}

fn sdk(addr: std::net::SocketAddr) -> hush_sdk::Client {
    let mut c = hush_sdk::Config::new(ID, KEY, SECRET)
        .with_master_key(MasterKey::from_base64(MASTER).unwrap());
    c.set_base_url(&format!("http://{addr}")).unwrap();
    hush_sdk::Client::new(c).unwrap()
}

fn listen(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("listen")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().unwrap()
}

/// Reads standard error until `n` lines contain `needle`.
async fn wait_stderr(
    child: &mut Child,
    needle: &str,
    n: usize,
) -> BufReader<tokio::process::ChildStderr> {
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = 0;
    let mut all = String::new();
    tokio::time::timeout(WAIT, async {
        while seen < n {
            let mut line = String::new();
            if err.read_line(&mut line).await.unwrap() == 0 {
                panic!("stderr closed: {all}");
            }
            if line.contains(needle) {
                seen += 1;
            }
            all.push_str(&line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"));
    err
}

#[tokio::test]
async fn listen_prints_public_and_decrypted_events_as_json_lines() {
    let (addr, running) = start().await;
    let url = format!("ws://{addr}");
    let mut child = listen(
        &[
            "news",
            "private-encrypted-vault",
            "--count",
            "2",
            "--url",
            &url,
        ],
        &[
            ("HUSH_APP_KEY", KEY),
            ("HUSH_APP_SECRET", SECRET),
            ("HUSH_MASTER_KEY", MASTER),
        ],
    );
    let _err = wait_stderr(&mut child, "subscribed to", 2).await;
    let sdk = sdk(addr);
    let o = TriggerOptions::default();
    sdk.trigger(&["news"], "headline", &json!({"t": "hi"}), &o)
        .await
        .unwrap();
    sdk.trigger(
        &["private-encrypted-vault"],
        "secret",
        &json!({"pin": 42}),
        &o,
    )
    .await
    .unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"channel": "news", "event": "headline", "data": {"t": "hi"}}),
            json!({"channel": "private-encrypted-vault", "event": "secret", "data": {"pin": 42}}),
        ]
    );
    drop(running);
}

#[tokio::test]
async fn listen_exits_1_on_a_refused_connection() {
    let (addr, running) = start().await;
    let url = format!("ws://{addr}");
    let child = listen(&["news", "--url", &url, "--app-key", "wrong-key"], &[]);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refused the connection") && err.contains("4001"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    drop(running);
}

#[tokio::test]
async fn listen_refuses_unusable_arguments() {
    for (args, needle) in [
        (
            vec!["private-x", "--app-key", KEY],
            "--auth-endpoint or --app-secret",
        ),
        (vec!["news"], "missing --app-key"),
        (vec!["bad:name", "--app-key", KEY], "channel \"bad:name\""),
        (
            vec![
                "private-encrypted-x",
                "--app-key",
                KEY,
                "--app-secret",
                SECRET,
            ],
            "--master-key",
        ),
    ] {
        let out = listen(&args, &[]).wait_with_output().await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn listen_reports_a_refused_subscription() {
    let (addr, running) = start().await;
    let url = format!("ws://{addr}");
    // A wrong secret: the server refuses the signature.
    let child = listen(
        &[
            "private-x",
            "--url",
            &url,
            "--app-key",
            KEY,
            "--app-secret",
            "not-the-secret",
        ],
        &[],
    );
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("subscription to private-x refused"), "{err}");
    drop(running);
}

#[tokio::test]
async fn listen_prints_sealed_events_under_their_real_name() {
    let (addr, running) = start().await;
    let url = format!("ws://{addr}");
    let channel = "private-encrypted-sealed";
    let mut child = listen(
        &[channel, "--count", "1", "--url", &url, "--epoch", "3"],
        &[
            ("HUSH_APP_KEY", KEY),
            ("HUSH_APP_SECRET", SECRET),
            ("HUSH_MASTER_KEY", MASTER),
        ],
    );
    let _err = wait_stderr(&mut child, "subscribed to", 1).await;
    let mut c = hush_sdk::Config::new(ID, KEY, SECRET)
        .with_master_key(MasterKey::from_base64(MASTER).unwrap())
        .with_key_epochs(hush_sdk::EpochPolicy::Fixed(3));
    c.set_base_url(&format!("http://{addr}")).unwrap();
    let backend = hush_sdk::Client::new(c).unwrap();
    backend
        .trigger_sealed(channel, "memo", r#"{"k":"v"}"#, &TriggerOptions::default())
        .await
        .unwrap();
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let line: Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(line["event"], "memo");
    assert_eq!(line["data"], json!({"k": "v"}));
    assert_eq!(line["sealed"]["epoch"], 3);
    assert_eq!(line["sealed"]["seq"], 1);
    assert_eq!(line["sealed"]["sender"], backend.sealed_sender_id());
    drop(running);
}
