use serde_json::{Value, json};

use crate::common::*;

const NONCE_CT: &str = r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#;

#[tokio::test]
async fn trigger_many_channels_with_exclusion_and_info() {
    let s = start(&app_toml("")).await;
    let mut a = s.client().await;
    let mut b = s.client().await;
    a.subscribe_ok("news").await;
    b.subscribe_ok("news").await;
    b.subscribe_ok("sport").await;
    let body = json!({"name":"e","channels":["news","sport"],"data":"{\"a\":1}","socket_id":a.sid(),"info":"subscription_count"}).to_string();
    let (st, v) = s
        .api("POST", &format!("/apps/{ID}/events"), &[], &body)
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({"channels":{"news":{"subscription_count":2},"sport":{"subscription_count":1}}})
    );
    assert_eq!(
        b.next_event().await,
        json!({"event":"e","channel":"news","data":"{\"a\":1}"})
    );
    assert_eq!(b.next_event().await["channel"], "sport");
    a.expect_silence(std::time::Duration::from_millis(150))
        .await;
    // Single `channel` (PHP SDK) and non-string data (lenient).
    let body = json!({"name":"e2","channel":"news","data":{"k":[1,2]}}).to_string();
    assert_eq!(
        s.api("POST", &format!("/apps/{ID}/events"), &[], &body)
            .await,
        (200, json!({}))
    );
    assert_eq!(a.next_event().await["data"], "{\"k\":[1,2]}");
    s.stop().await;
}

/// The API keeps `data` as the string literal it arrived as, re-escaping
/// only escapes hush writes differently: every channel's frame (and a cache
/// channel's replay) is byte for byte the frame of the decoded string.
#[tokio::test]
async fn data_literal_frames_are_byte_identical() {
    let s = start(&app_toml("")).await;
    let mut a = s.client().await;
    a.subscribe_ok("news").await;
    a.subscribe_ok("sport").await;
    for literal in [
        r#""{\"id\":42,\"t\":\"plain ✓\"}""#,
        r#""caf\u00e9 \u00E9 a\/b \b\f \"q\" \u001F \ud83d\ude00 😀 \\""#,
    ] {
        let text: String = serde_json::from_str(literal).unwrap();
        let body = format!(r#"{{"name":"e","channels":["news","sport"],"data":{literal}}}"#);
        let (st, _) = s
            .api("POST", &format!("/apps/{ID}/events"), &[], &body)
            .await;
        assert_eq!(st, 200, "{literal}");
        for ch in ["news", "sport"] {
            assert_eq!(
                a.next_text().await,
                hush_protocol::wire::channel_event("e", ch, &text),
                "{literal}"
            );
        }
        let body = format!(r#"{{"name":"e","channel":"cache-x","data":{literal}}}"#);
        let (st, _) = s
            .api("POST", &format!("/apps/{ID}/events"), &[], &body)
            .await;
        assert_eq!(st, 200, "{literal}");
        let mut late = s.client().await;
        late.subscribe_ok("cache-x").await;
        assert_eq!(
            late.next_text().await,
            hush_protocol::wire::channel_event("e", "cache-x", &text),
            "{literal}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn batch_events() {
    let s = start(&app_toml("")).await;
    let mut a = s.client().await;
    a.join_presence("presence-x", "u", json!({})).await;
    let body = json!({"batch":[
        {"name":"one","channel":"presence-x","data":"1","info":"user_count,subscription_count"},
        {"name":"two","channel":"presence-x","data":"2"}]})
    .to_string();
    let (st, v) = s
        .api("POST", &format!("/apps/{ID}/batch_events"), &[], &body)
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({"batch":[{"user_count":1,"subscription_count":1},{}]})
    );
    assert_eq!(a.next_event().await["event"], "one");
    assert_eq!(a.next_event().await["event"], "two");
    // Too many events, a `channels` array, or one bad item reject the whole batch.
    let eleven = json!({"batch": (0..11).map(|i| json!({"name":"e","channel":"presence-x","data":i.to_string()})).collect::<Vec<_>>()}).to_string();
    assert_eq!(
        s.api("POST", &format!("/apps/{ID}/batch_events"), &[], &eleven)
            .await
            .0,
        400
    );
    let multi = json!({"batch":[{"name":"e","channels":["a","b"],"data":"x"}]}).to_string();
    assert_eq!(
        s.api("POST", &format!("/apps/{ID}/batch_events"), &[], &multi)
            .await
            .0,
        400
    );
    let one_bad = json!({"batch":[{"name":"ok","channel":"presence-x","data":"x"},{"name":"e","channel":"bad:name","data":"x"}]}).to_string();
    assert_eq!(
        s.api("POST", &format!("/apps/{ID}/batch_events"), &[], &one_bad)
            .await
            .0,
        400
    );
    a.expect_silence(std::time::Duration::from_millis(150))
        .await;
    s.stop().await;
}

#[tokio::test]
async fn validation_and_limits() {
    let s = start(&app_toml("")).await;
    let ev = |body: Value| body.to_string();
    let path = format!("/apps/{ID}/events");
    let cases: Vec<(String, u16)> = vec![
        (
            ev(json!({"name":"e","channels":["a"],"data":"x".repeat(10_241)})),
            413,
        ),
        (
            ev(json!({"name":"e","channels":["a"],"data":"x".repeat(10_240)})),
            200,
        ),
        (
            ev(
                json!({"name":"e","channels":(0..101).map(|i| format!("c{i}")).collect::<Vec<_>>(),"data":"x"}),
            ),
            400,
        ),
        (ev(json!({"name":"e","channels":[],"data":"x"})), 400),
        (ev(json!({"name":"e","channels":["a:b"],"data":"x"})), 400),
        (
            ev(json!({"name":"pusher:x","channels":["a"],"data":"x"})),
            400,
        ),
        (
            ev(json!({"name":"e".repeat(201),"channels":["a"],"data":"x"})),
            400,
        ),
        (ev(json!({"name":"e","channels":["a"]})), 400),
        (ev(json!({"channels":["a"],"data":"x"})), 400),
        (
            ev(json!({"name":"e","channels":["a"],"data":"x","socket_id":"1.1:private-x"})),
            400,
        ),
        (
            ev(json!({"name":"e","channels":["private-encrypted-a","b"],"data":NONCE_CT})),
            400,
        ),
        (
            ev(
                json!({"name":"e","channels":["private-encrypted-a"],"data":"{\"message\":\"plaintext\"}"}),
            ),
            400,
        ),
        (
            ev(json!({"name":"e","channels":["private-encrypted-a"],"data":NONCE_CT})),
            200,
        ),
        (
            ev(json!({"name":"e","channels":["a"],"data":"x","info":"bogus"})),
            400,
        ),
        ("{not json".to_owned(), 400),
        // An array, which serde would read as the fields in order.
        (json!(["e", "x", null, ["a"], null, null]).to_string(), 400),
    ];
    for (body, want) in cases {
        let (st, v) = s.api("POST", &path, &[], &body).await;
        assert_eq!(st, want, "{} -> {v}", &body[..body.len().min(120)]);
        if st != 200 {
            assert!(v["error"].is_string(), "JSON error body: {v}");
        }
    }
    // Batch items must be objects too.
    let batch_path = format!("/apps/{ID}/batch_events");
    let batch = |item: Value| json!({ "batch": [item] }).to_string();
    let (st, v) = s
        .api(
            "POST",
            &batch_path,
            &[],
            &batch(json!(["e", "x", null, ["a"], null, null])),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let ok = batch(json!({"name":"e","channel":"a","data":"x"}));
    assert_eq!(s.api("POST", &batch_path, &[], &ok).await.0, 200);
    // Body over the server cap.
    let huge = "x".repeat(300_000);
    assert_eq!(s.api("POST", &path, &[], &huge).await.0, 413);
    s.stop().await;
}

#[tokio::test]
async fn signature_checks() {
    let s = start(&format!(
        "{}\n[apps.other]\nid='4'\nkey='otherkey'\nsecret='othersecret'\n",
        app_toml("")
    ))
    .await;
    let body = r#"{"name":"e","channels":["a"],"data":"x"}"#;
    let path = format!("/apps/{ID}/events");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |ts: u64, secret: &str, key: &str, body: &str, p: &str| {
        hush_protocol::api::signed_query(
            key,
            secret.as_bytes(),
            "POST",
            p,
            Default::default(),
            body.as_bytes(),
            ts,
        )
    };
    // Good.
    assert_eq!(
        s.raw_http(
            "POST",
            &format!("{path}?{}", signed(ts, SECRET, KEY, body, &path)),
            body
        )
        .await
        .0,
        200
    );
    // Wrong secret, stale and future timestamps.
    assert_eq!(
        s.raw_http(
            "POST",
            &format!("{path}?{}", signed(ts, "nope", KEY, body, &path)),
            body
        )
        .await
        .0,
        401
    );
    assert_eq!(
        s.raw_http(
            "POST",
            &format!("{path}?{}", signed(ts - 601, SECRET, KEY, body, &path)),
            body
        )
        .await
        .0,
        401
    );
    assert_eq!(
        s.raw_http(
            "POST",
            &format!("{path}?{}", signed(ts + 601, SECRET, KEY, body, &path)),
            body
        )
        .await
        .0,
        401
    );
    // Body changed after signing (body_md5 mismatch).
    let q = signed(ts, SECRET, KEY, body, &path);
    let (st, v) = s
        .raw_http("POST", &format!("{path}?{q}"), &body.replace("x", "y"))
        .await;
    assert_eq!(st, 401);
    assert!(v["error"].as_str().unwrap().contains("body_md5"));
    // Another app's valid credentials on this app id.
    assert_eq!(
        s.raw_http(
            "POST",
            &format!(
                "{path}?{}",
                signed(ts, "othersecret", "otherkey", body, &path)
            ),
            body
        )
        .await
        .0,
        401
    );
    // An unknown app id answers exactly like a known one with a request that
    // does not authenticate (it used to be 404 against 401: app ids could be
    // enumerated).
    let unknown = "/apps/999/events";
    // (what, secret, key, timestamp offset); no key at all last.
    let probes = [
        ("unknown key", "x", Some("nokey"), 0),
        ("the public key, a guessed secret", "guess", Some(KEY), 0),
        (
            "another app's credentials",
            "othersecret",
            Some("otherkey"),
            0,
        ),
        ("stale timestamp", "guess", Some(KEY), 601),
        ("no auth_key", "", None, 0),
    ];
    let query = |secret: &str, key: Option<&str>, age: u64, p: &str| match key {
        Some(key) => signed(ts - age, secret, key, body, p),
        None => "auth_version=1.0".to_owned(),
    };
    for (what, secret, key, age) in probes {
        let known = s
            .raw_http(
                "POST",
                &format!("{path}?{}", query(secret, key, age, &path)),
                body,
            )
            .await;
        let ghost = s
            .raw_http(
                "POST",
                &format!("{unknown}?{}", query(secret, key, age, unknown)),
                body,
            )
            .await;
        assert_eq!(known.0, 401, "{what}: {known:?}");
        // The same answer, once the path the caller sent itself is set aside.
        let ghost_text = ghost.1.to_string().replace(unknown, &path);
        assert_eq!(
            (ghost.0, ghost_text),
            (known.0, known.1.to_string()),
            "{what}"
        );
    }
    // Missing signature entirely; duplicate params; unknown params.
    assert_eq!(s.raw_http("POST", &path, body).await.0, 401);
    assert_eq!(
        s.raw_http("POST", &format!("{path}?{q}&auth_key={KEY}"), body)
            .await
            .0,
        400
    );
    let (st, _) = s
        .api("GET", &format!("/apps/{ID}/channels"), &[("zz", "1")], "")
        .await;
    assert_eq!(st, 400);
    // The error never contains the expected signature.
    let (st, v) = s
        .raw_http(
            "POST",
            &format!("{path}?{}", signed(ts, "nope", KEY, body, &path)),
            body,
        )
        .await;
    assert_eq!(st, 401);
    let good = hush_protocol::api::QueryParams::parse(&q).unwrap();
    assert!(
        !v["error"]
            .as_str()
            .unwrap()
            .contains(good.get("auth_signature").unwrap())
    );
    s.stop().await;
}

#[tokio::test]
async fn channel_queries() {
    let s = start(&app_toml("")).await;
    let (st, v) = s.api("GET", &format!("/apps/{ID}/channels"), &[], "").await;
    assert_eq!((st, v), (200, json!({"channels":{}})));
    let mut a = s.client().await;
    a.subscribe_ok("news").await;
    a.join_presence("presence-one", "u1", json!({})).await;
    let (_, v) = s.api("GET", &format!("/apps/{ID}/channels"), &[], "").await;
    assert_eq!(v, json!({"channels":{"news":{},"presence-one":{}}}));
    let (_, v) = s
        .api(
            "GET",
            &format!("/apps/{ID}/channels"),
            &[("filter_by_prefix", "presence-"), ("info", "user_count")],
            "",
        )
        .await;
    assert_eq!(v, json!({"channels":{"presence-one":{"user_count":1}}}));
    assert_eq!(
        s.api(
            "GET",
            &format!("/apps/{ID}/channels"),
            &[("info", "user_count")],
            ""
        )
        .await
        .0,
        400
    );
    assert_eq!(
        s.api(
            "GET",
            &format!("/apps/{ID}/channels/news"),
            &[("info", "user_count")],
            ""
        )
        .await
        .0,
        400
    );
    assert_eq!(
        s.api(
            "GET",
            &format!("/apps/{ID}/channels/news"),
            &[("info", "cache")],
            ""
        )
        .await
        .0,
        400
    );
    assert_eq!(
        s.api("GET", &format!("/apps/{ID}/channels/news/users"), &[], "")
            .await
            .0,
        400
    );
    let (_, v) = s
        .api(
            "GET",
            &format!("/apps/{ID}/channels/empty"),
            &[("info", "subscription_count")],
            "",
        )
        .await;
    assert_eq!(v, json!({"occupied":false,"subscription_count":0}));
    let (_, v) = s
        .api("GET", &format!("/apps/{ID}/channels/news"), &[], "")
        .await;
    assert_eq!(v, json!({"occupied":true}));
    assert_eq!(
        s.api(
            "POST",
            &format!("/apps/{ID}/users/bad:id/terminate_connections"),
            &[],
            "{}"
        )
        .await
        .0,
        400
    );
    assert_eq!(s.raw_http("GET", "/nowhere", "").await.0, 404);
    assert_eq!(
        s.raw_http("GET", "/up", "").await,
        (
            200,
            json!({"status":"up","version":env!("CARGO_PKG_VERSION")})
        )
    );
    s.stop().await;
}

#[tokio::test]
async fn disabled_app_api_is_403() {
    let s = start(&app_toml("enabled = false")).await;
    assert_eq!(s.trigger("a", "e", "x").await.0, 403);
    s.stop().await;
}

#[tokio::test]
async fn encrypted_payloads_are_relayed_untouched() {
    let s = start(&app_toml("")).await;
    let mut a = s.client().await;
    a.subscribe_ok("private-encrypted-foo").await;
    assert_eq!(
        s.trigger("private-encrypted-foo", "my-event", NONCE_CT)
            .await
            .0,
        200
    );
    // Byte-for-byte the frame of PROTOCOL.md §17(d).
    let raw = match a.next_within(std::time::Duration::from_secs(5)).await {
        Some(Next::Frame(v)) => v,
        _ => panic!("no frame"),
    };
    assert_eq!(raw, serde_json::from_str::<Value>(r#"{"event":"my-event","channel":"private-encrypted-foo","data":"{\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"ciphertext\":\"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=\"}"}"#).unwrap());
    s.stop().await;
}
