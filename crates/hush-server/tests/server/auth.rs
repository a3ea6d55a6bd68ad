use serde_json::{Value, json};

use crate::common::*;

fn sub_error(v: &Value) -> (&str, i64) {
    assert_eq!(v["event"], "pusher:subscription_error", "{v}");
    (
        v["data"]["type"].as_str().unwrap(),
        v["data"]["status"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn private_and_encrypted_need_a_valid_signature() {
    let s = start(&app_toml("")).await;
    let mut c = s.client().await;
    let sid = c.sid().to_owned();
    for ch in [
        "private-a",
        "private-encrypted-a",
        "private-cache-a",
        "private-encrypted-cache-a",
    ] {
        let v = c.subscribe(ch, None, None).await;
        assert_eq!(sub_error(&v), ("AuthError", 401), "{ch}");
        assert_eq!(v["channel"], ch);
        let v = c.subscribe(ch, Some(&sign("1.1", ch, None)), None).await;
        assert_eq!(
            sub_error(&v),
            ("AuthError", 401),
            "{ch}: another socket's signature"
        );
        let v = c
            .subscribe(
                ch,
                Some(&format!(
                    "otherkey:{}",
                    &sign(&sid, ch, None)[KEY.len() + 1..]
                )),
                None,
            )
            .await;
        assert_eq!(sub_error(&v).0, "AuthError");
        c.subscribe_ok(ch).await;
        if ch.contains("cache") {
            assert_eq!(c.next_event().await["event"], "pusher:cache_miss");
        }
    }
    // channel_data is never appended for private channels.
    let v = c
        .subscribe(
            "private-b",
            Some(&sign(&sid, "private-b", Some("x"))),
            Some("x"),
        )
        .await;
    assert_eq!(sub_error(&v).0, "AuthError");
    s.stop().await;
}

#[tokio::test]
async fn socket_id_injection_is_impossible() {
    let s = start(&app_toml("")).await;
    let mut c = s.client().await;
    let sid = c.sid().to_owned();
    // An app that signed whatever socket id the browser posted would produce
    // these; none may open another channel.
    for forged in [
        sign_raw(&format!("{sid}:private-victim")),
        sign_raw(&format!("{sid}:private-x:private-victim")),
        sign_raw(&format!("{sid}:private-victim:")),
        sign_raw(&format!("{sid}\n:private-victim")),
    ] {
        for ch in ["private-x:private-victim", "private-victim:", "private-x"] {
            let v = c.subscribe(ch, Some(&forged), None).await;
            assert_eq!(v["event"], "pusher:subscription_error", "{ch} {v}");
        }
    }
    // Names with ':' or look-alikes are invalid, whatever the signature.
    for ch in [
        "private-a:b",
        "pr\u{456}vate-a",
        "private\u{2010}a",
        "private-a ",
        &"a".repeat(201),
        "",
        "#other",
        "#server-to-user-",
    ] {
        let v = c
            .subscribe(ch, Some(&sign_raw(&format!("{sid}:{ch}"))), None)
            .await;
        assert_eq!(sub_error(&v), ("InvalidChannel", 400), "{ch:?}");
    }
    // Presence: a forged channel_data that smuggles a second object is refused.
    let cd = r#"{"user_id":"1"}{"user_id":"admin"}"#;
    let v = c
        .subscribe(
            "presence-r",
            Some(&sign(&sid, "presence-r", Some(cd))),
            Some(cd),
        )
        .await;
    assert_eq!(v["event"], "pusher:subscription_error");
    s.stop().await;
}

#[tokio::test]
async fn server_to_user_channels_need_sign_in_as_that_user() {
    let s = start(&app_toml("")).await;
    let mut c = s.client().await;
    let v = c.subscribe("#server-to-user-42", None, None).await;
    assert_eq!(sub_error(&v), ("AuthError", 401));
    assert_eq!(
        c.signin(r#"{"id":"42"}"#).await["event"],
        "pusher:signin_success"
    );
    c.subscribe_ok("#server-to-user-42").await;
    let v = c.subscribe("#server-to-user-43", None, None).await;
    assert_eq!(sub_error(&v).0, "AuthError");
    s.stop().await;
}

#[tokio::test]
async fn channels_per_connection_are_capped() {
    let s = start(&app_toml("max_channels_per_connection = 3")).await;
    let mut c = s.client().await;
    for ch in ["a", "b", "c"] {
        c.subscribe_ok(ch).await;
    }
    let v = c.subscribe("d", None, None).await;
    assert_eq!(sub_error(&v), ("LimitReached", 4100));
    // Re-subscribing to a channel it has is not a new channel; leaving frees a place.
    c.subscribe_ok("a").await;
    c.send(json!({"event":"pusher:unsubscribe","data":{"channel":"b"}}))
        .await;
    c.subscribe_ok("d").await;
    s.stop().await;
}

#[tokio::test]
async fn cache_channels_replay_or_miss() {
    let s = start(&app_toml("cache_ttl = 60")).await;
    let mut c = s.client().await;
    c.subscribe_ok("cache-loc").await;
    assert_eq!(
        c.next_event().await,
        json!({"event":"pusher:cache_miss","channel":"cache-loc","data":"{}"})
    );
    assert_eq!(s.trigger("cache-loc", "moved", r#"{"lat":1}"#).await.0, 200);
    c.expect("moved").await;
    let mut late = s.client().await;
    late.subscribe_ok("cache-loc").await;
    let replay = late.next_event().await;
    assert_eq!(
        replay,
        json!({"event":"moved","channel":"cache-loc","data":"{\"lat\":1}"})
    );
    let (st, info) = s
        .api(
            "GET",
            &format!("/apps/{ID}/channels/cache-loc"),
            &[("info", "cache,subscription_count")],
            "",
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(info["cache"]["data"], r#"{"lat":1}"#);
    assert!(info["cache"]["ttl"].as_u64().unwrap() <= 60);
    assert_eq!(info["subscription_count"], 2);
    s.stop().await;
}
