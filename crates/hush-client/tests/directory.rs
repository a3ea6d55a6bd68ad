//! `hush:request` against the real server, and the E2EE layer
//! (`hush_client::e2ee`): key store, verified lookups, suite 1 envelopes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hush_client::{DirectoryError, ErrorCode};
use serde_json::json;

#[tokio::test]
async fn requests_reach_the_key_directory() {
    let srv = start().await;
    let c = client(&srv, "alice");
    c.connected().await.unwrap();
    let e = c.request("log.head", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::NotSignedIn), "{e}");
    c.signin().await.unwrap();
    let head = c.request("log.head", json!({})).await.unwrap();
    assert!(
        head["key"].is_string() && head["head"].is_string(),
        "{head}"
    );
    let e = c.request("directory.nope", json!({})).await.unwrap_err();
    assert!(
        matches!(
            &e,
            DirectoryError::Server {
                code: ErrorCode::UnknownMethod,
                ..
            }
        ),
        "{e}"
    );
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    let e = c
        .request("directory.lookup", json!({"users": many}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::TooMany));
    c.disconnect().await;
    assert_eq!(
        c.request("log.head", json!({})).await,
        Err(DirectoryError::Closed)
    );
    srv.stop().await;
}
