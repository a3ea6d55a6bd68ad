use super::*;
use proptest::prelude::*;

// RFC 6962 reference data published by transparency-dev/merkle
// (testonly/constants.go, proof/verify_test.go), used as data only.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/// (leaf index, tree size, proof)
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, &[]),
];
/// (first size, second size, proof)
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn reference_log() -> MerkleLog {
    let mut log = MerkleLog::new();
    for leaf in LEAVES {
        log.append(&hex::decode(leaf).unwrap());
    }
    log
}

#[test]
fn rfc6962_roots() {
    let log = reference_log();
    for (size, expected) in ROOTS.iter().enumerate() {
        assert_eq!(
            hex::encode(log.root_at(size as u64).unwrap()),
            *expected,
            "size {size}"
        );
    }
    assert_eq!(log.root_at(9), None);
}

#[test]
fn rfc6962_inclusion_proofs() {
    let log = reference_log();
    for (index, size, proof) in INCLUSION {
        let expected: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
        assert_eq!(log.inclusion_proof(index, size).unwrap(), expected);
        let root = h(ROOTS[size as usize]);
        let leaf = log.leaves()[index as usize];
        verify_inclusion(&leaf, index, size, &expected, &root).unwrap();
        // Corruptions in the style of transparency-dev's verifier tests.
        let bad_root = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        let mut probes: Vec<(u64, u64, Hash, Vec<Hash>, Hash)> = vec![
            (index.wrapping_sub(1), size, leaf, expected.clone(), root),
            (index + 1, size, leaf, expected.clone(), root),
            (index ^ 2, size, leaf, expected.clone(), root),
            (index, size * 2, leaf, expected.clone(), root),
            (index, size / 2, leaf, expected.clone(), root),
            (index, size, leaf_hash(b"WrongLeaf"), expected.clone(), root),
            (index, size, leaf, expected.clone(), h(ROOTS[0])),
            (index, size, leaf, expected.clone(), bad_root),
            (
                index,
                size,
                leaf,
                [expected.clone(), vec![root]].concat(),
                root,
            ),
            (
                index,
                size,
                leaf,
                [vec![root], expected.clone()].concat(),
                root,
            ),
        ];
        for i in 0..expected.len() {
            let mut p = expected.clone();
            p[i][0] ^= 8;
            probes.push((index, size, leaf, p, root));
        }
        if !expected.is_empty() {
            probes.push((
                index,
                size,
                leaf,
                expected[..expected.len() - 1].to_vec(),
                root,
            ));
        }
        for (n, (i, s, l, p, r)) in probes.into_iter().enumerate() {
            assert!(
                verify_inclusion(&l, i, s, &p, &r).is_err(),
                "probe {n} for ({index}, {size})"
            );
        }
    }
}

#[test]
fn rfc6962_consistency_proofs() {
    let log = reference_log();
    for (first, second, proof) in CONSISTENCY {
        let expected: Vec<Hash> = proof.iter().map(|p| h(p)).collect();
        assert_eq!(log.consistency_proof(first, second).unwrap(), expected);
        let (r1, r2) = (h(ROOTS[first as usize]), h(ROOTS[second as usize]));
        verify_consistency(first, second, &r1, &r2, &expected).unwrap();
        if expected.is_empty() {
            continue;
        }
        let mut probes: Vec<(u64, u64, Hash, Hash, Vec<Hash>)> = vec![
            (first - 1, second, r1, r2, expected.clone()),
            (first + 1, second, r1, r2, expected.clone()),
            (first ^ 2, second, r1, r2, expected.clone()),
            (first, second * 2, r1, r2, expected.clone()),
            (first, second / 2, r1, r2, expected.clone()),
            (first, second, leaf_hash(b"WrongRoot"), r2, expected.clone()),
            (first, second, r1, leaf_hash(b"WrongRoot"), expected.clone()),
            (first, second, r2, r1, expected.clone()),
            (first, second, r1, r2, vec![]),
            (first, second, r1, r2, [expected.clone(), vec![r1]].concat()),
            (first, second, r1, r2, [expected.clone(), vec![r2]].concat()),
            (first, second, r1, r2, [vec![r1], expected.clone()].concat()),
            (first, second, r1, r2, [vec![r2], expected.clone()].concat()),
            (
                first,
                second,
                r1,
                r2,
                [vec![expected[0]], expected.clone()].concat(),
            ),
            (
                first,
                second,
                r1,
                r2,
                expected[..expected.len() - 1].to_vec(),
            ),
        ];
        for i in 0..expected.len() {
            let mut p = expected.clone();
            p[i][0] ^= 16;
            probes.push((first, second, r1, r2, p));
        }
        for (n, (a, b, x, y, p)) in probes.into_iter().enumerate() {
            assert!(
                verify_consistency(a, b, &x, &y, &p).is_err(),
                "probe {n} for ({first}, {second})"
            );
        }
    }
}

#[test]
fn consistency_edge_cases() {
    let r = h(ROOTS[3]);
    let e = h(ROOTS[0]);
    verify_consistency(0, 0, &e, &e, &[]).unwrap();
    verify_consistency(0, 3, &e, &r, &[]).unwrap();
    verify_consistency(3, 3, &r, &r, &[]).unwrap();
    assert_eq!(verify_consistency(3, 3, &r, &e, &[]), Err(LogError::Fork));
    assert_eq!(verify_consistency(3, 3, &r, &r, &[e]), Err(LogError::Fork));
    assert_eq!(verify_consistency(0, 3, &e, &r, &[e]), Err(LogError::Fork));
    assert_eq!(
        verify_consistency(3, 2, &r, &r, &[]),
        Err(LogError::Rollback {
            trusted: 3,
            offered: 2
        })
    );
    assert_eq!(verify_consistency(1, 2, &r, &r, &[]), Err(LogError::Fork));
    assert_eq!(
        verify_inclusion(&r, 0, 0, &[], &e),
        Err(LogError::NotIncluded)
    );
}

fn many(n: usize) -> MerkleLog {
    let mut log = MerkleLog::new();
    for i in 0..n {
        log.append(&(i as u64).to_be_bytes());
    }
    log
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_inclusion_proof_verifies_and_any_tampering_fails(
        n in 1usize..130, i in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let log = many(n);
        let index = i.index(n) as u64;
        let root = log.root();
        let proof = log.inclusion_proof(index, n as u64).unwrap();
        let leaf = log.leaves()[index as usize];
        prop_assert!(verify_inclusion(&leaf, index, n as u64, &proof, &root).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = flip.index(bad.len());
            bad[k][flip.index(32)] ^= 1 << bit;
            prop_assert!(verify_inclusion(&leaf, index, n as u64, &bad, &root).is_err());
        }
        // Another leaf at the same position fails.
        let other = leaf_hash(b"other");
        prop_assert!(verify_inclusion(&other, index, n as u64, &proof, &root).is_err());
    }

    #[test]
    fn every_consistency_proof_verifies_and_any_tampering_fails(
        n in 1usize..130, m in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let log = many(n);
        let first = m.index(n + 1) as u64;
        let proof = log.consistency_proof(first, n as u64).unwrap();
        let (r1, r2) = (log.root_at(first).unwrap(), log.root());
        prop_assert!(verify_consistency(first, n as u64, &r1, &r2, &proof).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let k = flip.index(bad.len());
            bad[k][flip.index(32)] ^= 1 << bit;
            prop_assert!(verify_consistency(first, n as u64, &r1, &r2, &bad).is_err());
        }
        // A log that rewrote any entry before `first` is caught.
        if first > 0 {
            let mut forked = MerkleLog::new();
            let victim = flip.index(first as usize);
            for (j, _) in log.leaves().iter().enumerate() {
                if j == victim {
                    forked.append(b"rewritten");
                } else {
                    forked.append(&(j as u64).to_be_bytes());
                }
            }
            let fproof = forked.consistency_proof(first, n as u64).unwrap();
            prop_assert!(verify_consistency(first, n as u64, &r1, &forked.root(), &fproof).is_err());
        }
    }
}

fn sth(key: &LogKey, log: &MerkleLog, size: u64, ts: u64) -> SignedTreeHead {
    key.sign(TreeHead {
        log_id: "app-1".into(),
        size,
        root: log.root_at(size).unwrap(),
        timestamp: ts,
    })
}

#[test]
fn signed_tree_heads() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let log = many(5);
    let s = sth(&key, &log, 5, 1000);
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
    assert!(!format!("{key:?}").contains(&hex::encode([42u8; 32])));
}

#[test]
fn monitor_follows_an_honest_log() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let mut log = many(3);
    let mut monitor = LogMonitor::new("app-1", key.public_key());
    assert_eq!(
        monitor.verify_entry(b"x", 0, &[]),
        Err(LogError::NoTrustedHead)
    );
    monitor.update(&sth(&key, &log, 3, 1), &[]).unwrap();
    for n in 4..20u64 {
        let old = monitor.trusted().unwrap().size;
        log.append(&(n - 1).to_be_bytes());
        let proof = log.consistency_proof(old, n).unwrap();
        monitor.update(&sth(&key, &log, n, n), &proof).unwrap();
        let idx = n - 2;
        let entry = (idx).to_be_bytes();
        monitor
            .verify_entry(&entry, idx, &log.inclusion_proof(idx, n).unwrap())
            .unwrap();
        assert_eq!(
            monitor.verify_entry(b"not there", idx, &log.inclusion_proof(idx, n).unwrap()),
            Err(LogError::NotIncluded)
        );
    }
    // Same head again: fine. An older, smaller head: rollback.
    let now = monitor.trusted().unwrap().size;
    monitor.update(&sth(&key, &log, now, 99), &[]).unwrap();
    let proof = log.consistency_proof(5, now).unwrap();
    assert_eq!(
        monitor.update(&sth(&key, &log, 5, 100), &proof),
        Err(LogError::Rollback {
            trusted: now,
            offered: 5
        })
    );
}

#[test]
fn monitor_detects_a_rewritten_history_and_a_split_view() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let honest = many(8);
    let mut alice = LogMonitor::new("app-1", key.public_key());
    alice.update(&sth(&key, &honest, 8, 1), &[]).unwrap();

    // The directory rewrites entry 2 (say, swaps a key) and grows the log.
    let mut rewritten = MerkleLog::new();
    for j in 0..12u64 {
        if j == 2 {
            rewritten.append(b"mallory's card");
        } else {
            rewritten.append(&j.to_be_bytes());
        }
    }
    let proof = rewritten.consistency_proof(8, 12).unwrap();
    let before = alice.trusted().cloned();
    assert_eq!(
        alice.update(&sth(&key, &rewritten, 12, 2), &proof),
        Err(LogError::Fork)
    );
    assert_eq!(alice.trusted().cloned(), before, "trusted head unchanged");
    // Same size, different root: also a fork.
    assert_eq!(
        alice.update(&sth(&key, &rewritten, 8, 3), &[]),
        Err(LogError::Fork)
    );

    // Split view: Bob is shown a log that only diverges after Alice's head.
    // Each alone sees a consistent log; gossiping heads exposes it.
    let mut bobs_log = many(8);
    bobs_log.append(b"card for bob's eyes only");
    let mut alices_log = many(8);
    alices_log.append(b"card for alice's eyes only");
    let mut bob = LogMonitor::new("app-1", key.public_key());
    bob.update(&sth(&key, &bobs_log, 9, 4), &[]).unwrap();
    alice
        .update(
            &sth(&key, &alices_log, 9, 4),
            &alices_log.consistency_proof(8, 9).unwrap(),
        )
        .unwrap();
    let bobs_head = sth(&key, &bobs_log, 9, 4);
    assert_eq!(alice.cross_check(&bobs_head, &[]), Err(LogError::Fork));
    // A consistent gossiped head passes.
    let honest_head = sth(&key, &alices_log, 9, 5);
    alice.cross_check(&honest_head, &[]).unwrap();
    let smaller = sth(&key, &alices_log, 4, 5);
    alice
        .cross_check(&smaller, &alices_log.consistency_proof(4, 9).unwrap())
        .unwrap();
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
    let mut log = MerkleLog::new();
    for e in [LogEntry::Card(card), LogEntry::Revocation(rev)] {
        let bytes = e.to_bytes();
        assert_eq!(LogEntry::from_bytes(&bytes).unwrap(), e);
        let i = log.append(&bytes);
        assert_eq!(log.leaves()[i as usize], e.leaf_hash());
    }
    assert_eq!(LogEntry::from_bytes(&[3, 1, 2]), Err(LogError::Malformed));
    assert_eq!(LogEntry::from_bytes(&[]), Err(LogError::Malformed));
}

/// The log's cached subtree hashes give exactly what the plain RFC 9162
/// recursion over the leaf list gives, for every size, index and prefix.
#[test]
fn cached_log_agrees_with_the_plain_recursion() {
    let mut log = MerkleLog::new();
    for i in 0..70u32 {
        assert_eq!(log.root(), root(log.leaves()), "root at {i}");
        log.append(&i.to_be_bytes());
    }
    let leaves = log.leaves().to_vec();
    for size in 0..=leaves.len() {
        let prefix = &leaves[..size];
        assert_eq!(
            log.root_at(size as u64),
            Some(root(prefix)),
            "root_at {size}"
        );
        for index in 0..=size {
            assert_eq!(
                log.inclusion_proof(index as u64, size as u64),
                inclusion_proof(prefix, index),
                "inclusion {index} of {size}"
            );
            assert_eq!(
                log.consistency_proof(index as u64, size as u64),
                consistency_proof(prefix, index),
                "consistency {index} → {size}"
            );
        }
    }
    assert_eq!(log.root_at(71), None);
    assert_eq!(log.inclusion_proof(0, 71), None);
    assert_eq!(log.consistency_proof(0, 71), None);
}

#[test]
fn monitor_refuses_stale_and_future_heads() {
    let key = LogKey::from_secret_bytes(&[42; 32]);
    let log = many(3);
    let fresh = Freshness::default();
    let now = 1_000_000_000;
    let mut m = LogMonitor::new("app-1", key.public_key());
    // Within the bounds (exactly at either edge too).
    m.update_fresh(&sth(&key, &log, 2, now - 1000), &[], now, fresh)
        .unwrap();
    let edge = now - Freshness::DEFAULT_MAX_AGE_MS;
    let proof = log.consistency_proof(2, 3).unwrap();
    m.update_fresh(&sth(&key, &log, 3, edge), &proof, now, fresh)
        .unwrap();
    let ahead = now + Freshness::DEFAULT_MAX_SKEW_MS;
    m.update_fresh(&sth(&key, &log, 3, ahead), &[], now, fresh)
        .unwrap();
    // A replayed old head and one from the future are refused, and the
    // trusted head stays.
    let trusted = m.trusted().cloned();
    assert_eq!(
        m.update_fresh(&sth(&key, &log, 3, edge - 1), &[], now, fresh),
        Err(LogError::Stale {
            signed: edge - 1,
            now
        })
    );
    assert_eq!(
        m.update_fresh(&sth(&key, &log, 3, ahead + 1), &[], now, fresh),
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
        m.update_fresh(&sth(&key, &log, 3, now - 11), &[], now, tight),
        Err(LogError::Stale { .. })
    ));
    let other = LogKey::from_secret_bytes(&[43; 32]);
    assert_eq!(
        m.update_fresh(&sth(&other, &log, 3, 0), &[], now, fresh),
        Err(LogError::BadSignature)
    );
}
