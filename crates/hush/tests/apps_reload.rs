//! SIGHUP re-reads the apps from the configuration without a restart: an
//! added app is served, a rotated secret takes effect at once while the
//! app's open connections keep receiving, a removed app is refused, and a
//! broken file changes nothing.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStderr;

const WAIT: Duration = Duration::from_secs(20);

fn app(label: &str, id: &str, key: &str, secret: &str) -> String {
    format!("[apps.{label}]\nid = '{id}'\nkey = '{key}'\nsecret = '{secret}'\n")
}

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

fn hup(pid: u32) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[tokio::test]
async fn sighup_reloads_apps_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hush.toml");
    let server = format!(
        "[server]\ndata_dir = '{}'\n",
        dir.path().join("data").display()
    );
    std::fs::write(&file, format!("{server}{}", app("a", "a1", "ka", "sa-old"))).unwrap();

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["serve", "--port", "0", "--config"])
        .arg(&file)
        .env("HUSH_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = common::listening_on(&mut out).await;
    let url = format!("http://{addr}");
    let ws = |key: &str| format!("ws://{addr}/app/{key}?protocol=7");
    let trigger = |secret: &'static str| {
        let url = url.clone();
        async move {
            hush_with(
                &url,
                &["trigger", "-c", "news", "-e", "e", "-d", secret],
                None,
                &[
                    ("HUSH_APP_ID", "a1"),
                    ("HUSH_APP_KEY", "ka"),
                    ("HUSH_APP_SECRET", secret),
                ],
            )
            .await
        }
    };

    // A subscriber connected under the first configuration.
    let mut sub = Client::connect(&ws("ka")).await;
    sub.established().await;
    sub.subscribe_ok("news").await;

    // Rotate a's secret and add b; SIGHUP.
    std::fs::write(
        &file,
        format!(
            "{server}{}{}",
            app("a", "a1", "ka", "sa-new"),
            app("b", "b1", "kb", "sb")
        ),
    )
    .unwrap();
    hup(pid);
    let line = log_with(&mut err, "apps reloaded").await;
    assert!(line.contains("b1") && line.contains("a1"), "{line}");

    // The new secret works at once, the old one no longer; the subscriber
    // from before the reload still receives.
    let o = trigger("sa-new").await;
    assert!(o.status.success(), "{}", stderr(&o));
    let e = sub.expect("e").await;
    assert_eq!(e["data"], "sa-new");
    let o = trigger("sa-old").await;
    assert!(!o.status.success(), "the old secret still signs");
    // The added app is served.
    let mut b = Client::connect(&ws("kb")).await;
    b.established().await;

    // A broken file changes nothing.
    std::fs::write(&file, "[apps.a\nbroken").unwrap();
    hup(pid);
    log_with(&mut err, "configuration not reloaded").await;
    let mut b2 = Client::connect(&ws("kb")).await;
    b2.established().await;

    // b removed: its open connections are closed with 4001, new ones refused.
    std::fs::write(&file, format!("{server}{}", app("a", "a1", "ka", "sa-new"))).unwrap();
    hup(pid);
    let line = log_with(&mut err, "apps reloaded").await;
    assert!(line.contains("removed") && line.contains("b1"), "{line}");
    assert!(line.contains("closed=2"), "{line}");
    assert_eq!(b.expect_close().await, Some(4001));
    assert_eq!(b2.expect_close().await, Some(4001));
    // a's subscriber is untouched.
    let o = trigger("sa-new").await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sub.expect("e").await["data"], "sa-new");
    let mut gone = Client::connect(&ws("kb")).await;
    let refused = gone.expect("pusher:error").await;
    assert_eq!(refused["data"]["code"], 4001, "{refused}");
    let _ = child.kill().await;
}
