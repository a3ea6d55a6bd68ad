//! Safety numbers, computed exactly as Signal computes them (libsignal
//! `fingerprint.rs`; shared E2EE.md §2.6), checked against Signal's published
//! test vectors.
//!
//! For each party: `h₀ = SHA-512(0x0000 ‖ K ‖ id ‖ K)`, then
//! `hᵢ = SHA-512(hᵢ₋₁ ‖ K)` up to `iterations` hashes in all (5200). The
//! displayable half is the first 30 bytes of the final hash read as six
//! 5-byte big-endian integers, each `mod 100 000`, zero-padded to 5 digits.
//! The 60-digit number is the two halves, smaller first, so both sides see
//! the same string. The scannable (QR) payload is Signal's
//! `CombinedFingerprints` protobuf: `{version, local: {first 32 bytes},
//! remote: {first 32 bytes}}`, compared in constant time.
//!
//! `K` is the serialized identity public key. Signal's is 33 bytes: type
//! byte `0x05` (Curve25519) and the key ([`SIGNAL_KEY_TYPE`], used for the
//! vectors). hush's identity keys are Ed25519, so hush serializes them as
//! `0xED ‖ 32-byte Ed25519 key` ([`HUSH_ED25519_KEY_TYPE`]) and uses the
//! application's user id (UTF-8) as `id`; its QR payload carries version
//! [`HUSH_SCANNABLE_VERSION`], so scanning a Signal code (version 1 or 2)
//! reports a version mismatch instead of a wrong "numbers differ".

use std::fmt::Write as _;

use hush_protocol::UserId;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use crate::identity::IdentityPublicKey;

/// Signal's iteration count.
pub const ITERATIONS: u32 = 5200;
/// Signal's type byte for a Curve25519 public key (`K = 0x05 ‖ key`).
pub const SIGNAL_KEY_TYPE: u8 = 0x05;
/// The type byte hush puts before an Ed25519 identity key (`K = 0xED ‖ key`).
pub const HUSH_ED25519_KEY_TYPE: u8 = 0xED;
/// The scannable-payload version hush writes (Signal uses 1 and 2).
pub const HUSH_SCANNABLE_VERSION: u32 = 72;
/// Digits in a safety number.
pub const DIGITS: usize = 60;

/// Why a safety number could not be computed or a scanned code compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SafetyError {
    /// Iterations outside 2..=1 000 000 (Signal's bounds).
    #[error("invalid safety-number iteration count")]
    InvalidIterations,
    /// The scanned payload is not a `CombinedFingerprints` message.
    #[error("scanned code is not a safety-number code")]
    Malformed,
    /// The scanned code has another version.
    #[error("scanned code has version {theirs}, expected {ours}")]
    VersionMismatch {
        /// The scanned code's version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
}

/// One party's iterated hash.
fn fingerprint_hash(iterations: u32, key: &[u8], id: &[u8]) -> Result<[u8; 64], SafetyError> {
    if !(2..=1_000_000).contains(&iterations) {
        return Err(SafetyError::InvalidIterations);
    }
    let mut h = Sha512::new();
    h.update([0u8, 0u8]);
    h.update(key);
    h.update(id);
    h.update(key);
    let mut buf: [u8; 64] = h.finalize().into();
    for _ in 1..iterations {
        let mut h = Sha512::new();
        h.update(buf);
        h.update(key);
        buf = h.finalize().into();
    }
    Ok(buf)
}

fn thirty_digits(hash: &[u8; 64]) -> String {
    let mut s = String::with_capacity(30);
    for chunk in hash[..30].chunks_exact(5) {
        let n = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let _ = write!(s, "{:05}", n % 100_000);
    }
    s
}

/// A safety number between a local and a remote identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumber {
    version: u32,
    local: [u8; 32],
    remote: [u8; 32],
    local_digits: String,
    remote_digits: String,
}

impl SafetyNumber {
    /// The general form: `version` of the scannable payload, `iterations`,
    /// and each party's stable id and serialized key `K` as Signal defines
    /// them.
    pub fn new(
        version: u32,
        iterations: u32,
        local_id: &[u8],
        local_key: &[u8],
        remote_id: &[u8],
        remote_key: &[u8],
    ) -> Result<Self, SafetyError> {
        let l = fingerprint_hash(iterations, local_key, local_id)?;
        let r = fingerprint_hash(iterations, remote_key, remote_id)?;
        let mut local = [0u8; 32];
        let mut remote = [0u8; 32];
        local.copy_from_slice(&l[..32]);
        remote.copy_from_slice(&r[..32]);
        Ok(Self {
            version,
            local,
            remote,
            local_digits: thirty_digits(&l),
            remote_digits: thirty_digits(&r),
        })
    }

    /// hush's safety number for two users: Signal's algorithm with 5200
    /// iterations over `0xED ‖ Ed25519 identity key` and the UTF-8 user id.
    pub fn for_users(
        local_user: &UserId,
        local_key: &IdentityPublicKey,
        remote_user: &UserId,
        remote_key: &IdentityPublicKey,
    ) -> Self {
        let k = |key: &IdentityPublicKey| {
            let mut out = [0u8; 33];
            out[0] = HUSH_ED25519_KEY_TYPE;
            out[1..].copy_from_slice(&key.to_bytes());
            out
        };
        match Self::new(
            HUSH_SCANNABLE_VERSION,
            ITERATIONS,
            local_user.as_str().as_bytes(),
            &k(local_key),
            remote_user.as_str().as_bytes(),
            &k(remote_key),
        ) {
            Ok(n) => n,
            // ITERATIONS is within the accepted range.
            Err(_) => unreachable_iterations(),
        }
    }

    /// The 60 digits (both sides see the same string).
    pub fn display(&self) -> String {
        if self.local_digits < self.remote_digits {
            format!("{}{}", self.local_digits, self.remote_digits)
        } else {
            format!("{}{}", self.remote_digits, self.local_digits)
        }
    }

    /// The 60 digits in twelve groups of five, as apps show them.
    pub fn display_grouped(&self) -> String {
        let digits = self.display();
        let groups: Vec<&str> = (0..12).map(|i| &digits[i * 5..i * 5 + 5]).collect();
        groups.join(" ")
    }

    /// The QR payload: Signal's `CombinedFingerprints` protobuf,
    /// `08 <varint version> 12 22 0a 20 <local 32> 1a 22 0a 20 <remote 32>`.
    pub fn scannable(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        out.push(0x08);
        let mut v = self.version;
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        for (tag, fp) in [(0x12, &self.local), (0x1a, &self.remote)] {
            out.extend_from_slice(&[tag, 0x22, 0x0a, 0x20]);
            out.extend_from_slice(fp);
        }
        out
    }

    /// Compares a code scanned from the other party's screen: it must carry
    /// our version, its local half must equal our remote half and vice versa
    /// (constant time). `Ok(false)` means the numbers differ: someone's key
    /// is not what the other side believes.
    pub fn compare_scanned(&self, scanned: &[u8]) -> Result<bool, SafetyError> {
        let (version, local, remote) = parse_scannable(scanned)?;
        if version != self.version {
            return Err(SafetyError::VersionMismatch {
                theirs: version,
                ours: self.version,
            });
        }
        let same = local.ct_eq(&self.remote) & remote.ct_eq(&self.local);
        Ok(same.into())
    }
}

#[allow(clippy::panic)]
fn unreachable_iterations() -> ! {
    panic!("ITERATIONS is a valid iteration count")
}

/// Reads the canonical `CombinedFingerprints` encoding (the only one any
/// Signal or hush client writes).
fn parse_scannable(bytes: &[u8]) -> Result<(u32, [u8; 32], [u8; 32]), SafetyError> {
    let mut rest = bytes;
    let mut next = || -> Result<u8, SafetyError> {
        let (&b, tail) = rest.split_first().ok_or(SafetyError::Malformed)?;
        rest = tail;
        Ok(b)
    };
    if next()? != 0x08 {
        return Err(SafetyError::Malformed);
    }
    let mut version: u64 = 0;
    for shift in (0..35).step_by(7) {
        let b = next()?;
        version |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        if shift == 28 {
            return Err(SafetyError::Malformed);
        }
    }
    let version = u32::try_from(version).map_err(|_| SafetyError::Malformed)?;
    let mut halves = [[0u8; 32]; 2];
    for (tag, half) in [0x12u8, 0x1a].into_iter().zip(halves.iter_mut()) {
        for expected in [tag, 0x22, 0x0a, 0x20] {
            if next()? != expected {
                return Err(SafetyError::Malformed);
            }
        }
        for byte in half.iter_mut() {
            *byte = next()?;
        }
    }
    if !rest.is_empty() {
        return Err(SafetyError::Malformed);
    }
    Ok((version, halves[0], halves[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKey;

    // Signal's published vectors (libsignal rust/protocol/src/fingerprint.rs,
    // testVectorsVersion1/2 in the Java library), used as data.
    static ALICE_IDENTITY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.alice_identity_hex"));
    static BOB_IDENTITY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.bob_identity_hex"));
    static DISPLAYABLE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.displayable"));
    static ALICE_SCANNABLE_V1: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.alice_scannable_v1"));
    static BOB_SCANNABLE_V1: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.bob_scannable_v1"));
    static ALICE_SCANNABLE_V2: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.alice_scannable_v2"));
    static BOB_SCANNABLE_V2: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.bob_scannable_v2"));
    static ALICE_ID: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.alice_id"));
    static BOB_ID: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("safety.bob_id"));

    fn pair(version: u32) -> (SafetyNumber, SafetyNumber) {
        let a = hex::decode(&*ALICE_IDENTITY).unwrap();
        let b = hex::decode(&*BOB_IDENTITY).unwrap();
        assert_eq!(a[0], SIGNAL_KEY_TYPE);
        let alice = SafetyNumber::new(
            version,
            ITERATIONS,
            ALICE_ID.as_bytes(),
            &a,
            BOB_ID.as_bytes(),
            &b,
        )
        .unwrap();
        let bob = SafetyNumber::new(
            version,
            ITERATIONS,
            BOB_ID.as_bytes(),
            &b,
            ALICE_ID.as_bytes(),
            &a,
        )
        .unwrap();
        (alice, bob)
    }

    #[test]
    fn signal_vectors_v1() {
        let (alice, bob) = pair(1);
        assert_eq!(alice.display(), *DISPLAYABLE);
        assert_eq!(bob.display(), *DISPLAYABLE);
        assert_eq!(hex::encode(alice.scannable()), *ALICE_SCANNABLE_V1);
        assert_eq!(hex::encode(bob.scannable()), *BOB_SCANNABLE_V1);
        assert!(alice.compare_scanned(&bob.scannable()).unwrap());
        assert!(bob.compare_scanned(&alice.scannable()).unwrap());
        // Scanning one's own code is not a match.
        assert!(!alice.compare_scanned(&alice.scannable()).unwrap());
    }

    #[test]
    fn signal_vectors_v2() {
        let (alice, bob) = pair(2);
        assert_eq!(alice.display(), *DISPLAYABLE);
        assert_eq!(hex::encode(alice.scannable()), *ALICE_SCANNABLE_V2);
        assert_eq!(hex::encode(bob.scannable()), *BOB_SCANNABLE_V2);
        let (alice_v1, _) = pair(1);
        assert_eq!(
            alice_v1.compare_scanned(&bob.scannable()),
            Err(SafetyError::VersionMismatch { theirs: 2, ours: 1 })
        );
    }

    #[test]
    fn signal_encoding_vector() {
        let n = SafetyNumber {
            version: 2,
            local: [0x12; 32],
            remote: [0xba; 32],
            local_digits: String::new(),
            remote_digits: String::new(),
        };
        let expected = "080212220a20".to_owned() + &"12".repeat(32) + "1a220a20" + &"ba".repeat(32);
        assert_eq!(hex::encode(n.scannable()), expected);
        assert_eq!(
            parse_scannable(&n.scannable()),
            Ok((2, [0x12; 32], [0xba; 32]))
        );
    }

    #[test]
    fn hush_numbers_match_across_sides_and_detect_a_swapped_key() {
        let alice_key = IdentityKey::from_secret_bytes(&[1; 32]).public_key();
        let bob_key = IdentityKey::from_secret_bytes(&[2; 32]).public_key();
        let mallory_key = IdentityKey::from_secret_bytes(&[3; 32]).public_key();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let a = SafetyNumber::for_users(&alice, &alice_key, &bob, &bob_key);
        let b = SafetyNumber::for_users(&bob, &bob_key, &alice, &alice_key);
        assert_eq!(a.display(), b.display());
        assert_eq!(a.display().len(), DIGITS);
        assert!(a.display().bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(a.display_grouped().len(), 71);
        assert!(a.compare_scanned(&b.scannable()).unwrap());
        assert_eq!(a.scannable()[1], 72);
        // Alice was shown Mallory's key for Bob.
        let fooled = SafetyNumber::for_users(&alice, &alice_key, &bob, &mallory_key);
        assert_ne!(fooled.display(), b.display());
        assert!(!fooled.compare_scanned(&b.scannable()).unwrap());
        // Another user id with the same key gives another number.
        let other = SafetyNumber::for_users(
            &alice,
            &alice_key,
            &UserId::parse("bob2").unwrap(),
            &bob_key,
        );
        assert_ne!(other.display(), a.display());
    }

    #[test]
    fn malformed_scans_and_bad_iterations() {
        let (alice, bob) = pair(1);
        let good = bob.scannable();
        for bad in [
            &[][..],
            &good[..good.len() - 1],
            &[good.as_slice(), &[0]].concat(),
            &[0x09, 0x01][..],
        ] {
            assert_eq!(alice.compare_scanned(bad), Err(SafetyError::Malformed));
        }
        let mut wrong_tag = good.clone();
        wrong_tag[2] = 0x13;
        assert_eq!(
            alice.compare_scanned(&wrong_tag),
            Err(SafetyError::Malformed)
        );
        // A flipped fingerprint byte is a mismatch, not an error.
        let mut flipped = good;
        flipped[10] ^= 1;
        assert_eq!(alice.compare_scanned(&flipped), Ok(false));
        for it in [0, 1, 1_000_001] {
            assert_eq!(
                SafetyNumber::new(1, it, b"a", b"k", b"b", b"k"),
                Err(SafetyError::InvalidIterations)
            );
        }
        // Multi-byte varint versions round-trip.
        let n = SafetyNumber::new(300, 2, b"a", b"k", b"b", b"k").unwrap();
        assert_eq!(parse_scannable(&n.scannable()).unwrap().0, 300);
    }
}
