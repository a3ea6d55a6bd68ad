//! hush-client against a real hush server started in-process.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use hush_client::{Client, ConnectionState, DecryptError, Error, FnAuthorizer, event};
use hush_crypto::{MasterKey, seal, shared_secret};
use hush_protocol::ChannelName;
use hush_sdk::TriggerOptions;
use serde_json::json;

fn opts() -> TriggerOptions {
    TriggerOptions::default()
}

#[tokio::test]
async fn connects_subscribes_and_receives() {
    let srv = start().await;
    let c = client(&srv, "1");
    let sid = tokio::time::timeout(WAIT, c.connected())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.socket_id(), Some(sid));
    let mut ch = subscribed(&c, "news").await;
    assert!(ch.is_subscribed());
    let mut global = c.bind("breaking");
    srv.sdk()
        .trigger(&["news"], "breaking", &json!({"headline": "hi"}), &opts())
        .await
        .unwrap();
    let e = chan_next(&mut ch, "breaking").await;
    assert_eq!(e.channel.as_deref(), Some("news"));
    assert_eq!(e.data, json!({"headline": "hi"}));
    assert_eq!(next_named(&mut global, "breaking").await, e);
    // Unsubscribed: nothing more arrives.
    c.unsubscribe("news").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.sdk()
        .trigger(&["news"], "breaking", &json!(2), &opts())
        .await
        .unwrap();
    assert_no(&mut global, "breaking", Duration::from_secs(1)).await;
    c.disconnect().await;
    assert_eq!(c.state(), ConnectionState::Disconnected);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_app_key_fails_without_retrying() {
    let srv = start().await;
    let c = Client::builder("not-the-key")
        .url(&srv.ws_url())
        .build()
        .unwrap();
    let r = tokio::time::timeout(WAIT, c.connected()).await.unwrap();
    assert!(matches!(r, Err(Error::Failed(_))), "{r:?}");
    match c.state() {
        ConnectionState::Failed { code, .. } => assert_eq!(code, Some(4001)),
        s => panic!("{s:?}"),
    }
    srv.stop().await;
}

#[tokio::test]
async fn private_channel_and_refused_authorization() {
    let srv = start().await;
    let c = client(&srv, "1");
    let mut p = subscribed(&c, "private-orders").await;
    srv.sdk()
        .trigger(&["private-orders"], "new", &json!({"id": 1}), &opts())
        .await
        .unwrap();
    assert_eq!(chan_next(&mut p, "new").await.data, json!({"id": 1}));

    // An authorizer that refuses: a subscription_error event, the connection stays.
    let refusing = FnAuthorizer::new(|_, _| async { Err::<String, _>("forbidden") });
    let c2 = client_with(&srv, refusing);
    let mut ch = c2.subscribe("private-orders").await.unwrap();
    let e = chan_next(&mut ch, event::SUBSCRIPTION_ERROR).await;
    assert_eq!(e.data["type"], "AuthError");
    assert!(e.data["error"].as_str().unwrap().contains("forbidden"));
    assert!(matches!(c2.state(), ConnectionState::Connected { .. }));

    // An authorizer that signs for another app key is refused by the client.
    let wrong = FnAuthorizer::new(|_, _| async {
        Ok::<_, String>(format!(r#"{{"auth":"other:{}"}}"#, "0".repeat(64)))
    });
    let c3 = client_with(&srv, wrong);
    let mut ch = c3.subscribe("private-orders").await.unwrap();
    let e = chan_next(&mut ch, event::SUBSCRIPTION_ERROR).await;
    assert!(e.data["error"].as_str().unwrap().contains("auth"), "{e:?}");
    srv.stop().await;
}

#[tokio::test]
async fn presence_members_added_and_removed() {
    let srv = start().await;
    let a = client(&srv, "alice");
    let mut pa = subscribed(&a, "presence-room").await;
    let m = pa.members().unwrap();
    assert_eq!(m.count(), 1);
    assert_eq!(m.me.as_ref().unwrap().id, "alice");

    let b = client(&srv, "bob");
    let mut pb = b.subscribe("presence-room").await.unwrap();
    let ok = chan_next(&mut pb, event::SUBSCRIPTION_SUCCEEDED).await;
    assert_eq!(ok.data["count"], 2);
    assert_eq!(ok.data["me"]["id"], "bob");
    assert_eq!(ok.data["members"]["alice"], json!({"name": "alice"}));
    let added = chan_next(&mut pa, event::MEMBER_ADDED).await;
    assert_eq!(added.data, json!({"id": "bob", "info": {"name": "bob"}}));
    assert_eq!(pa.members().unwrap().count(), 2);
    assert_eq!(
        pb.members().unwrap().get("alice").unwrap().info,
        json!({"name": "alice"})
    );

    b.disconnect().await;
    let removed = chan_next(&mut pa, event::MEMBER_REMOVED).await;
    assert_eq!(removed.data["id"], "bob");
    assert_eq!(pa.members().unwrap().count(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn client_events_between_two_clients() {
    let srv = start().await;
    let a = client(&srv, "alice");
    let b = client(&srv, "bob");
    let mut pa = subscribed(&a, "presence-chat").await;
    let mut pb = subscribed(&b, "presence-chat").await;
    pa.trigger("client-typing", &json!({"on": true}))
        .await
        .unwrap();
    let e = chan_next(&mut pb, "client-typing").await;
    assert_eq!(e.data, json!({"on": true}));
    assert_eq!(e.user_id.as_deref(), Some("alice"));
    // Never echoed to the sender.
    assert_no(pa.events(), "client-typing", Duration::from_millis(800)).await;

    // Refused before sending.
    assert!(matches!(
        pa.trigger("typing", &1).await,
        Err(Error::EventName(_))
    ));
    let public = subscribed(&a, "public-room").await;
    assert!(matches!(
        public.trigger("client-x", &1).await,
        Err(Error::ClientEventsNotAllowed(_))
    ));
    let big = "x".repeat(11 * 1024);
    assert!(matches!(
        pa.trigger("client-big", &big).await,
        Err(Error::Data(_))
    ));
    srv.stop().await;
}

#[tokio::test]
async fn signin_and_server_to_user_events() {
    let srv = start().await;
    let c = client(&srv, "42");
    let mut user = c.user_events();
    let mut ok = c.bind(event::SIGNIN_SUCCESS);
    let id = tokio::time::timeout(WAIT, c.signin())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(id.as_str(), "42");
    next_named(&mut ok, event::SIGNIN_SUCCESS).await;
    // Let the #server-to-user- subscription settle (the server delivers by
    // user anyway).
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.sdk()
        .send_to_user("42", "notice", &json!({"n": 1}))
        .await
        .unwrap();
    let e = next_named(&mut user, "notice").await;
    assert_eq!(e.channel.as_deref(), Some("#server-to-user-42"));
    assert_eq!(e.data, json!({"n": 1}));
    // Signing in again answers at once with the same user.
    assert_eq!(c.signin().await.unwrap().as_str(), "42");

    // No user authentication configured: a typed error.
    let only_channels = FnAuthorizer::new(|_, _| async { Err::<String, _>("no") });
    let c2 = client_with(&srv, only_channels);
    assert!(matches!(
        tokio::time::timeout(WAIT, c2.signin()).await.unwrap(),
        Err(Error::Auth(hush_client::AuthError::NoUserAuthentication))
    ));
    srv.stop().await;
}

#[tokio::test]
async fn encrypted_channel_receives_decrypted_events() {
    let srv = start().await;
    let c = client(&srv, "1");
    let mut ch = subscribed(&c, "private-encrypted-vault").await;
    srv.sdk()
        .trigger(
            &["private-encrypted-vault"],
            "secret",
            &json!({"pin": 1234}),
            &opts(),
        )
        .await
        .unwrap();
    let e = chan_next(&mut ch, "secret").await;
    assert_eq!(e.data, json!({"pin": 1234}));
    assert!(e.failure.is_none());
    srv.stop().await;
}

#[tokio::test]
async fn undecryptable_events_are_reported_after_one_key_refetch() {
    let srv = start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = client_with(&srv, authorizer(srv.sdk(), "1", calls.clone()));
    let name = "private-encrypted-box";
    let mut ch = subscribed(&c, name).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let key = shared_secret(
        &ChannelName::parse(name).unwrap(),
        &MasterKey::from_base64(MASTER).unwrap(),
    );

    // Sealed under another key: re-fetch once, then DecryptionFailed.
    let other = shared_secret(&ChannelName::parse(name).unwrap(), &MasterKey::generate());
    publish_raw(&srv, name, "evil", &seal(&other, br#"{"a":1}"#)).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::Decrypt));
    assert_eq!(e.data["event"], "evil");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "exactly one re-fetch");

    // Epochs counted upwards by whoever publishes are not rotations: they
    // do not each call the authorizer again within the re-fetch interval.
    for epoch in 5..8 {
        let mut env: serde_json::Value =
            serde_json::from_str(&seal(&other, br#"{"a":1}"#)).unwrap();
        env["epoch"] = json!(epoch);
        publish_raw(&srv, name, "climbing", &env.to_string()).await;
        let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
        assert_eq!(e.data["event"], "climbing");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "no re-fetch per claimed epoch"
    );

    // Tampered: one ciphertext byte changed.
    let good = seal(&key, br#"{"ok":true}"#);
    let mut env: serde_json::Value = serde_json::from_str(&good).unwrap();
    let ct = env["ciphertext"].as_str().unwrap().to_owned();
    let mut chars: Vec<char> = ct.chars().collect();
    chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    env["ciphertext"] = json!(flipped);
    publish_raw(&srv, name, "tampered", &env.to_string()).await;
    let e = chan_next(&mut ch, event::DECRYPTION_FAILED).await;
    assert_eq!(e.failure, Some(DecryptError::Decrypt));
    assert_eq!(e.data["event"], "tampered");

    // The connection and the channel still work.
    publish_raw(&srv, name, "fine", &good).await;
    assert_eq!(chan_next(&mut ch, "fine").await.data, json!({"ok": true}));
    assert!(matches!(c.state(), ConnectionState::Connected { .. }));
    srv.stop().await;
}

#[tokio::test]
async fn a_stale_key_is_refetched_and_the_event_delivered() {
    let srv = start().await;
    let sdk = srv.sdk();
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    // First authorization hands out a wrong key; later ones the right key.
    let authz = FnAuthorizer::new(move |sid, channel| {
        let n = calls2.fetch_add(1, Ordering::SeqCst);
        let mut body: serde_json::Value = serde_json::from_str(
            &sdk.authorize_channel(sid.as_str(), channel.as_str(), None)
                .unwrap()
                .to_json(),
        )
        .unwrap();
        if n == 0 {
            body["shared_secret"] = json!(MasterKey::generate().to_base64());
        }
        async move { Ok::<_, String>(body.to_string()) }
    });
    let c = client_with(&srv, authz);
    let mut ch = subscribed(&c, "private-encrypted-rot").await;
    srv.sdk()
        .trigger(&["private-encrypted-rot"], "msg", &json!("hello"), &opts())
        .await
        .unwrap();
    let e = chan_next(&mut ch, "msg").await;
    assert_eq!(e.data, json!("hello"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    srv.stop().await;
}

#[tokio::test]
async fn reconnects_after_a_server_restart_and_resubscribes() {
    let srv = start().await;
    let port = srv.addr.port();
    let c = client(&srv, "1");
    let mut states = c.state_changes();
    let mut public = subscribed(&c, "ticker").await;
    let mut private = subscribed(&c, "private-feed").await;
    let first = c.socket_id().unwrap();

    srv.stop().await;
    tokio::time::timeout(
        WAIT,
        states.wait_for(|s| *s == ConnectionState::Unavailable),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!public.is_subscribed());

    let srv = start_on(port, "").await;
    chan_next(&mut public, event::SUBSCRIPTION_SUCCEEDED).await;
    chan_next(&mut private, event::SUBSCRIPTION_SUCCEEDED).await;
    let second = c.socket_id().unwrap();
    assert_ne!(first, second);
    srv.sdk()
        .trigger(&["ticker", "private-feed"], "tick", &json!(7), &opts())
        .await
        .unwrap();
    assert_eq!(chan_next(&mut public, "tick").await.data, json!(7));
    assert_eq!(chan_next(&mut private, "tick").await.data, json!(7));
    srv.stop().await;
}

#[tokio::test]
async fn pings_after_the_activity_timeout_and_survives() {
    let srv = start().await;
    let c = Client::builder(KEY)
        .url(&srv.ws_url())
        .activity_timeout(Duration::from_secs(1))
        .pong_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let sid = tokio::time::timeout(WAIT, c.connected())
        .await
        .unwrap()
        .unwrap();
    let mut ch = subscribed(&c, "quiet").await;
    // Several activity periods of silence: pings keep the same connection.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(c.socket_id(), Some(sid));
    srv.sdk()
        .trigger(&["quiet"], "e", &json!(1), &opts())
        .await
        .unwrap();
    assert_eq!(chan_next(&mut ch, "e").await.data, json!(1));
    srv.stop().await;
}

#[tokio::test]
async fn slow_consumers_lose_events_but_never_block() {
    let srv = start().await;
    let c = Client::builder(KEY)
        .url(&srv.ws_url())
        .event_buffer(2)
        .build()
        .unwrap();
    let mut ch = subscribed(&c, "firehose").await;
    let mut fast = c.bind_all();
    let _ = fast.try_recv();
    for i in 0..5 {
        srv.sdk()
            .trigger(&["firehose"], "e", &json!(i), &opts())
            .await
            .unwrap();
    }
    // The connection is not blocked by the full stream: a global binding made
    // afterwards still receives.
    let mut late = c.bind("later");
    srv.sdk()
        .trigger(&["firehose"], "later", &json!(0), &opts())
        .await
        .unwrap();
    next_named(&mut late, "later").await;
    assert!(ch.events().dropped() >= 3, "{}", ch.events().dropped());
    assert!(c.dropped_events() >= 3);
    srv.stop().await;
}

#[tokio::test]
async fn a_signin_refused_by_the_server_is_an_error() {
    let srv = start().await;
    // Signed with another secret: the server refuses it with pusher:error.
    let mut wrong = hush_sdk::Config::new(ID, KEY, "not-the-secret");
    wrong.set_base_url(&format!("http://{}", srv.addr)).unwrap();
    let wrong = hush_sdk::Client::new(wrong).unwrap();
    let authz =
        FnAuthorizer::new(|_, _| async { Err::<String, _>("no channels") }).with_user(move |sid| {
            let r = wrong
                .authenticate_user(sid.as_str(), &hush_sdk::UserData::new("mallory"))
                .map(|a| a.to_json());
            async move { r }
        });
    let c = client_with(&srv, authz);
    let r = tokio::time::timeout(WAIT, c.signin()).await.unwrap();
    assert!(matches!(r, Err(Error::Signin(_))), "{r:?}");
    assert!(matches!(c.state(), ConnectionState::Connected { .. }));
    srv.stop().await;
}

#[tokio::test]
async fn disconnect_stops_reconnection_attempts_at_once() {
    // Nothing listens on this port: the client keeps retrying until told to stop.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let c = Client::builder(KEY)
        .url(&format!("ws://127.0.0.1:{port}"))
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap();
    let mut states = c.state_changes();
    tokio::time::timeout(
        WAIT,
        states.wait_for(|s| *s == ConnectionState::Unavailable),
    )
    .await
    .unwrap()
    .unwrap();
    tokio::time::timeout(WAIT, c.disconnect()).await.unwrap();
    assert_eq!(c.state(), ConnectionState::Disconnected);
    assert!(matches!(c.subscribe("news").await, Err(Error::Closed)));
}
