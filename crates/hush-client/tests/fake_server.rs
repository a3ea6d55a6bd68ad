//! Keep-alive and close-code behaviour against a scripted WebSocket server
//! (the real server never misbehaves on purpose).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hush_client::{Client, ConnectionState};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const WAIT: Duration = Duration::from_secs(15);

async fn accept(l: &TcpListener) -> WebSocketStream<TcpStream> {
    let (tcp, _) = tokio::time::timeout(WAIT, l.accept())
        .await
        .unwrap()
        .unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    let est = r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":1}"}"#;
    ws.send(Message::Text(est.into())).await.unwrap();
    ws
}

async fn next_json(ws: &mut WebSocketStream<TcpStream>) -> Option<Value> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn client(l: &TcpListener) -> Client {
    Client::builder("key")
        .url(&format!("ws://{}", l.local_addr().unwrap()))
        .pong_timeout(Duration::from_secs(1))
        .backoff(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .unwrap()
}

#[tokio::test]
async fn answers_server_pings_pings_when_idle_and_reconnects_without_pong() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = client(&l).await;
    let mut ws = accept(&l).await;
    // The server's ping is answered with pusher-js's pong.
    ws.send(Message::Text(
        r#"{"event":"pusher:ping","data":"{}"}"#.into(),
    ))
    .await
    .unwrap();
    let pong = next_json(&mut ws).await.unwrap();
    assert_eq!(pong["event"], "pusher:pong");
    // Silence for the activity timeout (1 s): the client pings.
    let ping = next_json(&mut ws).await.unwrap();
    assert_eq!(ping["event"], "pusher:ping");
    // No answer within the pong timeout: the client drops the connection and
    // comes back on a new one.
    let _second = accept(&l).await;
    tokio::time::timeout(WAIT, c.connected())
        .await
        .unwrap()
        .unwrap();
}

async fn close_with(ws: &mut WebSocketStream<TcpStream>, code: u16) {
    let err = format!(r#"{{"event":"pusher:error","data":{{"code":{code},"message":"test"}}}}"#);
    ws.send(Message::Text(err.into())).await.unwrap();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: "test".into(),
    })))
    .await
    .unwrap();
}

#[tokio::test]
async fn close_codes_decide_how_to_reconnect() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = client(&l).await;
    let mut ws = accept(&l).await;
    tokio::time::timeout(WAIT, c.connected())
        .await
        .unwrap()
        .unwrap();

    // 4200: reconnect at once (well under the 1 s of 4100).
    let t = Instant::now();
    close_with(&mut ws, 4200).await;
    let mut ws = accept(&l).await;
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );

    // 4100: reconnect after at least 1 s.
    let t = Instant::now();
    close_with(&mut ws, 4100).await;
    let mut ws = accept(&l).await;
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());

    // 4009: never again.
    close_with(&mut ws, 4009).await;
    let mut states = c.state_changes();
    tokio::time::timeout(
        WAIT,
        states.wait_for(|s| matches!(s, ConnectionState::Failed { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        c.state(),
        ConnectionState::Failed {
            code: Some(4009),
            reason: "test".into()
        }
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), l.accept())
            .await
            .is_err(),
        "no reconnection after 4009"
    );
}

#[tokio::test]
async fn a_handshake_without_activity_timeout_is_refused_and_retried() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = client(&l).await;
    let (tcp, _) = tokio::time::timeout(WAIT, l.accept())
        .await
        .unwrap()
        .unwrap();
    let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
    ws.send(Message::Text(
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\"}"}"#.into(),
    ))
    .await
    .unwrap();
    // Not connected on that one; a retry follows.
    let _ok = accept(&l).await;
    let sid = tokio::time::timeout(WAIT, c.connected())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sid.as_str(), "1.2");
}

#[tokio::test]
async fn requests_match_responses_by_id_time_out_and_fail_on_connection_loss() {
    use hush_client::{DirectoryError, ErrorCode, MAX_IN_FLIGHT};
    use serde_json::json;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = Client::builder("key")
        .url(&format!("ws://{}", l.local_addr().unwrap()))
        .activity_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(3))
        .backoff(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .unwrap();
    let mut ws = accept(&l).await;
    tokio::time::timeout(WAIT, c.connected())
        .await
        .unwrap()
        .unwrap();

    // Two requests in flight, answered in reverse order, each gets its own.
    let (c1, c2) = (c.clone(), c.clone());
    let a = tokio::spawn(async move { c1.request("log.head", json!({})).await });
    let b =
        tokio::spawn(async move { c2.request("directory.lookup", json!({"users":["x"]})).await });
    let r1 = next_json(&mut ws).await.unwrap();
    let r2 = next_json(&mut ws).await.unwrap();
    assert_eq!(r1["event"], "hush:request");
    let (id1, id2) = (r1["data"]["id"].clone(), r2["data"]["id"].clone());
    assert_ne!(id1, id2);
    let answer = |id: &Value, method: &Value| {
        let inner = if method == "log.head" {
            json!({"id": id, "result": {"which": "head"}})
        } else {
            json!({"id": id, "error": {"code": "not_signed_in", "message": "sign in"}})
        };
        json!({"event":"hush:response","data": inner.to_string()}).to_string()
    };
    ws.send(Message::Text(answer(&id2, &r2["data"]["method"]).into()))
        .await
        .unwrap();
    ws.send(Message::Text(answer(&id1, &r1["data"]["method"]).into()))
        .await
        .unwrap();
    let (ra, rb) = (a.await.unwrap(), b.await.unwrap());
    let head = if r1["data"]["method"] == "log.head" {
        ra.clone()
    } else {
        rb.clone()
    };
    assert_eq!(head.unwrap(), json!({"which": "head"}));
    let refused = if r1["data"]["method"] == "log.head" {
        rb
    } else {
        ra
    };
    assert_eq!(refused.unwrap_err().code(), Some(&ErrorCode::NotSignedIn));

    // No answer: a timeout, and the in-flight bound holds further requests
    // until earlier ones finish (never more than MAX_IN_FLIGHT on the wire).
    let mut waiting = Vec::new();
    for _ in 0..MAX_IN_FLIGHT + 2 {
        let c = c.clone();
        waiting.push(tokio::spawn(async move {
            c.request("log.head", json!({})).await
        }));
    }
    let mut seen = 0;
    while let Some(f) = tokio::time::timeout(Duration::from_secs(1), next_json(&mut ws))
        .await
        .ok()
        .flatten()
    {
        // (the server's 1 s activity timeout also makes the client ping)
        if f["event"] == "hush:request" {
            seen += 1;
        }
    }
    assert_eq!(seen, MAX_IN_FLIGHT);
    for w in waiting {
        assert_eq!(w.await.unwrap(), Err(DirectoryError::Timeout));
    }

    // The connection drops while a request waits: ConnectionLost.
    let c3 = c.clone();
    let pending = tokio::spawn(async move { c3.request("log.head", json!({})).await });
    while next_json(&mut ws).await.unwrap()["event"] != "hush:request" {}
    drop(ws);
    assert_eq!(pending.await.unwrap(), Err(DirectoryError::ConnectionLost));
}
