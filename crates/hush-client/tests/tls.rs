//! `wss://`: hush-client against a hush server serving TLS with a certificate
//! the test makes (trusted through `tls_config`), and refused by default
//! (the system's roots do not know it).
#![cfg(feature = "tls")]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use hush_client::Client;
use hush_client::tls::{config_with_roots, rustls};

#[tokio::test]
async fn connects_over_wss_only_with_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let srv = start_on(
        0,
        &format!(
            "[server.tls]\ncert_file = '{}'\nkey_file = '{}'\n",
            cert.display(),
            key.display()
        ),
    )
    .await;
    let url = format!("wss://localhost:{}", srv.addr.port());

    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let trusted = Client::builder(KEY)
        .url(&url)
        .tls_config(config_with_roots(roots).unwrap())
        .build()
        .unwrap();
    tokio::time::timeout(WAIT, trusted.connected())
        .await
        .expect("connect over wss")
        .unwrap();
    let ch = subscribed(&trusted, "news").await;
    assert!(ch.is_subscribed());

    // The system's roots do not include the test's certificate: the
    // handshake fails and the client never reaches Connected.
    let untrusted = Client::builder(KEY)
        .url(&url)
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
        .build()
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(3), untrusted.connected()).await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "connected with an untrusted certificate"
    );
    untrusted.disconnect().await;
    trusted.disconnect().await;
    srv.stop().await;
}
