//! Client WebSocket traffic through the server's real connection state
//! machine (`hush_server::session::Session`, what the gateway runs for each
//! socket) on a real app (channel registry, presence, user index, key
//! directory on an in-memory store): several connections send fuzzer-chosen
//! frames — raw text, or subscriptions and sign-ins signed with the app
//! secret (so the fuzzer gets past authentication the way a legitimate app
//! backend would let it), client events, reconnects, clock ticks.
//!
//! Oracles: no panic; every frame the server queues for any connection is
//! well-formed and its text is one JSON object with a string `event`; a
//! subscription with a missing, garbage or other-socket signature to a
//! private, encrypted or presence channel never succeeds; once every
//! connection has closed, the channel registry holds no subscriber and the
//! user index no signed-in connection (no state leaks across connections).
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use hush_fuzz::{APP_KEY, APP_SECRET, check_server_text, harness, split_frames, str_member};
use hush_protocol::{ChannelName, SocketId, UserId, auth};
use hush_server::conn::{ConnHandle, Link};
use hush_server::session::{Effect, Session};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

const CONNS: usize = 3;

#[derive(Arbitrary, Debug)]
enum Auth {
    Valid,
    Missing,
    Garbage(String),
    OtherSocket,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Raw {
        conn: u8,
        text: String,
    },
    Subscribe {
        conn: u8,
        channel: String,
        channel_data: Option<String>,
        auth: Auth,
    },
    Signin {
        conn: u8,
        user_data: String,
        auth: Auth,
    },
    Unsubscribe {
        conn: u8,
        channel: String,
    },
    ClientEvent {
        conn: u8,
        event: String,
        channel: String,
        data: String,
        raw_json: bool,
    },
    Reconnect {
        conn: u8,
    },
    Tick {
        ms: u16,
    },
}

struct Conn {
    session: Session,
    handle: ConnHandle,
    link: Arc<Link>,
    socket: SocketId,
}

fn connect(n: u64) -> Conn {
    let h = harness();
    let app = h.state.app_by_key(APP_KEY).expect("fuzz app").clone();
    let socket = SocketId::from_parts(n, n.wrapping_mul(7919));
    let (handle, link) = ConnHandle::new(socket.clone(), 64, None);
    let session = Session::new(app, handle.clone(), Instant::now());
    Conn {
        session,
        handle,
        link,
        socket,
    }
}

fn sign(auth: &Auth, socket: &SocketId, to_sign: impl Fn(&SocketId) -> String) -> String {
    match auth {
        Auth::Valid => auth::auth_value(
            APP_KEY,
            &auth::hmac_sha256(APP_SECRET.as_bytes(), to_sign(socket).as_bytes()),
        ),
        Auth::Missing => String::new(),
        Auth::Garbage(g) => g.clone(),
        Auth::OtherSocket => {
            let other = SocketId::from_parts(1, 1);
            auth::auth_value(
                APP_KEY,
                &auth::hmac_sha256(APP_SECRET.as_bytes(), to_sign(&other).as_bytes()),
            )
        }
    }
}

/// Drains what the server queued for `conn` and checks every frame.
async fn drain(
    conn: &Conn,
) -> Vec<std::collections::HashMap<String, Box<serde_json::value::RawValue>>> {
    let mut wire: Vec<u8> = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = conn.link.outbox().drain(&mut wire).await;
    let mut out = Vec::new();
    for (opcode, payload) in split_frames(&wire) {
        if opcode == 1 {
            out.push(check_server_text(&payload));
        }
    }
    out
}

async fn run(ops: &[Op]) {
    let h = harness();
    let app = h.state.app_by_key(APP_KEY).expect("fuzz app").clone();
    let mut next_socket = 1u64;
    let mut conns: Vec<Conn> = (0..CONNS)
        .map(|_| {
            next_socket += 1;
            connect(next_socket)
        })
        .collect();
    let mut now = Instant::now();
    let mut users: HashSet<String> = HashSet::new();
    for op in ops.iter().take(64) {
        let mut forbidden: Option<(usize, String)> = None;
        let (i, text) = match op {
            Op::Raw { conn, text } => (usize::from(*conn) % CONNS, text.clone()),
            Op::Subscribe {
                conn,
                channel,
                channel_data,
                auth,
            } => {
                let i = usize::from(*conn) % CONNS;
                let c = &conns[i];
                let signed = match ChannelName::parse(channel) {
                    Ok(name) => {
                        if name.kind().requires_auth() && !matches!(auth, Auth::Valid) {
                            forbidden = Some((i, channel.clone()));
                        }
                        sign(auth, &c.socket, |s| {
                            auth::channel_string_to_sign(s, &name, channel_data.as_deref())
                        })
                    }
                    Err(_) => "k:00".into(),
                };
                let mut data = json!({ "channel": channel, "auth": signed });
                if let Some(cd) = channel_data {
                    data["channel_data"] = json!(cd);
                }
                (
                    i,
                    json!({ "event": "pusher:subscribe", "data": data }).to_string(),
                )
            }
            Op::Signin {
                conn,
                user_data,
                auth,
            } => {
                let i = usize::from(*conn) % CONNS;
                let signed = sign(auth, &conns[i].socket, |s| {
                    auth::user_string_to_sign(s, user_data)
                });
                if let Ok(u) = hush_protocol::presence::parse_user_data(user_data, 1 << 20) {
                    users.insert(u.id.to_string());
                }
                let frame = json!({
                    "event": "pusher:signin",
                    "data": { "auth": signed, "user_data": user_data },
                });
                (i, frame.to_string())
            }
            Op::Unsubscribe { conn, channel } => {
                let frame =
                    json!({ "event": "pusher:unsubscribe", "data": { "channel": channel } });
                (usize::from(*conn) % CONNS, frame.to_string())
            }
            Op::ClientEvent {
                conn,
                event,
                channel,
                data,
                raw_json,
            } => {
                let data: serde_json::Value = if *raw_json {
                    serde_json::from_str(data).unwrap_or_else(|_| json!(data))
                } else {
                    json!(data)
                };
                let frame = json!({ "event": event, "channel": channel, "data": data });
                (usize::from(*conn) % CONNS, frame.to_string())
            }
            Op::Reconnect { conn } => {
                let i = usize::from(*conn) % CONNS;
                next_socket += 1;
                conns[i] = connect(next_socket);
                continue;
            }
            Op::Tick { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                continue;
            }
        };
        conns[i].session.handle_text(&text, now);
        // What the gateway does with the session's effects (directory
        // requests answered inline rather than on tasks of their own).
        let mut close = false;
        while let Some(effect) = conns[i].session.poll_effect() {
            match effect {
                Effect::Send(frame) => {
                    conns[i].handle.send(&frame);
                }
                Effect::Directory(request) => {
                    hush_server::gateway::answer(
                        h.state.directory.clone(),
                        h.state.mailbox.clone(),
                        hush_server::gateway::AppInfo {
                            id: app.config.id.clone(),
                            key: app.config.key.clone(),
                            ttl_secs: app.config.mailbox_ttl_secs,
                        },
                        conns[i].handle.clone(),
                        request,
                    )
                    .await;
                }
                Effect::Close(..) => {
                    close = true;
                    break;
                }
                _ => {}
            }
        }
        for (j, c) in conns.iter().enumerate() {
            let frames = drain(c).await;
            let Some((fi, channel)) = &forbidden else {
                continue;
            };
            if *fi != j {
                continue;
            }
            for f in &frames {
                assert!(
                    !(str_member(f, "event").as_deref()
                        == Some("pusher_internal:subscription_succeeded")
                        && str_member(f, "channel").as_deref() == Some(channel.as_str())),
                    "subscribed without a valid signature: {text}"
                );
            }
        }
        // What the gateway does when the session or the outbox asks to close.
        if close || conns[i].link.closer().requested().is_some() {
            next_socket += 1;
            conns[i] = connect(next_socket);
        }
    }
    drop(conns);
    let (channels, subscribers) = app.totals();
    assert_eq!(
        (channels, subscribers),
        (0, 0),
        "subscriptions outlived their connections"
    );
    for u in &users {
        if let Ok(id) = UserId::parse(u) {
            // How many connections are still signed in as the user (closing
            // them: the run is over).
            assert_eq!(app.terminate_user(&id), 0, "user {u} still signed in");
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let h = harness();
    h.rt.block_on(run(&ops));
});
