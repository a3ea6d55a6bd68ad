//! The chunk verifier against a real directory's audit answers, and the
//! answers a lying directory could give instead.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hush_crypto::identity::IdentityKey;
use hush_crypto::transparency::{LogKey, SignedTreeHead, TreeHead};
use hush_protocol::UserId;
use hush_server::config::DirectoryConfig;
use hush_server::directory::Directory;

const APP: &str = "3";

/// A directory with `epochs` epochs (one card each) and its head key.
async fn directory(epochs: usize) -> (Directory, LogPublicKey) {
    let store = hush_store::Store::open("sqlite::memory:", &Default::default())
        .await
        .unwrap();
    let dir = Directory::open(store)
        .await
        .unwrap()
        .with_limits(DirectoryConfig {
            epoch_interval_ms: 10,
            ..DirectoryConfig::default()
        });
    for i in 0..epochs {
        let user = format!("user{i}");
        let card = hush_testkit::new_card(&user, &IdentityKey::generate());
        dir.publish(
            APP,
            &UserId::parse(&user).unwrap(),
            &STANDARD.encode(card.to_bytes()),
        )
        .await
        .unwrap();
    }
    let key: [u8; 32] = STANDARD
        .decode(dir.public_key())
        .unwrap()
        .try_into()
        .unwrap();
    (dir, LogPublicKey::from_bytes(&key).unwrap())
}

async fn audit(dir: &Directory, from: u64, to: u64) -> Audit {
    Audit::from_wire(&dir.audit(APP, from, to).await.unwrap()).unwrap()
}

fn resign(
    key: &LogKey,
    heads: &[SignedTreeHead],
    edit: impl Fn(&mut TreeHead),
) -> Vec<SignedTreeHead> {
    heads
        .iter()
        .map(|h| {
            let mut head = h.head.clone();
            edit(&mut head);
            key.sign(head)
        })
        .collect()
}

#[tokio::test]
async fn honest_chunks_verify_and_join() {
    let (dir, key) = directory(4).await;
    let whole = verify_chunk(&key, APP, (1, 4), None, &audit(&dir, 1, 4).await)
        .await
        .unwrap();
    assert_eq!(whole.epoch, 4);
    let first = verify_chunk(&key, APP, (1, 2), None, &audit(&dir, 1, 2).await)
        .await
        .unwrap();
    let joined = verify_chunk(&key, APP, (2, 4), Some(&first), &audit(&dir, 2, 4).await)
        .await
        .unwrap();
    assert_eq!(joined, whole);
}

#[tokio::test]
async fn attack_audit_chunk_with_rewritten_epoch_root_is_a_fork() {
    let (dir, key) = directory(3).await;
    let a = audit(&dir, 2, 3).await;
    // The epoch-2 root this auditor saw before differs from the one served
    // now: the chunk verifies on its own, but does not join.
    let audited = Checkpoint {
        epoch: 2,
        root: [7; 32],
    };
    assert_eq!(
        verify_chunk(&key, APP, (2, 3), Some(&audited), &a).await,
        Err(Problem::Fork {
            epoch: 2,
            audited: [7; 32],
            served: a.heads[0].head.root,
        })
    );
}

#[tokio::test]
async fn attack_audit_heads_that_are_not_the_epochs_asked_or_not_signed() {
    let (dir, key) = directory(3).await;
    let a = audit(&dir, 1, 3).await;
    // Heads dropped, reordered or of other epochs.
    let mut short = a.clone();
    short.heads.pop();
    let mut swapped = a.clone();
    swapped.heads.swap(1, 2);
    for bad in [short, swapped] {
        assert!(matches!(
            verify_chunk(&key, APP, (1, 3), None, &bad).await,
            Err(Problem::Epochs { from: 1, to: 3, .. })
        ));
    }
    // Another app's heads, or heads under another key.
    assert!(matches!(
        verify_chunk(&key, "4", (1, 3), None, &a).await,
        Err(Problem::Head {
            epoch: 1,
            error: LogError::WrongLog
        })
    ));
    let other = LogKey::generate();
    let mut forged = a.clone();
    forged.heads = resign(&other, &a.heads, |_| {});
    assert!(matches!(
        verify_chunk(&key, APP, (1, 3), None, &forged).await,
        Err(Problem::Head {
            error: LogError::BadSignature,
            ..
        })
    ));
}

#[tokio::test]
async fn attack_audit_root_not_extended_by_the_proof() {
    let (dir, _) = directory(3).await;
    let a = audit(&dir, 1, 3).await;
    // Someone holding the head key signs another root for epoch 3: the
    // append-only proof does not lead to it.
    let holder = LogKey::generate();
    let mut honest = a.clone();
    honest.heads = resign(&holder, &a.heads, |_| {});
    verify_chunk(&holder.public_key(), APP, (1, 3), None, &honest)
        .await
        .unwrap();
    let mut rewritten = a.clone();
    rewritten.heads = resign(&holder, &a.heads, |h| {
        if h.epoch == 3 {
            h.root[0] ^= 1;
        }
    });
    assert!(matches!(
        verify_chunk(&holder.public_key(), APP, (1, 3), None, &rewritten).await,
        Err(Problem::NotAppendOnly { from: 1, to: 3, .. })
    ));
    // The proof of other epochs, or garbage, does not pass either.
    let mut p = pb::AppendOnlyProof::parse_from_bytes(&a.proof).unwrap();
    p.epochs = vec![5, 6];
    let mut shifted = honest.clone();
    shifted.proof = p.write_to_bytes().unwrap();
    let mut garbage = honest.clone();
    garbage.proof = b"\xff\xff".to_vec();
    for bad in [shifted, garbage] {
        assert!(matches!(
            verify_chunk(&holder.public_key(), APP, (1, 3), None, &bad).await,
            Err(Problem::NotAppendOnly { .. })
        ));
    }
}
