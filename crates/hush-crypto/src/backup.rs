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
//! "HBAK" ‖ version 0x01 ‖ kdf 0x01 (Argon2id v0x13)
//! ‖ m_cost KiB (u32) ‖ t_cost (u32) ‖ p_cost (u32) ‖ salt (16) ‖ nonce (24)
//! ‖ XChaCha20-Poly1305(key = Argon2id(password, salt), nonce,
//!                      aad = everything before the ciphertext,
//!                      plaintext = identity seed (32))        -- 48 bytes
//! ```
//!
//! Opening refuses parameters above [`BackupParams::MAX_OPEN`], so a blob
//! swapped by the server cannot make a client allocate gigabytes.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::identity::{IdentityKey, os_rng};
use crate::wire::{Reader, Writer};

const MAGIC: &[u8; 4] = b"HBAK";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
/// Salt length (128 bits, RFC 9106's recommendation).
pub const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 4 + 1 + 1 + 12 + SALT_LEN + NONCE_LEN;
/// Length of a sealed identity backup.
pub const BLOB_LEN: usize = HEADER_LEN + 32 + 16;

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

    /// The most [`open_identity`] accepts: 1 GiB, 16 passes, 16 lanes.
    pub const MAX_OPEN: Self = Self {
        m_cost_kib: 1024 * 1024,
        t_cost: 16,
        p_cost: 16,
    };

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
    /// [`BackupParams::MAX_OPEN`] when opening).
    #[error("backup key-derivation parameters are out of range")]
    InvalidParams,
    /// Wrong password, or the blob was altered.
    #[error("wrong password or damaged backup")]
    Decrypt,
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
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut nonce);
    let key = derive(params, password, &salt)?;
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
    let ct = XChaCha20Poly1305::new(&(*key).into())
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
    parse(blob).map(|(p, _, _, _)| p)
}

type Parsed<'a> = (BackupParams, [u8; SALT_LEN], [u8; NONCE_LEN], &'a [u8]);

fn parse(blob: &[u8]) -> Result<Parsed<'_>, BackupError> {
    let m = |_| BackupError::Malformed;
    if blob.len() != BLOB_LEN {
        return Err(BackupError::Malformed);
    }
    let mut r = Reader::new(blob);
    if r.take(4).map_err(m)? != MAGIC
        || r.u8().map_err(m)? != VERSION
        || r.u8().map_err(m)? != KDF_ARGON2ID
    {
        return Err(BackupError::Malformed);
    }
    let params = BackupParams {
        m_cost_kib: u32::from_be_bytes(r.array().map_err(m)?),
        t_cost: u32::from_be_bytes(r.array().map_err(m)?),
        p_cost: u32::from_be_bytes(r.array().map_err(m)?),
    };
    let salt = r.array().map_err(m)?;
    let nonce = r.array().map_err(m)?;
    Ok((params, salt, nonce, &blob[HEADER_LEN..]))
}

/// Opens a backup with `password`. Parameters above
/// [`BackupParams::MAX_OPEN`] are refused before any work is done.
pub fn open_identity(blob: &[u8], password: &[u8]) -> Result<IdentityKey, BackupError> {
    let (params, salt, nonce, ct) = parse(blob)?;
    let max = BackupParams::MAX_OPEN;
    if params.m_cost_kib > max.m_cost_kib
        || params.t_cost > max.t_cost
        || params.p_cost > max.p_cost
    {
        return Err(BackupError::InvalidParams);
    }
    let key = derive(params, password, &salt)?;
    let seed = Zeroizing::new(
        XChaCha20Poly1305::new(&(*key).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: &blob[..HEADER_LEN],
                },
            )
            .map_err(|_| BackupError::Decrypt)?,
    );
    let seed: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| BackupError::Decrypt)?;
    let seed = Zeroizing::new(seed);
    Ok(IdentityKey::from_secret_bytes(&seed))
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

    #[test]
    fn every_altered_byte_is_refused() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let blob = seal_identity(&identity, b"pw", SMALL).unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(open_identity(&bad, b"pw").is_err(), "byte {i}");
        }
        assert_eq!(
            open_identity(&blob[..BLOB_LEN - 1], b"pw").unwrap_err(),
            BackupError::Malformed
        );
    }

    #[test]
    fn parameters_are_bounded() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let mut blob = seal_identity(&identity, b"pw", SMALL).unwrap();
        // A blob asking for 4 GiB is refused before any work.
        blob[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            open_identity(&blob, b"pw").unwrap_err(),
            BackupError::InvalidParams
        );
        let too_small = BackupParams {
            m_cost_kib: 1,
            t_cost: 1,
            p_cost: 1,
        };
        assert_eq!(
            seal_identity(&identity, b"pw", too_small).unwrap_err(),
            BackupError::InvalidParams
        );
        assert_eq!(BackupParams::default(), BackupParams::DEFAULT);
        assert_eq!(BackupParams::DEFAULT.m_cost_kib, 65_536);
    }

    #[test]
    fn known_answer() {
        let identity = IdentityKey::from_secret_bytes(&[7; 32]);
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let blob = seal_identity_with_rng(&identity, b"pw", SMALL, &mut rng).unwrap();
        let hex = hex::encode(&blob);
        assert_eq!(
            &hex[..36],
            "4842414b0101000000400000000100000001",
            "magic, version, kdf, m=64, t=1, p=1"
        );
        // Pinned: Argon2id(m=64 KiB, t=1, p=1) and XChaCha20-Poly1305 over the
        // seed with the salt and nonce the seeded RNG gives.
        assert_eq!(
            hex,
            "4842414b0101000000400000000100000001023f37203a2476c42566a61cc55c3ca8\
             75dbb4cc41c0deb789f8e7bf881836381ecc3686b60ee3b862151335e3d77db2be76\
             17aae80defbb7d8a3d3cfb2b019a39364987719ae731e96218d76d0de606f76c2293\
             58c0fed0"
        );
        // Same inputs, same blob (deterministic given salt and nonce).
        let again = seal_identity_with_rng(
            &identity,
            b"pw",
            SMALL,
            &mut ChaCha20Rng::from_seed([1; 32]),
        )
        .unwrap();
        assert_eq!(again, blob);
        assert_eq!(
            open_identity(&blob, b"pw").unwrap().public_key(),
            identity.public_key()
        );
    }
}
