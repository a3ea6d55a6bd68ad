//! Transparency-log proofs as a client checks them (hush-crypto
//! transparency.rs, RFC 9162 §2.1): inclusion and consistency proofs and the
//! incremental Merkle log that serves them, against fuzzer-chosen trees and
//! hostile proofs.
//!
//! Oracles: the incremental log's roots equal a plain recursive RFC 9162
//! tree hash (and `transparency::root`); every proof the log makes verifies;
//! a hostile inclusion proof verifies only if it names the real leaf at the
//! real index and equals the real proof, and a hostile consistency proof
//! only if it equals the real one (anything else would be a forgery or a
//! hash collision); no size, index or proof length panics.
#![no_main]

use arbitrary::Arbitrary;
use hush_crypto::transparency::{
    Hash, MerkleLog, leaf_hash, node_hash, root, verify_consistency, verify_inclusion,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    leaves: Vec<Vec<u8>>,
    index: u64,
    size: u64,
    first: u64,
    claimed_leaf: ClaimedLeaf,
    proof: Vec<[u8; 32]>,
    use_real_proof_prefix: bool,
}

#[derive(Arbitrary, Debug)]
enum ClaimedLeaf {
    Data(Vec<u8>),
    Hash([u8; 32]),
    Real(usize),
    /// The hash of an interior node (leaves `start .. start + len`) passed
    /// off as a leaf: what the leaf/node domain separation and the path
    /// length check must stop.
    Interior {
        start: usize,
        len: usize,
    },
}

/// RFC 9162 MTH, written the obvious recursive way.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha_empty(),
        1 => leaves[0],
        n => {
            // The largest power of two smaller than n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn sha_empty() -> Hash {
    use sha2::{Digest, Sha256};
    Sha256::digest([]).into()
}

fn check(input: &Input) {
    let mut log = MerkleLog::new();
    for data in input.leaves.iter().take(300) {
        log.append(data);
    }
    let leaves = log.leaves().to_vec();
    let n = leaves.len() as u64;
    for size in [0, n / 2, n.saturating_sub(1), n] {
        let expected = mth(&leaves[..size as usize]);
        assert_eq!(log.root_at(size), Some(expected));
        assert_eq!(root(&leaves[..size as usize]), expected);
    }
    assert_eq!(log.root_at(n + 1), None);

    // Real proofs verify.
    let size = if n == 0 { 0 } else { input.size % (n + 1) };
    let index = if size == 0 { 0 } else { input.index % size };
    if size > 0 {
        let proof = log.inclusion_proof(index, size).expect("proof in range");
        let r = log.root_at(size).expect("root in range");
        assert!(verify_inclusion(&leaves[index as usize], index, size, &proof, &r).is_ok());
    }
    let first = if size == 0 {
        0
    } else {
        input.first % (size + 1)
    };
    let cproof = log
        .consistency_proof(first, size)
        .expect("consistency in range");
    let (r1, r2) = (
        log.root_at(first).expect("root"),
        log.root_at(size).expect("root"),
    );
    assert!(verify_consistency(first, size, &r1, &r2, &cproof).is_ok());
    // Shrinking is refused.
    if first < size {
        assert!(verify_consistency(size, first, &r2, &r1, &[]).is_err());
    }

    // Hostile proofs against the real roots.
    let mut hostile: Vec<Hash> = input.proof.iter().take(80).copied().collect();
    if input.use_real_proof_prefix && size > 0 {
        let mut real = log.inclusion_proof(index, size).expect("proof");
        real.extend(hostile.iter().copied().take(1));
        hostile = real;
    }
    let claimed = match &input.claimed_leaf {
        ClaimedLeaf::Data(d) => leaf_hash(d),
        ClaimedLeaf::Hash(h) => *h,
        ClaimedLeaf::Real(i) if n > 0 => leaves[i % n as usize],
        ClaimedLeaf::Real(_) => [0; 32],
        ClaimedLeaf::Interior { start, len } if n > 1 => {
            let start = start % n as usize;
            let len = 2 + len % (n as usize - start).max(1);
            let end = (start + len).min(n as usize);
            mth(&leaves[start..end])
        }
        ClaimedLeaf::Interior { .. } => [0; 32],
    };
    // Any index and size, including far beyond the log: no panic.
    let _ = verify_inclusion(&claimed, input.index, input.size, &hostile, &r2);
    let _ = verify_consistency(input.first, input.size, &r1, &r2, &hostile);
    if size > 0 {
        let claimed_index = input.index % size.max(1);
        if verify_inclusion(&claimed, claimed_index, size, &hostile, &r2).is_ok() {
            assert_eq!(
                claimed, leaves[claimed_index as usize],
                "forged leaf included"
            );
            assert_eq!(
                Some(hostile.clone()),
                log.inclusion_proof(claimed_index, size),
                "a second inclusion proof verifies"
            );
        }
    }
    if 0 < first && first < size && verify_consistency(first, size, &r1, &r2, &hostile).is_ok() {
        assert_eq!(hostile, cproof, "a second consistency proof verifies");
    }
    // A fork: the same sizes with any other second root must fail.
    if 0 < first && first < size {
        let mut forked = r2;
        forked[0] ^= 1;
        assert!(verify_consistency(first, size, &r1, &forked, &cproof).is_err());
    }
}

fuzz_target!(|input: Input| check(&input));
