//! Replays the key directory's known-answer vectors
//! (`tests/vectors/directory.json`, written by hush-server's
//! `directory::tests::known_answer_vectors`) with only what a client has:
//! the signed head, the lookup and history proofs and the entry format.
//! Any other implementation of the client side replays the same file.
#![allow(missing_docs, clippy::unwrap_used)]

use hush_crypto::transparency::proofs::{UserEntry, VrfPublicKey, verify_history, verify_lookup};
use hush_crypto::transparency::{LogError, LogPublicKey, SignedTreeHead};
use hush_protocol::UserId;
use serde_json::Value;

fn doc() -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/directory.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bytes(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap()).unwrap()
}

fn key32(v: &Value, k: &str) -> [u8; 32] {
    bytes(v, k).try_into().unwrap()
}

#[test]
fn directory_vectors_replay() {
    let v = doc();
    let user = UserId::parse(v["user"].as_str().unwrap()).unwrap();
    let vrf = VrfPublicKey::from_bytes(&key32(&v, "vrf_public_key")).unwrap();
    let log_key = LogPublicKey::from_bytes(&key32(&v, "log_public_key")).unwrap();

    // The signed head: format v2, signed by the log key, for the log id.
    let head = SignedTreeHead::from_bytes(&bytes(&v, "signed_head")).unwrap();
    head.verify(&log_key, v["log_id"].as_str().unwrap()).unwrap();
    assert_eq!(head.head.epoch, v["epoch"].as_u64().unwrap());
    assert_eq!(head.head.root.to_vec(), bytes(&v, "root"));
    assert_eq!(head.to_bytes(), bytes(&v, "signed_head"));

    // Entries: strict, canonical.
    for k in ["entry_v1", "entry_v2"] {
        let e = UserEntry::from_bytes(&user, &bytes(&v, k)).unwrap();
        assert_eq!(e.to_bytes(), bytes(&v, k), "{k}");
    }

    // The lookup proof shows entry v2 as the latest version.
    let found = verify_lookup(&vrf, &head.head, &user, &bytes(&v, "lookup_proof")).unwrap();
    assert_eq!(found.version, v["lookup_version"].as_u64().unwrap());
    assert_eq!(found.entry.to_bytes(), bytes(&v, "entry_v2"));
    // For another user, or under another root, it does not verify.
    let bob = UserId::parse("bob").unwrap();
    assert_eq!(
        verify_lookup(&vrf, &head.head, &bob, &bytes(&v, "lookup_proof")),
        Err(LogError::BadProof)
    );
    let mut other = head.head.clone();
    other.root[0] ^= 1;
    assert_eq!(
        verify_lookup(&vrf, &other, &user, &bytes(&v, "lookup_proof")),
        Err(LogError::BadProof)
    );

    // The history proof: v2 then v1.
    let n = v["history_versions"].as_u64().unwrap() as usize;
    let history = verify_history(&vrf, &head.head, &user, &bytes(&v, "history_proof"), n).unwrap();
    let got: Vec<(u64, Vec<u8>)> = history
        .iter()
        .map(|h| (h.version, h.entry.to_bytes()))
        .collect();
    assert_eq!(
        got,
        vec![(2, bytes(&v, "entry_v2")), (1, bytes(&v, "entry_v1"))]
    );
    // The last root is the head's.
    let roots = v["roots"].as_array().unwrap();
    assert_eq!(roots.last().unwrap().as_str().unwrap(), v["root"].as_str().unwrap());
}
