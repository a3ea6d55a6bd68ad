//! hush-sdk against a real hush server (in-process, loopback): every HTTP API
//! call, authorizations accepted by the server, and an encrypted event opened
//! by a raw WebSocket subscriber.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{ID, KEY, SECRET, start};
use hush_crypto::{ChannelKey, open};
use hush_sdk::{
    Attribute, BatchEvent, ChannelsQuery, Client, Config, Error, PresenceData, TriggerOptions,
    UserData, ValidationError,
};
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn trigger_reaches_subscribers_and_honours_socket_id() {
    let srv = start().await;
    let api = srv.client();
    let mut a = srv.ws().await;
    let mut b = srv.ws().await;
    a.subscribe("news", None).await;
    b.subscribe("news", None).await;

    let r = api
        .trigger(
            &["news"],
            "update",
            &json!({"n": 1}),
            &TriggerOptions::default(),
        )
        .await
        .unwrap();
    assert!(r.channels.is_empty());
    for ws in [&mut a, &mut b] {
        let m = ws.expect("update").await;
        assert_eq!(m["channel"], "news");
        assert_eq!(m["data"], r#"{"n":1}"#);
    }

    // A string goes out unquoted on ordinary channels (Node's ensureJSON).
    api.trigger(&["news"], "text", "hello", &TriggerOptions::default())
        .await
        .unwrap();
    assert_eq!(a.expect("text").await["data"], "hello");
    api.trigger_raw(&["news"], "raw", "\"quoted\"", &TriggerOptions::default())
        .await
        .unwrap();
    assert_eq!(a.expect("raw").await["data"], "\"quoted\"");

    let except_a = TriggerOptions {
        socket_id: Some(a.socket_id.clone()),
        info: vec![Attribute::SubscriptionCount],
    };
    let r = api
        .trigger(&["news"], "only-b", "x", &except_a)
        .await
        .unwrap();
    assert_eq!(r.channels["news"].subscription_count, Some(2));
    b.expect("only-b").await;
    a.expect_no("only-b", QUIET).await;
    srv.stop().await;
}

#[tokio::test]
async fn encrypted_trigger_is_opened_by_a_raw_subscriber() {
    let srv = start().await;
    let api = srv.client();
    let mut ws = srv.ws().await;
    let auth = api
        .authorize_channel(&ws.socket_id, "private-encrypted-room", None)
        .unwrap();
    let key = ChannelKey::from_base64(auth.shared_secret.as_deref().unwrap()).unwrap();
    ws.subscribe("private-encrypted-room", Some(&auth)).await;

    let secret_text = "canary-0b5e7 plaintext";
    api.trigger(
        &["private-encrypted-room"],
        "secret",
        &json!({"message": secret_text}),
        &TriggerOptions::default(),
    )
    .await
    .unwrap();
    let m = ws.expect("secret").await;
    let data = m["data"].as_str().unwrap();
    assert!(!data.contains(secret_text), "plaintext on the wire: {data}");
    assert!(hush_protocol::encrypted::is_ciphertext_envelope(data));
    let plain = open(&key, data).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&plain).unwrap(),
        json!({"message": secret_text})
    );

    // A &str is sealed with its JSON quotes, trigger_raw without.
    api.trigger(
        &["private-encrypted-room"],
        "s",
        "hi",
        &TriggerOptions::default(),
    )
    .await
    .unwrap();
    let m = ws.expect("s").await;
    assert_eq!(open(&key, m["data"].as_str().unwrap()).unwrap(), b"\"hi\"");
    api.trigger_raw(
        &["private-encrypted-room"],
        "r",
        "hi",
        &TriggerOptions::default(),
    )
    .await
    .unwrap();
    let m = ws.expect("r").await;
    assert_eq!(open(&key, m["data"].as_str().unwrap()).unwrap(), b"hi");

    // Batch events to encrypted channels are sealed per channel.
    api.trigger_batch(&[
        BatchEvent::new("private-encrypted-room", "b1", &json!([1, 2])).unwrap(),
        BatchEvent::raw("news", "b2", "plain"),
    ])
    .await
    .unwrap();
    let m = ws.expect("b1").await;
    assert_eq!(open(&key, m["data"].as_str().unwrap()).unwrap(), b"[1,2]");

    // Refused client-side: several channels, or no master key.
    let err = api
        .trigger(
            &["private-encrypted-room", "news"],
            "x",
            "y",
            &TriggerOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ValidationError::EncryptedMultiChannel)),
        "{err}"
    );
    let mut no_key = srv.config();
    no_key.encryption_master_key = None;
    let err = Client::new(no_key)
        .unwrap()
        .trigger(
            &["private-encrypted-room"],
            "x",
            "y",
            &TriggerOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ValidationError::MasterKeyRequired(_))),
        "{err}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn key_epochs_and_sealed_triggers_reach_a_raw_subscriber() {
    use hush_crypto::EncryptedData;
    use hush_crypto::sealed::{self, ReplayGuard};
    use hush_sdk::EpochPolicy;

    let srv = start().await;
    let api = Client::new(srv.config().with_key_epochs(EpochPolicy::Fixed(5))).unwrap();
    let mut ws = srv.ws().await;
    let auth = api
        .authorize_channel(&ws.socket_id, "private-encrypted-room", None)
        .unwrap();
    assert_eq!(auth.epoch, Some(5));
    assert!(
        auth.to_json().ends_with(r#","epoch":5}"#),
        "{}",
        auth.to_json()
    );
    let key = ChannelKey::from_base64(auth.shared_secret.as_deref().unwrap()).unwrap();
    ws.subscribe("private-encrypted-room", Some(&auth)).await;

    // A plain encrypted trigger names its epoch and opens with the epoch key.
    api.trigger(
        &["private-encrypted-room"],
        "plain",
        "hi",
        &TriggerOptions::default(),
    )
    .await
    .unwrap();
    let m = ws.expect("plain").await;
    let envelope = EncryptedData::from_json(m["data"].as_str().unwrap()).unwrap();
    assert_eq!(envelope.epoch(), 5);
    assert_eq!(envelope.open(&key).unwrap(), b"\"hi\"");

    // A sealed trigger hides the event name and carries sender and sequence.
    let canary = "canary-sealed-51c2";
    for _ in 0..2 {
        api.trigger_sealed(
            "private-encrypted-room",
            "secret-name",
            canary,
            &TriggerOptions::default(),
        )
        .await
        .unwrap();
    }
    let channel = hush_protocol::ChannelName::parse("private-encrypted-room").unwrap();
    let mut guard = ReplayGuard::default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for seq in 1..=2 {
        let m = ws.expect(sealed::SERVER_EVENT).await;
        let text = m.to_string();
        assert!(
            !text.contains(canary) && !text.contains("secret-name"),
            "{text}"
        );
        let envelope = EncryptedData::from_json(m["data"].as_str().unwrap()).unwrap();
        let opened = sealed::open(&key, &channel, &envelope).unwrap();
        assert_eq!(
            (opened.event.as_str(), opened.data.as_str()),
            ("secret-name", canary)
        );
        assert_eq!(opened.seq, seq);
        assert_eq!(opened.sender, api.sealed_sender_id());
        guard.check(&opened, now).unwrap();
        assert_eq!(
            guard.check(&opened, now),
            Err(sealed::SealedError::Replayed)
        );
    }

    // Sealed events only go to encrypted channels, and need the master key.
    let err = api
        .trigger_sealed("news", "x", "y", &TriggerOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ValidationError::NotEncrypted(_))),
        "{err}"
    );
    let big = "x".repeat(8_000);
    let err = api
        .trigger_sealed(
            "private-encrypted-room",
            "x",
            &big,
            &TriggerOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ValidationError::DataTooLarge { .. })),
        "{err}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn batch_with_info() {
    let srv = start().await;
    let api = srv.client();
    let mut ws = srv.ws().await;
    ws.subscribe("a", None).await;
    let r = api
        .trigger_batch(&[
            BatchEvent::raw("a", "e1", "one").info(&[Attribute::SubscriptionCount]),
            BatchEvent::new("b", "e2", &json!({"two": 2})).unwrap(),
        ])
        .await
        .unwrap();
    assert_eq!(r.batch.len(), 2);
    assert_eq!(r.batch[0].subscription_count, Some(1));
    assert_eq!(r.batch[1].subscription_count, None);
    assert_eq!(ws.expect("e1").await["data"], "one");
    let r = api
        .trigger_batch(&[BatchEvent::raw("a", "e3", "3")])
        .await
        .unwrap();
    assert!(r.batch.is_empty());
    srv.stop().await;
}

#[tokio::test]
async fn channel_queries_and_presence_users() {
    let srv = start().await;
    let api = srv.client();
    let mut p1 = srv.ws().await;
    let mut p2 = srv.ws().await;
    let alice = PresenceData::new("alice")
        .with_info(&json!({"name": "Alice"}))
        .unwrap();
    let bob = PresenceData::new("bob");
    let auth = api
        .authorize_channel(&p1.socket_id, "presence-room", Some(&alice))
        .unwrap();
    p1.subscribe("presence-room", Some(&auth)).await;
    let auth = api
        .authorize_channel(&p2.socket_id, "presence-room", Some(&bob))
        .unwrap();
    p2.subscribe("presence-room", Some(&auth)).await;
    let mut priv_ws = srv.ws().await;
    let auth = api
        .authorize_channel(&priv_ws.socket_id, "private-x", None)
        .unwrap();
    priv_ws.subscribe("private-x", Some(&auth)).await;

    let all = api.channels(&ChannelsQuery::default()).await.unwrap();
    assert_eq!(
        all.channels.keys().map(String::as_str).collect::<Vec<_>>(),
        ["presence-room", "private-x"]
    );
    let presence = api
        .channels(&ChannelsQuery {
            filter_by_prefix: Some("presence-".into()),
            info: vec![Attribute::UserCount],
        })
        .await
        .unwrap();
    assert_eq!(presence.channels.len(), 1);
    assert_eq!(presence.channels["presence-room"].user_count, Some(2));

    let info = api
        .channel(
            "presence-room",
            &[Attribute::UserCount, Attribute::SubscriptionCount],
        )
        .await
        .unwrap();
    assert_eq!(info.occupied, Some(true));
    assert_eq!(info.user_count, Some(2));
    assert_eq!(info.subscription_count, Some(2));
    let empty = api.channel("nobody-here", &[]).await.unwrap();
    assert_eq!(empty.occupied, Some(false));
    // Every channel character is legal in a URL path as is, so the signed path
    // and the sent path agree.
    let mut odd = srv.ws().await;
    odd.subscribe("foo-bar_1234@=,.;", None).await;
    let info = api
        .channel("foo-bar_1234@=,.;", &[Attribute::SubscriptionCount])
        .await
        .unwrap();
    assert_eq!(
        (info.occupied, info.subscription_count),
        (Some(true), Some(1))
    );

    let mut users: Vec<String> = api
        .channel_users("presence-room")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);

    // The server's 400 comes back typed, with its message.
    let err = api
        .channels(&ChannelsQuery {
            filter_by_prefix: None,
            info: vec![Attribute::UserCount],
        })
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        matches!(&err, Error::Api { message, .. } if !message.is_empty()),
        "{err}"
    );
    assert!(matches!(
        api.channel_users("private-x").await,
        Err(Error::Invalid(ValidationError::NotPresence(_)))
    ));
    srv.stop().await;
}

#[tokio::test]
async fn users_send_to_user_and_terminate() {
    let srv = start().await;
    let api = srv.client();
    let mut ws = srv.ws().await;
    let mut other = srv.ws().await;
    let auth = api
        .authenticate_user(&ws.socket_id, &UserData::new("u-42"))
        .unwrap();
    ws.signin(&auth).await;
    let auth = api
        .authenticate_user(&other.socket_id, &UserData::new("u-7"))
        .unwrap();
    other.signin(&auth).await;

    api.send_to_user("u-42", "direct", &json!({"hi": true}))
        .await
        .unwrap();
    let m = ws.expect("direct").await;
    assert_eq!(m["channel"], "#server-to-user-u-42");
    assert_eq!(m["data"], r#"{"hi":true}"#);
    other.expect_no("direct", QUIET).await;

    api.terminate_user_connections("u-42").await.unwrap();
    assert_eq!(ws.expect_close().await, Some(4009));
    // The other user's connection is still open and reachable.
    api.send_to_user("u-7", "still-here", "x").await.unwrap();
    assert_eq!(other.expect("still-here").await["data"], "x");

    for bad in ["", "a:b", "a b"] {
        assert!(matches!(
            api.send_to_user(bad, "e", "d").await,
            Err(Error::Invalid(ValidationError::UserId(_)))
        ));
        assert!(matches!(
            api.terminate_user_connections(bad).await,
            Err(Error::Invalid(ValidationError::UserId(_)))
        ));
    }
    srv.stop().await;
}

#[tokio::test]
async fn server_refusals_are_typed() {
    let srv = start().await;
    let mut wrong = srv.config();
    wrong.secret = "not-the-secret".to_owned().into();
    let err = Client::new(wrong)
        .unwrap()
        .trigger(&["news"], "e", "d", &TriggerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");

    let mut other_app = srv.config();
    other_app.app_id = "999".into();
    other_app.key = "unknown-key".into();
    let err = Client::new(other_app)
        .unwrap()
        .channels(&ChannelsQuery::default())
        .await
        .unwrap_err();
    // An unknown app id answers like a bad signature (no app-id enumeration).
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(err.to_string().contains("signature"), "{err}");

    // Invalid input never reaches the server.
    let api = srv.client();
    for (channels, event) in [(vec!["bad:name"], "e"), (vec!["ok"], "pusher:internal")] {
        assert!(matches!(
            api.trigger(&channels, event, "d", &TriggerOptions::default())
                .await,
            Err(Error::Invalid(_))
        ));
    }
    let too_big = "x".repeat(10_241);
    assert!(matches!(
        api.trigger_raw(&["ok"], "e", &too_big, &TriggerOptions::default())
            .await,
        Err(Error::Invalid(ValidationError::DataTooLarge { .. }))
    ));
    srv.stop().await;
}

#[tokio::test]
async fn transport_failures_are_typed() {
    // Nothing listens: connection refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = Config::new(ID, KEY, SECRET);
    c.host = "127.0.0.1".into();
    c.port = addr.port();
    let err = Client::new(c.clone())
        .unwrap()
        .channels(&ChannelsQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err}");

    // Accepts but never answers: timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.port = silent.local_addr().unwrap().port();
    c.timeout = Duration::from_millis(200);
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let err = Client::new(c)
        .unwrap()
        .channels(&ChannelsQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    hold.abort();
}

#[tokio::test]
async fn authorizations_are_accepted_by_the_server_and_injection_is_refused() {
    let srv = start().await;
    let api = srv.client();
    let mut ws = srv.ws().await;
    let auth = api
        .authorize_channel(&ws.socket_id, "private-ok", None)
        .unwrap();
    ws.subscribe("private-ok", Some(&auth)).await;
    let victim_sid = format!("{}:private-victim", ws.socket_id);
    assert!(api.authorize_channel(&victim_sid, "x", None).is_err());
    assert!(
        api.authorize_channel(&format!("{}\n", ws.socket_id), "private-ok", None)
            .is_err()
    );
    assert!(
        api.authenticate_user(&victim_sid, &UserData::new("1"))
            .is_err()
    );
    srv.stop().await;
}

#[tokio::test]
async fn webhook_signed_like_the_server_verifies() {
    // hush-server does not send webhooks yet; sign a body the way PROTOCOL.md
    // §13 specifies (hush-protocol's signer) and verify it through the client.
    let srv = start().await;
    let api = srv.client();
    let body =
        br#"{"time_ms":1,"events":[{"name":"member_added","channel":"presence-a","user_id":"1"}]}"#;
    let sig = hush_protocol::webhook::sign_body(SECRET.as_bytes(), body).to_hex();
    let hook = api.verify_webhook(KEY, &sig, body).unwrap();
    assert_eq!(hook.events.len(), 1);
    assert!(api.verify_webhook("other", &sig, body).is_err());
    srv.stop().await;
}

#[tokio::test]
async fn cache_channel_info() {
    let srv = start().await;
    let api = srv.client();
    let empty = api
        .channel("cache-weather", &[Attribute::Cache])
        .await
        .unwrap();
    assert_eq!(empty.cache, None);
    api.trigger(
        &["cache-weather"],
        "update",
        &json!({"t": 21}),
        &TriggerOptions::default(),
    )
    .await
    .unwrap();
    let info = api
        .channel("cache-weather", &[Attribute::Cache])
        .await
        .unwrap();
    let cache = info.cache.expect("cached event");
    assert_eq!(cache.data, r#"{"t":21}"#);
    assert!(cache.ttl > 0 && cache.ttl <= 1800, "{}", cache.ttl);
    // A late subscriber gets the cached event right after subscribing.
    let mut ws = srv.ws().await;
    ws.subscribe("cache-weather", None).await;
    assert_eq!(ws.expect("update").await["data"], r#"{"t":21}"#);
    // user_count on a non-presence channel: the server's 400, typed.
    let err = api
        .channel("cache-weather", &[Attribute::UserCount])
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    srv.stop().await;
}
