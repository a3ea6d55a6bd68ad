//! Beyond-Pusher E2EE (docs/E2EE-CHANNELS.md) in hush-client against a real
//! server: key epochs, sealed server and client events, replay/tamper/epoch
//! rejection.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use hush_client::{Client, DecryptError, Error, event};
use hush_crypto::MasterKey;
use hush_crypto::epoch::epoch_key;
use hush_crypto::sealed::{SERVER_EVENT, Sender, sealed_key};
use hush_protocol::ChannelName;
use hush_sdk::TriggerOptions;
use serde_json::json;

fn opts() -> TriggerOptions {
    TriggerOptions::default()
}

fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A sealed `hush-sealed` wire string for `channel` at `epoch`.
fn sealed_wire(
    sender: &mut Sender,
    channel: &str,
    epoch: u64,
    ev: &str,
    data: &str,
    ts: u64,
) -> String {
    let name = ChannelName::parse(channel).unwrap();
    let key = epoch_key(&name, &MasterKey::from_base64(MASTER).unwrap(), epoch);
    sender.seal(&key, &name, epoch, ev, data, ts).unwrap()
}

fn epoch_client(
    srv: &Srv,
    epoch: &Arc<AtomicU64>,
    calls: &Arc<AtomicUsize>,
    grace: Duration,
) -> Client {
    Client::builder(KEY)
        .url(&srv.ws_url())
        .authorizer(epoch_authorizer(srv.addr, epoch.clone(), calls.clone()))
        .epoch_grace(grace)
        .build()
        .unwrap()
}

#[tokio::test]
async fn sealed_server_events_arrive_under_their_real_name_with_metadata() {
    let srv = start().await;
    let c = client(&srv, "1");
    let mut ch = subscribed(&c, "private-encrypted-sealed").await;
    let sdk = srv.sdk();
    sdk.trigger_sealed(
        "private-encrypted-sealed",
        "order-paid",
        r#"{"id":7}"#,
        &opts(),
    )
    .await
    .unwrap();
    sdk.trigger_sealed(
        "private-encrypted-sealed",
        "order-shipped",
        "plain text",
        &opts(),
    )
    .await
    .unwrap();
    let e = chan_next(&mut ch, "order-paid").await;
    assert_eq!(e.data, json!({"id": 7}));
    let meta = e.sealed.unwrap();
    assert_eq!(meta.sender, sdk.sealed_sender_id());
    assert_eq!(meta.epoch, 0);
    let e2 = chan_next(&mut ch, "order-shipped").await;
    assert_eq!(e2.data, json!("plain text"));
    assert_eq!(e2.sealed.unwrap().seq, meta.seq + 1);
    srv.stop().await;
}

#[tokio::test]
async fn replayed_tampered_and_expired_sealed_events_are_rejected() {
    let srv = start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = client_with(&srv, authorizer(srv.sdk(), "1", calls.clone()));
    let name = "private-encrypted-guarded";
    let mut ch = subscribed(&c, name).await;
    let mut sender = Sender::new();

    // The same frame published twice: the second is a replay.
    let wire = sealed_wire(
        &mut sender,
        name,
        0,
        "transfer",
        r#"{"amount":100}"#,
        now_ms(),
    );
    publish_raw(&srv, name, SERVER_EVENT, &wire).await;
    publish_raw(&srv, name, SERVER_EVENT, &wire).await;
    let e = chan_next(&mut ch, "transfer").await;
    assert_eq!(e.data, json!({"amount": 100}));
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::Replayed));
    assert_eq!(e.data["event"], SERVER_EVENT);

    // Tampered: one byte of the box changed.
    let wire = sealed_wire(
        &mut sender,
        name,
        0,
        "transfer",
        r#"{"amount":1}"#,
        now_ms(),
    );
    let mut env: serde_json::Value = serde_json::from_str(&wire).unwrap();
    let mut chars: Vec<char> = env["ciphertext"].as_str().unwrap().chars().collect();
    chars[30] = if chars[30] == 'A' { 'B' } else { 'A' };
    env["ciphertext"] = json!(chars.into_iter().collect::<String>());
    publish_raw(&srv, name, SERVER_EVENT, &env.to_string()).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::Decrypt));

    // Relabelled epoch in the clear envelope: the key of epoch 0 is used by
    // nobody else, so it is a newer, unknown epoch.
    let wire = sealed_wire(&mut sender, name, 0, "transfer", "{}", now_ms());
    let mut env: serde_json::Value = serde_json::from_str(&wire).unwrap();
    env["epoch"] = json!(3);
    publish_raw(&srv, name, SERVER_EVENT, &env.to_string()).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert!(
        matches!(e.failure, Some(DecryptError::UnknownEpoch { epoch: 3, .. })),
        "{e:?}"
    );

    // Inner epoch relabelled: a genuine epoch-5 sealed event re-boxed under
    // the epoch-0 key (as someone holding both keys could): wrong epoch.
    let master = MasterKey::from_base64(MASTER).unwrap();
    let chan = ChannelName::parse(name).unwrap();
    let wire5 = sealed_wire(&mut sender, name, 5, "transfer", "{}", now_ms());
    let inner = hush_crypto::EncryptedData::from_json(&wire5)
        .unwrap()
        .open(&sealed_key(&epoch_key(&chan, &master, 5)))
        .unwrap();
    let reboxed =
        hush_crypto::EncryptedData::seal(&sealed_key(&epoch_key(&chan, &master, 0)), &inner)
            .to_json();
    publish_raw(&srv, name, SERVER_EVENT, &reboxed).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::WrongEpoch));

    // A sealed event renamed by the relay into an ordinary event: it does
    // not open as one (sealed events have their own key), so it cannot skip
    // the replay and freshness checks.
    let wire = sealed_wire(&mut sender, name, 0, "transfer", "{}", now_ms());
    publish_raw(&srv, name, "transfer", &wire).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::Decrypt));

    // Ten minutes old: expired.
    let wire = sealed_wire(&mut sender, name, 0, "transfer", "{}", now_ms() - 600_000);
    publish_raw(&srv, name, SERVER_EVENT, &wire).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::Expired));

    // Sealed (with this channel's key) for another channel, relayed here:
    // wrong channel, so events cannot be moved between channels.
    let key = epoch_key(
        &ChannelName::parse(name).unwrap(),
        &MasterKey::from_base64(MASTER).unwrap(),
        0,
    );
    let other = ChannelName::parse("private-encrypted-other").unwrap();
    let wire = sender.seal(&key, &other, 0, "x", "{}", now_ms()).unwrap();
    publish_raw(&srv, name, SERVER_EVENT, &wire).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::WrongChannel));

    // Still connected and still receiving.
    let wire = sealed_wire(&mut sender, name, 0, "ok", "1", now_ms());
    publish_raw(&srv, name, SERVER_EVENT, &wire).await;
    assert_eq!(chan_next(&mut ch, "ok").await.data, json!(1));
    srv.stop().await;
}

#[tokio::test]
async fn key_epochs_rotate_with_grace_then_old_epochs_are_rejected() {
    let srv = start().await;
    let name = "private-encrypted-rotating";
    let epoch = Arc::new(AtomicU64::new(1));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = epoch_client(&srv, &epoch, &calls, Duration::from_secs(3));
    let mut ch = subscribed(&c, name).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Epoch 1, plain suite-0 event with an epoch label.
    sdk_at_epoch(srv.addr, 1)
        .trigger(&[name], "e1", &json!(1), &opts())
        .await
        .unwrap();
    assert_eq!(chan_next(&mut ch, "e1").await.data, json!(1));

    // The backend moves to epoch 2: the first epoch-2 event makes the client
    // re-authorize once and it opens.
    epoch.store(2, Ordering::SeqCst);
    let sdk2 = sdk_at_epoch(srv.addr, 2);
    sdk2.trigger_sealed(name, "e2", "2", &opts()).await.unwrap();
    let e = chan_next(&mut ch, "e2").await;
    assert_eq!(e.sealed.unwrap().epoch, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // An epoch-1 event still in flight opens within the grace period.
    sdk_at_epoch(srv.addr, 1)
        .trigger(&[name], "late", &json!("l"), &opts())
        .await
        .unwrap();
    assert_eq!(chan_next(&mut ch, "late").await.data, json!("l"));

    // After the grace period the epoch-1 key is erased: stale epoch.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    sdk_at_epoch(srv.addr, 1)
        .trigger(&[name], "too-late", &json!(0), &opts())
        .await
        .unwrap();
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(
        e.failure,
        Some(DecryptError::StaleEpoch {
            epoch: 1,
            newest: 2
        })
    );
    assert_eq!(e.data["event"], "too-late");

    // A claimed epoch that skips ahead, within the re-fetch interval (5 s)
    // of the last re-authorization: none (a member counting epochs upwards
    // cannot make every subscriber call the authorizer), unknown epoch.
    sdk_at_epoch(srv.addr, 9)
        .trigger(&[name], "future", &json!(0), &opts())
        .await
        .unwrap();
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(
        e.failure,
        Some(DecryptError::UnknownEpoch {
            epoch: 9,
            newest: 2
        })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The next epoch is a rotation: one re-authorization at once. This
    // authorizer still hands out epoch 2, so it stays unknown.
    sdk_at_epoch(srv.addr, 3)
        .trigger(&[name], "next", &json!(0), &opts())
        .await
        .unwrap();
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(
        e.failure,
        Some(DecryptError::UnknownEpoch {
            epoch: 3,
            newest: 2
        })
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // The current epoch keeps working.
    sdk2.trigger(&[name], "now", &json!("n"), &opts())
        .await
        .unwrap();
    assert_eq!(chan_next(&mut ch, "now").await.data, json!("n"));
    srv.stop().await;
}

#[tokio::test]
async fn sealed_client_events_pass_through_the_server() {
    let srv = start_on(0, "encrypted_client_events = true").await;
    let name = "private-encrypted-chat";
    let a = client(&srv, "alice");
    let b = client(&srv, "bob");
    let mut ca = subscribed(&a, name).await;
    let mut cb = subscribed(&b, name).await;
    ca.trigger_sealed("client-message", &json!({"text": "hi bob"}))
        .await
        .unwrap();
    ca.trigger_sealed("client-message", &json!({"text": "again"}))
        .await
        .unwrap();
    let e = chan_next(&mut cb, "client-message").await;
    assert_eq!(e.data, json!({"text": "hi bob"}));
    let meta = e.sealed.unwrap();
    assert_eq!(meta.sender, a.sealed_sender_id());
    assert_eq!(meta.seq, 1);
    let e = chan_next(&mut cb, "client-message").await;
    assert_eq!(e.sealed.unwrap().seq, 2);
    // Not echoed to the sender.
    assert_no(ca.events(), "client-message", Duration::from_millis(800)).await;
    // The reply direction works too.
    cb.trigger_sealed("client-reply", &"ok").await.unwrap();
    assert_eq!(chan_next(&mut ca, "client-reply").await.data, json!("ok"));

    // Plain client events stay refused on encrypted channels, and sealed
    // ones need an encrypted channel.
    assert!(matches!(
        ca.trigger("client-plain", &1).await,
        Err(Error::ClientEventsNotAllowed(_))
    ));
    let p = subscribed(&a, "private-plain").await;
    assert!(matches!(
        p.trigger_sealed("client-x", &1).await,
        Err(Error::ClientEventsNotAllowed(_))
    ));
    srv.stop().await;
}

#[tokio::test]
async fn sealed_client_events_are_refused_when_the_app_does_not_allow_them() {
    let srv = start().await;
    let name = "private-encrypted-closed";
    let a = client(&srv, "alice");
    let b = client(&srv, "bob");
    let ca = subscribed(&a, name).await;
    let mut cb = subscribed(&b, name).await;
    let mut errors = a.bind(event::ERROR);
    ca.trigger_sealed("client-message", &json!(1))
        .await
        .unwrap();
    next_named(&mut errors, event::ERROR).await;
    assert_no(cb.events(), "client-message", Duration::from_millis(800)).await;
    srv.stop().await;
}
