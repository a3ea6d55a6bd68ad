//! `hush webhooks` against a real SQLite store in a temporary data directory.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use hush_store::{NewOutboxEvent, Store, StoreOptions, Target};
use serde_json::{Value, json};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn hush(data_dir: &Path, args: &[&str]) -> Out {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hush"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUSH_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .env("HUSH_SERVER__DATA_DIR", data_dir)
        .current_dir(data_dir)
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A store with two dead letters (app 1) and one pending event (app 2).
async fn seeded(dir: &Path) -> Store {
    let url = format!("sqlite://{}/hush.sqlite3", dir.display());
    let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
    let ev = |app: &str, ch: &str| NewOutboxEvent {
        app_id: app.into(),
        endpoint: "http://user:pw@127.0.0.1:9/hooks".into(),
        event: json!({"name":"channel_occupied","channel":ch}).to_string(),
        created_ms: 1_000,
    };
    store
        .outbox_append(&[ev("1", "a"), ev("1", "b"), ev("2", "c")])
        .await
        .unwrap();
    let t = Target {
        app_id: "1".into(),
        endpoint: "http://user:pw@127.0.0.1:9/hooks".into(),
    };
    let ids: Vec<i64> = store
        .outbox_next_batch(&t, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    store
        .outbox_failed(&ids, 2_000, 3_000, "HTTP 503", 1)
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn list_stats_retry_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded(dir.path()).await;

    let o = hush(dir.path(), &["webhooks", "stats", "--json"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(
        v,
        json!([{"app_id":"1","pending":0,"dead":2},{"app_id":"2","pending":1,"dead":0}])
    );

    let o = hush(dir.path(), &["webhooks", "list", "--json"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0]["event"],
        json!({"name":"channel_occupied","channel":"a"})
    );
    assert_eq!(list[0]["last_error"], "HTTP 503");
    assert_eq!(list[0]["endpoint"], "http://user:****@127.0.0.1:9/hooks");
    let first = list[0]["id"].as_i64().unwrap().to_string();

    let o = hush(dir.path(), &["webhooks", "list"]).await;
    assert!(
        o.stdout.contains("HTTP 503") && !o.stdout.contains(":pw@"),
        "{}",
        o.stdout
    );

    // Retry one by id: it is pending again.
    let o = hush(dir.path(), &["webhooks", "retry", &first, "--json"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&o.stdout).unwrap(),
        json!({"retried": 1})
    );
    let c = store.outbox_counts().await.unwrap();
    assert_eq!((c[0].pending, c[0].dead), (1, 1));

    // An id that matches nothing is an error.
    let o = hush(dir.path(), &["webhooks", "purge", "999999"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("matched no dead letter"), "{}", o.stderr);
    // Purge needs ids or --all.
    assert_eq!(hush(dir.path(), &["webhooks", "purge"]).await.code, 2);
    let o = hush(dir.path(), &["webhooks", "purge", "--all"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "purged 1 dead letter(s)");
    assert!(store.dead_letters(None, 10).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_missing_store_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let o = hush(dir.path(), &["webhooks", "stats"]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("opening the store"), "{}", o.stderr);
    assert!(!dir.path().join("hush.sqlite3").exists());
}
