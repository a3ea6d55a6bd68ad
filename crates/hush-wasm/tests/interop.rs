//! Interoperability: hush-client's Rust E2EE (alice) and the wasm device
//! core (bob, driven natively over a hush-client connection exactly as the
//! TS layer drives it over pusher-js: `hush:request`s out, `result`s back
//! into `Device::step`) exchange suite 1 messages in both directions through
//! a real hush server on 127.0.0.1, then compare safety numbers.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use hush_client::e2ee::{CLIENT_EVENT, E2ee, KeyStore, StoreKey};
use hush_client::{Channel, Client, Event, EventStream, FnAuthorizer, event};
use hush_sdk::{MasterKey, UserData};
use hush_testkit::{ID, KEY, MASTER_KEY, SECRET, TestServer};
use hush_wasm::core::{Device, Op, Step};
use serde_json::Value;

const ROOM: &str = "private-room";
const WAIT: Duration = Duration::from_secs(20);

fn sdk(srv: &TestServer) -> hush_sdk::Client {
    let mut c = hush_sdk::Config::new(ID, KEY, SECRET)
        .with_master_key(MasterKey::from_base64(MASTER_KEY).unwrap());
    c.set_base_url(&format!("http://{}", srv.addr)).unwrap();
    hush_sdk::Client::new(c).unwrap()
}

fn client(srv: &TestServer, user: &str) -> Client {
    let sdk = Arc::new(sdk(srv));
    let (s1, s2) = (sdk.clone(), sdk);
    let user = user.to_owned();
    let authz = FnAuthorizer::new(move |sid, channel| {
        let r = s1
            .authorize_channel(sid.as_str(), channel.as_str(), None)
            .map(|a| a.to_json());
        async move { r }
    })
    .with_user(move |sid| {
        let r = s2
            .authenticate_user(sid.as_str(), &UserData::new(user.clone()))
            .map(|a| a.to_json());
        async move { r }
    });
    Client::builder(KEY)
        .url(&srv.ws_url())
        .authorizer(authz)
        .build()
        .unwrap()
}

async fn subscribed(client: &Client, name: &str) -> Channel {
    let mut c = client.subscribe(name).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            let e = c.recv().await.expect("stream ended");
            if e.event == event::SUBSCRIPTION_SUCCEEDED {
                return;
            }
            assert_ne!(e.event, event::SUBSCRIPTION_ERROR, "{e:?}");
        }
    })
    .await
    .expect("subscription timed out");
    c
}

async fn next(s: &mut EventStream) -> Event {
    tokio::time::timeout(WAIT, s.recv())
        .await
        .expect("timed out")
        .expect("stream ended")
}

/// Drives `op` over `client`'s connection (signed in as the device's user).
async fn run(client: &Client, d: &mut Device, mut op: Op) -> Value {
    client.signin().await.unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let mut s = d.step(&mut op, None, now()).unwrap();
    loop {
        match s {
            Step::Done(v) => return v,
            Step::Request(req) => {
                let resp = client.call(&req).await.unwrap();
                let result = resp.to_json();
                s = d.step(&mut op, Some(result.get()), now()).unwrap();
            }
        }
    }
}

#[tokio::test]
async fn a_rust_client_and_the_wasm_core_exchange_messages_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hush.sqlite3", dir.path().display());
    let toml = hush_testkit::app_toml(&format!("client_events = true\n[store]\nurl = '{url}'\n"));
    let srv = TestServer::start_on(0, &toml).await;

    // Alice: the Rust client.
    let alice_client = client(&srv, "alice");
    let mut alice_events = alice_client.bind(CLIENT_EVENT);
    let alice_room = subscribed(&alice_client, ROOM).await;
    let store = KeyStore::new(dir.path().join("alice.hks"), StoreKey::from_bytes([7; 32]));
    let alice = E2ee::create(alice_client.clone(), store, "alice", true).unwrap();
    alice.set_trust_on_first_use(true).await;
    alice.publish().await.unwrap();

    // Bob: the device core, on its own connection; the directory keys pinned
    // from what alice trusted on first use (as an app configures them).
    let bob_client = client(&srv, "bob");
    let mut bob_events = bob_client.bind(CLIENT_EVENT);
    let bob_room = subscribed(&bob_client, ROOM).await;
    let (log_key, vrf_key) = alice
        .with_data(|d| (d.log_key().unwrap(), d.vrf_key().unwrap()))
        .await;
    let mut bob = Device::create("bob", true).unwrap();
    use base64::Engine;
    let b64 = |k: [u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
    bob.pin_directory_key(&b64(log_key)).unwrap();
    bob.pin_vrf_key(&b64(vrf_key)).unwrap();
    let op = bob.publish_op();
    run(&bob_client, &mut bob, op).await;

    // Rust → wasm core.
    alice
        .send(
            &alice_room,
            "message",
            &serde_json::json!({"text": "hi bob"}),
            &["bob"],
        )
        .await
        .unwrap();
    let ev = next(&mut bob_events).await;
    let Value::String(data) = &ev.data else {
        panic!("{ev:?}")
    };
    let op = bob.open_op(ROOM, CLIENT_EVENT, data).unwrap();
    let m = run(&bob_client, &mut bob, op).await;
    assert_eq!(m["data"]["text"], "hi bob");
    assert_eq!(m["senderUser"], "alice");
    assert_eq!(m["gossip"], "consistent");

    // wasm core → Rust.
    let op = bob
        .seal_op(
            ROOM,
            CLIENT_EVENT,
            "reply",
            r#"{"text":"hi alice"}"#,
            &["alice".into()],
        )
        .unwrap();
    let v = run(&bob_client, &mut bob, op).await;
    bob_room
        .trigger(CLIENT_EVENT, v["data"].as_str().unwrap())
        .await
        .unwrap();
    let ev = next(&mut alice_events).await;
    let got = alice.open(&ev).await.unwrap();
    assert_eq!(got.event, "reply");
    assert_eq!(got.data["text"], "hi alice");
    assert_eq!(got.sender_user, "bob");
    assert_eq!(hex::encode(got.sender_device.0), bob.device_id());

    // Both sides compute the same safety number.
    let theirs = alice.safety_number("bob").await.unwrap();
    let op = bob.safety_number_op("alice").unwrap();
    let ours = run(&bob_client, &mut bob, op).await;
    assert_eq!(ours["digits"], theirs.display());
    let qr = base64::engine::general_purpose::STANDARD
        .decode(ours["qr"].as_str().unwrap())
        .unwrap();
    assert!(theirs.compare_scanned(&qr).unwrap());
}
