//! The plaintext canary (issues 4, 5 and 18): a unique secret string travels
//! through every end-to-end encrypted path of a real `hush serve` (trace
//! logs, SQLite store; the mailbox both pushed and queued for an offline
//! device), and must appear nowhere the server can see: its
//! stdout/stderr, its database files, and its memory (dumped with `gcore`
//! when available). Positive controls prove each search can find what the
//! server does see.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hush_client::e2ee::{self, E2ee, KeyStore, StoreKey};
use hush_client::{Channel, Client, EventStream, FnAuthorizer, event};
use hush_sdk::{MasterKey, PresenceData, TriggerOptions, UserData};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const ID: &str = "3";
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const MASTER: &str = "dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=";
const WAIT: Duration = Duration::from_secs(30);

fn random_hex() -> String {
    use rand::RngCore;
    let mut b = [0u8; 12];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sdk(addr: &str) -> hush_sdk::Client {
    let mut c = hush_sdk::Config::new(ID, KEY, SECRET)
        .with_master_key(MasterKey::from_base64(MASTER).unwrap());
    c.set_base_url(&format!("http://{addr}")).unwrap();
    hush_sdk::Client::new(c).unwrap()
}

fn client(addr: &str, user: &str) -> Client {
    let sdk_c = sdk(addr);
    let sdk_u = sdk_c.clone();
    let (uc, uu) = (user.to_owned(), user.to_owned());
    let authz = FnAuthorizer::new(move |sid, channel| {
        let presence = channel
            .as_str()
            .starts_with("presence-")
            .then(|| PresenceData::new(uc.clone()));
        let r = sdk_c
            .authorize_channel(sid.as_str(), channel.as_str(), presence.as_ref())
            .map(|a| a.to_json());
        async move { r }
    })
    .with_user(move |sid| {
        let r = sdk_u
            .authenticate_user(sid.as_str(), &UserData::new(uu.clone()))
            .map(|a| a.to_json());
        async move { r }
    });
    Client::builder(KEY)
        .url(&format!("ws://{addr}"))
        .authorizer(authz)
        .build()
        .unwrap()
}

async fn next_named(s: &mut EventStream, name: &str) -> hush_client::Event {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = s.recv().await.expect("stream ended");
            if e.event == name {
                return e;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {name}"))
}

async fn subscribed(c: &Client, name: &str) -> Channel {
    let mut ch = c.subscribe(name).await.unwrap();
    let e = tokio::time::timeout(WAIT, async {
        loop {
            let e = ch.recv().await.unwrap();
            if e.event == event::SUBSCRIPTION_SUCCEEDED || e.event == event::SUBSCRIPTION_ERROR {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(e.event, event::SUBSCRIPTION_SUCCEEDED, "{e:?}");
    ch
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Every file of the SQLite store (database, -wal, -shm, journal).
fn store_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("hush.sqlite3"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Dumps the live process with gcore; `None` (with the reason) when that is
/// not possible here.
fn core_dump(pid: u32, dir: &Path) -> Result<Vec<u8>, String> {
    let prefix = dir.join("core");
    let out = std::process::Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("gcore not runnable: {e}"))?;
    let file = dir.join(format!("core.{pid}"));
    if !out.status.success() || !file.exists() {
        return Err(format!(
            "gcore failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let bytes = std::fs::read(&file).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&file);
    Ok(bytes)
}

#[tokio::test]
async fn the_plaintext_canary_never_reaches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let canary = format!("CANARY{}", random_hex());
    let control = format!("CONTROL{}", random_hex());
    let config = dir.path().join("hush.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhost = '127.0.0.1'\nport = 0\ndata_dir = '{d}'\n\
             [store]\nurl = 'sqlite://{d}/hush.sqlite3'\n\
             [apps.main]\nid = '{ID}'\nkey = '{KEY}'\nsecret = '{SECRET}'\n\
             client_events = true\nencrypted_client_events = true\n",
            d = dir.path().display()
        ),
    )
    .unwrap();

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(dir.path())
        .env("HUSH_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let stdout_buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let stderr_buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    // stdout: find the address, keep everything.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            let mut l = String::new();
            assert!(out.read_line(&mut l).await.unwrap() > 0, "stdout ended");
            stdout_buf.lock().unwrap().extend_from_slice(l.as_bytes());
            if let Some(a) = l.trim().strip_prefix("hush listening on ") {
                return a
                    .trim_start_matches("ws://")
                    .trim_start_matches("http://")
                    .to_owned();
            }
        }
    })
    .await
    .expect("listening line");
    let so = stdout_buf.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = out.read(&mut buf).await {
            if n == 0 {
                break;
            }
            so.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut err = child.stderr.take().unwrap();
    let se = stderr_buf.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = err.read(&mut buf).await {
            if n == 0 {
                break;
            }
            se.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });

    let sdk = sdk(&addr);
    let opts = TriggerOptions::default();
    let alice = client(&addr, "alice");
    let bob = client(&addr, "bob");

    // 1. Suite 0: a backend trigger on an encrypted channel.
    let mut b_enc = subscribed(&bob, "private-encrypted-canary").await;
    let a_enc = subscribed(&alice, "private-encrypted-canary").await;
    sdk.trigger(
        &["private-encrypted-canary"],
        "suite0",
        &json!({"secret": format!("{canary}-suite0")}),
        &opts,
    )
    .await
    .unwrap();
    let e = next_named(b_enc.events(), "suite0").await;
    assert_eq!(e.data["secret"], format!("{canary}-suite0"));

    // 2. A sealed backend trigger.
    sdk.trigger_sealed(
        "private-encrypted-canary",
        "sealed",
        &json!({"secret": format!("{canary}-sealed")}).to_string(),
        &opts,
    )
    .await
    .unwrap();
    let e = next_named(b_enc.events(), "sealed").await;
    assert_eq!(e.data["secret"], format!("{canary}-sealed"));

    // 3. A sealed client event.
    a_enc
        .trigger_sealed(
            "client-sealed",
            &json!({"secret": format!("{canary}-client")}),
        )
        .await
        .unwrap();
    let e = next_named(b_enc.events(), "client-sealed").await;
    assert_eq!(e.data["secret"], format!("{canary}-client"));

    // 4. Suite 1 between two hush-clients, after 5. publishing both cards
    //    through the directory (the private keys never leave the devices).
    let a_e2ee = E2ee::create(
        alice.clone(),
        KeyStore::new(dir.path().join("alice.hks"), StoreKey::generate()),
        "alice",
        true,
    )
    .unwrap();
    a_e2ee.set_trust_on_first_use(true).await;
    let b_e2ee = E2ee::create(
        bob.clone(),
        KeyStore::new(dir.path().join("bob.hks"), StoreKey::generate()),
        "bob",
        true,
    )
    .unwrap();
    b_e2ee.set_trust_on_first_use(true).await;
    a_e2ee.publish().await.unwrap();
    b_e2ee.publish().await.unwrap();
    let mut b_events = bob.bind(e2ee::CLIENT_EVENT);
    let _b_room = subscribed(&bob, "private-room").await;
    let a_room = subscribed(&alice, "private-room").await;
    a_e2ee
        .send(
            &a_room,
            "message",
            &json!({"secret": format!("{canary}-suite1")}),
            &["bob"],
        )
        .await
        .unwrap();
    let e = next_named(&mut b_events, e2ee::CLIENT_EVENT).await;
    let m = b_e2ee.open(&e).await.unwrap();
    assert_eq!(m.data["secret"], format!("{canary}-suite1"));
    // 6. The mailbox: pushed to Bob's connected device, and queued for
    //    Dave's device while Dave is offline (the envelope stays in the
    //    store, as ciphertext, through the scans below).
    let mut b_mail = b_e2ee.start_mailbox();
    a_e2ee
        .send_to_users(
            "message",
            &json!({"secret": format!("{canary}-mailbox")}),
            &["bob"],
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(e2ee::MailboxEvent::Message(m)) = b_mail.recv().await {
                return m;
            }
        }
    })
    .await
    .expect("bob's mailbox message");
    assert_eq!(got.message.data["secret"], format!("{canary}-mailbox"));
    let dave = client(&addr, "dave");
    let d_e2ee = E2ee::create(
        dave.clone(),
        KeyStore::new(dir.path().join("dave.hks"), StoreKey::generate()),
        "dave",
        true,
    )
    .unwrap();
    d_e2ee.set_trust_on_first_use(true).await;
    d_e2ee.publish().await.unwrap();
    dave.disconnect().await;
    let queued = a_e2ee
        .send_to_users(
            "message",
            &json!({"secret": format!("{canary}-queued")}),
            &["dave"],
        )
        .await
        .unwrap();
    assert_eq!(queued.online, 0, "dave is offline: the message waits");
    // Positive control for the store: the queued envelope's message id
    // (in its cleartext header) is on disk.
    let queued_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&queued.message_id[2 * i..2 * i + 2], 16).unwrap())
        .collect();

    // Alice's identity seed, in every form it could leak in (taken out
    // through a backup: the API never hands out the raw key).
    let blob = a_e2ee
        .backup_identity(
            b"canary password",
            hush_crypto::backup::BackupParams {
                m_cost_kib: 1024,
                t_cost: 1,
                p_cost: 1,
            },
        )
        .await
        .unwrap();
    let seed = hush_crypto::backup::open_identity(&blob, b"canary password")
        .unwrap()
        .to_secret_bytes();
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, seed.as_slice());
    let hex: String = seed.iter().map(|x| format!("{x:02x}")).collect();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("the identity seed", seed.to_vec()),
        ("the identity seed (base64)", b64.into_bytes()),
        ("the identity seed (hex)", hex.into_bytes()),
    ];

    // Positive controls: a public cache channel keeps its last event in the
    // server's memory, user ids are stored in the directory, channel names
    // appear in trace logs.
    let control_channel = format!("cache-{control}");
    let mut watch = subscribed(&bob, &control_channel).await;
    sdk.trigger(
        &[control_channel.as_str()],
        "public",
        &json!({"m": control}),
        &opts,
    )
    .await
    .unwrap();
    let e = next_named(watch.events(), "public").await;
    assert_eq!(e.data["m"], control);
    let control_user = format!("u{control}");
    let carol = client(&addr, &control_user);
    let c_e2ee = E2ee::create(
        carol.clone(),
        KeyStore::new(dir.path().join("carol.hks"), StoreKey::generate()),
        &control_user,
        true,
    )
    .unwrap();
    c_e2ee.set_trust_on_first_use(true).await;
    c_e2ee.publish().await.unwrap();
    // Let the server settle (logs flushed, WAL written).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let canary_b = canary.as_bytes();
    let control_b = control.as_bytes();

    // Memory first, while every connection is still open.
    match core_dump(pid, dir.path()) {
        Ok(mem) => {
            assert!(
                contains(&mem, control_b),
                "positive control: the public marker must be in the server's memory"
            );
            assert!(
                !contains(&mem, canary_b),
                "the plaintext canary is in the server's memory"
            );
            for (what, bytes) in &secrets {
                assert!(!contains(&mem, bytes), "{what} is in the server's memory");
            }
            eprintln!("canary: memory dump of {} bytes searched", mem.len());
        }
        Err(why) => eprintln!("canary: SKIPPED the memory dump search: {why}"),
    }

    // Logs.
    alice.disconnect().await;
    bob.disconnect().await;
    carol.disconnect().await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(WAIT, child.wait()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = [
        stdout_buf.lock().unwrap().clone(),
        stderr_buf.lock().unwrap().clone(),
    ]
    .concat();
    assert!(logs.len() > 1000, "trace logs were captured");
    assert!(
        contains(&logs, control_b),
        "positive control: the public channel name must be in the trace logs"
    );
    assert!(
        !contains(&logs, canary_b),
        "the plaintext canary is in the server's logs"
    );
    for (what, bytes) in &secrets {
        assert!(!contains(&logs, bytes), "{what} is in the server's logs");
    }

    // The SQLite store.
    let files = store_files(dir.path());
    assert!(!files.is_empty(), "no SQLite files");
    let all: Vec<u8> = files.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(
        contains(&all, control_user.as_bytes()),
        "positive control: the directory must hold the user id {control_user}"
    );
    assert!(
        contains(&all, &queued_id),
        "positive control: the mailbox must hold the queued envelope"
    );
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, canary_b),
            "the plaintext canary is in {name}"
        );
        for (what, secret) in &secrets {
            assert!(!contains(bytes, secret), "{what} is in {name}");
        }
    }
}
