//! `hush keygen`, `hush trigger`, `hush channels` and `hush users` as a user
//! runs them: the real binary against an in-process server on loopback.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;
use std::time::Duration;

use common::*;
use hush_crypto::{MasterKey, open, shared_secret};
use hush_protocol::ChannelName;
use serde_json::{Value, json};

const MASTER: &str = MASTER_KEY;

async fn start() -> TestServer {
    TestServer::start(&app_toml("")).await
}

async fn hush(
    srv: &TestServer,
    args: &[&str],
    stdin: Option<&str>,
    extra_env: &[(&str, &str)],
) -> Output {
    hush_with(&url(srv), args, stdin, extra_env).await
}

/// A subscriber on `channel` (signed for private/presence channels).
async fn subscriber(srv: &TestServer, channel: &str, channel_data: Option<&str>) -> Client {
    let mut ws = srv.client().await;
    let auth = sign(ws.sid(), channel, channel_data);
    let v = ws.subscribe(channel, Some(&auth), channel_data).await;
    assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    ws
}

#[tokio::test]
async fn keygen_prints_usable_credentials() {
    let srv = start().await;
    let a = hush(&srv, &["keygen", "--json"], None, &[]).await;
    assert!(a.status.success(), "{}", stderr(&a));
    let v: Value = serde_json::from_str(&stdout(&a)).unwrap();
    assert_eq!(v["app_id"].as_str().unwrap().len(), 7);
    assert_eq!(v["key"].as_str().unwrap().len(), 20);
    assert_eq!(v["secret"].as_str().unwrap().len(), 40);
    let master = v["encryption_master_key_base64"].as_str().unwrap();
    assert!(MasterKey::from_base64(master).is_ok());
    let b = hush(&srv, &["keygen", "--json"], None, &[]).await;
    let w: Value = serde_json::from_str(&stdout(&b)).unwrap();
    assert_ne!(v["secret"], w["secret"]);
    assert_ne!(
        v["encryption_master_key_base64"],
        w["encryption_master_key_base64"]
    );
    let text = hush(&srv, &["keygen"], None, &[]).await;
    assert!(stdout(&text).contains("[apps.main]"), "{}", stdout(&text));
    assert!(stdout(&text).contains("master key:"));
    srv.stop().await;
}

#[tokio::test]
async fn trigger_plain_and_from_stdin() {
    let srv = start().await;
    let mut ws = subscriber(&srv, "private-news", None).await;
    let o = hush(
        &srv,
        &[
            "trigger",
            "-c",
            "private-news",
            "-e",
            "hello",
            "-d",
            r#"{"a":1}"#,
        ],
        None,
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(ws.expect("hello").await["data"], r#"{"a":1}"#);

    let o = hush(
        &srv,
        &[
            "trigger",
            "-c",
            "private-news",
            "-c",
            "other",
            "-e",
            "piped",
            "--info",
            "subscription_count",
            "--json",
        ],
        Some("line one\nline two\n"),
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["channels"]["private-news"]["subscription_count"], 1);
    assert_eq!(ws.expect("piped").await["data"], "line one\nline two");
    srv.stop().await;
}

#[tokio::test]
async fn trigger_encrypts_with_the_master_key() {
    let srv = start().await;
    let channel = "private-encrypted-cli";
    let mut ws = subscriber(&srv, channel, None).await;
    let plaintext = r#"{"message":"canary-c1i"}"#;

    // Without a master key: refused before sending, non-zero exit.
    let o = hush(
        &srv,
        &["trigger", "-c", channel, "-e", "x", "-d", plaintext],
        None,
        &[],
    )
    .await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("encrypted channel"), "{}", stderr(&o));

    let o = hush(
        &srv,
        &["trigger", "-c", channel, "-e", "sealed", "-d", plaintext],
        None,
        &[("HUSH_MASTER_KEY", MASTER)],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(encrypted)"));
    let m = ws.expect("sealed").await;
    let data = m["data"].as_str().unwrap();
    assert!(!data.contains("canary-c1i"));
    let key = shared_secret(
        &ChannelName::parse(channel).unwrap(),
        &MasterKey::from_base64(MASTER).unwrap(),
    );
    assert_eq!(open(&key, data).unwrap(), plaintext.as_bytes());

    let o = hush(
        &srv,
        &["trigger", "-c", channel, "-c", "news", "-e", "x", "-d", "y"],
        None,
        &[("HUSH_MASTER_KEY", MASTER)],
    )
    .await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("multiple channels"), "{}", stderr(&o));
    let o = hush(
        &srv,
        &[
            "trigger",
            "-c",
            channel,
            "-e",
            "x",
            "-d",
            "y",
            "--master-key",
            "c2hvcnQ=",
        ],
        None,
        &[],
    )
    .await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("32 bytes"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("c2hvcnQ="),
        "the key must not be echoed"
    );
    srv.stop().await;
}

#[tokio::test]
async fn channels_and_users() {
    let srv = start().await;
    let cd = r#"{"user_id":"alice","user_info":{"name":"Alice"}}"#;
    let _p = subscriber(&srv, "presence-room", Some(cd)).await;
    let _q = subscriber(&srv, "private-x", None).await;

    let o = hush(&srv, &["channels"], None, &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "presence-room\nprivate-x\n");
    let o = hush(
        &srv,
        &[
            "channels",
            "--prefix",
            "presence-",
            "--info",
            "user_count",
            "--json",
        ],
        None,
        &[],
    )
    .await;
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, json!({"channels": {"presence-room": {"user_count": 1}}}));

    let o = hush(&srv, &["users", "presence-room", "--json"], None, &[]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap(),
        json!({"users": [{"id": "alice"}]})
    );
    let o = hush(&srv, &["users", "presence-room"], None, &[]).await;
    assert_eq!(stdout(&o), "alice\n");

    // The server's refusal, with its status and message, and a non-zero exit.
    let o = hush(&srv, &["channels", "--info", "user_count"], None, &[]).await;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("HTTP 400"), "{}", stderr(&o));
    let o = hush(&srv, &["users", "private-x"], None, &[]).await;
    assert!(!o.status.success());
    srv.stop().await;
}

#[tokio::test]
async fn clear_errors_and_exit_codes() {
    let srv = start().await;
    let o = hush(&srv, &["channels"], None, &[("HUSH_APP_SECRET", "wrong")]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("HTTP 401"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(SECRET));

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    let o = cmd
        .args(["channels", "--url", &url(&srv)])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing --app-id"), "{}", stderr(&o));

    let o = hush(
        &srv,
        &[
            "trigger",
            "-c",
            "a",
            "-e",
            "x",
            "-d",
            "y",
            "--socket-id",
            "1.1:private-x",
        ],
        None,
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid socket id"), "{}", stderr(&o));

    // Pusher's URL form carries the credentials.
    let pusher_url = format!("http://{KEY}:{SECRET}@{}/apps/{ID}", srv.addr);
    let o = hush(
        &srv,
        &["channels", "--json", "--url", &pusher_url],
        None,
        &[("HUSH_APP_SECRET", "")],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));

    let gone = url(&srv);
    srv.stop().await;
    // Nothing listens any more: a transport error, still exit code 1.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = hush_with(&gone, &["channels", "--timeout", "2"], None, &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("request failed"), "{}", stderr(&o));
}
