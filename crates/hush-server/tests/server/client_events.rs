use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn disabled_by_default() {
    let s = start(&app_toml("")).await;
    let mut a = s.client().await;
    a.subscribe_ok("private-c").await;
    a.send(json!({"event":"client-x","channel":"private-c","data":{}}))
        .await;
    let e = a.next_event().await;
    assert_eq!(e["event"], "pusher:error");
    assert!(e["data"]["message"].as_str().unwrap().contains("enable"));
    s.stop().await;
}

#[tokio::test]
async fn relayed_to_others_only_on_private_and_presence() {
    let s = start(&app_toml(
        "client_events = true\nmax_client_events_per_second = 5",
    ))
    .await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_ok("private-c").await;
    b.subscribe_ok("private-c").await;
    a.send(
        json!({"event":"client-typing","channel":"private-c","data":{"x":1},"user_id":"forged"}),
    )
    .await;
    let got = b.next_event().await;
    assert_eq!(
        got,
        json!({"event":"client-typing","channel":"private-c","data":{"x":1}})
    );
    a.expect_silence(Duration::from_millis(150)).await;
    // String data stays a string.
    a.send(json!({"event":"client-s","channel":"private-c","data":"hi"}))
        .await;
    assert_eq!(b.next_event().await["data"], "hi");

    // Refused: public, encrypted, not subscribed, bad name, too large.
    a.subscribe_ok("public").await;
    a.subscribe_ok("private-encrypted-e").await;
    for (ch, ev) in [
        ("public", "client-x"),
        ("private-encrypted-e", "client-x"),
        ("private-other", "client-x"),
        ("private-c", "typing"),
    ] {
        a.send(json!({"event":ev,"channel":ch,"data":{}})).await;
        let e = a.next_event().await;
        assert_eq!(e["event"], "pusher:error", "{ch} {ev}");
        assert_eq!(e["data"]["code"], Value::Null);
    }
    a.send(json!({"event":"client-big","channel":"private-c","data":"x".repeat(10_300)}))
        .await;
    assert_eq!(a.next_event().await["event"], "pusher:error");
    b.expect_silence(Duration::from_millis(150)).await;

    s.stop().await;
}

#[tokio::test]
async fn rate_limited_per_connection_with_4301() {
    let s = start(&app_toml(
        "client_events = true\nmax_client_events_per_second = 5",
    ))
    .await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_ok("private-c").await;
    b.subscribe_ok("private-c").await;
    // A burst of 8 within milliseconds: the bucket holds 5.
    for i in 0..8 {
        a.send(json!({"event":"client-r","channel":"private-c","data":i}))
            .await;
    }
    let e = a.next_event().await;
    assert_eq!(e["data"]["code"], 4301);
    let mut received = 0;
    while let Some(Next::Frame(v)) = b.next_within(Duration::from_millis(300)).await {
        assert_eq!(v["event"], "client-r");
        received += 1;
    }
    assert_eq!(received, 5);
    // The connection is kept and the budget refills.
    tokio::time::sleep(Duration::from_millis(450)).await;
    a.send(json!({"event":"client-r","channel":"private-c","data":"later"}))
        .await;
    assert_eq!(b.next_event().await["data"], "later");
    s.stop().await;
}

#[tokio::test]
async fn presence_client_events_carry_the_members_user_id() {
    let s = start(&app_toml("client_events = true")).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.join_presence("presence-p", "alice", json!({})).await;
    b.join_presence("presence-p", "bob", json!({})).await;
    a.expect("pusher_internal:member_added").await;
    a.send(json!({"event":"client-hi","channel":"presence-p","data":{},"user_id":"bob"}))
        .await;
    let got = b.next_event().await;
    assert_eq!(got["user_id"], "alice");
    s.stop().await;
}

#[tokio::test]
async fn encrypted_client_events_when_the_app_allows_them() {
    const ENVELOPE: &str = r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=","epoch":3}"#;
    let s = start(&app_toml(
        "client_events = true\nencrypted_client_events = true",
    ))
    .await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_ok("private-encrypted-e").await;
    b.subscribe_ok("private-encrypted-e").await;
    a.send(json!({"event":"client-hush-sealed","channel":"private-encrypted-e","data":ENVELOPE}))
        .await;
    let got = b.next_event().await;
    assert_eq!(
        got,
        json!({"event":"client-hush-sealed","channel":"private-encrypted-e","data":ENVELOPE})
    );
    // Anything that is not a string holding an envelope is refused: the
    // server never relays readable data on an encrypted channel.
    for data in [
        json!({"message": "plaintext canary"}),
        json!("plaintext canary"),
        serde_json::from_str::<Value>(ENVELOPE).unwrap(),
        json!(
            r#"{"nonce":"AAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#
        ),
        Value::Null,
    ] {
        a.send(json!({"event":"client-x","channel":"private-encrypted-e","data":data}))
            .await;
        let e = a.next_event().await;
        assert_eq!(e["event"], "pusher:error", "{data}");
        assert!(
            e["data"]["message"]
                .as_str()
                .unwrap()
                .contains("private-encrypted-"),
            "{e}"
        );
    }
    b.expect_silence(Duration::from_millis(150)).await;
    s.stop().await;
}
