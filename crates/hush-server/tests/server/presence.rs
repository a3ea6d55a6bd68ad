use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn members_are_users_not_sockets() {
    let s = start(&app_toml("max_presence_members = 2")).await;
    let mut a1 = s.client().await;
    let mut a2 = s.client().await;
    let mut b = s.client().await;
    let p = a1
        .join_presence("presence-room", "alice", json!({"name":"Alice"}))
        .await;
    assert_eq!(
        p,
        json!({"presence":{"ids":["alice"],"hash":{"alice":{"name":"Alice"}},"count":1}})
    );
    let p = b
        .join_presence("presence-room", "bob", json!({"name":"Bob"}))
        .await;
    assert_eq!(p["presence"]["count"], 2);
    let added = a1.expect("pusher_internal:member_added").await;
    let inner: Value = serde_json::from_str(added["data"].as_str().unwrap()).unwrap();
    assert_eq!(inner, json!({"user_id":"bob","user_info":{"name":"Bob"}}));
    // Alice's second socket: no member_added, listed once.
    let p = a2
        .join_presence("presence-room", "alice", json!({"name":"Alice"}))
        .await;
    assert_eq!(p["presence"]["count"], 2);
    b.expect_silence(Duration::from_millis(200)).await;
    // Limit: a third distinct user is refused.
    let mut c = s.client().await;
    let cd = json!({"user_id":"carol"}).to_string();
    let sid = c.sid().to_owned();
    let v = c
        .subscribe(
            "presence-room",
            Some(&sign(&sid, "presence-room", Some(&cd))),
            Some(&cd),
        )
        .await;
    assert_eq!(v["data"]["type"], "LimitReached");
    assert_eq!(v["data"]["status"], 4100);
    // API view.
    let (st, users) = s
        .api(
            "GET",
            &format!("/apps/{ID}/channels/presence-room/users"),
            &[],
            "",
        )
        .await;
    assert_eq!(st, 200);
    let mut ids: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["alice", "bob"]);
    let (_, info) = s
        .api(
            "GET",
            &format!("/apps/{ID}/channels/presence-room"),
            &[("info", "user_count,subscription_count")],
            "",
        )
        .await;
    assert_eq!(
        info,
        json!({"occupied":true,"user_count":2,"subscription_count":3})
    );
    // Alice leaves from one socket: nothing; from the last: member_removed.
    a1.send(json!({"event":"pusher:unsubscribe","data":{"channel":"presence-room"}}))
        .await;
    b.expect_silence(Duration::from_millis(200)).await;
    drop(a2);
    let removed = b.expect("pusher_internal:member_removed").await;
    assert_eq!(removed["data"], r#"{"user_id":"alice"}"#);
    s.stop().await;
}

#[tokio::test]
async fn numeric_user_ids_become_strings_and_info_is_limited() {
    let s = start(&app_toml("max_presence_user_info_bytes = 64")).await;
    let mut a = s.client().await;
    let sid = a.sid().to_owned();
    let cd = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
    let v = a
        .subscribe(
            "presence-n",
            Some(&sign(&sid, "presence-n", Some(cd))),
            Some(cd),
        )
        .await;
    let p: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(p["presence"]["ids"], json!(["10"]));
    let big = json!({"user_id":"x","user_info":{"bio":"y".repeat(100)}}).to_string();
    let v = a
        .subscribe(
            "presence-m",
            Some(&sign(&sid, "presence-m", Some(&big))),
            Some(&big),
        )
        .await;
    assert_eq!(v["data"]["type"], "LimitReached");
    s.stop().await;
}

#[tokio::test]
async fn presence_without_channel_data_uses_the_signed_in_user() {
    let s = start(&app_toml("")).await;
    let mut a = s.client().await;
    let sid = a.sid().to_owned();
    let v = a
        .subscribe("presence-s", Some(&sign(&sid, "presence-s", None)), None)
        .await;
    assert_eq!(v["event"], "pusher:subscription_error", "not signed in");
    a.signin(r#"{"id":"u1","user_info":{"n":1}}"#).await;
    let v = a
        .subscribe("presence-s", Some(&sign(&sid, "presence-s", None)), None)
        .await;
    let p: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(p["presence"]["hash"], json!({"u1":{"n":1}}));
    s.stop().await;
}
