//! The HTTP API as a client on the network reaches it: the server's real
//! router (`hush_server::router`, with its body limit, signature check, rate
//! limit, JSON bodies, channel and user ids, info attributes, directory
//! endpoints) driven in process with fuzzer-chosen methods, paths, query
//! strings and bodies — unsigned and hostile, or signed with the app secret
//! the way an SDK signs (so the fuzzer reaches the handlers behind
//! authentication).
//!
//! Oracles: no panic; no 5xx answer (every hostile request is the client's
//! fault, answered 4xx; only `/ready` may say 503); every error answer from
//! the API (not the router's own 405) is JSON with a string `error`.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hush_fuzz::{APP_ID, APP_KEY, APP_SECRET, harness};
use hush_protocol::api::{self, QueryParams};
use hush_server::net::PeerConn;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[derive(Arbitrary, Debug)]
enum Route {
    Events,
    BatchEvents,
    Channels,
    Channel(String),
    ChannelUsers(String),
    Terminate(String),
    DirectoryUsers,
    LogHead,
    LogAudit,
    Up,
    Ready,
    Gateway(String),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Body_ {
    Bytes(Vec<u8>),
    Event {
        name: Option<String>,
        data: Option<String>,
        channel: Option<String>,
        channels: Option<Vec<String>>,
        socket_id: Option<String>,
        info: Option<String>,
    },
    Batch(Vec<(String, String, String)>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    route: Route,
    other_app: bool,
    params: Vec<(String, String)>,
    raw_query: Option<String>,
    body: Body_,
    signed: bool,
    skew: i16,
}

fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn body_bytes(b: &Body_) -> Vec<u8> {
    match b {
        Body_::Bytes(b) => b.clone(),
        Body_::Event {
            name,
            data,
            channel,
            channels,
            socket_id,
            info,
        } => {
            let mut o = serde_json::Map::new();
            let mut put = |k: &str, v: serde_json::Value| {
                o.insert(k.into(), v);
            };
            if let Some(v) = name {
                put("name", v.as_str().into());
            }
            if let Some(v) = data {
                // A JSON value when the text is one, else a string.
                put(
                    "data",
                    serde_json::from_str(v).unwrap_or_else(|_| v.as_str().into()),
                );
            }
            if let Some(v) = channel {
                put("channel", v.as_str().into());
            }
            if let Some(v) = channels {
                put("channels", v.clone().into());
            }
            if let Some(v) = socket_id {
                put("socket_id", v.as_str().into());
            }
            if let Some(v) = info {
                put("info", v.as_str().into());
            }
            serde_json::Value::Object(o).to_string().into_bytes()
        }
        Body_::Batch(items) => {
            let batch: Vec<serde_json::Value> = items
                .iter()
                .take(12)
                .map(|(n, c, d)| serde_json::json!({ "name": n, "channel": c, "data": d }))
                .collect();
            serde_json::json!({ "batch": batch })
                .to_string()
                .into_bytes()
        }
    }
}

async fn run(input: Input) {
    let h = harness();
    let app = if input.other_app { "nope" } else { APP_ID };
    let path = match &input.route {
        Route::Events => format!("/apps/{app}/events"),
        Route::BatchEvents => format!("/apps/{app}/batch_events"),
        Route::Channels => format!("/apps/{app}/channels"),
        Route::Channel(c) => format!("/apps/{app}/channels/{}", seg(c)),
        Route::ChannelUsers(c) => format!("/apps/{app}/channels/{}/users", seg(c)),
        Route::Terminate(u) => format!("/apps/{app}/users/{}/terminate_connections", seg(u)),
        Route::DirectoryUsers => format!("/apps/{app}/directory/users"),
        Route::LogHead => format!("/apps/{app}/directory/log/head"),
        Route::LogAudit => format!("/apps/{app}/directory/log/audit"),
        Route::Up => "/up".into(),
        Route::Ready => "/ready".into(),
        Route::Gateway(k) => format!("/app/{}", seg(k)),
        Route::Raw(p) => format!("/{p}"),
    };
    let method = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS"][usize::from(input.method) % 6];
    let body = body_bytes(&input.body);
    let query = match &input.raw_query {
        Some(q) if !input.signed => q.clone(),
        _ => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let params = QueryParams::from_pairs(
                input
                    .params
                    .iter()
                    .take(16)
                    .filter(|(k, _)| !k.to_ascii_lowercase().starts_with("auth_"))
                    .map(|(k, v)| (k.as_str(), v.clone())),
            );
            api::signed_query(
                APP_KEY,
                APP_SECRET.as_bytes(),
                method,
                &path,
                params,
                &body,
                now.saturating_add_signed(i64::from(input.skew) / 64),
            )
        }
    };
    let uri = format!("{path}?{query}");
    let Ok(mut req) = Request::builder()
        .method(method)
        .uri(&uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
    else {
        return; // not a request line anyone can send
    };
    req.extensions_mut().insert(ConnectInfo(PeerConn {
        addr: SocketAddr::from(([127, 0, 0, 1], 40000)),
        tcp: None,
        over_capacity: false,
    }));
    let res = hush_server::router(h.state.clone())
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = res.status().as_u16();
    let is_ready = matches!(input.route, Route::Ready);
    assert!(
        status < 500 || (status == 503 && is_ready),
        "{method} {uri} answered {status}"
    );
    // 405 comes from the router itself (a method the route does not have),
    // with an empty body and an Allow header.
    if status >= 400 && status != 405 && path.starts_with("/apps/") && method != "HEAD" {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("response body");
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{method} {uri}: error body not JSON ({e})"));
        assert!(v["error"].is_string(), "{method} {uri}: {v}");
    }
}

fuzz_target!(|input: Input| {
    harness().rt.block_on(run(input));
});
