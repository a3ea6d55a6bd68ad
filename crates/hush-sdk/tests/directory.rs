//! The key-directory methods of hush-sdk against a real hush server: cards
//! published over the WebSocket are looked up, proven and audited through the
//! signed HTTP API.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ID, Ws, start};
use hush_crypto::identity::{DeviceCard, IdentityKey};
use hush_crypto::transparency::{LogEntry, LogError, LogMonitor, audit};
use hush_sdk::{Error, UserData, ValidationError};
use hush_testkit::new_card;
use serde_json::json;

async fn publish(ws: &mut Ws, card: &DeviceCard) {
    let params = json!({"card": STANDARD.encode(card.to_bytes())});
    ws.request_ok("directory.publish", params).await;
}

#[tokio::test]
async fn lookup_head_consistency_and_entries() {
    let srv = start().await;
    let api = srv.client();

    // An empty log: size 0, no entries.
    let empty = api.directory_log_head().await.unwrap();
    assert_eq!(empty.head.head.size, 0);
    empty.head.verify(&empty.key, ID).unwrap();
    assert!(api.directory_log_entries(0, 10).await.unwrap().is_empty());

    let mut ws = srv.ws().await;
    let auth = api
        .authenticate_user(&ws.socket_id, &UserData::new("alice"))
        .unwrap();
    ws.signin(&auth).await;
    let identity = IdentityKey::generate();
    let cards: Vec<DeviceCard> = (0..3).map(|_| new_card("alice", &identity)).collect();
    for c in &cards {
        publish(&mut ws, c).await;
    }

    // The head is signed by the key served with it; the log grew from the
    // empty head, provably.
    let h = api.directory_log_head().await.unwrap();
    assert_eq!(h.key, empty.key);
    assert_eq!(h.head.head.size, 3);
    let mut monitor = LogMonitor::new(ID, h.key);
    monitor.update(&empty.head, &[]).unwrap();
    let proof = api.directory_log_consistency(0, 3).await.unwrap();
    monitor.update(&h.head, &proof).unwrap();
    let proof = api.directory_log_consistency(1, 3).await.unwrap();
    assert!(!proof.is_empty());

    // Entries replay to the head: the audit core accepts them.
    let entries = api.directory_log_entries(0, 3).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1], LogEntry::Card(cards[1].clone()).to_bytes());
    let report = audit(ID, &h.key, &h.head, &entries).unwrap();
    assert_eq!((report.users, report.cards), (1, 3));
    assert!(report.violations.is_empty());

    // A lookup from the trusted size verifies, proofs and all.
    let lookup = api
        .directory_users(&["alice", "bob"], Some(3))
        .await
        .unwrap();
    assert_eq!(lookup.consistency.as_deref(), Some(&[][..]));
    lookup.verify(&mut monitor).unwrap();
    let alice = &lookup.users["alice"];
    assert_eq!(alice.cards.len(), 3);
    for e in &alice.cards {
        let LogEntry::Card(c) = e.entry().unwrap() else {
            panic!("not a card")
        };
        assert!(cards.iter().any(|k| k.id() == c.id()));
    }
    assert!(lookup.users["bob"].cards.is_empty());

    // A lookup whose proofs were tampered with does not verify.
    let mut forged = lookup.clone();
    let card = &mut forged.users.get_mut("alice").unwrap().cards[0];
    card.proof[0][0] ^= 1;
    assert_eq!(
        forged.verify(&mut monitor.clone()),
        Err(LogError::NotIncluded)
    );

    // Refusals: checked locally before sending, or the server's status.
    assert!(matches!(
        api.directory_users::<&str>(&[], None).await,
        Err(Error::Invalid(ValidationError::LookupSize { count: 0, .. }))
    ));
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    assert!(matches!(
        api.directory_users(&many, None).await,
        Err(Error::Invalid(ValidationError::LookupSize {
            count: 51,
            ..
        }))
    ));
    assert!(matches!(
        api.directory_users(&["a b"], None).await,
        Err(Error::Invalid(ValidationError::UserId(_)))
    ));
    // Valid as a user id, but `ids=a,b` would look up "a" and "b".
    assert!(matches!(
        api.directory_users(&["a,b"], None).await,
        Err(Error::Invalid(ValidationError::UserIdWithComma(_)))
    ));
    assert!(matches!(
        api.directory_log_entries(5, 2000).await,
        Err(Error::Invalid(ValidationError::LogRange(_)))
    ));
    assert!(matches!(
        api.directory_log_consistency(3, 2).await,
        Err(Error::Invalid(ValidationError::LogRange(_)))
    ));
    assert_eq!(
        api.directory_log_consistency(1, 9)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    assert_eq!(
        api.directory_users(&["alice"], Some(9))
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    srv.stop().await;
}
