//! Identity and device keys, device cards and revocation records (issue 5).
//!
//! * [`IdentityKey`]: a user's long-term Ed25519 key. Its public half is what
//!   users compare with [safety numbers](crate::safety).
//! * [`DeviceKeys`]: per device, an Ed25519 signing key and an X25519 (HPKE)
//!   encryption key. Generated on the device; never leave it unencrypted.
//! * [`DeviceCard`]: the public half of a device, bound to its user:
//!   `{user id, device id, identity key, device signing key, device encryption
//!   key, created_at, expires_at, previous card id}`, signed by the device
//!   (self-signature) **and** by the user's identity key (cross-signature), so
//!   adding a device always needs the identity key.
//! * [`Revocation`]: a signed record that retires a device, or rotates the
//!   identity key (signed by the old key, and by the new one to prove
//!   possession).
//!
//! Every signature covers a canonical, versioned binary encoding (documented
//! in `docs/E2EE-SUITE1.md`, "Device cards") prefixed with a context string,
//! so a signature made for one purpose can never be replayed for another.
//! Verification uses Ed25519 `verify_strict` and refuses weak (small-order)
//! public keys.
//!
//! Times are Unix seconds supplied by the caller: the crate has no clock.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hpke::{Deserializable, Serializable};
use hush_protocol::UserId;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::wire::{Reader, Writer};

/// The HPKE KEM of suite 1: DHKEM(X25519, HKDF-SHA256).
pub(crate) type Kem = hpke::kem::X25519HkdfSha256;
type KemPrivateKey = <Kem as hpke::Kem>::PrivateKey;

/// Length of an Ed25519 or X25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a [`DeviceId`].
pub const DEVICE_ID_LEN: usize = 16;
/// Version byte of the card and revocation encodings.
pub const CARD_VERSION: u8 = 1;
/// How far in the future of the verifier's clock a card's `created_at` may
/// be ([`DeviceCard::verify`]): clocks differ, a card made "tomorrow" is a
/// forgery or a broken clock.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

const CARD_MAGIC: &[u8; 4] = b"HCRD";
const REVOCATION_MAGIC: &[u8; 4] = b"HREV";
const CTX_CARD_DEVICE: &[u8] = b"hush/v1/card/device-self-signature\0";
const CTX_CARD_IDENTITY: &[u8] = b"hush/v1/card/identity-cross-signature\0";
const CTX_CARD_ID: &[u8] = b"hush/v1/card/id\0";
const CTX_DEVICE_ID: &[u8] = b"hush/v1/device-id\0";
const CTX_REVOCATION: &[u8] = b"hush/v1/revocation\0";
const CTX_REVOCATION_NEW: &[u8] = b"hush/v1/revocation/new-identity\0";

/// The operating system's generator as a `rand_core` 0.10 [`CryptoRng`].
/// Panics only if the OS cannot provide randomness at all (as every
/// getrandom-backed RNG does).
pub(crate) fn os_rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Why a key, card or revocation was refused. Never says which signature
/// byte was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Not a well-formed encoding (truncated, trailing bytes, bad tag, bad
    /// user id, invalid or weak public key).
    #[error("malformed card or revocation")]
    Malformed,
    /// An encoding version this build does not know.
    #[error("unsupported card version {0}")]
    UnsupportedVersion(u8),
    /// A signature does not verify.
    #[error("card or revocation signature is invalid")]
    BadSignature,
    /// The card or record is signed by a different identity key than the one
    /// the caller trusts for this user, or names another user.
    #[error("card belongs to a different identity or user")]
    IdentityMismatch,
    /// The card's validity period is over (or empty).
    #[error("card has expired")]
    Expired,
    /// The card says it was made later than the verifier's clock allows
    /// ([`MAX_CLOCK_SKEW_SECS`]).
    #[error("card is not valid yet (created in the future)")]
    NotYetValid,
    /// A card replacing another one carries the same X25519 encryption key:
    /// every card renewal must bring a new one (forward secrecy for device
    /// keys).
    #[error("a renewed card must carry a new encryption key")]
    EncryptionKeyReused,
    /// A private key given to sign does not match the public key in the card.
    #[error("signing key does not match the card")]
    KeyMismatch,
    /// A successor card does not link to the card it claims to replace.
    #[error("card does not follow the previous card")]
    BrokenChain,
    /// The card's device id is not the one derived from its signing key
    /// ([`DeviceId::of_signing_key`]): device ids must be unique, so nobody
    /// can claim another device's id.
    #[error("the card's device id is not derived from its signing key")]
    DeviceIdNotDerived,
}

fn sign(key: &SigningKey, context: &[u8], body: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut msg = Vec::with_capacity(context.len() + body.len());
    msg.extend_from_slice(context);
    msg.extend_from_slice(body);
    key.sign(&msg).to_bytes()
}

fn verify(
    key: &VerifyingKey,
    context: &[u8],
    body: &[u8],
    sig: &[u8; SIGNATURE_LEN],
) -> Result<(), CardError> {
    let mut msg = Vec::with_capacity(context.len() + body.len());
    msg.extend_from_slice(context);
    msg.extend_from_slice(body);
    key.verify_strict(&msg, &Signature::from_bytes(sig))
        .map_err(|_| CardError::BadSignature)
}

fn parse_verifying_key(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<VerifyingKey, CardError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| CardError::Malformed)?;
    if key.is_weak() {
        return Err(CardError::Malformed);
    }
    Ok(key)
}

macro_rules! public_key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(VerifyingKey);

        impl $name {
            /// Parses 32 bytes; refuses points that do not decode and weak
            /// (small-order) keys.
            pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, CardError> {
                parse_verifying_key(bytes).map(Self)
            }
            /// The 32-byte encoding.
            pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
                self.0.to_bytes()
            }
            pub(crate) fn verify(
                &self,
                context: &[u8],
                body: &[u8],
                sig: &[u8; SIGNATURE_LEN],
            ) -> Result<(), CardError> {
                verify(&self.0, context, body, sig)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), hex_str(self.0.as_bytes()))
            }
        }
    };
}

pub(crate) fn hex_str(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

public_key_type!(
    /// The public half of an [`IdentityKey`] (Ed25519).
    IdentityPublicKey
);
public_key_type!(
    /// The public half of a device's Ed25519 signing key.
    DeviceSigningPublicKey
);

impl DeviceSigningPublicKey {
    /// Verifies a signature over `msg`, which already starts with its
    /// context string (the caller built `context ‖ body` in one buffer it
    /// wipes: no further copy of a body that holds a plaintext).
    pub(crate) fn verify_prefixed(
        &self,
        msg: &[u8],
        sig: &[u8; SIGNATURE_LEN],
    ) -> Result<(), CardError> {
        self.0
            .verify_strict(msg, &Signature::from_bytes(sig))
            .map_err(|_| CardError::BadSignature)
    }
}

/// A user's long-term Ed25519 identity key. Zeroized on drop; `Debug` shows
/// only the public key.
#[derive(Clone)]
pub struct IdentityKey(SigningKey);

/// Construction shared by the Ed25519 secret-key newtypes (identity keys,
/// the transparency log's key): generation, and the 32-byte seed in and out.
macro_rules! ed25519_secret {
    ($t:ident) => {
        impl $t {
            /// A new key from the operating system's generator.
            pub fn generate() -> Self {
                Self::generate_with_rng(&mut $crate::identity::os_rng())
            }

            /// A new key from `rng` (deterministic tests; use
            /// [`generate`](Self::generate) otherwise).
            pub fn generate_with_rng(rng: &mut impl rand_core::CryptoRng) -> Self {
                let mut seed = zeroize::Zeroizing::new([0u8; 32]);
                rng.fill_bytes(seed.as_mut_slice());
                Self(ed25519_dalek::SigningKey::from_bytes(&seed))
            }

            /// Rebuilds the key from its 32-byte Ed25519 seed (a backup, or
            /// the server's stored key).
            pub fn from_secret_bytes(seed: &[u8; 32]) -> Self {
                Self(ed25519_dalek::SigningKey::from_bytes(seed))
            }

            /// The 32-byte seed, wiped when the returned value is dropped.
            pub fn to_secret_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
                zeroize::Zeroizing::new(self.0.to_bytes())
            }
        }
    };
}
pub(crate) use ed25519_secret;

ed25519_secret!(IdentityKey);

impl IdentityKey {
    /// The public key.
    pub fn public_key(&self) -> IdentityPublicKey {
        IdentityPublicKey(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, context: &[u8], body: &[u8]) -> [u8; SIGNATURE_LEN] {
        sign(&self.0, context, body)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey(<redacted>, public {:?})", self.public_key())
    }
}

/// A device's 32-byte X25519 public encryption key (the HPKE recipient key).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EncryptionPublicKey([u8; PUBLIC_KEY_LEN]);

impl EncryptionPublicKey {
    /// Wraps 32 bytes of an X25519 public key. Low-order points (all-zero
    /// included) and points off the curve are refused: HPKE would fail to
    /// encapsulate to them, so one card carrying such a key would make every
    /// message that includes its device fail for every sender.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, CardError> {
        let usable = curve25519_dalek::montgomery::MontgomeryPoint(*bytes)
            .to_edwards(0)
            .is_some_and(|p| !p.is_small_order());
        if !usable {
            return Err(CardError::Malformed);
        }
        Ok(Self(*bytes))
    }
    /// The 32 bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0
    }
    pub(crate) fn to_hpke(self) -> Option<<Kem as hpke::Kem>::PublicKey> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0).ok()
    }
}

impl fmt::Debug for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionPublicKey({})", hex_str(&self.0))
    }
}

/// A device's private keys: Ed25519 signing and X25519 encryption. Both are
/// zeroized on drop (the dalek types wipe themselves); `Debug` shows only the
/// public keys.
#[derive(Clone)]
pub struct DeviceKeys {
    signing: SigningKey,
    encryption: KemPrivateKey,
    encryption_public: EncryptionPublicKey,
}

impl DeviceKeys {
    /// New keys from the operating system's generator.
    pub fn generate() -> Self {
        Self::generate_with_rng(&mut os_rng())
    }

    /// New keys from `rng`: 32 bytes for the Ed25519 seed, then 32 bytes for
    /// the X25519 secret (clamped as RFC 7748 says).
    pub fn generate_with_rng(rng: &mut impl CryptoRng) -> Self {
        let mut signing = Zeroizing::new([0u8; 32]);
        let mut encryption = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(signing.as_mut_slice());
        rng.fill_bytes(encryption.as_mut_slice());
        Self::from_secret_bytes(&signing, &encryption)
    }

    /// The same signing key with a new X25519 encryption key from the
    /// operating system's generator: what a card renewal needs
    /// ([`UnsignedCard::renewal`]). Dropping the old `DeviceKeys` wipes the
    /// old encryption key, so it no longer opens anything sent later.
    pub fn with_new_encryption_key(&self) -> Self {
        self.with_new_encryption_key_with_rng(&mut os_rng())
    }

    /// [`with_new_encryption_key`](Self::with_new_encryption_key) with the
    /// 32 secret bytes drawn from `rng` (deterministic tests).
    pub fn with_new_encryption_key_with_rng(&self, rng: &mut impl CryptoRng) -> Self {
        let mut encryption = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(encryption.as_mut_slice());
        let signing = Zeroizing::new(self.signing.to_bytes());
        Self::from_secret_bytes(&signing, &encryption)
    }

    /// Rebuilds device keys from their secret bytes.
    pub fn from_secret_bytes(signing: &[u8; 32], encryption: &[u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(signing);
        // 32 bytes always deserialize (the length is the only check).
        let encryption = match KemPrivateKey::from_bytes(encryption) {
            Ok(k) => k,
            Err(_) => unreachable_32_bytes(),
        };
        let public = <Kem as hpke::Kem>::sk_to_pk(&encryption).to_bytes();
        Self {
            signing,
            encryption,
            encryption_public: EncryptionPublicKey(public.into()),
        }
    }

    /// The public signing key.
    pub fn signing_public_key(&self) -> DeviceSigningPublicKey {
        DeviceSigningPublicKey(self.signing.verifying_key())
    }

    /// This device's id (derived from its signing key).
    pub fn device_id(&self) -> DeviceId {
        DeviceId::of_signing_key(&self.signing_public_key())
    }

    /// The public encryption key.
    pub fn encryption_public_key(&self) -> EncryptionPublicKey {
        self.encryption_public
    }

    pub(crate) fn sign(&self, context: &[u8], body: &[u8]) -> [u8; SIGNATURE_LEN] {
        sign(&self.signing, context, body)
    }

    /// Signs `msg`, which already starts with its context string (see
    /// [`DeviceSigningPublicKey::verify_prefixed`]).
    pub(crate) fn sign_prefixed(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(msg).to_bytes()
    }

    pub(crate) fn encryption_key(&self) -> &KemPrivateKey {
        &self.encryption
    }
}

#[allow(clippy::panic)]
fn unreachable_32_bytes() -> ! {
    // hpke's X25519 `from_bytes` fails only on a length other than 32.
    panic!("hpke refused a 32-byte X25519 secret")
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceKeys")
            .field("signing", &self.signing_public_key())
            .field("encryption", &self.encryption_public)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

/// A device's id: 16 bytes derived from the device's Ed25519 signing key
/// ([`DeviceId::of_signing_key`]), so it is unique per key: a card naming
/// another device's id cannot be made without that device's signing key
/// (its self-signature), and cards whose id is not derived are refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub [u8; DEVICE_ID_LEN]);

impl DeviceId {
    /// The id of the device whose signing key is `key`:
    /// the first 16 bytes of `SHA-256("hush/v1/device-id\0" ‖ key)`.
    pub fn of_signing_key(key: &DeviceSigningPublicKey) -> Self {
        let mut h = Sha256::new();
        h.update(CTX_DEVICE_ID);
        h.update(key.to_bytes());
        let digest: [u8; 32] = h.finalize().into();
        let mut id = [0u8; DEVICE_ID_LEN];
        id.copy_from_slice(&digest[..DEVICE_ID_LEN]);
        Self(id)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_str(&self.0))
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

/// A card's id: `SHA-256("hush/v1/card/id\0" ‖ canonical unsigned card)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardId(pub [u8; 32]);

impl fmt::Debug for CardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardId({})", hex_str(&self.0))
    }
}

/// The signed content of a device card, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedCard {
    /// The application's opaque user id.
    pub user_id: UserId,
    /// The device.
    pub device_id: DeviceId,
    /// The user's identity key that cross-signs the card.
    pub identity_key: IdentityPublicKey,
    /// The device's Ed25519 key (signs messages and the card itself).
    pub signing_key: DeviceSigningPublicKey,
    /// The device's X25519 key (HPKE recipient key).
    pub encryption_key: EncryptionPublicKey,
    /// When the card was made (Unix seconds).
    pub created_at: u64,
    /// First second at which the card is no longer valid.
    pub expires_at: u64,
    /// The card this one replaces (same device, rotated keys), if any.
    pub previous: Option<CardId>,
}

impl UnsignedCard {
    /// The card for `device` under `identity` (its device id derived from
    /// the device's signing key).
    pub fn new(
        user_id: UserId,
        identity: &IdentityPublicKey,
        device: &DeviceKeys,
        created_at: u64,
        expires_at: u64,
        previous: Option<CardId>,
    ) -> Self {
        Self {
            user_id,
            device_id: device.device_id(),
            identity_key: *identity,
            signing_key: device.signing_public_key(),
            encryption_key: device.encryption_public_key(),
            created_at,
            expires_at,
            previous,
        }
    }

    /// The body of the card that renews `previous` (same user, device and
    /// identity key, linked to it) with `device`'s keys, valid from
    /// `created_at` to `expires_at`. Refuses ([`CardError::EncryptionKeyReused`])
    /// if `device` still has `previous`'s X25519 key: renew with
    /// [`DeviceKeys::with_new_encryption_key`] first.
    pub fn renewal(
        previous: &DeviceCard,
        device: &DeviceKeys,
        created_at: u64,
        expires_at: u64,
    ) -> Result<Self, CardError> {
        if device.encryption_public_key() == *previous.encryption_key() {
            return Err(CardError::EncryptionKeyReused);
        }
        Ok(Self::new(
            previous.user_id().clone(),
            previous.identity_key(),
            device,
            created_at,
            expires_at,
            Some(previous.id()),
        ))
    }

    /// The canonical encoding that both signatures cover (docs/E2EE-SUITE1.md):
    /// `"HCRD" ‖ version ‖ u16 len ‖ user id ‖ device id (16) ‖ identity key (32)
    /// ‖ signing key (32) ‖ encryption key (32) ‖ created_at (u64) ‖ expires_at
    /// (u64) ‖ 0x00 | 0x01 ‖ previous card id (32, if 0x01)`, integers big-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(256);
        w.bytes(CARD_MAGIC)
            .u8(CARD_VERSION)
            .str16(self.user_id.as_str().as_bytes())
            .bytes(&self.device_id.0)
            .bytes(&self.identity_key.to_bytes())
            .bytes(&self.signing_key.to_bytes())
            .bytes(&self.encryption_key.0)
            .u64(self.created_at)
            .u64(self.expires_at);
        match &self.previous {
            None => w.u8(0),
            Some(id) => w.u8(1).bytes(&id.0),
        };
        w.into_vec()
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, CardError> {
        let m = |_| CardError::Malformed;
        if r.take(4).map_err(m)? != CARD_MAGIC {
            return Err(CardError::Malformed);
        }
        let version = r.u8().map_err(m)?;
        if version != CARD_VERSION {
            return Err(CardError::UnsupportedVersion(version));
        }
        let user_id = std::str::from_utf8(r.str16().map_err(m)?)
            .ok()
            .and_then(|s| UserId::parse(s).ok())
            .ok_or(CardError::Malformed)?;
        let device_id = DeviceId(r.array().map_err(m)?);
        let identity_key = IdentityPublicKey::from_bytes(&r.array().map_err(m)?)?;
        let signing_key = DeviceSigningPublicKey::from_bytes(&r.array().map_err(m)?)?;
        let encryption_key = EncryptionPublicKey::from_bytes(&r.array().map_err(m)?)?;
        let created_at = r.u64().map_err(m)?;
        let expires_at = r.u64().map_err(m)?;
        let previous = match r.u8().map_err(m)? {
            0 => None,
            1 => Some(CardId(r.array().map_err(m)?)),
            _ => return Err(CardError::Malformed),
        };
        Ok(Self {
            user_id,
            device_id,
            identity_key,
            signing_key,
            encryption_key,
            created_at,
            expires_at,
            previous,
        })
    }

    /// The id the card will have.
    pub fn id(&self) -> CardId {
        card_id(&self.to_bytes())
    }

    /// The device's self-signature. Fails if `device` is not the card's device.
    pub fn self_sign(&self, device: &DeviceKeys) -> Result<[u8; SIGNATURE_LEN], CardError> {
        if device.signing_public_key() != self.signing_key
            || device.encryption_public_key() != self.encryption_key
        {
            return Err(CardError::KeyMismatch);
        }
        Ok(device.sign(CTX_CARD_DEVICE, &self.to_bytes()))
    }

    /// The identity key's cross-signature (what "adding a device" means).
    /// Fails if `identity` is not the card's identity key.
    pub fn cross_sign(&self, identity: &IdentityKey) -> Result<[u8; SIGNATURE_LEN], CardError> {
        if identity.public_key() != self.identity_key {
            return Err(CardError::KeyMismatch);
        }
        Ok(identity.sign(CTX_CARD_IDENTITY, &self.to_bytes()))
    }
}

fn card_id(tbs: &[u8]) -> CardId {
    let mut h = Sha256::new();
    h.update(CTX_CARD_ID);
    h.update(tbs);
    CardId(h.finalize().into())
}

/// A device card whose two signatures have been checked. It can only be
/// built by [`DeviceCard::assemble`], [`DeviceCard::issue`] or
/// [`DeviceCard::from_bytes`], each of which verifies both signatures; what
/// remains for the holder is [`DeviceCard::verify`]: is it bound to the
/// identity key I trust for this user, and is it still valid?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCard {
    body: UnsignedCard,
    tbs: Vec<u8>,
    device_signature: [u8; SIGNATURE_LEN],
    identity_signature: [u8; SIGNATURE_LEN],
}

impl DeviceCard {
    /// Signs `body` with the device and the identity key in one go (both keys
    /// on one device, e.g. the first device).
    pub fn issue(
        body: UnsignedCard,
        device: &DeviceKeys,
        identity: &IdentityKey,
    ) -> Result<Self, CardError> {
        let device_signature = body.self_sign(device)?;
        let identity_signature = body.cross_sign(identity)?;
        Self::assemble(body, device_signature, identity_signature)
    }

    /// Combines a card body with signatures made elsewhere (the new device
    /// self-signs; an existing device holding the identity key cross-signs)
    /// and checks both.
    pub fn assemble(
        body: UnsignedCard,
        device_signature: [u8; SIGNATURE_LEN],
        identity_signature: [u8; SIGNATURE_LEN],
    ) -> Result<Self, CardError> {
        if body.expires_at <= body.created_at {
            return Err(CardError::Expired);
        }
        if body.device_id != DeviceId::of_signing_key(&body.signing_key) {
            return Err(CardError::DeviceIdNotDerived);
        }
        let tbs = body.to_bytes();
        body.signing_key
            .verify(CTX_CARD_DEVICE, &tbs, &device_signature)?;
        body.identity_key
            .verify(CTX_CARD_IDENTITY, &tbs, &identity_signature)?;
        Ok(Self {
            body,
            tbs,
            device_signature,
            identity_signature,
        })
    }

    /// The wire form: canonical body ‖ device signature (64) ‖ identity
    /// signature (64).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.tbs.len() + 2 * SIGNATURE_LEN);
        out.extend_from_slice(&self.tbs);
        out.extend_from_slice(&self.device_signature);
        out.extend_from_slice(&self.identity_signature);
        out
    }

    /// Parses the wire form strictly and verifies both signatures.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CardError> {
        let mut r = Reader::new(bytes);
        let body = UnsignedCard::read(&mut r)?;
        let m = |_| CardError::Malformed;
        let device_signature = r.array().map_err(m)?;
        let identity_signature = r.array().map_err(m)?;
        r.finish().map_err(m)?;
        let card = Self::assemble(body, device_signature, identity_signature)?;
        // Canonical: re-encoding gives the same bytes (no alternative forms).
        if card.tbs.len() + 2 * SIGNATURE_LEN != bytes.len() {
            return Err(CardError::Malformed);
        }
        Ok(card)
    }

    /// Checks that the card belongs to `user` under the identity key the
    /// caller trusts for that user (from the transparency log or a verified
    /// safety number), that `now` is before its expiry, and that it was not
    /// made more than [`MAX_CLOCK_SKEW_SECS`] after `now`.
    pub fn verify(
        &self,
        user: &UserId,
        identity: &IdentityPublicKey,
        now: u64,
    ) -> Result<(), CardError> {
        if self.body.user_id != *user || self.body.identity_key != *identity {
            return Err(CardError::IdentityMismatch);
        }
        if now >= self.body.expires_at {
            return Err(CardError::Expired);
        }
        if self.body.created_at > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(CardError::NotYetValid);
        }
        Ok(())
    }

    /// Checks that `self` replaces `previous`: same user, device and identity
    /// key, and `self.previous` is `previous`'s id ([`CardError::BrokenChain`]);
    /// and that it brings a new X25519 encryption key
    /// ([`CardError::EncryptionKeyReused`]), so a device key stolen once
    /// stops opening messages at the next renewal.
    pub fn check_follows(&self, previous: &DeviceCard) -> Result<(), CardError> {
        let ok = self.body.previous == Some(previous.id())
            && self.body.user_id == previous.body.user_id
            && self.body.device_id == previous.body.device_id
            && self.body.identity_key == previous.body.identity_key;
        if !ok {
            return Err(CardError::BrokenChain);
        }
        if self.body.encryption_key == previous.body.encryption_key {
            return Err(CardError::EncryptionKeyReused);
        }
        Ok(())
    }

    /// The card's id (hash of the canonical unsigned encoding).
    pub fn id(&self) -> CardId {
        card_id(&self.tbs)
    }

    /// The signed content.
    pub fn body(&self) -> &UnsignedCard {
        &self.body
    }

    /// The user.
    pub fn user_id(&self) -> &UserId {
        &self.body.user_id
    }

    /// The device.
    pub fn device_id(&self) -> DeviceId {
        self.body.device_id
    }

    /// The identity key that cross-signed the card.
    pub fn identity_key(&self) -> &IdentityPublicKey {
        &self.body.identity_key
    }

    /// The device's message-signing key.
    pub fn signing_key(&self) -> &DeviceSigningPublicKey {
        &self.body.signing_key
    }

    /// The device's HPKE recipient key.
    pub fn encryption_key(&self) -> &EncryptionPublicKey {
        &self.body.encryption_key
    }
}

/// What a [`Revocation`] retires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationKind {
    /// One device: every card of `device_id` under the signing identity key,
    /// `card_id` naming the latest one.
    Device {
        /// The device.
        device_id: DeviceId,
        /// Its latest card.
        card_id: CardId,
    },
    /// The identity key is replaced by `new_identity`; every card
    /// cross-signed by the old key is retired.
    IdentityRotation {
        /// The replacement identity key.
        new_identity: IdentityPublicKey,
    },
}

/// A signed revocation record. Like [`DeviceCard`], it only exists with
/// verified signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    user_id: UserId,
    identity_key: IdentityPublicKey,
    revoked_at: u64,
    kind: RevocationKind,
    tbs: Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
    new_identity_signature: Option<[u8; SIGNATURE_LEN]>,
}

const KIND_DEVICE: u8 = 1;
const KIND_ROTATION: u8 = 2;

fn revocation_tbs(
    user_id: &UserId,
    identity_key: &IdentityPublicKey,
    revoked_at: u64,
    kind: &RevocationKind,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(200);
    w.bytes(REVOCATION_MAGIC).u8(CARD_VERSION);
    match kind {
        RevocationKind::Device { .. } => w.u8(KIND_DEVICE),
        RevocationKind::IdentityRotation { .. } => w.u8(KIND_ROTATION),
    };
    w.str16(user_id.as_str().as_bytes())
        .bytes(&identity_key.to_bytes())
        .u64(revoked_at);
    match kind {
        RevocationKind::Device { device_id, card_id } => w.bytes(&device_id.0).bytes(&card_id.0),
        RevocationKind::IdentityRotation { new_identity } => w.bytes(&new_identity.to_bytes()),
    };
    w.into_vec()
}

impl Revocation {
    /// Retires `card`'s device, signed by the user's identity key.
    pub fn revoke_device(
        identity: &IdentityKey,
        card: &DeviceCard,
        revoked_at: u64,
    ) -> Result<Self, CardError> {
        if identity.public_key() != *card.identity_key() {
            return Err(CardError::KeyMismatch);
        }
        let kind = RevocationKind::Device {
            device_id: card.device_id(),
            card_id: card.id(),
        };
        let tbs = revocation_tbs(card.user_id(), card.identity_key(), revoked_at, &kind);
        let signature = identity.sign(CTX_REVOCATION, &tbs);
        Self::assemble(
            card.user_id().clone(),
            identity.public_key(),
            revoked_at,
            kind,
            signature,
            None,
        )
    }

    /// Replaces the identity key: signed by the old key (authority) and by
    /// the new one (possession).
    pub fn rotate_identity(
        user_id: UserId,
        old: &IdentityKey,
        new: &IdentityKey,
        revoked_at: u64,
    ) -> Result<Self, CardError> {
        let kind = RevocationKind::IdentityRotation {
            new_identity: new.public_key(),
        };
        let tbs = revocation_tbs(&user_id, &old.public_key(), revoked_at, &kind);
        let signature = old.sign(CTX_REVOCATION, &tbs);
        let new_signature = new.sign(CTX_REVOCATION_NEW, &tbs);
        Self::assemble(
            user_id,
            old.public_key(),
            revoked_at,
            kind,
            signature,
            Some(new_signature),
        )
    }

    fn assemble(
        user_id: UserId,
        identity_key: IdentityPublicKey,
        revoked_at: u64,
        kind: RevocationKind,
        signature: [u8; SIGNATURE_LEN],
        new_identity_signature: Option<[u8; SIGNATURE_LEN]>,
    ) -> Result<Self, CardError> {
        let tbs = revocation_tbs(&user_id, &identity_key, revoked_at, &kind);
        identity_key.verify(CTX_REVOCATION, &tbs, &signature)?;
        match (&kind, &new_identity_signature) {
            (RevocationKind::IdentityRotation { new_identity }, Some(sig)) => {
                new_identity.verify(CTX_REVOCATION_NEW, &tbs, sig)?;
            }
            (RevocationKind::Device { .. }, None) => {}
            _ => return Err(CardError::Malformed),
        }
        Ok(Self {
            user_id,
            identity_key,
            revoked_at,
            kind,
            tbs,
            signature,
            new_identity_signature,
        })
    }

    /// The wire form: canonical body ‖ signature (64) ‖ new-identity
    /// signature (64, rotations only).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.tbs.clone();
        out.extend_from_slice(&self.signature);
        if let Some(sig) = &self.new_identity_signature {
            out.extend_from_slice(sig);
        }
        out
    }

    /// Parses the wire form strictly and verifies the signatures.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CardError> {
        let m = |_| CardError::Malformed;
        let mut r = Reader::new(bytes);
        if r.take(4).map_err(m)? != REVOCATION_MAGIC {
            return Err(CardError::Malformed);
        }
        let version = r.u8().map_err(m)?;
        if version != CARD_VERSION {
            return Err(CardError::UnsupportedVersion(version));
        }
        let tag = r.u8().map_err(m)?;
        let user_id = std::str::from_utf8(r.str16().map_err(m)?)
            .ok()
            .and_then(|s| UserId::parse(s).ok())
            .ok_or(CardError::Malformed)?;
        let identity_key = IdentityPublicKey::from_bytes(&r.array().map_err(m)?)?;
        let revoked_at = r.u64().map_err(m)?;
        let kind = match tag {
            KIND_DEVICE => RevocationKind::Device {
                device_id: DeviceId(r.array().map_err(m)?),
                card_id: CardId(r.array().map_err(m)?),
            },
            KIND_ROTATION => RevocationKind::IdentityRotation {
                new_identity: IdentityPublicKey::from_bytes(&r.array().map_err(m)?)?,
            },
            _ => return Err(CardError::Malformed),
        };
        let signature = r.array().map_err(m)?;
        let new_identity_signature = match kind {
            RevocationKind::IdentityRotation { .. } => Some(r.array().map_err(m)?),
            RevocationKind::Device { .. } => None,
        };
        r.finish().map_err(m)?;
        Self::assemble(
            user_id,
            identity_key,
            revoked_at,
            kind,
            signature,
            new_identity_signature,
        )
    }

    /// Checks that the record was signed by the identity key the caller
    /// trusts for `user`.
    pub fn verify(&self, user: &UserId, identity: &IdentityPublicKey) -> Result<(), CardError> {
        if self.user_id != *user || self.identity_key != *identity {
            return Err(CardError::IdentityMismatch);
        }
        Ok(())
    }

    /// Whether this record retires `card`: same user and signing identity,
    /// and either the identity was rotated away or the card's device was
    /// revoked. Revocation is not time-limited: messages claiming to come
    /// from a revoked device are refused whatever timestamp they carry (the
    /// timestamp is the sender's to choose).
    pub fn revokes(&self, card: &DeviceCard) -> bool {
        if self.user_id != *card.user_id() || self.identity_key != *card.identity_key() {
            return false;
        }
        match self.kind {
            RevocationKind::Device { device_id, .. } => device_id == card.device_id(),
            RevocationKind::IdentityRotation { .. } => true,
        }
    }

    /// What is revoked.
    pub fn kind(&self) -> &RevocationKind {
        &self.kind
    }

    /// The user.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The identity key that signed the record.
    pub fn identity_key(&self) -> &IdentityPublicKey {
        &self.identity_key
    }

    /// When (Unix seconds, as the signer states it).
    pub fn revoked_at(&self) -> u64 {
        self.revoked_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::from_seed([7; 32])
    }

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    fn setup() -> (IdentityKey, DeviceKeys, DeviceCard) {
        let mut rng = rng();
        let identity = IdentityKey::generate_with_rng(&mut rng);
        let device = DeviceKeys::generate_with_rng(&mut rng);
        let body = UnsignedCard::new(alice(), &identity.public_key(), &device, 1_000, 2_000, None);
        let card = DeviceCard::issue(body, &device, &identity).unwrap();
        (identity, device, card)
    }

    #[test]
    fn card_round_trip_and_verify() {
        let (identity, _, card) = setup();
        let bytes = card.to_bytes();
        let parsed = DeviceCard::from_bytes(&bytes).unwrap();
        assert_eq!(parsed, card);
        assert_eq!(parsed.id(), card.body().id());
        card.verify(&alice(), &identity.public_key(), 1_500)
            .unwrap();
        assert_eq!(
            card.verify(&alice(), &identity.public_key(), 2_000),
            Err(CardError::Expired)
        );
        let other = IdentityKey::generate_with_rng(&mut ChaCha20Rng::from_seed([1; 32]));
        assert_eq!(
            card.verify(&alice(), &other.public_key(), 1_500),
            Err(CardError::IdentityMismatch)
        );
        assert_eq!(
            card.verify(
                &UserId::parse("bob").unwrap(),
                &identity.public_key(),
                1_500
            ),
            Err(CardError::IdentityMismatch)
        );
    }

    #[test]
    fn encoding_is_the_documented_layout() {
        let (_, _, card) = setup();
        let bytes = card.to_bytes();
        assert_eq!(&bytes[..4], b"HCRD");
        assert_eq!(bytes[4], CARD_VERSION);
        assert_eq!(&bytes[5..7], &[0, 5]);
        assert_eq!(&bytes[7..12], b"alice");
        // magic 4 + version 1 + len 2 + "alice" 5 + device 16 + keys 96 + times 16 + flag 1
        assert_eq!(bytes.len(), 4 + 1 + 2 + 5 + 16 + 96 + 16 + 1 + 128);
        assert_eq!(bytes[12 + 16 + 96 + 16], 0);
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let (_, _, card) = setup();
        let bytes = card.to_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(DeviceCard::from_bytes(&bad).is_err(), "byte {i}");
        }
        assert!(DeviceCard::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(DeviceCard::from_bytes(&longer), Err(CardError::Malformed));
    }

    /// The X25519 points of small order (and their non-canonical encodings
    /// p, p + 1, with and without the ignored top bit), as listed by
    /// libsodium's `has_small_order`, are refused; real keys are accepted.
    #[test]
    fn low_order_encryption_keys_are_refused() {
        let hex32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
        let low_order = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        for s in low_order {
            let mut bytes = hex32(s);
            assert_eq!(
                EncryptionPublicKey::from_bytes(&bytes),
                Err(CardError::Malformed),
                "{s}"
            );
            bytes[31] |= 0x80;
            assert_eq!(
                EncryptionPublicKey::from_bytes(&bytes),
                Err(CardError::Malformed),
                "{s} top bit"
            );
        }
        for _ in 0..32 {
            let key = DeviceKeys::generate().encryption_public_key();
            assert_eq!(EncryptionPublicKey::from_bytes(&key.to_bytes()), Ok(key));
        }
    }

    #[test]
    fn a_device_cannot_add_itself_without_the_identity_key() {
        let (identity, device, card) = setup();
        let mallory = IdentityKey::generate_with_rng(&mut ChaCha20Rng::from_seed([9; 32]));
        let body = card.body().clone();
        assert_eq!(body.cross_sign(&mallory), Err(CardError::KeyMismatch));
        // A cross-signature by another key does not verify.
        let forged = mallory.sign(CTX_CARD_IDENTITY, &body.to_bytes());
        let self_sig = body.self_sign(&device).unwrap();
        assert_eq!(
            DeviceCard::assemble(body.clone(), self_sig, forged),
            Err(CardError::BadSignature)
        );
        // Signatures are domain separated: the self-signature is no cross-signature.
        let cross = body.cross_sign(&identity).unwrap();
        assert_eq!(
            DeviceCard::assemble(body.clone(), cross, cross),
            Err(CardError::BadSignature)
        );
        assert!(DeviceCard::assemble(body, self_sig, cross).is_ok());
    }

    #[test]
    fn two_step_issue_and_key_mismatch() {
        let (identity, _, card) = setup();
        let other_device = DeviceKeys::generate_with_rng(&mut ChaCha20Rng::from_seed([3; 32]));
        assert_eq!(
            card.body().self_sign(&other_device),
            Err(CardError::KeyMismatch)
        );
        let mut body = card.body().clone();
        body.expires_at = body.created_at;
        assert_eq!(
            DeviceCard::issue(body, &other_device, &identity),
            Err(CardError::KeyMismatch)
        );
    }

    #[test]
    fn successor_cards_link_to_their_predecessor() {
        let (identity, _, card) = setup();
        let (_, device, _) = setup();
        let new_keys =
            device.with_new_encryption_key_with_rng(&mut ChaCha20Rng::from_seed([4; 32]));
        let body = UnsignedCard::new(
            alice(),
            &identity.public_key(),
            &new_keys,
            1_900,
            5_000,
            Some(card.id()),
        );
        let next = DeviceCard::issue(body, &new_keys, &identity).unwrap();
        next.check_follows(&card).unwrap();
        assert_eq!(card.check_follows(&next), Err(CardError::BrokenChain));
        let parsed = DeviceCard::from_bytes(&next.to_bytes()).unwrap();
        assert_eq!(parsed.body().previous, Some(card.id()));
        assert_ne!(next.id(), card.id());
    }

    /// Finding 4: a card whose `created_at` lies in the future of the
    /// verifier's clock (beyond the allowed skew) is refused; within the skew
    /// it is accepted.
    #[test]
    fn attack_card_created_in_the_future() {
        let mut rng = rng();
        let identity = IdentityKey::generate_with_rng(&mut rng);
        let device = DeviceKeys::generate_with_rng(&mut rng);
        let now = 1_000_000;
        let card_at = |created_at: u64| {
            let body = UnsignedCard::new(
                alice(),
                &identity.public_key(),
                &device,
                created_at,
                created_at + 365 * 86_400,
                None,
            );
            DeviceCard::issue(body, &device, &identity).unwrap()
        };
        for ahead in [MAX_CLOCK_SKEW_SECS + 1, 86_400, 400 * 86_400] {
            assert_eq!(
                card_at(now + ahead).verify(&alice(), &identity.public_key(), now),
                Err(CardError::NotYetValid),
                "{ahead} s ahead"
            );
        }
        card_at(now + MAX_CLOCK_SKEW_SECS)
            .verify(&alice(), &identity.public_key(), now)
            .unwrap();
        card_at(now - 60)
            .verify(&alice(), &identity.public_key(), now)
            .unwrap();
    }

    /// Finding 5: renewing a card with the same X25519 key (what clients
    /// did) means a device key stolen once opens every later message. A
    /// successor card must bring a new encryption key: `check_follows`, and
    /// with it the directory's rules, refuse one that does not.
    #[test]
    fn attack_renewed_card_keeps_the_stolen_x25519_key() {
        let (identity, device, card) = setup();
        let same_keys = UnsignedCard::new(
            alice(),
            &identity.public_key(),
            &device,
            1_900,
            5_000,
            Some(card.id()),
        );
        let renewed = DeviceCard::issue(same_keys, &device, &identity).unwrap();
        assert_eq!(
            renewed.check_follows(&card),
            Err(CardError::EncryptionKeyReused)
        );
        let mut dir = crate::directory::DirectoryState::new();
        dir.apply(&crate::transparency::LogEntry::Card(card.clone()), 0)
            .unwrap();
        assert!(
            dir.apply(&crate::transparency::LogEntry::Card(renewed), 1)
                .is_err()
        );
    }

    /// Finding 5, the fix: a renewal has a new X25519 key; what is sealed to
    /// the renewed card does not open with the old (stolen) key, and does
    /// with the new one.
    #[test]
    fn renewed_card_has_a_new_x25519_key_the_old_key_cannot_open() {
        let (identity, old_keys, card) = setup();
        let stolen = old_keys.clone();
        let new_keys =
            old_keys.with_new_encryption_key_with_rng(&mut ChaCha20Rng::from_seed([6; 32]));
        assert_eq!(new_keys.signing_public_key(), old_keys.signing_public_key());
        assert_ne!(
            new_keys.encryption_public_key(),
            old_keys.encryption_public_key()
        );
        assert_eq!(
            UnsignedCard::renewal(&card, &old_keys, 1_900, 5_000),
            Err(CardError::EncryptionKeyReused)
        );
        let body = UnsignedCard::renewal(&card, &new_keys, 1_900, 5_000).unwrap();
        let renewed = DeviceCard::issue(body, &new_keys, &identity).unwrap();
        renewed.check_follows(&card).unwrap();
        assert_ne!(renewed.encryption_key(), card.encryption_key());
        let mut dir = crate::directory::DirectoryState::new();
        dir.apply(&crate::transparency::LogEntry::Card(card.clone()), 0)
            .unwrap();
        dir.apply(&crate::transparency::LogEntry::Card(renewed.clone()), 1)
            .unwrap();

        // Bob seals to the renewed card.
        let bob_identity = IdentityKey::generate_with_rng(&mut ChaCha20Rng::from_seed([8; 32]));
        let bob_keys = DeviceKeys::generate_with_rng(&mut ChaCha20Rng::from_seed([9; 32]));
        let bob = UserId::parse("bob").unwrap();
        let bob_card = DeviceCard::issue(
            UnsignedCard::new(
                bob.clone(),
                &bob_identity.public_key(),
                &bob_keys,
                1_000,
                9_000,
                None,
            ),
            &bob_keys,
            &bob_identity,
        )
        .unwrap();
        let channel = hush_protocol::ChannelName::parse("private-chat").unwrap();
        let event = hush_protocol::EventName::parse_api("e2ee").unwrap();
        let data = crate::suite1::seal(
            &crate::suite1::SealRequest {
                sender_user: &bob,
                sender_device: bob_card.device_id(),
                sender_keys: &bob_keys,
                channel: &channel,
                event: &event,
                inner_event: &event,
                timestamp_ms: 2_000_000,
                sequence: 1,
                recipients: &[crate::suite1::Recipient::from(&renewed)],
                tree_head: None,
            },
            b"after the renewal",
        )
        .unwrap();
        let env = crate::suite1::Envelope::from_data(&data).unwrap();
        let sender = crate::suite1::TrustedSender {
            card: &bob_card,
            identity: &bob_identity.public_key(),
            revocations: &[],
        };
        let open = |keys: &DeviceKeys| {
            env.open(
                &renewed,
                keys,
                &sender,
                &mut crate::suite1::ReplayGuard::default(),
                2_000_000,
            )
        };
        assert_eq!(
            open(&stolen).unwrap_err(),
            crate::suite1::OpenError::Decrypt
        );
        assert_eq!(open(&new_keys).unwrap().plaintext, b"after the renewal");
    }

    #[test]
    fn revocations() {
        let (identity, _, card) = setup();
        let rev = Revocation::revoke_device(&identity, &card, 1_700).unwrap();
        let parsed = Revocation::from_bytes(&rev.to_bytes()).unwrap();
        assert_eq!(parsed, rev);
        parsed.verify(&alice(), &identity.public_key()).unwrap();
        assert!(parsed.revokes(&card));
        let bytes = rev.to_bytes();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x80;
            assert!(Revocation::from_bytes(&bad).is_err(), "byte {i}");
        }
        // Only the identity key that cross-signed the card may revoke it.
        let mallory = IdentityKey::generate_with_rng(&mut ChaCha20Rng::from_seed([9; 32]));
        assert_eq!(
            Revocation::revoke_device(&mallory, &card, 1).unwrap_err(),
            CardError::KeyMismatch
        );

        let new_identity = IdentityKey::generate_with_rng(&mut ChaCha20Rng::from_seed([5; 32]));
        let rot = Revocation::rotate_identity(alice(), &identity, &new_identity, 1_800).unwrap();
        let parsed = Revocation::from_bytes(&rot.to_bytes()).unwrap();
        assert!(parsed.revokes(&card));
        assert_eq!(
            parsed.kind(),
            &RevocationKind::IdentityRotation {
                new_identity: new_identity.public_key()
            }
        );
        // A rotation record without the new key's signature is refused.
        let mut short = rot.to_bytes();
        short.truncate(short.len() - SIGNATURE_LEN);
        assert!(Revocation::from_bytes(&short).is_err());
    }

    #[test]
    fn secret_fields_wipe_themselves() {
        // IdentityKey, DeviceKeys::signing and LogKey hold this type; the
        // X25519 secret is hpke's wrapper of x25519-dalek's StaticSecret,
        // built with its `zeroize` feature (ZeroizeOnDrop).
        fn zeroize_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroize_on_drop::<SigningKey>();
        zeroize_on_drop::<Zeroizing<[u8; 32]>>();
    }

    #[test]
    fn debug_output_hides_secrets() {
        let (identity, device, _) = setup();
        let seed = hex_str(identity.to_secret_bytes().as_slice());
        let dbg = format!("{identity:?} {device:?}");
        assert!(dbg.contains("<redacted>"));
        assert!(!dbg.contains(&seed));
        assert_eq!(
            IdentityKey::from_secret_bytes(&identity.to_secret_bytes()).public_key(),
            identity.public_key()
        );
    }

    #[test]
    fn rfc_vectors_for_the_key_types() {
        // RFC 8032 §7.1 test 1 (Ed25519, empty message).
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let id = IdentityKey::from_secret_bytes(&seed);
        assert_eq!(
            hex::encode(id.public_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(id.sign(b"", b"")),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        // RFC 7748 §6.1 (X25519, Alice's key pair).
        let x: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        let device = DeviceKeys::from_secret_bytes(&seed, &x);
        assert_eq!(
            hex::encode(device.encryption_public_key().to_bytes()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point (small order).
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert_eq!(
            IdentityPublicKey::from_bytes(&ident),
            Err(CardError::Malformed)
        );
        assert_eq!(
            EncryptionPublicKey::from_bytes(&[0; 32]),
            Err(CardError::Malformed)
        );
    }
}
