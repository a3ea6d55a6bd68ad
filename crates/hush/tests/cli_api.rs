//! `hush keygen`, `hush trigger`, `hush channels` and `hush users` as a user
//! runs them: the real binary against an in-process server on loopback.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_crypto::{MasterKey, open, shared_secret};
use hush_protocol::{ChannelName, SocketId, auth};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

const ID: &str = "3";
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const MASTER: &str = "dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=";
const WAIT: Duration = Duration::from_secs(5);

struct Srv {
    url: String,
    addr: std::net::SocketAddr,
    running: Option<hush_server::RunningServer>,
}

impl Srv {
    fn shutdown(&mut self) {
        // Dropping a RunningServer drains it.
        self.running.take();
    }
}

async fn start() -> Srv {
    let toml = format!("[apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\n");
    let mut config = hush_server::Config::from_toml(&toml).unwrap();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.shutdown_timeout = 1;
    config.store.url = Some("sqlite::memory:".into());
    let running = hush_server::Server::bind(config).await.unwrap().spawn();
    let addr = running.local_addr();
    Srv {
        url: format!("http://{addr}"),
        addr,
        running: Some(running),
    }
}

/// Runs `hush ARGS` with the app's credentials in the environment (only
/// those: inherited `HUSH_*` variables are removed).
async fn hush(srv: &Srv, args: &[&str], stdin: Option<&str>, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .env("HUSH_URL", &srv.url)
        .env("HUSH_APP_ID", ID)
        .env("HUSH_APP_KEY", KEY)
        .env("HUSH_APP_SECRET", SECRET)
        .envs(extra_env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_event(ws: &mut Ws, event: &str) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["event"] == event {
                return v;
            }
        }
    }
}

/// A subscriber on `channel` (signed for private/presence channels).
async fn subscriber(srv: &Srv, channel: &str, channel_data: Option<&str>) -> Ws {
    let url = format!(
        "ws://{}/app/{KEY}?protocol=7&client=cli-test&version=0",
        srv.addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let est = next_event(&mut ws, "pusher:connection_established").await;
    let inner: Value = serde_json::from_str(est["data"].as_str().unwrap()).unwrap();
    let sid = SocketId::parse(inner["socket_id"].as_str().unwrap()).unwrap();
    let name = ChannelName::parse(channel).unwrap();
    let sig = auth::sign_channel(SECRET.as_bytes(), &sid, &name, channel_data);
    let mut data = json!({"channel": channel, "auth": auth::auth_value(KEY, &sig)});
    if let Some(cd) = channel_data {
        data["channel_data"] = json!(cd);
    }
    ws.send(Message::Text(
        json!({"event":"pusher:subscribe","data":data})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    next_event(&mut ws, "pusher_internal:subscription_succeeded").await;
    ws
}

#[tokio::test]
async fn keygen_prints_usable_credentials() {
    let mut srv = start().await;
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
    srv.shutdown();
}

#[tokio::test]
async fn trigger_plain_and_from_stdin() {
    let mut srv = start().await;
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
    assert_eq!(next_event(&mut ws, "hello").await["data"], r#"{"a":1}"#);

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
    assert_eq!(
        next_event(&mut ws, "piped").await["data"],
        "line one\nline two"
    );
    srv.shutdown();
}

#[tokio::test]
async fn trigger_encrypts_with_the_master_key() {
    let mut srv = start().await;
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
    let m = next_event(&mut ws, "sealed").await;
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
    srv.shutdown();
}

#[tokio::test]
async fn channels_and_users() {
    let mut srv = start().await;
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
    srv.shutdown();
}

#[tokio::test]
async fn clear_errors_and_exit_codes() {
    let mut srv = start().await;
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
        .args(["channels", "--url", &srv.url])
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
    let url = format!("http://{KEY}:{SECRET}@{}/apps/{ID}", srv.addr);
    let o = hush(
        &srv,
        &["channels", "--json", "--url", &url],
        None,
        &[("HUSH_APP_SECRET", "")],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));

    srv.shutdown();
    // Nothing listens any more: a transport error, still exit code 1.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let o = hush(&srv, &["channels", "--timeout", "2"], None, &[]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("request failed"), "{}", stderr(&o));
}
