use super::*;

fn root(n: u8) -> Hash {
    [n; 32]
}

fn sth(key: &LogKey, epoch: u64, r: Hash, ts: u64) -> SignedTreeHead {
    key.sign(TreeHead {
        log_id: "app-1".into(),
        epoch,
        root: r,
        timestamp: ts,
    })
}

#[test]
fn signed_tree_heads() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let s = sth(&key, 5, root(7), 1000);
    let parsed = SignedTreeHead::from_bytes(&s.to_bytes()).unwrap();
    assert_eq!(parsed, s);
    parsed.verify(&key.public_key(), "app-1").unwrap();
    assert_eq!(
        parsed.verify(&key.public_key(), "app-2"),
        Err(LogError::WrongLog)
    );
    let other = LogKey::from_secret_bytes(&[43; 32]);
    assert_eq!(
        parsed.verify(&other.public_key(), "app-1"),
        Err(LogError::BadSignature)
    );
    let bytes = s.to_bytes();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        let ok = SignedTreeHead::from_bytes(&bad)
            .and_then(|t| t.verify(&key.public_key(), "app-1"))
            .is_ok();
        assert!(!ok, "byte {i}");
    }
    // Version 1 heads (the chronological log of earlier hush) do not parse.
    let mut v1 = bytes.clone();
    v1[4] = 1;
    assert_eq!(SignedTreeHead::from_bytes(&v1), Err(LogError::Malformed));
    assert!(!format!("{key:?}").contains(&hex::encode([42u8; 32])));
}

#[test]
fn monitor_follows_epochs_and_refuses_a_rollback() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let mut m = LogMonitor::new("app-1", key.public_key());
    for e in 1..20u64 {
        m.update(&sth(&key, e, root(e as u8), e)).unwrap();
        // The same epoch again, signed later: fine.
        m.update(&sth(&key, e, root(e as u8), e + 1)).unwrap();
    }
    assert_eq!(m.trusted().unwrap().epoch, 19);
    let before = m.trusted().cloned();
    assert_eq!(
        m.update(&sth(&key, 18, root(18), 100)),
        Err(LogError::Rollback {
            trusted: 19,
            offered: 18
        })
    );
    assert_eq!(m.trusted().cloned(), before, "trusted head unchanged");
}

#[test]
fn monitor_detects_two_roots_for_one_epoch() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let mut alice = LogMonitor::new("app-1", key.public_key());
    alice.update(&sth(&key, 8, root(8), 1)).unwrap();
    alice.update(&sth(&key, 9, root(9), 2)).unwrap();
    // The directory rewrites epoch 9 for Alice herself.
    assert_eq!(
        alice.update(&sth(&key, 9, root(99), 3)),
        Err(LogError::Fork)
    );
    // Split view: Bob is shown another tree at epoch 8 and at epoch 9;
    // each alone sees a monotonic sequence; gossip exposes it.
    let bobs_8 = sth(&key, 8, root(88), 4);
    let bobs_9 = sth(&key, 9, root(99), 4);
    assert_eq!(alice.cross_check(&bobs_8), Err(LogError::Fork));
    assert_eq!(alice.cross_check(&bobs_9), Err(LogError::Fork));
    // Heads that agree, or for epochs Alice never saw, pass.
    alice.cross_check(&sth(&key, 9, root(9), 5)).unwrap();
    alice.cross_check(&sth(&key, 10, root(10), 5)).unwrap();
    // A head signed by another key is refused before anything else.
    let other = LogKey::from_secret_bytes(&[43; 32]);
    assert_eq!(
        alice.cross_check(&sth(&other, 9, root(99), 5)),
        Err(LogError::BadSignature)
    );
    // A new monitor has nothing to compare with.
    let fresh = LogMonitor::new("app-1", key.public_key());
    assert_eq!(fresh.cross_check(&bobs_9), Err(LogError::NoTrustedHead));
}

#[test]
fn monitor_remembers_a_bounded_number_of_epochs() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let mut m = LogMonitor::new("app-1", key.public_key());
    let n = REMEMBERED_HEADS as u64 + 10;
    for e in 1..=n {
        m.update(&sth(&key, e, root(e as u8), e)).unwrap();
    }
    assert_eq!(m.seen.len(), REMEMBERED_HEADS);
    // The oldest epochs are forgotten (no fork evidence left for them); the
    // newest are still compared.
    m.cross_check(&sth(&key, 1, root(200), 1)).unwrap();
    assert_eq!(
        m.cross_check(&sth(&key, n, root(0), 1)),
        Err(LogError::Fork)
    );
}

#[test]
fn log_entries_round_trip() {
    use crate::identity::{DeviceKeys, IdentityKey, UnsignedCard};
    use hush_protocol::UserId;
    let identity = IdentityKey::from_secret_bytes(&[1; 32]);
    let device = DeviceKeys::from_secret_bytes(&[2; 32], &[3; 32]);
    let body = UnsignedCard::new(
        UserId::parse("alice").unwrap(),
        &identity.public_key(),
        &device,
        10,
        20,
        None,
    );
    let card = DeviceCard::issue(body, &device, &identity).unwrap();
    let rev = Revocation::revoke_device(&identity, &card, 15).unwrap();
    for e in [LogEntry::Card(card), LogEntry::Revocation(rev)] {
        let bytes = e.to_bytes();
        assert_eq!(LogEntry::from_bytes(&bytes).unwrap(), e);
    }
    assert_eq!(LogEntry::from_bytes(&[3, 1, 2]), Err(LogError::Malformed));
    assert_eq!(LogEntry::from_bytes(&[]), Err(LogError::Malformed));
}

#[test]
fn monitor_refuses_stale_and_future_heads() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let fresh = Freshness::default();
    let now = 1_000_000_000;
    let mut m = LogMonitor::new("app-1", key.public_key());
    // Within the bounds (exactly at either edge too).
    m.update_fresh(&sth(&key, 2, root(2), now - 1000), now, fresh)
        .unwrap();
    let edge = now - Freshness::DEFAULT_MAX_AGE_MS;
    m.update_fresh(&sth(&key, 3, root(3), edge), now, fresh)
        .unwrap();
    let ahead = now + Freshness::DEFAULT_MAX_SKEW_MS;
    m.update_fresh(&sth(&key, 3, root(3), ahead), now, fresh)
        .unwrap();
    // A replayed old head and one from the future are refused, and the
    // trusted head stays.
    let trusted = m.trusted().cloned();
    assert_eq!(
        m.update_fresh(&sth(&key, 3, root(3), edge - 1), now, fresh),
        Err(LogError::Stale {
            signed: edge - 1,
            now
        })
    );
    assert_eq!(
        m.update_fresh(&sth(&key, 3, root(3), ahead + 1), now, fresh),
        Err(LogError::FromTheFuture {
            signed: ahead + 1,
            now
        })
    );
    assert_eq!(m.trusted().cloned(), trusted);
    // A configured bound; the signature is checked before the timestamp.
    let tight = Freshness {
        max_age_ms: 10,
        max_skew_ms: 0,
    };
    assert!(matches!(
        m.update_fresh(&sth(&key, 3, root(3), now - 11), now, tight),
        Err(LogError::Stale { .. })
    ));
    let other = LogKey::from_secret_bytes(&[43; 32]);
    assert_eq!(
        m.update_fresh(&sth(&other, 3, root(3), 0), now, fresh),
        Err(LogError::BadSignature)
    );
}
