//! `HttpAuthorizer` against a small HTTP endpoint (the app's `/pusher/auth`
//! and `/pusher/user-auth`, answered with hush-sdk) and a real hush server.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use hush_client::{Client, ConnectionState, HttpAuthorizer, event};
use hush_sdk::{PresenceData, UserData};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the endpoint saw: (path, content type, form fields, custom header).
type Seen = Arc<Mutex<Vec<(String, String, Vec<(String, String)>, String)>>>;

/// A tiny HTTP/1.1 server: `/pusher/auth` and `/pusher/user-auth` answer
/// like an app backend; `/deny` answers 403.
async fn endpoint(sdk: hush_sdk::Client) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let sdk = sdk.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break (head.to_owned(), body.to_owned());
                        }
                    }
                    if n == 0 {
                        return;
                    }
                };
                let path = head.split_whitespace().nth(1).unwrap().to_owned();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                    .into_owned()
                    .collect();
                let get = |k: &str| {
                    form.iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                seen.lock().unwrap().push((
                    path.clone(),
                    header("content-type"),
                    form.clone(),
                    header("x-session"),
                ));
                let (status, body) = match path.as_str() {
                    "/pusher/auth" => {
                        let channel = get("channel_name");
                        let presence = channel
                            .starts_with("presence-")
                            .then(|| PresenceData::new("u1"));
                        match sdk.authorize_channel(&get("socket_id"), &channel, presence.as_ref())
                        {
                            Ok(a) => (200, a.to_json()),
                            Err(e) => (403, e.to_string()),
                        }
                    }
                    "/pusher/user-auth" => (
                        200,
                        sdk.authenticate_user(&get("socket_id"), &UserData::new("u1"))
                            .unwrap()
                            .to_json(),
                    ),
                    _ => (403, "no".to_owned()),
                };
                let res = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(res.as_bytes()).await;
            });
        }
    });
    (base, seen)
}

#[tokio::test]
async fn http_authorizer_posts_forms_like_pusher_js() {
    let srv = start().await;
    let (base, seen) = endpoint(srv.sdk()).await;
    let authz = HttpAuthorizer::new(&format!("{base}/pusher/auth"))
        .unwrap()
        .with_user_endpoint(&format!("{base}/pusher/user-auth"))
        .unwrap()
        .with_header("X-Session", "abc")
        .unwrap()
        .with_param("team", "blue");
    let c = Client::builder(KEY)
        .url(&srv.ws_url())
        .authorizer(authz)
        .build()
        .unwrap();
    let sid = tokio::time::timeout(WAIT, c.connected())
        .await
        .unwrap()
        .unwrap();
    let mut enc = subscribed(&c, "private-encrypted-http").await;
    let p = subscribed(&c, "presence-http").await;
    assert_eq!(p.members().unwrap().me.unwrap().id, "u1");
    assert_eq!(c.signin().await.unwrap().as_str(), "u1");
    srv.sdk()
        .trigger(
            &["private-encrypted-http"],
            "e",
            &json!({"ok": 1}),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(chan_next(&mut enc, "e").await.data, json!({"ok": 1}));

    let seen = seen.lock().unwrap().clone();
    let (path, ctype, form, session) = &seen[0];
    assert_eq!(path, "/pusher/auth");
    assert_eq!(ctype, "application/x-www-form-urlencoded");
    assert_eq!(session, "abc");
    assert!(form.contains(&("socket_id".into(), sid.to_string())));
    assert!(form.contains(&("channel_name".into(), "private-encrypted-http".into())));
    assert!(form.contains(&("team".into(), "blue".into())));
    let user = seen.iter().find(|s| s.0 == "/pusher/user-auth").unwrap();
    assert_eq!(user.2[0], ("socket_id".into(), sid.to_string()));
    srv.stop().await;
}

#[tokio::test]
async fn http_authorizer_errors_are_subscription_errors() {
    let srv = start().await;
    let (base, _) = endpoint(srv.sdk()).await;
    let c = Client::builder(KEY)
        .url(&srv.ws_url())
        .authorizer(HttpAuthorizer::new(&format!("{base}/deny")).unwrap())
        .build()
        .unwrap();
    let mut ch = c.subscribe("private-denied").await.unwrap();
    let e = chan_next(&mut ch, event::SUBSCRIPTION_ERROR).await;
    assert_eq!(e.data["status"], 403);
    assert_eq!(e.data["type"], "AuthError");
    // Unreachable endpoint: a transport error, the connection stays up.
    let c2 = Client::builder(KEY)
        .url(&srv.ws_url())
        .authorizer(HttpAuthorizer::new("http://127.0.0.1:1/auth").unwrap())
        .build()
        .unwrap();
    let mut ch = c2.subscribe("private-x").await.unwrap();
    let e = chan_next(&mut ch, event::SUBSCRIPTION_ERROR).await;
    assert!(
        e.data["error"].as_str().unwrap().contains("unreachable"),
        "{e:?}"
    );
    assert!(matches!(c2.state(), ConnectionState::Connected { .. }));
    srv.stop().await;
}
