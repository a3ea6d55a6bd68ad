//! The key-directory methods of hush-sdk against a real hush server: cards
//! published over the WebSocket are looked up and proven through the signed
//! HTTP API, and the audit endpoint serves the heads of the epochs between.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{ID, Ws, start};
use hush_crypto::identity::{DeviceCard, IdentityKey};
use hush_crypto::transparency::{LogError, LogMonitor};
use hush_sdk::{Error, UserData, ValidationError};
use hush_testkit::new_card;
use serde_json::json;

async fn publish(ws: &mut Ws, card: &DeviceCard) {
    let params = json!({"card": STANDARD.encode(card.to_bytes())});
    ws.request_ok("directory.publish", params).await;
}

#[tokio::test]
async fn lookup_head_and_audit() {
    let srv = start().await;
    let api = srv.client();

    // An empty directory: epoch 0, nothing to audit.
    let empty = api.directory_log_head().await.unwrap();
    assert_eq!(empty.head.head.epoch, 0);
    empty.head.verify(&empty.key, ID).unwrap();

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

    // The head is signed by the key served with it, under the same keys as
    // before; one epoch per acknowledged publication.
    let h = api.directory_log_head().await.unwrap();
    assert_eq!((h.key, h.vrf), (empty.key, empty.vrf));
    let epoch = h.head.head.epoch;
    assert_eq!(epoch, 3);
    let mut monitor = LogMonitor::new(ID, h.key);
    monitor.update(&empty.head).unwrap();
    monitor.update(&h.head).unwrap();

    // A lookup verifies: alice's whole entry, at the latest epoch; bob has
    // no entry and is absent.
    let lookup = api.directory_users(&["alice", "bob"]).await.unwrap();
    assert!(lookup.more.is_empty());
    assert_eq!(lookup.head.head.epoch, epoch);
    let verified = lookup.verify(&mut monitor, &h.vrf).unwrap();
    assert_eq!(verified.len(), 1);
    let alice = &verified["alice"];
    assert_eq!(alice.entry.identity, identity.public_key());
    assert_eq!(alice.entry.cards.len(), 3);
    assert!(cards.iter().all(|c| alice.entry.cards.contains(c)));
    assert_eq!(alice.version, 3);

    // A proof tampered with, or presented as another user's, does not
    // verify; nor does it under another VRF key.
    let mut forged = lookup.clone();
    let proof = forged.users.get_mut("alice").unwrap();
    let at = proof.len() / 2;
    proof[at] ^= 1;
    assert!(forged.verify(&mut monitor.clone(), &h.vrf).is_err());
    let mut swapped = lookup.clone();
    let p = swapped.users.remove("alice").unwrap();
    swapped.users.insert("mallory".into(), p);
    assert_eq!(
        swapped.verify(&mut monitor.clone(), &h.vrf),
        Err(LogError::BadProof)
    );
    let other_vrf = hush_crypto::transparency::proofs::VrfPublicKey::from_bytes(
        &hush_crypto::transparency::LogKey::generate()
            .public_key()
            .to_bytes(),
    )
    .unwrap();
    assert_eq!(
        lookup.verify(&mut monitor.clone(), &other_vrf),
        Err(LogError::BadProof)
    );

    // The audit answer: the heads of epochs 1..=3, signed, in order, the
    // last one with the current root; past heads agree with it.
    let audit = api.directory_log_audit(1, epoch).await.unwrap();
    assert_eq!(audit.heads.len(), 3);
    for (i, head) in audit.heads.iter().enumerate() {
        head.verify(&h.key, ID).unwrap();
        assert_eq!(head.head.epoch, i as u64 + 1);
    }
    assert_eq!(audit.heads[2].head.root, h.head.head.root);
    assert!(!audit.proof.is_empty());
    let past = api.directory_log_head_at(2).await.unwrap();
    assert_eq!(past.head, audit.heads[1]);

    // Refusals: checked locally before sending, or the server's status.
    assert!(matches!(
        api.directory_users::<&str>(&[]).await,
        Err(Error::Invalid(ValidationError::LookupSize { count: 0, .. }))
    ));
    let many: Vec<String> = (0..51).map(|i| format!("u{i}")).collect();
    assert!(matches!(
        api.directory_users(&many).await,
        Err(Error::Invalid(ValidationError::LookupSize {
            count: 51,
            ..
        }))
    ));
    assert!(matches!(
        api.directory_users(&["a b"]).await,
        Err(Error::Invalid(ValidationError::UserId(_)))
    ));
    // Valid as a user id, but `ids=a,b` would look up "a" and "b".
    assert!(matches!(
        api.directory_users(&["a,b"]).await,
        Err(Error::Invalid(ValidationError::UserIdWithComma(_)))
    ));
    for (from, to) in [(0, 2), (2, 2), (3, 2), (1, 18)] {
        assert!(
            matches!(
                api.directory_log_audit(from, to).await,
                Err(Error::Invalid(ValidationError::LogRange(_)))
            ),
            "{from}..={to}"
        );
    }
    assert_eq!(
        api.directory_log_audit(1, 9).await.unwrap_err().status(),
        Some(404)
    );
    assert_eq!(
        api.directory_log_head_at(9).await.unwrap_err().status(),
        Some(404)
    );
    srv.stop().await;
}
