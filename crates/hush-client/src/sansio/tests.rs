//! The core on a virtual clock: no sockets, no tasks, no sleeps. Time is an
//! `Instant` the test moves forward by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hush_crypto::sealed;
use hush_protocol::ChannelName;
use serde_json::{Value, json};

use super::*;
use crate::auth::{ChannelAuthorization, UserAuthentication};
use crate::backoff::Backoff;
use crate::client::ChannelShared;

const S: Duration = Duration::from_secs(1);
const SID: &str = "123.456";

fn config() -> CoreConfig {
    CoreConfig {
        activity_timeout: 120 * S,
        pong_timeout: 30 * S,
        connect_timeout: 10 * S,
        backoff: Backoff {
            base: S,
            cap: 30 * S,
        },
        refetch_interval: 5 * S,
        epoch_grace: 60 * S,
        sealed_max_age: 300 * S,
        request_timeout: 30 * S,
        has_authorizer: true,
    }
}

fn new_core(t0: Instant) -> ClientCore {
    ClientCore::new(config(), sealed::Sender::new(), t0, SystemTime::now())
}

fn outputs(c: &mut ClientCore) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn transmits(c: &mut ClientCore) -> Vec<Value> {
    std::iter::from_fn(|| c.poll_transmit())
        .map(|t| serde_json::from_str(&t).unwrap())
        .collect()
}

fn states(out: &[Output]) -> Vec<ConnectionState> {
    out.iter()
        .filter_map(|o| match o {
            Output::State(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<Event> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn channel_tickets(out: Vec<Output>) -> Vec<ChannelTicket> {
    out.into_iter()
        .filter_map(|o| match o {
            Output::AuthorizeChannel(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn user_ticket(out: Vec<Output>) -> Option<UserTicket> {
    out.into_iter().find_map(|o| match o {
        Output::AuthenticateUser(t) => Some(t),
        _ => None,
    })
}

fn signin_results(out: &[Output]) -> Vec<Result<UserId, Error>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Signin(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn responses(out: Vec<Output>) -> Vec<(String, Result<Value, DirectoryError>)> {
    out.into_iter()
        .filter_map(|o| match o {
            Output::Response { id, result } => Some((id, result)),
            _ => None,
        })
        .collect()
}

fn established(activity_secs: u64) -> String {
    let data = json!({"socket_id": SID, "activity_timeout": activity_secs}).to_string();
    json!({"event": "pusher:connection_established", "data": data}).to_string()
}

/// A core connected at `t`, its outputs drained.
fn connected(t: Instant) -> ClientCore {
    let mut c = new_core(t);
    assert!(matches!(
        outputs(&mut c).as_slice(),
        [Output::State(ConnectionState::Connecting), Output::Connect]
    ));
    c.handle_frame(&established(120), t);
    let out = outputs(&mut c);
    assert!(matches!(
        states(&out).as_slice(),
        [ConnectionState::Connected { .. }]
    ));
    c
}

/// Runs the reconnect that `c` waits for and establishes it at the deadline.
fn reconnect(c: &mut ClientCore) -> (Instant, Vec<Output>) {
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    let out = outputs(c);
    assert!(out.iter().any(|o| matches!(o, Output::Connect)), "{out:?}");
    c.handle_frame(&established(120), at);
    (at, outputs(c))
}

fn shared(name: &str) -> Arc<ChannelShared> {
    Arc::new(ChannelShared {
        name: ChannelName::parse(name).unwrap(),
        subscribed: AtomicBool::new(false),
        members: Mutex::new(None),
    })
}

fn channel_auth() -> ChannelAuthorization {
    ChannelAuthorization {
        auth: format!("key:{}", "a".repeat(64)),
        channel_data: None,
        user_id: None,
        user_info: Value::Null,
        shared_secret: None,
        epoch: 0,
    }
}

fn user_auth(id: &str) -> UserAuthentication {
    let body = json!({
        "auth": format!("key:{}", "b".repeat(64)),
        "user_data": json!({"id": id}).to_string(),
    });
    UserAuthentication::parse(&body.to_string(), "key").unwrap()
}

fn subscribes(tx: &[Value]) -> Vec<String> {
    tx.iter()
        .filter(|f| f["event"] == "pusher:subscribe")
        .map(|f| f["data"]["channel"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn refused_close_codes_stop_for_good() {
    for code in [4001, 4009, 4301] {
        let t = Instant::now();
        let mut c = connected(t);
        c.socket_closed(Some(code), "no".into(), t + S);
        let out = outputs(&mut c);
        assert_eq!(
            states(&out),
            [ConnectionState::Failed {
                code: Some(code),
                reason: "no".into()
            }]
        );
        assert!(matches!(out.last(), Some(Output::Stopped)));
        assert!(c.is_stopped());
        assert_eq!(c.poll_timeout(), None);
    }
}

#[test]
fn backoff_class_waits_at_least_a_second_and_retry_class_not_at_all() {
    let t = Instant::now();
    let mut c = connected(t);
    c.socket_closed(Some(4100), "busy".into(), t);
    let out = outputs(&mut c);
    assert_eq!(states(&out), [ConnectionState::Unavailable]);
    assert_eq!(events(&out)[0].event, event::CONNECTION_ERROR);
    // Attempt 0 backs off at most base (1 s), raised to the 1 s floor.
    assert_eq!(c.poll_timeout(), Some(t + S));
    c.handle_timeout(t + S - Duration::from_millis(1));
    assert!(outputs(&mut c).is_empty(), "not before the deadline");
    let (t2, _) = reconnect(&mut c);
    assert_eq!(t2, t + S);

    // 4200 after an established connection: at once.
    c.socket_closed(Some(4200), "drain".into(), t2);
    outputs(&mut c);
    assert_eq!(c.poll_timeout(), Some(t2));
    c.handle_timeout(t2);
    let out = outputs(&mut c);
    assert!(matches!(
        out.as_slice(),
        [Output::State(ConnectionState::Connecting), Output::Connect]
    ));
    // A second 4200 without a connection in between backs off (attempt 1 ≤ 2 s).
    c.socket_closed(Some(4200), "drain".into(), t2);
    outputs(&mut c);
    let at = c.poll_timeout().unwrap();
    assert!(at >= t2 && at <= t2 + 2 * S, "{:?}", at - t2);
}

#[test]
fn lost_connections_back_off_exponentially_until_established() {
    let t = Instant::now();
    let mut c = connected(t);
    let mut now = t;
    for attempt in 0..6u32 {
        c.socket_lost("reset".into(), now);
        let out = outputs(&mut c);
        let e = &events(&out)[0];
        assert_eq!(e.event, event::CONNECTION_ERROR);
        assert_eq!(e.data["reason"], "reset");
        let wait = c.poll_timeout().unwrap() - now;
        assert!(
            wait <= config().backoff.ceiling(attempt),
            "attempt {attempt}: {wait:?}"
        );
        assert_eq!(e.data["retry_in_ms"], millis(wait));
        now += wait;
        c.handle_timeout(now);
        assert!(outputs(&mut c).iter().any(|o| matches!(o, Output::Connect)));
    }
    // Once established, the count starts over.
    c.handle_frame(&established(120), now);
    outputs(&mut c);
    c.socket_lost("reset".into(), now);
    outputs(&mut c);
    assert!(c.poll_timeout().unwrap() - now <= S);
}

#[test]
fn connect_timeout_and_bad_handshakes_reconnect() {
    let t = Instant::now();
    let mut c = new_core(t);
    outputs(&mut c);
    assert_eq!(c.poll_timeout(), Some(t + 10 * S));
    c.handle_timeout(t + 10 * S);
    let out = outputs(&mut c);
    assert!(matches!(out[0], Output::Close { graceful: false }));
    assert_eq!(
        events(&out)[0].data["reason"],
        "connection attempt timed out"
    );
    assert_eq!(states(&out), [ConnectionState::Unavailable]);

    // A refusal during the handshake is a close with its code.
    let at = c.poll_timeout().unwrap();
    c.handle_timeout(at);
    outputs(&mut c);
    c.handle_frame(
        &json!({"event":"pusher:error","data":{"code":4001,"message":"unknown app"}}).to_string(),
        at,
    );
    let out = outputs(&mut c);
    assert_eq!(events(&out)[0].event, event::ERROR);
    assert_eq!(
        states(&out),
        [ConnectionState::Failed {
            code: Some(4001),
            reason: "unknown app".into()
        }]
    );
}

#[test]
fn keepalive_pings_after_silence_and_reconnects_without_pong() {
    let t = Instant::now();
    let mut c = new_core(t);
    outputs(&mut c);
    // The server's smaller activity timeout wins.
    c.handle_frame(&established(40), t);
    outputs(&mut c);
    assert_eq!(c.poll_timeout(), Some(t + 40 * S));
    c.handle_timeout(t + 39 * S);
    assert!(transmits(&mut c).is_empty());
    c.handle_timeout(t + 40 * S);
    assert_eq!(
        transmits(&mut c),
        [json!({"event":"pusher:ping","data":{}})]
    );
    assert_eq!(c.poll_timeout(), Some(t + 70 * S));
    // A pong (any frame) resets the clock.
    c.handle_frame(r#"{"event":"pusher:pong","data":{}}"#, t + 50 * S);
    assert_eq!(c.poll_timeout(), Some(t + 90 * S));
    c.handle_timeout(t + 90 * S);
    assert_eq!(transmits(&mut c).len(), 1);
    // No pong this time.
    c.handle_timeout(t + 119 * S);
    assert!(outputs(&mut c).is_empty());
    c.handle_timeout(t + 120 * S);
    let out = outputs(&mut c);
    assert!(matches!(out[0], Output::Close { graceful: false }));
    assert_eq!(events(&out)[0].data["reason"], "no pong in time");
    assert_eq!(states(&out), [ConnectionState::Unavailable]);
}

#[test]
fn answers_server_pings() {
    let t = Instant::now();
    let mut c = connected(t);
    c.handle_frame(r#"{"event":"pusher:ping","data":{}}"#, t);
    assert_eq!(
        transmits(&mut c),
        [json!({"event":"pusher:pong","data":{}})]
    );
}

#[test]
fn resubscribes_after_reconnect() {
    let t = Instant::now();
    let mut c = new_core(t);
    outputs(&mut c);
    // Subscribed while connecting: nothing sent until connected.
    c.subscribe(shared("news"), t);
    assert!(transmits(&mut c).is_empty());
    c.handle_frame(&established(120), t);
    assert_eq!(subscribes(&transmits(&mut c)), ["news"]);
    c.subscribe(shared("private-a"), t);
    let tickets = channel_tickets(outputs(&mut c));
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].channel.as_str(), "private-a");
    c.handle_frame(
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"news","data":"{}"}"#,
        t,
    );
    let news = c.channels[&ChannelName::parse("news").unwrap()]
        .shared
        .clone();
    assert!(news.subscribed.load(Ordering::Acquire));
    c.unsubscribe(&ChannelName::parse("gone").unwrap());
    c.subscribe(shared("gone"), t);
    c.unsubscribe(&ChannelName::parse("gone").unwrap());
    let tx = transmits(&mut c);
    assert_eq!(tx[1]["event"], "pusher:unsubscribe");

    c.socket_lost("reset".into(), t);
    outputs(&mut c);
    assert!(!news.subscribed.load(Ordering::Acquire));
    let (_, out) = reconnect(&mut c);
    assert_eq!(subscribes(&transmits(&mut c)), ["news"]);
    let tickets = channel_tickets(out);
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].channel.as_str(), "private-a");
}

#[test]
fn channel_auth_answers_success_failure_and_stale() {
    let t = Instant::now();
    let mut c = connected(t);
    c.subscribe(shared("private-a"), t);
    c.subscribe(shared("private-b"), t);
    let mut tickets = channel_tickets(outputs(&mut c));
    tickets.sort_by(|a, b| a.channel.as_str().cmp(b.channel.as_str()));
    let [a, b] = <[ChannelTicket; 2]>::try_from(tickets).unwrap();
    assert_eq!(a.socket_id.as_str(), SID);

    c.channel_authorized(a, Ok(channel_auth()), t);
    let tx = transmits(&mut c);
    assert_eq!(subscribes(&tx), ["private-a"]);
    assert_eq!(tx[0]["data"]["auth"], channel_auth().auth);

    c.channel_authorized(b, Err(AuthError::Status { status: 403 }), t);
    let out = outputs(&mut c);
    let e = &events(&out)[0];
    assert_eq!(e.event, event::SUBSCRIPTION_ERROR);
    assert_eq!(e.channel.as_deref(), Some("private-b"));
    assert_eq!(e.data["status"], 403);
    assert!(transmits(&mut c).is_empty());

    // An answer asked for on the previous connection is ignored.
    c.socket_lost("reset".into(), t);
    outputs(&mut c);
    let (t2, out) = reconnect(&mut c);
    let fresh = channel_tickets(out);
    assert_eq!(fresh.len(), 2);
    let stale = ChannelTicket {
        conn: fresh[0].conn - 1,
        ..fresh[0].clone()
    };
    c.channel_authorized(stale, Ok(channel_auth()), t2);
    assert!(transmits(&mut c).is_empty());
    assert!(outputs(&mut c).is_empty());
    let name = fresh[0].channel.to_string();
    c.channel_authorized(fresh[0].clone(), Ok(channel_auth()), t2);
    assert_eq!(subscribes(&transmits(&mut c)), [name]);
}

#[test]
fn no_authorizer_fails_private_channels_at_once() {
    let t = Instant::now();
    let mut c = ClientCore::new(
        CoreConfig {
            has_authorizer: false,
            ..config()
        },
        sealed::Sender::new(),
        t,
        SystemTime::now(),
    );
    c.handle_frame(&established(120), t);
    outputs(&mut c);
    c.subscribe(shared("private-a"), t);
    let out = outputs(&mut c);
    assert!(!out.iter().any(|o| matches!(o, Output::AuthorizeChannel(_))));
    assert_eq!(events(&out)[0].event, event::SUBSCRIPTION_ERROR);
    assert_eq!(c.signin(), None);
    let out = outputs(&mut c);
    assert!(matches!(
        signin_results(&out).as_slice(),
        [Err(Error::Auth(AuthError::NoUserAuthentication))]
    ));
    assert_eq!(*c.signin_state(), Signin::Wanted);
}

#[test]
fn signin_is_one_state_machine() {
    let t = Instant::now();
    let mut c = new_core(t);
    outputs(&mut c);
    // Asked for offline: waits for the connection.
    assert_eq!(c.signin(), None);
    assert_eq!(*c.signin_state(), Signin::Wanted);
    assert!(outputs(&mut c).is_empty());
    c.handle_frame(&established(120), t);
    let ticket = user_ticket(outputs(&mut c)).unwrap();
    assert_eq!(*c.signin_state(), Signin::Authenticating { conn: 1 });
    // Asking again while in flight starts nothing new.
    assert_eq!(c.signin(), None);
    assert!(user_ticket(outputs(&mut c)).is_none());

    c.user_authenticated(ticket, Ok(user_auth("7")));
    assert_eq!(*c.signin_state(), Signin::Sent);
    let tx = transmits(&mut c);
    assert_eq!(tx[0]["event"], "pusher:signin");
    // The server refuses with pusher:error.
    c.handle_frame(
        &json!({"event":"pusher:error","data":{"code":4009,"message":"bad sig"}}).to_string(),
        t,
    );
    let out = outputs(&mut c);
    assert_eq!(signin_results(&out), [Err(Error::Signin("bad sig".into()))]);
    assert_eq!(*c.signin_state(), Signin::Wanted);

    // Again, this time accepted.
    assert_eq!(c.signin(), None);
    let ticket = user_ticket(outputs(&mut c)).unwrap();
    c.user_authenticated(ticket.clone(), Ok(user_auth("7")));
    transmits(&mut c);
    let data = json!({"user_data": json!({"id": "7"}).to_string()}).to_string();
    c.handle_frame(
        &json!({"event":"pusher:signin_success","data": data}).to_string(),
        t,
    );
    let out = outputs(&mut c);
    let user = UserId::parse("7").unwrap();
    assert_eq!(signin_results(&out), [Ok(user.clone())]);
    assert_eq!(events(&out)[0].event, event::SIGNIN_SUCCESS);
    assert_eq!(*c.signin_state(), Signin::SignedIn(user.clone()));
    assert_eq!(subscribes(&transmits(&mut c)), ["#server-to-user-7"]);
    assert_eq!(c.signin(), Some(user));
    // A late duplicate answer changes nothing.
    c.user_authenticated(ticket.clone(), Ok(user_auth("7")));
    assert!(transmits(&mut c).is_empty());

    // After a reconnect: signed in again, the user channel comes back through
    // the new sign-in, not a resubscription; the old ticket is stale.
    c.socket_lost("reset".into(), t);
    outputs(&mut c);
    assert_eq!(*c.signin_state(), Signin::Wanted);
    let (t2, out) = reconnect(&mut c);
    assert!(subscribes(&transmits(&mut c)).is_empty());
    let fresh = user_ticket(out).unwrap();
    c.user_authenticated(ticket, Ok(user_auth("7")));
    assert!(transmits(&mut c).is_empty());
    c.user_authenticated(fresh, Err(AuthError::Timeout));
    let out = outputs(&mut c);
    assert_eq!(signin_results(&out), [Err(Error::Auth(AuthError::Timeout))]);
    assert_eq!(events(&out)[0].event, event::SIGNIN_ERROR);
    let _ = t2;
}

#[test]
fn requests_are_correlated_by_id_and_time_out() {
    let t = Instant::now();
    let mut c = new_core(t);
    assert_eq!(
        c.request("r0".into(), "{}".into(), t),
        Err(DirectoryError::NotConnected)
    );
    c.handle_frame(&established(120), t);
    outputs(&mut c);
    c.request("r1".into(), "{\"n\":1}".into(), t).unwrap();
    c.request("r2".into(), "{\"n\":2}".into(), t + 10 * S)
        .unwrap();
    assert_eq!(transmits(&mut c).len(), 2);
    assert_eq!(c.poll_timeout(), Some(t + 30 * S));
    let answer = |id: &str| {
        json!({"event":"hush:response","data":{"id": id, "result": {"ok": id}}}).to_string()
    };
    c.handle_frame(&answer("r2"), t + 11 * S);
    c.handle_frame(&answer("nobody"), t + 11 * S);
    assert_eq!(
        responses(outputs(&mut c)),
        [("r2".to_owned(), Ok(json!({"ok": "r2"})))]
    );
    // The request timeout comes before the keepalive.
    assert_eq!(c.poll_timeout(), Some(t + 30 * S));
    c.handle_timeout(t + 30 * S);
    assert_eq!(
        responses(outputs(&mut c)),
        [("r1".to_owned(), Err(DirectoryError::Timeout))]
    );
    // A late answer is dropped.
    c.handle_frame(&answer("r1"), t + 31 * S);
    assert!(outputs(&mut c).is_empty());
    // Lost connection: whatever is in flight fails.
    c.request("r3".into(), "{}".into(), t + 31 * S).unwrap();
    c.socket_lost("reset".into(), t + 32 * S);
    let r = responses(outputs(&mut c));
    assert_eq!(r, [("r3".to_owned(), Err(DirectoryError::ConnectionLost))]);
    // Nothing sent on the dead socket leaks onto the next one.
    assert!(transmits(&mut c).is_empty());
}

#[test]
fn client_events_need_a_connected_subscribed_channel() {
    let t = Instant::now();
    let mut c = new_core(t);
    let a = ChannelName::parse("private-a").unwrap();
    assert_eq!(c.trigger(&a, "client-x", "{}"), Err(Error::NotConnected));
    c.handle_frame(&established(120), t);
    c.subscribe(shared("private-a"), t);
    outputs(&mut c);
    assert_eq!(
        c.trigger(&a, "client-x", "{}"),
        Err(Error::NotSubscribed("private-a".into()))
    );
    c.handle_frame(
        r#"{"event":"pusher_internal:subscription_succeeded","channel":"private-a","data":"{}"}"#,
        t,
    );
    c.trigger(&a, "client-x", r#"{"a":1}"#).unwrap();
    let tx = transmits(&mut c);
    assert_eq!(
        tx,
        [json!({"event":"client-x","channel":"private-a","data":{"a":1}})]
    );
}

#[test]
fn disconnect_stops_and_fails_waiters() {
    let t = Instant::now();
    let mut c = connected(t);
    c.request("r1".into(), "{}".into(), t).unwrap();
    transmits(&mut c);
    c.disconnect(t);
    let out = outputs(&mut c);
    assert!(matches!(out[0], Output::Close { graceful: true }));
    assert_eq!(states(&out), [ConnectionState::Disconnected]);
    assert!(matches!(
        signin_results(&out).as_slice(),
        [Err(Error::Closed)]
    ));
    assert!(matches!(out.last(), Some(Output::Stopped)));
    assert_eq!(
        responses(out),
        [("r1".to_owned(), Err(DirectoryError::ConnectionLost))]
    );
    assert!(c.is_stopped());
    // Frames after the stop go nowhere.
    c.handle_frame(r#"{"event":"pusher:ping"}"#, t);
    assert!(transmits(&mut c).is_empty());
}

#[test]
fn encrypted_channels_refetch_the_key_once_and_hold_events() {
    use hush_crypto::{ChannelKey, EncryptedData};
    let t = Instant::now();
    let mut c = connected(t);
    let ch = "private-encrypted-a";
    c.subscribe(shared(ch), t);
    let ticket = channel_tickets(outputs(&mut c)).pop().unwrap();
    let key = |b: u8| ChannelKey::from_bytes([b; 32]);
    let with_key = |k: ChannelKey, epoch: u64| ChannelAuthorization {
        shared_secret: Some(k),
        epoch,
        ..channel_auth()
    };
    c.channel_authorized(ticket, Ok(with_key(key(1), 0)), t);
    assert_eq!(subscribes(&transmits(&mut c)), [ch]);
    c.handle_frame(
        &json!({"event":"pusher_internal:subscription_succeeded","channel":ch,"data":"{}"})
            .to_string(),
        t,
    );
    outputs(&mut c);
    let frame = |k: &ChannelKey, epoch: u64, n: u64| {
        let data = EncryptedData::seal(k, json!({"n": n}).to_string().as_bytes())
            .with_epoch(epoch)
            .to_json();
        json!({"event": "news", "channel": ch, "data": data}).to_string()
    };
    c.handle_frame(&frame(&key(1), 0, 0), t);
    let out = outputs(&mut c);
    assert_eq!(events(&out)[0].data, json!({"n": 0}));

    // A rotation: the key is re-fetched once; events wait for it.
    c.handle_frame(&frame(&key(2), 1, 1), t);
    c.handle_frame(&frame(&key(2), 1, 2), t);
    let out = outputs(&mut c);
    assert!(events(&out).is_empty());
    let tickets = channel_tickets(out);
    assert_eq!(tickets.len(), 1);
    c.channel_authorized(tickets[0].clone(), Ok(with_key(key(2), 1)), t);
    let data: Vec<Value> = events(&outputs(&mut c))
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(data, [json!({"n": 1}), json!({"n": 2})]);
    assert!(
        transmits(&mut c).is_empty(),
        "a re-fetch does not resubscribe"
    );

    // The connection drops while a re-fetch is in flight: the held event
    // fails, and the late answer is ignored on the new connection.
    c.handle_frame(&frame(&key(3), 2, 3), t + S);
    let late = channel_tickets(outputs(&mut c)).pop().unwrap();
    c.socket_lost("reset".into(), t + S);
    let failed = events(&outputs(&mut c));
    assert_eq!(failed[0].event, event::DECRYPTION_FAILED);
    assert!(matches!(failed[0].failure, Some(DecryptError::NoKey(_))));
    let (t2, _) = reconnect(&mut c);
    c.channel_authorized(late, Ok(with_key(key(3), 2)), t2);
    assert!(outputs(&mut c).is_empty());
    assert!(transmits(&mut c).is_empty());
}
