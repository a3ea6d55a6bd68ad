//! `hush chat` as two people run it: two processes (stdin/stdout pipes)
//! against a `hush serve` process, exchanging end-to-end encrypted lines
//! through the server's mailbox (also while the peer is offline), with
//! safety numbers shown and verification; the server's logs, its store and
//! an eavesdropping subscriber of the chat channel never see the plaintext.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_protocol::{ChannelName, SocketId, auth};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const WAIT: Duration = Duration::from_secs(30);

fn command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).kill_on_drop(true);
    cmd
}

/// `hush serve` with every log level on; its log is collected.
struct Server {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

async fn serve(dir: &Path) -> Server {
    let config = dir.join("hush.toml");
    std::fs::write(
        &config,
        format!(
            "[apps.main]\nid = '3'\nkey = '{KEY}'\nsecret = '{SECRET}'\nclient_events = true\n\n\
             [store]\nurl = 'sqlite://{}/hush.sqlite3'\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = command(&["serve", "--config", config.to_str().unwrap(), "--port", "0"])
        .env("HUSH_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            let l = out.next_line().await.unwrap().expect("serve stdout ended");
            if let Some(a) = l.strip_prefix("hush listening on ") {
                return a.to_owned();
            }
        }
    })
    .await
    .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(l)) = err.next_line().await {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    Server { child, addr, log }
}

/// One `hush chat --json` process.
struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Lines<BufReader<ChildStdout>>,
}

impl Chat {
    async fn start(srv: &Server, dir: &Path, user: &str, peer: &str) -> Chat {
        let key_file = dir.join(format!("{user}.keys"));
        let mut child = command(&[
            "chat",
            "--user",
            user,
            "--peer",
            peer,
            "--key-file",
            key_file.to_str().unwrap(),
            "--json",
            "--trust-on-first-use",
        ])
        .env("HUSH_URL", format!("http://{}", srv.addr))
        .env("HUSH_APP_KEY", KEY)
        .env("HUSH_APP_SECRET", SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
        Chat {
            stdin: child.stdin.take(),
            out: BufReader::new(child.stdout.take().unwrap()).lines(),
            child,
        }
    }

    async fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// Reads JSON lines until one of `kind`; returns it and the records
    /// skipped on the way. An error record fails the test.
    async fn expect(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            loop {
                let l =
                    self.out.next_line().await.unwrap().unwrap_or_else(|| {
                        panic!("chat ended while waiting for {kind}: {skipped:?}")
                    });
                let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
                assert!(
                    v["type"] != "error" || kind == "error" || kind == "*",
                    "{v}"
                );
                if v["type"] == kind || kind == "*" {
                    return v;
                }
                skipped.push(v);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} record"));
        (found, skipped)
    }

    /// Closes standard input: the chat ends with status 0.
    async fn quit(mut self) {
        drop(self.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_event(ws: &mut Ws, event: &str) -> Value {
    tokio::time::timeout(WAIT, async {
        loop {
            let m = ws.next().await.unwrap().unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["event"] == event {
                    return v;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {event}"))
}

/// No frame but pings on `ws` for `wait`.
async fn assert_no_event(ws: &mut Ws, wait: Duration) {
    let r = tokio::time::timeout(wait, async {
        loop {
            let m = ws.next().await.unwrap().unwrap();
            if let Message::Text(t) = m
                && !t.as_str().contains("pusher:ping")
            {
                return t.to_string();
            }
        }
    })
    .await;
    assert!(r.is_err(), "unexpected frame {r:?}");
}

/// Someone with the app secret subscribes to the chat channel: they get
/// what the relay forwards, nothing more.
async fn eavesdropper(srv: &Server, channel: &str) -> Ws {
    let url = format!(
        "ws://{}/app/{KEY}?protocol=7&client=eve&version=0",
        srv.addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let est = next_event(&mut ws, "pusher:connection_established").await;
    let inner: Value = serde_json::from_str(est["data"].as_str().unwrap()).unwrap();
    let sid = SocketId::parse(inner["socket_id"].as_str().unwrap()).unwrap();
    let sig = auth::sign_channel(
        SECRET.as_bytes(),
        &sid,
        &ChannelName::parse(channel).unwrap(),
        None,
    );
    let sub = json!({"event":"pusher:subscribe","data":{"channel": channel, "auth": auth::auth_value(KEY, &sig)}});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    next_event(&mut ws, "pusher_internal:subscription_succeeded").await;
    ws
}

/// Rotates `user`'s identity key with the key store `hush chat` left, the
/// way another device of theirs (or an app) would, through hush-client.
async fn rotate_identity(srv: &Server, key_file: &Path, user: &str) {
    use hush_client::e2ee::{E2ee, KeyStore, StoreKey};
    let mut storekey = key_file.as_os_str().to_owned();
    storekey.push(".storekey");
    let key = StoreKey::from_base64(std::fs::read_to_string(storekey).unwrap().trim()).unwrap();
    let sdk = hush_sdk::Client::new(hush_sdk::Config::new("3", KEY, SECRET)).unwrap();
    let name = user.to_owned();
    let authorizer = hush_client::FnAuthorizer::new(|_, _| async { Err("no channels".to_owned()) })
        .with_user(move |sid| {
            let r = sdk
                .authenticate_user(sid.as_str(), &hush_sdk::UserData::new(name.clone()))
                .map(|a| a.to_json())
                .map_err(|e| e.to_string());
            async move { r }
        });
    let client = hush_client::Client::builder(KEY)
        .url(&format!("ws://{}", srv.addr))
        .authorizer(authorizer)
        .build()
        .unwrap();
    let e2ee = E2ee::open_store(client.clone(), KeyStore::new(key_file, key)).unwrap();
    e2ee.set_trust_on_first_use(true).await;
    tokio::time::timeout(WAIT, e2ee.rotate_identity())
        .await
        .unwrap()
        .unwrap();
    client.disconnect().await;
}

#[tokio::test]
async fn two_chats_exchange_encrypted_lines_the_server_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = serve(dir.path()).await;
    let channel = "private-chat-alice-bob";
    const SECRET_LINE: &str = "the launch code is tangerine-4471";
    const REPLY: &str = "received: marmalade-9052";

    let mut alice = Chat::start(&srv, dir.path(), "alice", "bob").await;
    let (ready, _) = alice.expect("ready").await;
    assert_eq!(ready["channel"], channel);
    // Bob has no keys yet.
    alice.expect("waiting").await;
    let mut eve = eavesdropper(&srv, channel).await;

    let mut bob = Chat::start(&srv, dir.path(), "bob", "alice").await;
    bob.expect("ready").await;
    let (bob_number, _) = bob.expect("safety_number").await;
    assert_eq!(bob_number["reason"], "start");
    assert_eq!(bob_number["verified"], false);
    let digits = bob_number["safety_number"].as_str().unwrap().to_owned();
    assert_eq!(digits.len(), 60);
    assert_eq!(
        bob_number["grouped"].as_str().unwrap().split(' ').count(),
        12
    );

    // Alice sees the same safety number once Bob has published his keys.
    let (alice_number, _) = alice.expect("safety_number").await;
    assert_eq!(alice_number["safety_number"], digits);

    bob.say(SECRET_LINE).await;
    let (sent, _) = bob.expect("sent").await;
    assert_eq!(sent["devices"], 1, "{sent}");
    assert_eq!(sent["online"], 1, "{sent}");
    let (m, _) = alice.expect("message").await;
    assert_eq!(m["from"], "bob");
    assert_eq!(m["text"], SECRET_LINE);
    assert_eq!(m["verified"], false);
    assert_eq!(m["own_device"], false);
    // One honest directory: the gossiped tree heads agree.
    assert_eq!(m["fork"], false);

    assert_eq!(m["offline"], false);
    assert!(m["mailbox_id"].is_u64(), "{m}");

    // Alice compares the numbers and marks Bob verified; his next line
    // shows it.
    alice.say("/verify").await;
    let (v, _) = alice.expect("verified").await;
    assert_eq!(v["verified"], true);
    alice.say("/safety").await;
    let (again, _) = alice.expect("safety_number").await;
    assert_eq!(again["verified"], true);
    assert_eq!(again["safety_number"], digits);
    alice.say(REPLY).await;
    alice.expect("sent").await;
    let (m, _) = bob.expect("message").await;
    assert_eq!(
        (m["from"].as_str(), m["text"].as_str()),
        (Some("alice"), Some(REPLY))
    );
    bob.say("one more").await;
    let (m, _) = alice.expect("message").await;
    assert_eq!(m["text"], "one more");
    assert_eq!(m["verified"], true);
    // Lines go through the mailbox: nothing was relayed on the channel.
    assert_no_event(&mut eve, Duration::from_millis(500)).await;

    bob.quit().await;

    // A second run reuses the key file (no new identity: same number).
    let mut bob = Chat::start(&srv, dir.path(), "bob", "alice").await;
    let (n, _) = bob.expect("safety_number").await;
    assert_eq!(n["safety_number"], digits);
    bob.quit().await;

    // Bob's identity key is replaced (a rotation, as a stolen directory
    // would fake): Alice, who verified him, is warned with the new number
    // and her next line is not sent to the new key.
    rotate_identity(&srv, &dir.path().join("bob.keys"), "bob").await;
    alice.say("still you?").await;
    let mut records = Vec::new();
    while !records.iter().any(|r: &Value| r["type"] == "safety_number") {
        records.push(alice.expect("*").await.0);
    }
    let find = |t: &str| {
        records
            .iter()
            .find(|r| r["type"] == t)
            .unwrap_or_else(|| panic!("no {t} in {records:?}"))
            .clone()
    };
    assert!(
        find("error")["message"]
            .as_str()
            .unwrap()
            .starts_with("not sent"),
        "{records:?}"
    );
    let change = find("key_changed");
    assert_eq!(
        (
            change["user"].as_str(),
            change["identity_changed"].as_bool()
        ),
        (Some("bob"), Some(true))
    );
    let changed = find("safety_number");
    assert_eq!(changed["reason"], "changed");
    assert_eq!(changed["verified"], false);
    let new_digits = changed["safety_number"].as_str().unwrap().to_owned();
    assert_ne!(new_digits, digits);
    // Bob's next run shows the same new number.
    let mut bob = Chat::start(&srv, dir.path(), "bob", "alice").await;
    let (n, _) = bob.expect("safety_number").await;
    assert_eq!(n["safety_number"], new_digits);
    bob.quit().await;
    alice.quit().await;

    // Someone else's key file is refused.
    let o = command(&[
        "chat",
        "--user",
        "carol",
        "--peer",
        "alice",
        "--key-file",
        dir.path().join("bob.keys").to_str().unwrap(),
    ])
    .env("HUSH_URL", format!("http://{}", srv.addr))
    .env("HUSH_APP_KEY", KEY)
    .env("HUSH_APP_SECRET", SECRET)
    .stdin(Stdio::null())
    .output()
    .await
    .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("belongs to user \"bob\""), "{err}");

    // The server saw only ciphertext: not in its trace-level log, not in
    // its store.
    srv.child.start_kill().unwrap();
    let _ = tokio::time::timeout(WAIT, srv.child.wait()).await;
    let log = srv.log.lock().unwrap().clone();
    assert!(log.contains("connected"), "the server log is empty: {log}");
    // At trace level the WebSocket frames are logged (in hex): the envelopes
    // are there, their plaintext is not.
    assert!(
        log.contains(&hex::encode("mailbox.send")),
        "frames are not in the server log"
    );
    for secret in ["tangerine", "marmalade", "one more"] {
        assert!(!log.contains(secret), "{secret} in the server log");
        assert!(
            !log.contains(&hex::encode(secret)),
            "{secret} (hex) in the server log"
        );
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap().path();
            if f.to_str().unwrap().contains("hush.sqlite3") {
                let bytes = std::fs::read(&f).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "{secret} in {}",
                    f.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn a_peer_who_is_offline_gets_the_lines_when_they_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut srv = serve(dir.path()).await;
    // Both have run hush chat once (their keys are published); bob quits.
    let mut bob = Chat::start(&srv, dir.path(), "bob", "alice").await;
    bob.expect("ready").await;
    let mut alice = Chat::start(&srv, dir.path(), "alice", "bob").await;
    alice.expect("ready").await;
    alice.expect("safety_number").await;
    bob.quit().await;

    // Alice writes while bob is away: queued for his device.
    for line in ["are you there?", "call me when you are back"] {
        alice.say(line).await;
        let (sent, _) = alice.expect("sent").await;
        assert_eq!(sent["devices"], 1, "{sent}");
        assert_eq!(sent["online"], 0, "{sent}");
    }

    // Bob starts later: both lines, in order, marked as arrived while away;
    // then a live one.
    let mut bob = Chat::start(&srv, dir.path(), "bob", "alice").await;
    bob.expect("ready").await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let (m, _) = bob.expect("message").await;
        assert_eq!(m["from"], "alice");
        assert_eq!(m["offline"], true, "{m}");
        got.push(m["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, ["are you there?", "call me when you are back"]);
    alice.say("welcome back").await;
    let (m, _) = bob.expect("message").await;
    assert_eq!(m["text"], "welcome back");
    assert_eq!(m["offline"], false);
    bob.quit().await;

    // A third run shows nothing again (acknowledged, deleted).
    let mut bob = Chat::start(&srv, dir.path(), "bob", "alice").await;
    bob.expect("safety_number").await;
    alice.say("only this one").await;
    let (m, skipped) = bob.expect("message").await;
    assert_eq!(m["text"], "only this one", "{skipped:?}");
    assert!(
        !skipped.iter().any(|r| r["type"] == "message"),
        "{skipped:?}"
    );
    bob.quit().await;
    alice.quit().await;
    srv.child.start_kill().unwrap();
    let _ = tokio::time::timeout(WAIT, srv.child.wait()).await;
}
