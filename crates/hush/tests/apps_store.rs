//! Apps kept in the store and managed with `hush apps`, picked up by a
//! running `hush serve` within seconds: add, rotate-secret (the old secret
//! stops signing, open connections keep receiving), disable (open and new
//! connections get 4003), remove (4001); list and show mask the secret.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStderr;

const WAIT: Duration = Duration::from_secs(20);

async fn log_with(lines: &mut Lines<BufReader<ChildStderr>>, needle: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            let l = lines.next_line().await.unwrap().expect("stderr ended");
            if l.contains(needle) {
                return l;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no log line with {needle:?}"))
}

#[tokio::test]
async fn hush_apps_changes_reach_a_running_server_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hush.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\ndata_dir = '{}'\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let cfg = file.to_str().unwrap().to_owned();

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["serve", "--port", "0", "--config", &cfg])
        .env("HUSH_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = common::listening_on(&mut out).await;
    let url = format!("http://{addr}");
    let ws = |key: &str| format!("ws://{addr}/app/{key}?protocol=7");
    let apps = |args: Vec<&str>| {
        let mut all = vec!["apps", "--config", cfg.as_str(), "--json"];
        all.extend(args);
        let url = url.clone();
        let all: Vec<String> = all.into_iter().map(str::to_owned).collect();
        async move {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let o = hush_with(&url, &refs, None, &[]).await;
            assert!(o.status.success(), "hush {all:?}: {}", stderr(&o));
            serde_json::from_str::<Value>(stdout(&o).trim()).unwrap()
        }
    };
    let trigger = |secret: String| {
        let url = url.clone();
        async move {
            hush_with(
                &url,
                &["trigger", "-c", "news", "-e", "e", "-d", &secret],
                None,
                &[
                    ("HUSH_APP_ID", "412001"),
                    ("HUSH_APP_KEY", "k-store"),
                    ("HUSH_APP_SECRET", &secret),
                ],
            )
            .await
        }
    };

    // add: served within seconds; the development app is no longer in force.
    let started = Instant::now();
    let added = apps(vec![
        "add",
        "--id",
        "412001",
        "--key",
        "k-store",
        "--client-events",
        "--set",
        "max_connections=50",
    ])
    .await;
    let secret = added["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);
    let line = log_with(&mut err, "stored apps changed: apps reloaded").await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(line.contains("412001"), "{line}");
    let mut sub = Client::connect(&ws("k-store")).await;
    sub.established().await;
    sub.subscribe_ok("news").await;
    let mut dev = Client::connect(&ws("app-key")).await;
    assert_eq!(dev.expect("pusher:error").await["data"]["code"], 4001);
    let o = trigger(secret.clone()).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sub.expect("e").await["data"], secret.as_str());

    // list / show mask the secret.
    let list = apps(vec!["list"]).await;
    assert_eq!(list[0]["id"], "412001");
    assert_eq!(list[0]["max_connections"], 50);
    assert!(!list.to_string().contains(&secret));
    let show = apps(vec!["show", "412001"]).await;
    assert!(!show.to_string().contains(&secret), "{show}");

    // rotate-secret: the old one stops signing, the subscriber stays.
    let rotated = apps(vec!["rotate-secret", "412001"]).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    log_with(&mut err, "stored apps changed: apps reloaded").await;
    assert!(!trigger(secret.clone()).await.status.success());
    let o = trigger(new_secret.clone()).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sub.expect("e").await["data"], new_secret.as_str());

    // disable: open connections are closed with 4003 (pusher-js does not
    // reconnect), new ones get 4003.
    apps(vec!["disable", "412001"]).await;
    let line = log_with(&mut err, "stored apps changed: apps reloaded").await;
    assert!(line.contains("closed=1"), "{line}");
    assert_eq!(sub.expect_close().await, Some(4003));
    let mut off = Client::connect(&ws("k-store")).await;
    assert_eq!(off.expect("pusher:error").await["data"]["code"], 4003);

    // remove: unknown key (4001); the development app is back on loopback.
    apps(vec!["remove", "412001"]).await;
    log_with(&mut err, "stored apps changed: apps reloaded").await;
    let mut gone = Client::connect(&ws("k-store")).await;
    assert_eq!(gone.expect("pusher:error").await["data"]["code"], 4001);
    let _ = child.kill().await;
}
