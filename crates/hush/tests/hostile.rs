//! `hush serve` against hostile clients, as a process: a SIGTERM while a
//! client holds a partial HTTP request, and silent sockets that would use up
//! the process's file descriptors.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hush_testkit::Client;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Child;

const WAIT: Duration = Duration::from_secs(20);

/// Starts `hush serve` (development app, data in a temporary directory)
/// with `env`, its descriptor limit set to `nofile` by the shell if given.
async fn serve(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    nofile: Option<u32>,
) -> (Child, SocketAddr) {
    serve_with(dir, env, nofile, &[]).await
}

/// [`serve`] with extra arguments to `hush serve`.
async fn serve_with(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    nofile: Option<u32>,
    args: &[&str],
) -> (Child, SocketAddr) {
    let bin = env!("CARGO_BIN_EXE_hush");
    let mut cmd = tokio::process::Command::new("sh");
    let limit = nofile.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    cmd.arg("-c")
        .arg(format!("{limit}exec \"$0\" serve --port 0 \"$@\""))
        .arg(bin)
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .envs(env.iter().copied())
        .env("HUSH_SERVER__DATA_DIR", dir)
        .env("HUSH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = common::listening_on(&mut out).await.parse().unwrap();
    // Keep reading stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    (child, addr)
}

fn kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

async fn get_up(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf).await;
    buf
}

#[tokio::test]
async fn sigterm_ends_within_its_bound_whatever_clients_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(
        dir.path(),
        &[
            ("HUSH_SERVER__SHUTDOWN_TIMEOUT", "1"),
            ("HUSH_SERVER__DRAIN_DELAY", "1"),
            // Long, so it is the shutdown that has to end these connections.
            ("HUSH_SERVER__HTTP_HEADER_TIMEOUT", "120"),
            ("HUSH_SERVER__HTTP_REQUEST_TIMEOUT", "120"),
        ],
        None,
    )
    .await;
    // An unfinished request head, and a request whose body never comes.
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut body = TcpStream::connect(addr).await.unwrap();
    body.write_all(b"POST /apps/app-id/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    // A WebSocket client that never reads.
    let ws = Client::connect(&format!("ws://{addr}/app/app-key?protocol=7")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(get_up(addr).await.starts_with("HTTP/1.1 200"));

    let t0 = Instant::now();
    kill(child.id().unwrap(), "-TERM");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("hush did not exit after SIGTERM")
        .unwrap();
    let took = t0.elapsed();
    assert!(status.success(), "{status}");
    // drain_delay + shutdown_timeout + 1 s.
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    drop((partial, body, ws));
}

#[tokio::test]
async fn silent_sockets_cannot_use_up_the_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &[
            // Only the descriptor budget stands in the way here.
            ("HUSH_SERVER__MAX_PENDING_CONNECTIONS", "100000"),
            ("HUSH_SERVER__MAX_PENDING_PER_IP", "0"),
            ("HUSH_SERVER__HTTP_HEADER_TIMEOUT", "120"),
        ],
        Some(256),
    )
    .await;
    // Twice the process's descriptors in silent sockets, from four addresses.
    let mut silent = Vec::new();
    for i in 0..512u32 {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::from(([127, 0, 0, 2 + (i % 4) as u8], 0)))
            .unwrap();
        let conn = tokio::time::timeout(Duration::from_secs(5), s.connect(addr))
            .await
            .expect("the listen backlog is full: the server stopped accepting");
        silent.push(conn.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // /up, a WebSocket and a signed API call are still served.
    let up = tokio::time::timeout(Duration::from_secs(5), get_up(addr))
        .await
        .expect("/up did not answer");
    assert!(up.starts_with("HTTP/1.1 200"), "{up}");
    let mut ws = tokio::time::timeout(
        Duration::from_secs(5),
        Client::connect(&format!("ws://{addr}/app/app-key?protocol=7")),
    )
    .await
    .expect("WebSocket handshake");
    ws.established().await;
    ws.subscribe_ok("after-pressure").await;
    let mut config = hush_sdk::Config::new("app-id", "app-key", "app-secret");
    config.set_base_url(&format!("http://{addr}")).unwrap();
    let sdk = hush_sdk::Client::new(config).unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        sdk.trigger(
            &["after-pressure"],
            "e",
            "{}",
            &hush_sdk::TriggerOptions::default(),
        ),
    )
    .await
    .expect("API call")
    .unwrap();
    ws.expect("e").await;
    drop(silent);
}

/// A webhook receiver: answers 200 to every POST and hands on each event.
async fn webhook_receiver() -> (
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut s = BufReader::new(s);
                loop {
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; len];
                    if s.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    for e in v["events"].as_array().cloned().unwrap_or_default() {
                        let _ = tx.send(e);
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if s.get_mut().write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// Waits for `n` webhook events other than those in `seen` (a redelivery
/// after a crash is allowed: delivery is at-least-once); returns them, sorted,
/// as `name channel [user]`.
async fn hooks(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    n: usize,
    seen: &[String],
) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {got:?}"))
            .unwrap();
        let user = e["user_id"]
            .as_str()
            .map_or(String::new(), |u| format!(" {u}"));
        let e = format!(
            "{} {}{user}",
            e["name"].as_str().unwrap(),
            e["channel"].as_str().unwrap()
        );
        if !seen.contains(&e) {
            got.push(e);
        }
    }
    got.sort();
    got
}

#[tokio::test]
async fn a_crash_does_not_leave_channels_occupied_for_the_webhooks() {
    use hush_testkit::{ID, KEY, SECRET};
    let dir = tempfile::tempdir().unwrap();
    let (hook_addr, mut events) = webhook_receiver().await;
    let config = dir.path().join("hush.toml");
    std::fs::write(
        &config,
        format!(
            "[apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\n\
             [[apps.main.webhooks]]\nurl = 'http://{hook_addr}/hooks'\n\
             event_types = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed']\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let (mut child, addr) = serve_with(dir.path(), &[], None, &["--config", config]).await;
    let mut c = Client::connect(&format!("ws://{addr}/app/{KEY}?protocol=7")).await;
    c.established().await;
    c.subscribe_ok("crash-public").await;
    c.join_presence("presence-crash", "u1", serde_json::json!({}))
        .await;
    let before = hooks(&mut events, 3, &[]).await;
    assert_eq!(
        before,
        [
            "channel_occupied crash-public",
            "channel_occupied presence-crash",
            "member_added presence-crash u1",
        ]
    );
    // SIGKILL: nothing runs to emit vacated / removed.
    kill(child.id().unwrap(), "-KILL");
    let _ = child.wait().await;
    drop(c);
    // The next start on the same store emits them.
    let (_child, _) = serve_with(dir.path(), &[], None, &["--config", config]).await;
    assert_eq!(
        hooks(&mut events, 3, &before).await,
        [
            "channel_vacated crash-public",
            "channel_vacated presence-crash",
            "member_removed presence-crash u1",
        ]
    );
}
