//! Publishes to channels large enough to be written outside the channel lock
//! and split across threads (`hush_server::fanout`).

use serde_json::json;

use crate::common::*;

/// Opens `n` clients subscribed to `channel`, 64 at a time.
async fn subscribers(s: &TestServer, channel: &str, n: usize) -> Vec<Client> {
    let mut all = Vec::with_capacity(n);
    while all.len() < n {
        let batch = (n - all.len()).min(64);
        let opened = futures_util::future::join_all((0..batch).map(|_| async {
            let mut c = s.client().await;
            c.subscribe_ok(channel).await;
            c
        }))
        .await;
        all.extend(opened);
    }
    all
}

/// Every subscriber of a large channel gets every event exactly once, in
/// publish order, across single publishes and a batch; `socket_id` still
/// excludes its sender; the counts in the answer cover every socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_channel_delivery_is_complete_and_ordered() {
    // Each subscriber holds two descriptors in this process (client and
    // server side).
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() {
        let _ = rlimit::Resource::NOFILE.set(soft.max(4096).min(hard), hard);
    }
    let s = start(&app_toml("")).await;
    let n = hush_server::fanout::DEFER_MIN + 37;
    let mut subs = subscribers(&s, "big", n).await;
    let excluded = subs[0].sid().to_owned();
    let events = format!("/apps/{ID}/events");
    let body = json!({"name":"e","channel":"big","data":"0","socket_id":excluded,"info":"subscription_count"});
    assert_eq!(
        s.api("POST", &events, &[], &body.to_string()).await,
        (200, json!({"channels":{"big":{"subscription_count":n}}}))
    );
    for i in 1..20 {
        let body = json!({"name":"e","channel":"big","data":i.to_string()});
        assert_eq!(s.api("POST", &events, &[], &body.to_string()).await.0, 200);
    }
    let batch: Vec<_> = (20..30)
        .map(|i| json!({"name":"e","channel":"big","data":i.to_string()}))
        .collect();
    let (st, _) = s
        .api(
            "POST",
            &format!("/apps/{ID}/batch_events"),
            &[],
            &json!({ "batch": batch }).to_string(),
        )
        .await;
    assert_eq!(st, 200);
    for (k, c) in subs.iter_mut().enumerate() {
        let first = if k == 0 { 1 } else { 0 };
        for i in first..30 {
            let v = c.next_event().await;
            assert_eq!(
                (v["event"].as_str(), v["data"].as_str()),
                (Some("e"), Some(i.to_string().as_str())),
                "subscriber {k}"
            );
        }
    }
    subs[1]
        .expect_silence(std::time::Duration::from_millis(100))
        .await;
    s.stop().await;
}
