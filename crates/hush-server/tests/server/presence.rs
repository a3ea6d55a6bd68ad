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

/// Subscribes `c` to presence `channel` with `channel_data` (signed by the app).
async fn join_raw(c: &mut Client, channel: &str, cd: &str) -> Value {
    let sid = c.sid().to_owned();
    c.subscribe(channel, Some(&sign(&sid, channel, Some(cd))), Some(cd))
        .await
}

#[tokio::test]
async fn numeric_user_ids_keep_their_json_text() {
    let s = start(&app_toml("")).await;
    let ch = "presence-big";
    let mut a = s.client().await;
    let mut b = s.client().await;
    let mut c = s.client().await;
    // Two ids that f64 cannot tell apart, and an exponent.
    let ida = "123456789012345678901234567890";
    let idb = "123456789012345678901234567891";
    join_raw(&mut a, ch, &format!(r#"{{"user_id":{ida}}}"#)).await;
    let v = join_raw(&mut b, ch, &format!(r#"{{"user_id":{idb}}}"#)).await;
    let p: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(p["presence"]["count"], 2, "{p}");
    let added = a.expect("pusher_internal:member_added").await;
    assert_eq!(
        added["data"],
        format!(r#"{{"user_id":"{idb}","user_info":{{}}}}"#)
    );
    let v = join_raw(&mut c, ch, r#"{"user_id":1e2}"#).await;
    let p: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    let mut ids: Vec<&str> = p["presence"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [ida, idb, "1e2"]);
    s.stop().await;
}

#[tokio::test]
async fn joining_again_as_another_user_is_refused_and_the_identity_stays_whole() {
    let s = start(&app_toml("client_events = true")).await;
    let ch = "presence-who";
    let mut a = s.client().await;
    let mut b = s.client().await;
    join_raw(&mut a, ch, r#"{"user_id":"u1"}"#).await;
    join_raw(&mut b, ch, r#"{"user_id":"watcher"}"#).await;
    a.expect("pusher_internal:member_added").await;
    // The same socket, a valid signature for another user id.
    let v = join_raw(&mut a, ch, r#"{"user_id":"u2"}"#).await;
    assert_eq!(v["event"], "pusher:subscription_error", "{v}");
    assert_eq!(v["channel"], ch);
    assert_eq!(v["data"]["type"], "AuthError", "{v}");
    assert!(v["data"]["error"].as_str().unwrap().contains("u1"), "{v}");
    // The same user again is still just a repeated success.
    let v = join_raw(&mut a, ch, r#"{"user_id":"u1"}"#).await;
    assert_eq!(v["event"], "pusher_internal:subscription_succeeded", "{v}");
    // Client events and the member list agree: u1.
    a.send(json!({"event":"client-hi","channel":ch,"data":{}}))
        .await;
    let ev = b.expect("client-hi").await;
    assert_eq!(ev["user_id"], "u1", "{ev}");
    let (_, users) = s
        .api("GET", &format!("/apps/{ID}/channels/{ch}/users"), &[], "")
        .await;
    let mut ids: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["u1", "watcher"]);
    b.expect_no("pusher_internal:member_added", Duration::from_millis(200))
        .await;
    s.stop().await;
}
