//! Password-sealed backups of a user's identity key (shared E2EE.md §7.5).
//!
//! The 32-byte Ed25519 identity seed is sealed with XChaCha20-Poly1305 under
//! a key derived from the password with Argon2id (RFC 9106, version 0x13).
//! The Argon2id parameters and the 16-byte salt travel in the blob, so they
//! can be raised later without breaking old backups.
//!
//! Blob layout (integers big-endian):
//!
//! ```text
//! "HBAK" ‖ version 0x02 ‖ kdf 0x01 (Argon2id v0x13)
//! ‖ m_cost KiB (u32) ‖ t_cost (u32) ‖ p_cost (u32) ‖ salt (16) ‖ nonce (24)
//! ‖ XChaCha20-Poly1305(key = Argon2id(NFKC(password), salt), nonce,
//!                      aad = everything before the ciphertext,
//!                      plaintext = identity seed (32))        -- 48 bytes
//! ```
//!
//! **Passwords.** The password is UTF-8 text, normalised to Unicode NFKC
//! before Argon2id, so the same password typed on another keyboard or
//! platform (composed or decomposed accents, full-width digits, ligatures)
//! gives the same key. Sealing refuses a password that is not UTF-8 or has
//! fewer than [`MIN_PASSWORD_CHARS`] characters after normalisation, or only
//! white space ([`BackupError::WeakPassword`]). Version 1 blobs (written
//! before normalisation) still open with the password bytes as they were.
//!
//! **Parameters on open.** A blob comes back from storage the server
//! controls, and its parameters decide how much memory and time opening
//! costs. [`open_identity`] refuses parameters above [`BackupParams::MAX_OPEN`]
//! (256 MiB, 8 passes, 8 lanes) or whose memory × passes exceeds
//! [`MAX_OPEN_WORK_KIB_PASSES`] (1 GiB·pass) before any work is done, so a
//! swapped blob cannot make a phone allocate gigabytes or grind for minutes.
//! Sealing refuses the same, so every blob it writes can be opened.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use crate::identity::{IdentityKey, os_rng};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"HBAK";
/// The current blob version: the password is NFKC-normalised.
const VERSION: u8 = 2;
/// Blobs written before normalisation: the password bytes are used as given.
const VERSION_RAW_PASSWORD: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
/// Salt length (128 bits, RFC 9106's recommendation).
pub const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 4 + 1 + 1 + 12 + SALT_LEN + NONCE_LEN;
/// Length of a sealed identity backup.
pub const BLOB_LEN: usize = HEADER_LEN + 32 + 16;
/// Fewest characters (Unicode scalar values, after NFKC normalisation) a
/// backup password must have. The backup blob sits on the server, which can
/// run an offline guessing attack against it; Argon2id slows each guess, the
/// password's length is what makes the search space large.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most memory × passes (KiB × passes) [`open_identity`] accepts: 1 GiB·pass,
/// about five times the work of [`BackupParams::DEFAULT`] (64 MiB × 3).
pub const MAX_OPEN_WORK_KIB_PASSES: u64 = 1024 * 1024;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl BackupParams {
    /// RFC 9106's second recommended setting: t = 3, m = 64 MiB, p = 4.
    pub const DEFAULT: Self = Self {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 4,
    };

    /// The most [`open_identity`] accepts in each parameter: 256 MiB of
    /// memory, 8 passes, 8 lanes (and memory × passes at most
    /// [`MAX_OPEN_WORK_KIB_PASSES`]). Four times the default memory, enough
    /// headroom to raise the defaults; far below what hurts a phone.
    pub const MAX_OPEN: Self = Self {
        m_cost_kib: 256 * 1024,
        t_cost: 8,
        p_cost: 8,
    };

    /// Whether [`open_identity`] accepts these parameters: each at most
    /// [`MAX_OPEN`](Self::MAX_OPEN) and memory × passes at most
    /// [`MAX_OPEN_WORK_KIB_PASSES`]. Argon2's own lower bounds are checked
    /// separately (when the parameters are used).
    pub fn within_open_bounds(self) -> bool {
        let max = Self::MAX_OPEN;
        self.m_cost_kib <= max.m_cost_kib
            && self.t_cost <= max.t_cost
            && self.p_cost <= max.p_cost
            && u64::from(self.m_cost_kib) * u64::from(self.t_cost) <= MAX_OPEN_WORK_KIB_PASSES
    }

    fn argon2(self) -> Result<argon2::Argon2<'static>, BackupError> {
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| BackupError::InvalidParams)?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

impl Default for BackupParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why a backup could not be made or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    /// Not a backup blob (wrong magic, length, version or KDF).
    #[error("not a hush key backup")]
    Malformed,
    /// Argon2id parameters out of range (too small for Argon2, or above
    /// [`BackupParams::MAX_OPEN`] / [`MAX_OPEN_WORK_KIB_PASSES`]).
    #[error("backup key-derivation parameters are out of range")]
    InvalidParams,
    /// The password is not UTF-8 text of at least [`MIN_PASSWORD_CHARS`]
    /// characters (after NFKC normalisation), or is only white space.
    #[error("backup password must be text of at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// Wrong password, or the blob was altered.
    #[error("wrong password or damaged backup")]
    Decrypt,
}

/// The password as Argon2id sees it in a current (version 2) blob: the NFKC
/// normalisation of its UTF-8 text, in a buffer that is wiped on drop (sized
/// up front, so no reallocation leaves a copy behind).
fn normalised(password: &[u8]) -> Option<Zeroizing<String>> {
    let text = std::str::from_utf8(password).ok()?;
    let len: usize = text.nfkc().map(char::len_utf8).sum();
    let mut out = Zeroizing::new(String::with_capacity(len));
    out.extend(text.nfkc());
    Some(out)
}

/// Whether a normalised password meets the policy ([`MIN_PASSWORD_CHARS`],
/// not only white space).
fn acceptable(password: &str) -> bool {
    password.chars().count() >= MIN_PASSWORD_CHARS && !password.trim().is_empty()
}

fn derive(
    params: BackupParams,
    password: &[u8],
    salt: &[u8; SALT_LEN],
) -> Result<Zeroizing<[u8; 32]>, BackupError> {
    let mut key = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(password, salt, key.as_mut_slice())
        .map_err(|_| BackupError::InvalidParams)?;
    Ok(key)
}

/// Seals `identity` under `password` with fresh random salt and nonce.
/// `password` must be UTF-8 text of at least [`MIN_PASSWORD_CHARS`]
/// characters after NFKC normalisation ([`BackupError::WeakPassword`]), and
/// `params` within [`BackupParams::within_open_bounds`]
/// ([`BackupError::InvalidParams`]).
pub fn seal_identity(
    identity: &IdentityKey,
    password: &[u8],
    params: BackupParams,
) -> Result<Vec<u8>, BackupError> {
    seal_identity_with_rng(identity, password, params, &mut os_rng())
}

/// [`seal_identity`] with salt (16 bytes) then nonce (24 bytes) drawn from
/// `rng` (known-answer tests).
pub fn seal_identity_with_rng(
    identity: &IdentityKey,
    password: &[u8],
    params: BackupParams,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, BackupError> {
    let password = normalised(password).ok_or(BackupError::WeakPassword)?;
    if !acceptable(&password) {
        return Err(BackupError::WeakPassword);
    }
    if !params.within_open_bounds() {
        return Err(BackupError::InvalidParams);
    }
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let key = derive(params, password.as_bytes(), &salt)?;
    let mut w = Writer::with_capacity(BLOB_LEN);
    w.bytes(MAGIC)
        .u8(VERSION)
        .u8(KDF_ARGON2ID)
        .bytes(&params.m_cost_kib.to_be_bytes())
        .bytes(&params.t_cost.to_be_bytes())
        .bytes(&params.p_cost.to_be_bytes())
        .bytes(&salt)
        .bytes(&nonce);
    let seed = identity.to_secret_bytes();
    let ct = cipher(&key)?
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: seed.as_slice(),
                aad: w.as_slice(),
            },
        )
        .map_err(|_| BackupError::Decrypt)?;
    w.bytes(&ct);
    Ok(w.into_vec())
}

/// The Argon2id parameters stored in a blob (to warn before a slow open).
pub fn blob_params(blob: &[u8]) -> Result<BackupParams, BackupError> {
    parse(blob).map(|p| p.params)
}

struct Parsed<'a> {
    version: u8,
    params: BackupParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: &'a [u8],
}

fn parse(blob: &[u8]) -> Result<Parsed<'_>, BackupError> {
    let m = |_| BackupError::Malformed;
    if blob.len() != BLOB_LEN {
        return Err(BackupError::Malformed);
    }
    let mut r = Reader::new(blob);
    if r.take(4).map_err(m)? != MAGIC {
        return Err(BackupError::Malformed);
    }
    let version = r.u8().map_err(m)?;
    if !matches!(version, VERSION | VERSION_RAW_PASSWORD) || r.u8().map_err(m)? != KDF_ARGON2ID {
        return Err(BackupError::Malformed);
    }
    let params = BackupParams {
        m_cost_kib: u32::from_be_bytes(r.array().map_err(m)?),
        t_cost: u32::from_be_bytes(r.array().map_err(m)?),
        p_cost: u32::from_be_bytes(r.array().map_err(m)?),
    };
    let salt = r.array().map_err(m)?;
    let nonce = r.array().map_err(m)?;
    Ok(Parsed {
        version,
        params,
        salt,
        nonce,
        ciphertext: &blob[HEADER_LEN..],
    })
}

/// Opens a backup with `password` (NFKC-normalised for version 2 blobs).
/// Parameters outside [`BackupParams::within_open_bounds`] are refused before
/// any work is done.
pub fn open_identity(blob: &[u8], password: &[u8]) -> Result<IdentityKey, BackupError> {
    let Parsed {
        version,
        params,
        salt,
        nonce,
        ciphertext,
    } = parse(blob)?;
    if !params.within_open_bounds() {
        return Err(BackupError::InvalidParams);
    }
    let key = if version == VERSION_RAW_PASSWORD {
        derive(params, password, &salt)?
    } else {
        // Not UTF-8: no version 2 blob was sealed under it.
        let password = normalised(password).ok_or(BackupError::Decrypt)?;
        derive(params, password.as_bytes(), &salt)?
    };
    let seed = Zeroizing::new(
        cipher(&key)?
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &blob[..HEADER_LEN],
                },
            )
            .map_err(|_| BackupError::Decrypt)?,
    );
    // A reference into the wiped buffer: no stack copy of the seed.
    let seed: &[u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| BackupError::Decrypt)?;
    Ok(IdentityKey::from_secret_bytes(seed))
}

/// The AEAD keyed straight from the wiped buffer (no stack copy of the key;
/// the cipher wipes its own copy on drop).
fn cipher(key: &Zeroizing<[u8; 32]>) -> Result<XChaCha20Poly1305, BackupError> {
    XChaCha20Poly1305::new_from_slice(key.as_slice()).map_err(|_| BackupError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// Small parameters so debug-build tests stay fast; the format is the
    /// same as with the defaults.
    const SMALL: BackupParams = BackupParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn round_trip_and_wrong_password() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let blob = seal_identity(&identity, b"correct horse", SMALL).unwrap();
        assert_eq!(blob.len(), BLOB_LEN);
        assert_eq!(blob_params(&blob), Ok(SMALL));
        let back = open_identity(&blob, b"correct horse").unwrap();
        assert_eq!(back.public_key(), identity.public_key());
        assert_eq!(
            open_identity(&blob, b"wrong horse").unwrap_err(),
            BackupError::Decrypt
        );
        // Fresh salt and nonce every time.
        let again = seal_identity(&identity, b"correct horse", SMALL).unwrap();
        assert_ne!(again, blob);
    }

    const PW: &[u8] = b"correct horse";

    #[test]
    fn every_altered_byte_is_refused() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let blob = seal_identity(&identity, PW, SMALL).unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(open_identity(&bad, PW).is_err(), "byte {i}");
        }
        assert_eq!(
            open_identity(&blob[..BLOB_LEN - 1], PW).unwrap_err(),
            BackupError::Malformed
        );
    }

    #[test]
    fn parameters_are_bounded() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let mut blob = seal_identity(&identity, PW, SMALL).unwrap();
        // A blob asking for 4 GiB is refused before any work.
        blob[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            open_identity(&blob, PW).unwrap_err(),
            BackupError::InvalidParams
        );
        let too_small = BackupParams {
            m_cost_kib: 1,
            t_cost: 1,
            p_cost: 1,
        };
        assert_eq!(
            seal_identity(&identity, PW, too_small).unwrap_err(),
            BackupError::InvalidParams
        );
        // Sealing refuses what opening would refuse.
        let too_big = BackupParams {
            m_cost_kib: BackupParams::MAX_OPEN.m_cost_kib + 1,
            ..SMALL
        };
        assert_eq!(
            seal_identity(&identity, PW, too_big).unwrap_err(),
            BackupError::InvalidParams
        );
        assert!(BackupParams::DEFAULT.within_open_bounds());
        assert!(BackupParams::MAX_OPEN.m_cost_kib as u64 * 4 <= MAX_OPEN_WORK_KIB_PASSES);
        assert!(
            !BackupParams {
                t_cost: 5,
                ..BackupParams::MAX_OPEN
            }
            .within_open_bounds(),
            "256 MiB x 5 passes is over the work bound"
        );
        assert_eq!(BackupParams::default(), BackupParams::DEFAULT);
        assert_eq!(BackupParams::DEFAULT.m_cost_kib, 65_536);
    }

    /// Finding 6: a server that swaps the user's backup blob for one demanding
    /// 1 GiB x 16 passes (x 16 lanes) must not make the phone do that work:
    /// `open_identity` refuses before Argon2 starts (the test finishes in
    /// microseconds; the old bounds let it run).
    #[test]
    fn attack_backup_swapped_blob_demands_1gib_16_passes() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let mut blob = seal_identity(&identity, PW, SMALL).unwrap();
        for (m_kib, t, p) in [
            (1024 * 1024, 16, 16),
            (1024 * 1024, 1, 1),
            (64 * 1024, 16, 1),
            (64 * 1024, 1, 16),
        ] {
            blob[6..10].copy_from_slice(&u32::to_be_bytes(m_kib));
            blob[10..14].copy_from_slice(&u32::to_be_bytes(t));
            blob[14..18].copy_from_slice(&u32::to_be_bytes(p));
            let started = std::time::Instant::now();
            assert_eq!(
                open_identity(&blob, PW).unwrap_err(),
                BackupError::InvalidParams,
                "m={m_kib} KiB t={t} p={p}"
            );
            assert!(started.elapsed() < std::time::Duration::from_millis(50));
        }
    }

    /// Finding 6: an empty (or trivially short, or blank) password would let
    /// whoever holds the blob — the server — open it at once.
    #[test]
    fn attack_backup_empty_password_is_refused() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        for weak in [
            &b""[..],
            b"pw",
            b"1234567",
            b"        ",
            b"\xff\xfe not utf-8",
        ] {
            assert_eq!(
                seal_identity(&identity, weak, SMALL).unwrap_err(),
                BackupError::WeakPassword,
                "{:?}",
                String::from_utf8_lossy(weak)
            );
        }
        // Eight characters, counted after normalisation (not bytes).
        assert!(seal_identity(&identity, "ééééééé".as_bytes(), SMALL).is_err());
        assert!(seal_identity(&identity, "éééééééé".as_bytes(), SMALL).is_ok());
        assert!(seal_identity(&identity, b"12345678", SMALL).is_ok());
    }

    /// The same password typed as composed or decomposed accents, with a
    /// ligature or full-width digits, opens the backup (NFKC).
    #[test]
    fn backup_passwords_are_nfkc_normalised() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let composed = "caf\u{e9} of\u{fb01}ce 42";
        let blob = seal_identity(&identity, composed.as_bytes(), SMALL).unwrap();
        for same in [
            "cafe\u{301} of\u{fb01}ce 42",
            "caf\u{e9} office 42",
            "caf\u{e9} office \u{ff14}\u{ff12}",
        ] {
            assert_eq!(
                open_identity(&blob, same.as_bytes()).unwrap().public_key(),
                identity.public_key(),
                "{same}"
            );
        }
        assert_eq!(
            open_identity(&blob, "cafe office 42".as_bytes()).unwrap_err(),
            BackupError::Decrypt
        );
    }

    #[test]
    fn known_answer() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let blob = seal_identity_with_rng(&identity, PW, SMALL, &mut rng).unwrap();
        let hex = hex::encode(&blob);
        assert_eq!(
            &hex[..36],
            "4842414b0201000000400000000100000001",
            "magic, version 2, kdf, m=64, t=1, p=1"
        );
        // Pinned: Argon2id(m=64 KiB, t=1, p=1) over NFKC("correct horse") and
        // XChaCha20-Poly1305 over the seed with the salt and nonce the seeded
        // RNG gives.
        assert_eq!(hex, crate::known_answers::ka("backup.blob_v2_hex"));
        assert_eq!(
            hex::encode(identity.public_key().to_bytes()),
            crate::known_answers::ka("backup.identity_public_hex")
        );
        // Same inputs, same blob (deterministic given salt and nonce).
        let again =
            seal_identity_with_rng(&identity, PW, SMALL, &mut ChaCha20Rng::from_seed([1; 32]))
                .unwrap();
        assert_eq!(again, blob);
        assert_eq!(
            open_identity(&blob, PW).unwrap().public_key(),
            identity.public_key()
        );
    }

    /// A version 1 blob (password bytes as given, before normalisation)
    /// still opens: the pinned blob of the previous format, password "pw".
    #[test]
    fn version_1_blobs_still_open() {
        let v1 = hex::decode(crate::known_answers::ka("backup.blob_v1_hex")).unwrap();
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        assert_eq!(
            open_identity(&v1, b"pw").unwrap().public_key(),
            identity.public_key()
        );
        assert_eq!(open_identity(&v1, b"pW").unwrap_err(), BackupError::Decrypt);
    }
}
