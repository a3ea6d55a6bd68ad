//! HPKE (RFC 9180) base mode, single shot, in the one configuration suite 1
//! uses: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. It is
//! the RFC's construction over the same primitive crates the `hpke` crate
//! uses (x25519-dalek, hkdf / sha2, chacha20poly1305), and byte for byte the
//! same output: the tests below check it against RFC 9180 appendix A.2.1 and
//! against the `hpke` crate in both directions.
//!
//! Why not the `hpke` crate: its encapsulation derives the ephemeral key
//! pair and then computes the ephemeral public key a second time, and its
//! decapsulation derives the receiver's public key from the private key on
//! every message. Each is an X25519 base-point multiplication (about a
//! fifth of an encapsulation), per recipient when sealing and per message
//! when opening, which issue 13's speed targets (ratios to the primitives)
//! cannot afford; `hpke` 0.15 has no public way around either. Here the
//! ephemeral public key is computed once and the receiver passes its own
//! public key, and the `info`-dependent half of the key schedule is computed
//! once per message rather than once per recipient.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use hkdf::{Hkdf, HkdfExtract};
use rand_core::CryptoRng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// `"KEM" ‖ I2OSP(0x0020, 2)`: DHKEM(X25519, HKDF-SHA256).
const KEM_SUITE: &[u8] = b"KEM\x00\x20";
/// `"HPKE" ‖ kem 0x0020 ‖ kdf 0x0001 (HKDF-SHA256) ‖ aead 0x0003
/// (ChaCha20-Poly1305)`.
const HPKE_SUITE: &[u8] = b"HPKE\x00\x20\x00\x01\x00\x03";
const VERSION_LABEL: &[u8] = b"HPKE-v1";
/// Base mode.
const MODE_BASE: u8 = 0x00;
/// Length of `enc` (an X25519 public key).
pub(super) const ENC_LEN: usize = 32;

/// Encapsulation or decapsulation failed: the DH result was all zeros (a
/// low-order public key), or the AEAD refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct HpkeError;

/// `LabeledExtract(salt, label, ikm)` (RFC 9180 §4): the HKDF state for the
/// expansions, and the pseudo-random key (wiped when dropped).
fn labeled_extract(
    salt: &[u8],
    suite: &[u8],
    label: &[u8],
    ikm: &[u8],
) -> (Zeroizing<[u8; 32]>, Hkdf<Sha256>) {
    let mut ex = HkdfExtract::<Sha256>::new(Some(salt));
    ex.input_ikm(VERSION_LABEL);
    ex.input_ikm(suite);
    ex.input_ikm(label);
    ex.input_ikm(ikm);
    let (prk, hk) = ex.finalize();
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&prk);
    (out, hk)
}

/// `LabeledExpand(prk, label, info, L)` into `out` (`L = out.len()`).
fn labeled_expand(hk: &Hkdf<Sha256>, suite: &[u8], label: &[u8], info: &[&[u8]], out: &mut [u8]) {
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX).to_be_bytes();
    let mut parts: [&[u8]; 6] = [&len, VERSION_LABEL, suite, label, &[], &[]];
    for (slot, part) in parts[4..].iter_mut().zip(info) {
        *slot = part;
    }
    // At most 255 × 32 bytes: every caller asks for 32 or 12.
    if hk.expand_multi_info(&parts, out).is_err() {
        out.fill(0);
    }
}

/// The `info`-dependent half of the key schedule, once per message:
/// `key_schedule_context = mode ‖ psk_id_hash ‖ info_hash` (base mode, no
/// PSK).
pub(super) struct KeySchedule {
    context: [u8; 65],
}

impl KeySchedule {
    /// The schedule for `info`.
    pub(super) fn new(info: &[u8]) -> Self {
        let (psk_id_hash, _) = labeled_extract(b"", HPKE_SUITE, b"psk_id_hash", b"");
        let (info_hash, _) = labeled_extract(b"", HPKE_SUITE, b"info_hash", info);
        let mut context = [0u8; 65];
        context[0] = MODE_BASE;
        context[1..33].copy_from_slice(psk_id_hash.as_slice());
        context[33..].copy_from_slice(info_hash.as_slice());
        Self { context }
    }

    /// The AEAD of the context for `shared_secret`: `secret =
    /// LabeledExtract(shared_secret, "secret", psk = "")`, `key` and
    /// `base_nonce` expanded from it. A single-shot context encrypts once,
    /// with sequence number 0, so its nonce is `base_nonce` itself.
    fn aead(&self, shared_secret: &[u8; 32]) -> (ChaCha20Poly1305, Nonce) {
        let (_, hk) = labeled_extract(shared_secret, HPKE_SUITE, b"secret", b"");
        let mut key = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 12];
        labeled_expand(
            &hk,
            HPKE_SUITE,
            b"key",
            &[&self.context],
            key.as_mut_slice(),
        );
        labeled_expand(&hk, HPKE_SUITE, b"base_nonce", &[&self.context], &mut nonce);
        (ChaCha20Poly1305::new((&*key).into()), nonce.into())
    }
}

/// `DeriveKeyPair(ikm)` (RFC 9180 §7.1.3) for X25519.
fn derive_key_pair(ikm: &[u8; 32]) -> (StaticSecret, PublicKey) {
    let (_, hk) = labeled_extract(b"", KEM_SUITE, b"dkp_prk", ikm);
    let mut sk = Zeroizing::new([0u8; 32]);
    labeled_expand(&hk, KEM_SUITE, b"sk", &[], sk.as_mut_slice());
    let sk = StaticSecret::from(*sk);
    let pk = PublicKey::from(&sk);
    (sk, pk)
}

/// `ExtractAndExpand(dh, enc ‖ pkR)` (RFC 9180 §4.1), refusing an all-zero
/// DH result as the RFC requires.
fn shared_secret(
    sk: &StaticSecret,
    their: &PublicKey,
    enc: &[u8; ENC_LEN],
    pk_r: &PublicKey,
) -> Result<Zeroizing<[u8; 32]>, HpkeError> {
    let dh = sk.diffie_hellman(their);
    if !dh.was_contributory() {
        return Err(HpkeError);
    }
    let (_, hk) = labeled_extract(b"", KEM_SUITE, b"eae_prk", dh.as_bytes());
    let mut out = Zeroizing::new([0u8; 32]);
    labeled_expand(
        &hk,
        KEM_SUITE,
        b"shared_secret",
        &[enc, pk_r.as_bytes()],
        out.as_mut_slice(),
    );
    Ok(out)
}

/// Single-shot base-mode seal of `plaintext` to `pk_r`, the ephemeral key
/// pair derived from 32 bytes of `rng` (as `DeriveKeyPair`, so a scripted
/// generator reproduces the RFC's vectors): `(enc, ciphertext ‖ tag)`.
pub(super) fn seal(
    schedule: &KeySchedule,
    pk_r: &PublicKey,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<([u8; ENC_LEN], Vec<u8>), HpkeError> {
    let mut ikm = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(ikm.as_mut_slice());
    seal_with_ikm(schedule, pk_r, aad, plaintext, &ikm)
}

fn seal_with_ikm(
    schedule: &KeySchedule,
    pk_r: &PublicKey,
    aad: &[u8],
    plaintext: &[u8],
    ikm: &[u8; 32],
) -> Result<([u8; ENC_LEN], Vec<u8>), HpkeError> {
    let (sk_e, pk_e) = derive_key_pair(ikm);
    let enc = pk_e.to_bytes();
    let shared = shared_secret(&sk_e, pk_r, &enc, pk_r)?;
    let (aead, nonce) = schedule.aead(&shared);
    let ct = aead
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| HpkeError)?;
    Ok((enc, ct))
}

/// Single-shot base-mode open with the receiver's private key `sk_r` and
/// its public key `pk_r` (known to the receiver: not derived again).
pub(super) fn open(
    schedule: &KeySchedule,
    sk_r: &StaticSecret,
    pk_r: &PublicKey,
    enc: &[u8; ENC_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, HpkeError> {
    let shared = shared_secret(sk_r, &PublicKey::from(*enc), enc, pk_r)?;
    let (aead, nonce) = schedule.aead(&shared);
    aead.decrypt(
        &nonce,
        Payload {
            msg: ciphertext,
            aad,
        },
    )
    .map(Zeroizing::new)
    .map_err(|_| HpkeError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hpke::{Deserializable, OpModeR, OpModeS, Serializable};

    type Kem = hpke::kem::X25519HkdfSha256;
    type Aead = hpke::aead::ChaCha20Poly1305;
    type Kdf = hpke::kdf::HkdfSha256;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }
    fn h32(s: &str) -> [u8; 32] {
        h(s).try_into().unwrap()
    }

    /// RFC 9180 appendix A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
    /// ChaCha20-Poly1305, base mode): the derived ephemeral key, `enc` and
    /// the first message's ciphertext.
    #[test]
    fn rfc9180_a21_base_mode_vector() {
        let info = h("4f6465206f6e2061204772656369616e2055726e");
        let ikm_e = h32("909a9b35d3dc4713a5e72a4da274b55d3d3821a37e5d099e74a647db583a904b");
        let sk_r = StaticSecret::from(h32(
            "8057991eef8f1f1af18f4a9491d16a1ce333f695d4db8e38da75975c4478e0fb",
        ));
        let pk_r = PublicKey::from(h32(
            "4310ee97d88cc1f088a5576c77ab0cf5c3ac797f3d95139c6c84b5429c59662a",
        ));
        assert_eq!(PublicKey::from(&sk_r), pk_r);
        let pt = h("4265617574792069732074727574682c20747275746820626561757479");
        let aad = h("436f756e742d30");
        let schedule = KeySchedule::new(&info);
        let (enc, ct) = seal_with_ikm(&schedule, &pk_r, &aad, &pt, &ikm_e).unwrap();
        assert_eq!(
            hex::encode(enc),
            "1afa08d3dec047a643885163f1180476fa7ddb54c6a8029ea33f95796bf2ac4a"
        );
        assert_eq!(
            hex::encode(&ct),
            "1c5250d8034ec2b784ba2cfd69dbdb8af406cfe3ff938e131f0def8c8b60b4db21993c62ce81883d2dd1b51a28"
        );
        let opened = open(&schedule, &sk_r, &pk_r, &enc, &aad, &ct).unwrap();
        assert_eq!(*opened, pt);
    }

    /// The `hpke` crate and this module agree byte for byte, both ways, on
    /// random keys, ephemeral material, info, aad and plaintexts.
    #[test]
    fn same_bytes_as_the_hpke_crate() {
        use chacha20::ChaCha20Rng;
        use rand_core::{Rng, SeedableRng};
        let mut rng = ChaCha20Rng::from_seed([42; 32]);
        for case in 0..64usize {
            let mut sk_bytes = [0u8; 32];
            let mut ikm = [0u8; 32];
            rng.fill_bytes(&mut sk_bytes);
            rng.fill_bytes(&mut ikm);
            let mut info = vec![0u8; case % 40];
            let mut aad = vec![0u8; case * 3];
            let mut pt = vec![0u8; case * 7];
            rng.fill_bytes(&mut info);
            rng.fill_bytes(&mut aad);
            rng.fill_bytes(&mut pt);
            let sk_r = StaticSecret::from(sk_bytes);
            let pk_r = PublicKey::from(&sk_r);
            let their_sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&sk_bytes).unwrap();
            let their_pk = <Kem as hpke::Kem>::sk_to_pk(&their_sk);
            assert_eq!(their_pk.to_bytes().as_slice(), pk_r.as_bytes());

            let schedule = KeySchedule::new(&info);
            let (enc, ct) = seal_with_ikm(&schedule, &pk_r, &aad, &pt, &ikm).unwrap();
            let (their_enc, their_ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
                &OpModeS::Base,
                &their_pk,
                &info,
                &pt,
                &aad,
                &mut Scripted(ikm.to_vec()),
            )
            .unwrap();
            assert_eq!(their_enc.to_bytes().as_slice(), enc, "case {case}");
            assert_eq!(their_ct, ct, "case {case}");

            // Sealed by the hpke crate (fresh randomness), opened here.
            let (their_enc, their_ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
                &OpModeS::Base,
                &their_pk,
                &info,
                &pt,
                &aad,
                &mut rng,
            )
            .unwrap();
            let enc: [u8; 32] = their_enc.to_bytes().as_slice().try_into().unwrap();
            let opened = open(&schedule, &sk_r, &pk_r, &enc, &aad, &their_ct).unwrap();
            assert_eq!(*opened, pt);
            // And the other way.
            let (enc, ct) = seal(&schedule, &pk_r, &aad, &pt, &mut rng).unwrap();
            let their_enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).unwrap();
            let back = hpke::single_shot_open::<Aead, Kdf, Kem>(
                &OpModeR::Base,
                &their_sk,
                &their_enc,
                &info,
                &ct,
                &aad,
            )
            .unwrap();
            assert_eq!(back, pt);
        }
    }

    /// Tampering, a wrong key or context, and low-order keys are refused.
    #[test]
    fn refusals() {
        let sk_r = StaticSecret::from([5u8; 32]);
        let pk_r = PublicKey::from(&sk_r);
        let schedule = KeySchedule::new(b"info");
        let (enc, ct) = seal_with_ikm(&schedule, &pk_r, b"aad", b"key", &[9; 32]).unwrap();
        assert!(open(&schedule, &sk_r, &pk_r, &enc, b"aad", &ct).is_ok());
        assert!(open(&schedule, &sk_r, &pk_r, &enc, b"aaD", &ct).is_err());
        assert!(open(&KeySchedule::new(b"other"), &sk_r, &pk_r, &enc, b"aad", &ct).is_err());
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(open(&schedule, &sk_r, &pk_r, &enc, b"aad", &bad).is_err());
        let mut bad_enc = enc;
        bad_enc[3] ^= 1;
        assert!(open(&schedule, &sk_r, &pk_r, &bad_enc, b"aad", &ct).is_err());
        let other = StaticSecret::from([6u8; 32]);
        assert!(open(&schedule, &other, &pk_r, &enc, b"aad", &ct).is_err());
        // The receiver's public key is part of the KEM context.
        let wrong_pk = PublicKey::from(&other);
        assert!(open(&schedule, &sk_r, &wrong_pk, &enc, b"aad", &ct).is_err());
        // Low-order points give an all-zero DH: refused both ways.
        for low in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            let low = PublicKey::from(low);
            assert_eq!(
                seal_with_ikm(&schedule, &low, b"", b"k", &[1; 32]).unwrap_err(),
                HpkeError
            );
            assert!(open(&schedule, &sk_r, &pk_r, low.as_bytes(), b"", &ct).is_err());
        }
    }

    /// Hands out pre-set bytes in order.
    struct Scripted(Vec<u8>);

    impl rand_core::TryRng for Scripted {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            let mut b = [0; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            let mut b = [0; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            let rest = self.0.split_off(dst.len());
            dst.copy_from_slice(&self.0);
            self.0 = rest;
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Scripted {}
}
