//! Three hush nodes as one, on a real `redis-server` (started by the test on
//! a free 127.0.0.1 port): deliveries, presence, users, webhooks exactly
//! once per cluster, node crashes and exits, Redis restarts, and a hostile
//! party on the bus.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::*;
use hush_testkit::redis::RedisServer;

/// Test nodes' lease (seconds).
const LEASE: u64 = 2;

/// Every webhook event the cluster sent, wherever it came from.
#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<Value>>>);

impl Hooks {
    async fn start() -> (Self, String) {
        let hooks = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let h = hooks.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |body: String| {
                let h = h.clone();
                async move {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    if let Some(events) = v["events"].as_array() {
                        h.0.lock().unwrap().extend(events.iter().cloned());
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (hooks, url)
    }

    fn count(&self, e: &Value) -> usize {
        self.0.lock().unwrap().iter().filter(|x| *x == e).count()
    }

    fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

fn node_toml(redis: &str, hook_url: Option<&str>) -> String {
    let mut s = format!(
        "[cluster]\nredis_url = \"{redis}\"\nlease = {LEASE}\nprefix = \"t:\"\n\
         [webhooks]\nbackoff_base_ms = 50\nbackoff_max_ms = 200\nbatch_window_ms = 10\n\
         vacate_delay_ms = 0\nmax_attempts = 3\ntimeout = 5\n{}",
        app_toml("client_events = true")
    );
    if let Some(url) = hook_url {
        s.push_str(&format!(
            "[[apps.main.webhooks]]\nurl = \"{url}\"\nevent_types = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\"]\n"
        ));
    }
    s
}

async fn nodes(redis: &RedisServer, n: usize, hook_url: Option<&str>) -> Vec<TestServer> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TestServer::start(&node_toml(&redis.url(), hook_url)).await);
    }
    out
}

/// Waits (bounded) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A frame's `data`, parsed when it is a JSON string.
fn data(ev: &Value) -> Value {
    ev["data"]
        .as_str()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_else(|| ev["data"].clone())
}

async fn info(s: &TestServer, channel: &str, info: &str) -> Value {
    s.api(
        "GET",
        &format!("/apps/{ID}/channels/{channel}"),
        &[("info", info)],
        "",
    )
    .await
    .1
}

async fn subscriptions(s: &TestServer, channel: &str) -> u64 {
    info(s, channel, "subscription_count").await["subscription_count"]
        .as_u64()
        .unwrap_or(0)
}

async fn users(s: &TestServer, channel: &str) -> u64 {
    info(s, channel, "user_count").await["user_count"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until every node counts `n` subscribers on `channel`.
async fn all_count(nodes: &[TestServer], channel: &str, n: u64) {
    for s in nodes {
        eventually(&format!("{n} subscribers on {channel}"), || async {
            subscriptions(s, channel).await == n
        })
        .await;
    }
}

#[tokio::test]
async fn api_publish_and_client_events_reach_every_node_but_the_excluded_socket() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 3, None).await;
    let mut a = n[0].client().await;
    let mut b1 = n[1].client().await;
    let mut b2 = n[1].client().await;
    let mut c = n[2].client().await;
    for cl in [&mut a, &mut b1, &mut b2, &mut c] {
        cl.subscribe_ok("private-news").await;
    }
    all_count(&n, "private-news", 4).await;
    // Published through A, excluding b2's socket.
    let body = json!({"name":"e","channels":["private-news"],"data":"hi","socket_id":b2.sid()})
        .to_string();
    let (st, _) = n[0]
        .api("POST", &format!("/apps/{ID}/events"), &[], &body)
        .await;
    assert_eq!(st, 200);
    for cl in [&mut a, &mut b1, &mut c] {
        let ev = cl.expect("e").await;
        assert_eq!(ev["data"], "hi");
    }
    b2.expect_no("e", Duration::from_millis(500)).await;
    // A client event from C reaches A and B, not C itself.
    c.send(json!({"event":"client-typing","channel":"private-news","data":{"x":1}}))
        .await;
    for cl in [&mut a, &mut b1, &mut b2] {
        assert_eq!(cl.expect("client-typing").await["data"], json!({"x":1}));
    }
    c.expect_no("client-typing", Duration::from_millis(500))
        .await;
    // /channels is cluster-wide.
    let (_, v) = n[2]
        .api(
            "GET",
            &format!("/apps/{ID}/channels"),
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(
        v,
        json!({"channels":{"private-news":{"subscription_count":4}}})
    );
    for s in n {
        s.stop().await;
    }
}

#[tokio::test]
async fn presence_across_nodes_counts_each_user_once() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 3, None).await;
    let ch = "presence-room";
    let mut a = n[0].client().await;
    a.join_presence(ch, "u1", json!({"name":"one"})).await;
    eventually("u1 seen on B", || async { users(&n[1], ch).await == 1 }).await;
    // B's member list has A's member.
    let mut b = n[1].client().await;
    let p = b.join_presence(ch, "u2", json!({"name":"two"})).await;
    assert_eq!(p["presence"]["count"], 2, "{p}");
    assert_eq!(p["presence"]["hash"]["u1"], json!({"name":"one"}), "{p}");
    // A hears u2 join on B.
    let ev = a.expect("pusher_internal:member_added").await;
    assert_eq!(data(&ev)["user_id"], "u2", "{ev}");
    // u1 again, on C: counted once, nobody hears a second member_added.
    let mut c = n[2].client().await;
    let p = c.join_presence(ch, "u1", json!({"name":"one"})).await;
    assert_eq!(p["presence"]["count"], 2, "{p}");
    all_count(&n, ch, 3).await;
    for s in &n {
        assert_eq!(users(s, ch).await, 2);
    }
    b.expect_no("pusher_internal:member_added", Duration::from_millis(300))
        .await;
    // u1 leaves A: still on C, nothing removed.
    drop(a);
    all_count(&n, ch, 2).await;
    b.expect_no("pusher_internal:member_removed", Duration::from_millis(300))
        .await;
    // u1 leaves C: B hears it.
    drop(c);
    let ev = b.expect("pusher_internal:member_removed").await;
    assert_eq!(data(&ev)["user_id"], "u1", "{ev}");
    let (_, v) = n[0]
        .api("GET", &format!("/apps/{ID}/channels/{ch}/users"), &[], "")
        .await;
    assert_eq!(v, json!({"users":[{"id":"u2"}]}));
    for s in n {
        s.stop().await;
    }
}

/// What a client or backend was told is what every node answers next, with
/// no waiting: a member whose `subscription_succeeded` arrived on node A is
/// in node B's API answer and in the member list of a join on node C sent
/// right after; a cache event published through A (200) is replayed to a
/// subscriber of B right after. Without `App::settle` (ask every node
/// through the bus, wait for each answer) the reads race the bus and some of
/// the 25 rounds fail.
#[tokio::test]
async fn reads_see_what_anyone_was_told_before_them() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 3, None).await;
    let mut a = n[0].client().await;
    let mut c = n[2].client().await;
    let mut b = n[1].client().await;
    for round in 0..25 {
        let ch = format!("presence-told-{round}");
        a.join_presence(&ch, "u1", json!({})).await;
        let (_, v) = n[1]
            .api("GET", &format!("/apps/{ID}/channels/{ch}/users"), &[], "")
            .await;
        assert_eq!(v, json!({"users":[{"id":"u1"}]}), "round {round}");
        let p = c.join_presence(&ch, "u2", json!({})).await;
        assert_eq!(p["presence"]["count"], 2, "round {round}: {p}");
        a.expect("pusher_internal:member_added").await;

        let cache = format!("cache-told-{round}");
        let (st, _) = n[0].trigger(&cache, "q", "42").await;
        assert_eq!(st, 200);
        b.subscribe_ok(&cache).await;
        let ev = b.expect_any(&["q", "pusher:cache_miss"]).await;
        assert_eq!(ev["event"], "q", "round {round}: {ev}");
    }
    for s in n {
        s.stop().await;
    }
}

/// PUBLISH commands Redis has run (every bus message is one).
async fn publishes(redis: &RedisServer) -> u64 {
    let stats = redis.command(&["INFO", "commandstats"]).await;
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_publish:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A client polling the HTTP API's channel questions as fast as it can
/// (each such read settles across the cluster) costs the bus one settle
/// request and one answer per other node per round trip, not per read:
/// 200 reads would otherwise be 200 broadcasts and 400 answers.
#[tokio::test]
async fn attack_polling_reads_share_their_settles() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 3, None).await;
    // Every node has heard from the others (their heartbeats), so each
    // settle waits for two answers.
    tokio::time::sleep(Duration::from_millis(LEASE * 1000 / 2)).await;
    let path = format!("/apps/{ID}/channels");
    let before = publishes(&redis).await;
    let started = Instant::now();
    for _ in 0..4 {
        let reads = (0..50).map(|_| n[0].api("GET", &path, &[], ""));
        for (status, body) in futures_util::future::join_all(reads).await {
            assert_eq!(status, 200, "{body}");
        }
    }
    let spent = started.elapsed();
    let published = publishes(&redis).await - before;
    // Heartbeats: each node sends one Load every lease/3. One request per
    // read would be 3 messages per read (600); grouped, a round trip's
    // readers share 3 (25 here). The bound leaves a slow machine room for
    // up to 100 rounds.
    let heartbeats = 3 * (spent.as_millis() as u64 / (LEASE * 1000 / 3) + 1);
    assert!(
        published <= heartbeats + 3 * 100,
        "{published} bus messages for 200 reads in {spent:?} ({heartbeats} heartbeats)"
    );
    for s in n {
        s.stop().await;
    }
}

/// Ten `/channels` reads on `s` (each settles): how long they took.
async fn ten_reads(s: &TestServer) -> Duration {
    let started = Instant::now();
    for _ in 0..10 {
        let (status, body) = s.api("GET", &format!("/apps/{ID}/channels"), &[], "").await;
        assert_eq!(status, 200, "{body}");
    }
    started.elapsed()
}

/// Apps come and go by reloads one node at a time. A node that does not
/// serve an app (it never had it, or a reload removed it there first)
/// must not make the others' reads of it wait: a settle waiting for an
/// answer that never comes costs 500 ms per read (ten reads: 5 s).
#[tokio::test]
async fn reads_do_not_wait_for_a_node_without_the_app() {
    let redis = RedisServer::start().await;
    let other = "[apps.other]\nid = 'o'\nkey = 'ko'\nsecret = 'so'\n";
    let both = format!("{}{other}", node_toml(&redis.url(), None));
    let a = TestServer::start(&both).await;
    let b = TestServer::start(&both).await;
    // C serves only the other app (heard on its bus, never on main's).
    let only_other = both.replace(&app_toml("client_events = true"), "");
    assert!(!only_other.contains("[apps.main]"));
    let c = TestServer::start(&only_other).await;
    // Every node has heard the others' heartbeats.
    tokio::time::sleep(Duration::from_millis(LEASE * 1000 / 2)).await;
    let spent = ten_reads(&b).await;
    assert!(
        spent < Duration::from_millis(2500),
        "C never served main: {spent:?}"
    );
    // A reload removes main on A first: A still answers main's settles.
    let reloaded = a
        .state()
        .reload_apps(&hush_server::Config::from_toml(&only_other).unwrap());
    assert_eq!(reloaded.removed, [ID]);
    let spent = ten_reads(&b).await;
    assert!(
        spent < Duration::from_millis(2500),
        "A removed main: {spent:?}"
    );
    for s in [a, b, c] {
        s.stop().await;
    }
}

/// A connection to `s` that gets `connection_established`, retried for up
/// to 15 s (a refused one is closed 4004).
async fn connected_within(s: &TestServer, what: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let mut x = s.connect().await;
        if let Some(Next::Frame(f)) = x.next_within(Duration::from_secs(2)).await {
            if f["event"] == "pusher:connection_established" {
                return x;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A node's configuration with an app connection quota of `max`.
fn quota_toml(redis: &RedisServer, max: usize) -> String {
    node_toml(&redis.url(), None).replace(
        "client_events = true",
        &format!("client_events = true\nmax_connections = {max}"),
    )
}

/// The app connection quota counts every node's connections exactly, at
/// once (a slot is taken in one atomic step in Redis): two connections on
/// A and B fill a quota of 2, a third on C is refused 4004 right away; a
/// slot freed on A is taken on C; a crashed node's slots are freed with its
/// lease.
#[tokio::test]
async fn the_app_connection_quota_is_exact_across_nodes() {
    let redis = RedisServer::start().await;
    let toml = quota_toml(&redis, 2);
    let mut n = Vec::new();
    for _ in 0..3 {
        n.push(TestServer::start(&toml).await);
    }
    let a = n[0].client().await;
    let _b = n[1].client().await;
    let mut refused = n[2].connect().await;
    assert_eq!(refused.expect_close().await, Some(4004));
    drop(a);
    let c = connected_within(&n[2], "a slot freed on A taken on C").await;
    let mut full = n[0].connect().await;
    assert_eq!(full.expect_close().await, Some(4004));
    // B dies with its slot: freed once its lease runs out.
    n[1].state().cluster_node().unwrap().crash();
    let d = connected_within(&n[0], "B's slot freed").await;
    drop(d);
    drop(c);
    for s in n {
        s.stop().await;
    }
}

/// A node's slot count that Redis got wrong (a release lost while Redis
/// was unreachable, or Redis restarted empty) is set right by the node's
/// next heartbeat: a leaked slot does not refuse connections for good.
#[tokio::test]
async fn a_wrong_slot_count_is_set_right_by_the_next_heartbeat() {
    let redis = RedisServer::start().await;
    let toml = quota_toml(&redis, 2);
    let n = [
        TestServer::start(&toml).await,
        TestServer::start(&toml).await,
    ];
    let _a = n[0].client().await;
    let key = format!("t:{{app:{ID}}}#slots");
    let a_node = n[0].state().cluster_node().unwrap().node().0.to_string();
    // Redis now believes A holds both slots (one of them leaked).
    let set = redis.command(&["HSET", &key, &a_node, "2"]).await;
    assert!(set.starts_with(':'), "{set}");
    let mut refused = n[1].connect().await;
    assert_eq!(refused.expect_close().await, Some(4004));
    // A's heartbeat (every lease/3) writes its real count back.
    let b = connected_within(&n[1], "A's leaked slot set right").await;
    // And the quota still holds: A and B have one each.
    let mut full = n[0].connect().await;
    assert_eq!(full.expect_close().await, Some(4004));
    drop(b);
    for s in n {
        s.stop().await;
    }
}

/// Redis over TLS with a certificate of a private CA: nodes that trust it
/// (`cluster.tls_ca_file`) carry the bus over TLS; a node that does not
/// refuses the server (its bus stays down: `/ready` 503, and nothing of the
/// others reaches it).
#[tokio::test]
async fn attack_a_tls_redis_is_used_only_when_its_certificate_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (cert, key) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let redis = RedisServer::start_tls(&cert, &key).await;
    let trusted = node_toml(&redis.tls_url(), None).replace(
        "prefix = \"t:\"\n",
        &format!(
            "prefix = \"t:\"\ntls_ca_file = {:?}\n",
            cert.display().to_string()
        ),
    );
    assert!(trusted.contains("tls_ca_file"), "{trusted}");
    let n = vec![
        TestServer::start(&trusted).await,
        TestServer::start(&trusted).await,
    ];
    let mut sub = n[1].client().await;
    sub.subscribe_ok("over-tls").await;
    all_count(&n, "over-tls", 1).await;
    let (st, _) = n[0].trigger("over-tls", "e", "1").await;
    assert_eq!(st, 200);
    let ev = sub.expect("e").await;
    assert_eq!(ev["channel"], "over-tls", "{ev}");
    // Without the CA: the certificate is not trusted, the bus never comes up.
    let untrusted = TestServer::start(&node_toml(&redis.tls_url(), None)).await;
    assert_eq!(ready(&untrusted).await, 503);
    let mut lone = untrusted.client().await;
    lone.subscribe_ok("over-tls").await;
    let (st, _) = n[0].trigger("over-tls", "e", "2").await;
    assert_eq!(st, 200);
    lone.expect_no("e", Duration::from_millis(500)).await;
    untrusted.stop().await;
    for s in n {
        s.stop().await;
    }
}

#[tokio::test]
async fn a_cache_channels_last_event_is_replayed_on_another_node() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 2, None).await;
    let (st, _) = n[0].trigger("cache-quotes", "q", "42").await;
    assert_eq!(st, 200);
    // Once B has it (published before anyone subscribed anywhere).
    eventually("the cached event on B", || async {
        let v = info(&n[1], "cache-quotes", "cache").await;
        v["cache"]["data"] == "42"
    })
    .await;
    let mut b = n[1].client().await;
    b.subscribe_ok("cache-quotes").await;
    let ev = b.next_event().await;
    assert_eq!(
        (ev["event"].clone(), ev["data"].clone()),
        (json!("q"), json!("42"))
    );
    // A node joining later gets it through the resynchronisation.
    let late = TestServer::start(&node_toml(&redis.url(), None)).await;
    eventually("the cached event on a later node", || async {
        info(&late, "cache-quotes", "cache").await["cache"]["data"] == "42"
    })
    .await;
    late.stop().await;
    for s in n {
        s.stop().await;
    }
}

#[tokio::test]
async fn webhooks_go_out_once_per_cluster() {
    let redis = RedisServer::start().await;
    let (hooks, url) = Hooks::start().await;
    let n = nodes(&redis, 3, Some(&url)).await;
    // Occupied on A, vacated on C.
    let mut a = n[0].client().await;
    a.subscribe_ok("room").await;
    all_count(&n, "room", 1).await;
    let mut c = n[2].client().await;
    c.subscribe_ok("room").await;
    all_count(&n, "room", 2).await;
    drop(a);
    all_count(&n, "room", 1).await;
    drop(c);
    all_count(&n, "room", 0).await;
    // Presence: u on A and B, then gone.
    let ch = "presence-p";
    let mut pa = n[0].client().await;
    pa.join_presence(ch, "u", json!({})).await;
    let mut pb = n[1].client().await;
    pb.join_presence(ch, "u", json!({})).await;
    all_count(&n, ch, 2).await;
    drop(pa);
    drop(pb);
    all_count(&n, ch, 0).await;
    let want = [
        json!({"name":"channel_occupied","channel":"room"}),
        json!({"name":"channel_vacated","channel":"room"}),
        json!({"name":"channel_occupied","channel":ch}),
        json!({"name":"member_added","channel":ch,"user_id":"u"}),
        json!({"name":"member_removed","channel":ch,"user_id":"u"}),
        json!({"name":"channel_vacated","channel":ch}),
    ];
    eventually("every webhook", || async {
        want.iter().all(|e| hooks.count(e) >= 1)
    })
    .await;
    // Time for duplicates to arrive, if any were sent.
    tokio::time::sleep(Duration::from_millis(700)).await;
    for e in &want {
        assert_eq!(hooks.count(e), 1, "{e} in {:?}", hooks.all());
    }
    assert_eq!(hooks.all().len(), want.len(), "{:?}", hooks.all());
    for s in n {
        s.stop().await;
    }
}

#[tokio::test]
async fn a_crashed_nodes_members_leave_within_the_lease_and_once() {
    let redis = RedisServer::start().await;
    let (hooks, url) = Hooks::start().await;
    let n = nodes(&redis, 3, Some(&url)).await;
    let ch = "presence-crash";
    let mut a = n[0].client().await;
    a.join_presence(ch, "ua", json!({})).await;
    let mut b = n[1].client().await;
    b.join_presence(ch, "ub", json!({})).await;
    a.expect("pusher_internal:member_added").await;
    all_count(&n, ch, 2).await;
    let added = json!({"name":"member_added","channel":ch,"user_id":"ub"});
    eventually("ub's member_added", || async { hooks.count(&added) == 1 }).await;
    // B dies without a word.
    n[1].state().cluster_node().unwrap().crash();
    let t = Instant::now();
    let ev = a.expect("pusher_internal:member_removed").await;
    assert_eq!(data(&ev)["user_id"], "ub", "{ev}");
    let took = t.elapsed();
    assert!(
        took <= Duration::from_millis(LEASE * 1000 + 1500),
        "{took:?}"
    );
    let removed = json!({"name":"member_removed","channel":ch,"user_id":"ub"});
    eventually("ub's member_removed", || async {
        hooks.count(&removed) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(LEASE * 1000)).await;
    assert_eq!(hooks.count(&removed), 1, "{:?}", hooks.all());
    assert_eq!(users(&n[2], ch).await, 1);
    assert_eq!(subscriptions(&n[0], ch).await, 1);
    let mut it = n.into_iter();
    let (na, nb, nc) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    nb.stop().await;
    // A graceful exit: at once, well within the lease.
    let t = Instant::now();
    na.stop().await;
    eventually("ua gone from C", || async { users(&nc, ch).await == 0 }).await;
    assert!(
        t.elapsed() < Duration::from_millis(LEASE * 1000),
        "{:?}",
        t.elapsed()
    );
    nc.stop().await;
}

#[tokio::test]
async fn terminate_server_to_user_and_watchlists_across_nodes() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 3, None).await;
    let mut w = n[0].client().await;
    w.signin(r#"{"id":"watcher","watchlist":["bob"]}"#).await;
    let ev = w.next_event().await;
    assert_eq!(
        ev["data"]["events"][0],
        json!({"name":"offline","user_ids":["bob"]})
    );
    let mut bob = n[1].signed_in("bob").await;
    let ev = w.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        ev["data"]["events"][0],
        json!({"name":"online","user_ids":["bob"]})
    );
    // Server-to-user through C.
    let (st, _) = n[2].trigger("#server-to-user-bob", "hello", "x").await;
    assert_eq!(st, 200);
    assert_eq!(bob.expect("hello").await["data"], "x");
    // A second connection of bob elsewhere: no second online.
    let bob2 = n[2].signed_in("bob").await;
    w.expect_no(
        "pusher_internal:watchlist_events",
        Duration::from_millis(300),
    )
    .await;
    // Terminated through A: both of bob's connections close with 4009.
    let (st, _) = n[0]
        .api(
            "POST",
            &format!("/apps/{ID}/users/bob/terminate_connections"),
            &[],
            "{}",
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(bob.expect_close().await, Some(4009));
    let mut bob2 = bob2;
    assert_eq!(bob2.expect_close().await, Some(4009));
    let ev = w.expect("pusher_internal:watchlist_events").await;
    assert_eq!(
        ev["data"]["events"][0],
        json!({"name":"offline","user_ids":["bob"]})
    );
    for s in n {
        s.stop().await;
    }
}

/// A watchlist's first answer sees every sign-in anyone was told about
/// before it, on any node (the compat cluster run once caught a user signed
/// in on another node missing from it).
#[tokio::test]
async fn a_watchlist_sees_who_signed_in_elsewhere_before_it() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 3, None).await;
    let mut users = Vec::new();
    for round in 0..25 {
        let user = format!("u{round}");
        users.push(n[1].signed_in(&user).await);
        let mut w = n[2].client().await;
        w.signin(&format!(r#"{{"id":"w{round}","watchlist":["{user}"]}}"#))
            .await;
        let ev = w.expect("pusher_internal:watchlist_events").await;
        assert_eq!(
            ev["data"]["events"][0],
            json!({"name":"online","user_ids":[user]}),
            "round {round}"
        );
    }
    drop(users);
    for s in n {
        s.stop().await;
    }
}

async fn ready(s: &TestServer) -> u16 {
    s.raw_http("GET", "/ready", "").await.0
}

#[tokio::test]
async fn a_redis_restart_mid_traffic_resumes_delivery_and_counts_converge() {
    let mut redis = RedisServer::start().await;
    let n = nodes(&redis, 2, None).await;
    // A third node whose /ready ignores Redis.
    let steady = TestServer::start(
        &node_toml(&redis.url(), None).replace("lease = ", "ready_grace = false\nlease = "),
    )
    .await;
    let mut a = n[0].client().await;
    a.subscribe_ok("live").await;
    let mut b = n[1].client().await;
    b.subscribe_ok("live").await;
    all_count(&n, "live", 2).await;
    assert_eq!(ready(&n[0]).await, 200);
    redis.kill();
    eventually("503 while Redis is down", || async {
        ready(&n[0]).await == 503
    })
    .await;
    assert_eq!(ready(&steady).await, 200, "ready_grace = false");
    // Local clients are still served; the view changes while Redis is away.
    let mut b2 = n[1].client().await;
    b2.subscribe_ok("live").await;
    let (st, _) = n[1].trigger("live", "local", "1").await;
    assert_eq!(st, 200);
    assert_eq!(b.expect("local").await["data"], "1");
    redis.restart().await;
    eventually("200 once Redis is back", || async {
        ready(&n[0]).await == 200
    })
    .await;
    // Counts converge (B's third subscriber, made during the outage).
    all_count(&n, "live", 3).await;
    // Delivery across nodes resumes.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(Instant::now() < deadline, "delivery did not resume");
        let (st, _) = n[0].trigger("live", "after", "2").await;
        if st == 200
            && matches!(
                b.next_within(Duration::from_millis(300)).await,
                Some(Next::Frame(v)) if v["event"] == "after"
            )
        {
            break;
        }
    }
    steady.stop().await;
    for s in n {
        s.stop().await;
    }
}

/// A node started while Redis is down serves its own clients, answers 503
/// on `/ready`, and joins the bus once Redis answers.
#[tokio::test]
async fn a_node_started_while_redis_is_down_joins_when_it_answers() {
    let mut redis = RedisServer::start().await;
    let a = TestServer::start(&node_toml(&redis.url(), None)).await;
    let mut ca = a.client().await;
    ca.subscribe_ok("late-news").await;
    redis.kill();
    let b = TestServer::start(&node_toml(&redis.url(), None)).await;
    assert_eq!(ready(&b).await, 503);
    let mut cb = b.client().await;
    cb.subscribe_ok("late-news").await;
    let (st, _) = b.trigger("late-news", "local", "1").await;
    assert_eq!(st, 200);
    assert_eq!(cb.expect("local").await["data"], "1");
    redis.restart().await;
    eventually("B ready", || async { ready(&b).await == 200 }).await;
    let n = [a, b];
    all_count(&n, "late-news", 2).await;
    let (st, _) = n[0].trigger("late-news", "joined", "2").await;
    assert_eq!(st, 200);
    assert_eq!(cb.expect("joined").await["data"], "2");
    for s in n {
        s.stop().await;
    }
}

/// A node that dies while Redis is down, and Redis restarted empty (its
/// lease entry gone with it): the others drop it once they have not heard
/// from it for one and a half leases.
#[tokio::test]
async fn a_node_dying_during_a_redis_outage_is_dropped_after_it() {
    let mut redis = RedisServer::start().await;
    let (hooks, url) = Hooks::start().await;
    let n = nodes(&redis, 2, Some(&url)).await;
    let ch = "presence-outage";
    let mut a = n[0].client().await;
    a.join_presence(ch, "ua", json!({})).await;
    let mut b = n[1].client().await;
    b.join_presence(ch, "ub", json!({})).await;
    a.expect("pusher_internal:member_added").await;
    redis.kill();
    n[1].state().cluster_node().unwrap().crash();
    redis.restart().await;
    let t = Instant::now();
    let ev = a.expect("pusher_internal:member_removed").await;
    assert_eq!(data(&ev)["user_id"], "ub", "{ev}");
    assert!(
        t.elapsed() < Duration::from_secs(3 * LEASE + 3),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(users(&n[0], ch).await, 1);
    let removed = json!({"name":"member_removed","channel":ch,"user_id":"ub"});
    eventually("ub's member_removed webhook", || async {
        hooks.count(&removed) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hooks.count(&removed), 1, "{:?}", hooks.all());
    for s in n {
        s.stop().await;
    }
}

#[tokio::test]
async fn attack_garbage_on_the_bus_is_counted_and_ignored() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 2, None).await;
    let mut b = n[1].client().await;
    b.subscribe_ok("news").await;
    all_count(&n, "news", 1).await;
    let bus = format!("t:{{app:{ID}}}#bus");
    let node = n[1].state().cluster_node().unwrap().clone();
    let before = node.bad_messages();
    let hostile: [&[u8]; 6] = [
        b"garbage",
        b"{\"v\":1}",
        br#"{"v":9,"node":5,"app":"3","ts":0,"msg":"sync_request"}"#,
        br#"{"v":1,"node":5,"app":"3","ts":0,"msg":{"event":{"channel":"no way!","frame":"x","except":null,"cache":null}}}"#,
        br#"{"v":1,"node":5,"app":"other","ts":0,"msg":{"event":{"channel":"news","frame":"{\"event\":\"forged\"}","except":null,"cache":null}}}"#,
        br#"{"v":1,"node":5,"app":"3","ts":0,"msg":{"self_destruct":{}}}"#,
    ];
    for h in hostile {
        assert!(redis.publish(&bus, h).await >= 2);
    }
    let big = vec![b'x'; 17 << 20];
    redis.publish(&bus, &big).await;
    // Another app's event injected on this app's bus reaches nobody.
    b.expect_no("forged", Duration::from_millis(500)).await;
    eventually("every hostile message counted", || async {
        node.bad_messages() >= before + 7
    })
    .await;
    // Both nodes keep serving, across the bus.
    let (st, _) = n[0].trigger("news", "real", "1").await;
    assert_eq!(st, 200);
    assert_eq!(b.expect("real").await["data"], "1");
    for s in n {
        s.stop().await;
    }
}

#[tokio::test]
async fn cluster_metrics_are_exported() {
    let redis = RedisServer::start().await;
    let a = TestServer::start(&node_toml(&redis.url(), None)).await;
    let mut config = hush_server::Config::from_toml(&format!(
        "{}[metrics]\nenabled = true\nhost = '127.0.0.1'\nport = 0\n",
        node_toml(&redis.url(), None)
    ))
    .unwrap();
    config.store.url = Some("sqlite::memory:".into());
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    let server = hush_server::Server::bind(config).await.unwrap();
    let metrics = server.metrics_addr().unwrap();
    let b = server.spawn();
    let scrape = || async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(metrics).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    };
    let (st, _) = a.trigger("news", "e", "1").await;
    assert_eq!(st, 200);
    eventually("cluster metrics", || async {
        let text = scrape().await;
        text.contains("hush_cluster_bus_messages_total{dir=\"in\"}")
            && text.contains("hush_cluster_bus_messages_total{dir=\"out\"}")
            && text.contains("hush_cluster_bus_lag_seconds")
            && text.contains("hush_cluster_nodes 2")
    })
    .await;
    a.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), b.stop()).await;
}

/// Events and presence across two nodes whose bus runs through `url`
/// (returned running).
async fn two_nodes_over(url: &str) -> [TestServer; 2] {
    let a_node = TestServer::start(&node_toml(url, None)).await;
    let b_node = TestServer::start(&node_toml(url, None)).await;
    let n = [a_node, b_node];
    let ch = "presence-over";
    let mut a = n[0].client().await;
    a.join_presence(ch, "ua", json!({})).await;
    all_count(&n, ch, 1).await;
    let mut b = n[1].client().await;
    let p = b.join_presence(ch, "ub", json!({})).await;
    assert_eq!(p["presence"]["count"], 2, "{p}");
    assert_eq!(
        data(&a.expect("pusher_internal:member_added").await)["user_id"],
        "ub"
    );
    let (st, _) = n[0].trigger(ch, "e", "1").await;
    assert_eq!(st, 200);
    assert_eq!(b.expect("e").await["data"], "1");
    n
}

#[tokio::test]
async fn a_redis_cluster_carries_the_bus_on_sharded_pub_sub() {
    let redis = RedisServer::start_cluster().await;
    let n = two_nodes_over(&redis.cluster_url()).await;
    // The bus is a shard channel (both nodes hear SPUBLISH), not a plain one.
    let bus = format!("t:{{app:{ID}}}#bus");
    assert_eq!(redis.command(&["SPUBLISH", &bus, "x"]).await, ":2");
    assert_eq!(redis.command(&["PUBLISH", &bus, "x"]).await, ":0");
    for s in n {
        s.stop().await;
    }
}

#[tokio::test]
async fn sentinel_finds_the_master() {
    let master = RedisServer::start().await;
    let sentinel = RedisServer::start_sentinel(&master).await;
    let n = two_nodes_over(&sentinel.sentinel_url()).await;
    // The bus runs through the master Sentinel named.
    let bus = format!("t:{{app:{ID}}}#bus");
    assert_eq!(master.command(&["PUBLISH", &bus, "x"]).await, ":2");
    for s in n {
        s.stop().await;
    }
}

/// A burst of publishes (sent as pipelines by the writer) arrives whole and,
/// from one publisher's sequence, in order.
#[tokio::test]
async fn a_burst_of_publishes_arrives_whole_and_in_order() {
    let redis = RedisServer::start().await;
    let n = nodes(&redis, 2, None).await;
    let mut b = n[1].client().await;
    b.subscribe_ok("burst").await;
    all_count(&n, "burst", 1).await;
    // Ten batches of ten events each, concurrently.
    let batch = |k: usize| {
        let events: Vec<Value> = (0..10)
            .map(|i| json!({"name":"e","channel":"burst","data":format!("{}", k * 10 + i)}))
            .collect();
        json!({ "batch": events }).to_string()
    };
    let bodies: Vec<String> = (0..10).map(batch).collect();
    let path = format!("/apps/{ID}/batch_events");
    let sent =
        futures_util::future::join_all(bodies.iter().map(|b| n[0].api("POST", &path, &[], b)))
            .await;
    assert!(sent.iter().all(|(st, _)| *st == 200), "{sent:?}");
    let mut got: Vec<usize> = Vec::new();
    for _ in 0..100 {
        let ev = b.expect("e").await;
        got.push(ev["data"].as_str().unwrap().parse().unwrap());
    }
    // Within each batch (one request), in order.
    for k in 0..10 {
        let of_k: Vec<usize> = got.iter().copied().filter(|v| v / 10 == k).collect();
        assert_eq!(of_k, (k * 10..k * 10 + 10).collect::<Vec<_>>());
    }
    b.expect_no("e", Duration::from_millis(300)).await;
    for s in n {
        s.stop().await;
    }
}
