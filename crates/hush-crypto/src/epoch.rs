//! Key epochs for encrypted channels (docs/E2EE-CHANNELS.md §1).
//!
//! A channel's key is derived per *(channel, epoch)* from the app's master
//! key. Epoch 0 is Pusher's key ([`shared_secret`]), so an app that never
//! rotates is plain suite 0; epoch `e ≥ 1` is
//! `HKDF-SHA256(salt = "hush channel epoch key v1", IKM = master key,
//! info = u32be(len(name)) ‖ name ‖ u64be(e))`.
//!
//! A receiving client keeps a [`Keyring`]: the newest epoch's key, plus older
//! epochs' keys for a grace period after it learned a newer one, after which
//! they are erased (zeroized), so a device compromised later holds no key to
//! the epochs it already left behind.

use std::collections::BTreeMap;

use hkdf::Hkdf;
use hush_protocol::ChannelName;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::suite0::{ChannelKey, KEY_LEN, MasterKey, shared_secret};

/// The HKDF salt of epoch keys (25 ASCII bytes).
pub const EPOCH_KEY_SALT: &[u8] = b"hush channel epoch key v1";

/// Derives the key of `channel` for `epoch`: Pusher's shared secret for
/// epoch 0, the HKDF construction above for every later epoch.
pub fn epoch_key(channel: &ChannelName, master_key: &MasterKey, epoch: u64) -> ChannelKey {
    if epoch == 0 {
        return shared_secret(channel, master_key);
    }
    let name = channel.as_str().as_bytes();
    // Channel names are at most 200 bytes, so the length always fits.
    let name_len = u32::try_from(name.len()).unwrap_or(u32::MAX);
    let mut info = Vec::with_capacity(4 + name.len() + 8);
    info.extend_from_slice(&name_len.to_be_bytes());
    info.extend_from_slice(name);
    info.extend_from_slice(&epoch.to_be_bytes());
    // The pseudo-random key and the output are wiped; the HMAC state inside
    // `hkdf` 0.12 is not (that crate has no `zeroize` support).
    let (mut prk, hkdf) = Hkdf::<Sha256>::extract(Some(EPOCH_KEY_SALT), master_key.as_bytes());
    prk.as_mut_slice().zeroize();
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so `expand`
    // cannot fail; the all-zero fallback is unreachable.
    let _ = hkdf.expand(&info, okm.as_mut_slice());
    ChannelKey::take_bytes(&mut okm)
}

/// Why a [`Keyring`] has no key for an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// The keyring holds no key yet.
    #[error("no key for this channel yet")]
    NoKey,
    /// Newer than every key held: the holder should fetch the current key
    /// (re-authorize) and try once more.
    #[error("epoch {epoch} is newer than the newest key held ({newest})")]
    Newer {
        /// The epoch asked for.
        epoch: u64,
        /// The newest epoch held.
        newest: u64,
    },
    /// Older than the newest key and not held: never received, or erased
    /// after its grace period.
    #[error("epoch {epoch} is stale: its key is not held (newest is {newest})")]
    Stale {
        /// The epoch asked for.
        epoch: u64,
        /// The newest epoch held.
        newest: u64,
    },
}

/// One held key and, once a newer epoch arrived, when it is erased.
#[derive(Debug)]
struct Held {
    key: ChannelKey,
    /// `None` while this is the newest epoch.
    erase_at_ms: Option<u64>,
}

/// The keys a receiver holds for one channel, by epoch.
///
/// Time is an input (Unix milliseconds) so the type stays pure and
/// testable. Erased keys are dropped, which zeroizes them.
#[derive(Debug)]
pub struct Keyring {
    grace_ms: u64,
    keys: BTreeMap<u64, Held>,
}

impl Keyring {
    /// The default grace period for a superseded epoch: 60 s.
    pub const DEFAULT_GRACE_MS: u64 = 60_000;

    /// An empty keyring whose superseded keys live `grace_ms` after a newer
    /// epoch is installed.
    pub fn new(grace_ms: u64) -> Self {
        Self {
            grace_ms,
            keys: BTreeMap::new(),
        }
    }

    /// The newest epoch held.
    pub fn newest(&self) -> Option<u64> {
        self.keys.keys().next_back().copied()
    }

    /// Installs the key of `epoch`. A newer epoch starts the grace period of
    /// every older key; installing an epoch older than the newest keeps it
    /// only for the grace period (a late answer to an earlier request).
    /// Reinstalling a held epoch replaces its key (a re-fetched secret).
    pub fn install(&mut self, epoch: u64, key: ChannelKey, now_ms: u64) {
        self.expire(now_ms);
        let erase_at = now_ms.saturating_add(self.grace_ms);
        let newest = self.newest();
        if newest.is_none_or(|n| epoch > n) {
            for held in self.keys.values_mut() {
                held.erase_at_ms.get_or_insert(erase_at);
            }
        }
        let erase_at_ms = match newest {
            Some(n) if epoch < n => Some(erase_at),
            _ => None,
        };
        self.keys.insert(epoch, Held { key, erase_at_ms });
    }

    /// The key of `epoch`, after erasing keys whose grace period is over.
    pub fn key(&mut self, epoch: u64, now_ms: u64) -> Result<&ChannelKey, EpochError> {
        self.expire(now_ms);
        let newest = self.newest().ok_or(EpochError::NoKey)?;
        if epoch > newest {
            return Err(EpochError::Newer { epoch, newest });
        }
        self.keys
            .get(&epoch)
            .map(|held| &held.key)
            .ok_or(EpochError::Stale { epoch, newest })
    }

    /// Erases (zeroizes, by dropping) every superseded key whose grace period
    /// ended at or before `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        self.keys
            .retain(|_, held| held.erase_at_ms.is_none_or(|at| now_ms < at));
    }

    /// Erases every key (the channel was left).
    pub fn clear(&mut self) {
        self.keys.clear();
    }
}

impl Default for Keyring {
    fn default() -> Self {
        Self::new(Self::DEFAULT_GRACE_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").unwrap()
    }

    fn foo() -> ChannelName {
        ChannelName::parse("private-encrypted-foo").unwrap()
    }

    #[test]
    fn epoch_zero_is_pushers_key() {
        assert_eq!(
            epoch_key(&foo(), &master(), 0).to_base64(),
            "3x0KbqI7rIgm1LH1vj0MbmQu3a1H1t0DYjzwM8+rKlc="
        );
    }

    /// Known answers (docs/E2EE-CHANNELS.md §5), computed independently with
    /// a few lines of Python `hmac`/`hashlib` implementing RFC 5869.
    #[test]
    fn kat_epoch_keys() {
        assert_eq!(
            hex::encode(epoch_key(&foo(), &master(), 1).as_bytes()),
            kat(0)
        );
        assert_eq!(
            hex::encode(epoch_key(&foo(), &master(), 7).as_bytes()),
            kat(1)
        );
        let bar = ChannelName::parse("private-encrypted-bar").unwrap();
        assert_eq!(
            hex::encode(epoch_key(&bar, &master(), 1).as_bytes()),
            kat(2)
        );
    }

    fn kat(i: usize) -> String {
        crate::known_answers::ka(&format!("epoch.keys.{i}.key_hex"))
    }

    #[test]
    fn epochs_and_channels_give_distinct_keys() {
        let keys: Vec<_> = (0..5).map(|e| epoch_key(&foo(), &master(), e)).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn keyring_grace_then_erasure() {
        let mut ring = Keyring::new(1_000);
        assert_eq!(ring.key(0, 0).unwrap_err(), EpochError::NoKey);
        ring.install(1, epoch_key(&foo(), &master(), 1), 10_000);
        assert!(ring.key(1, 10_000).is_ok());
        assert_eq!(
            ring.key(2, 10_000).unwrap_err(),
            EpochError::Newer {
                epoch: 2,
                newest: 1
            }
        );
        assert_eq!(
            ring.key(0, 10_000).unwrap_err(),
            EpochError::Stale {
                epoch: 0,
                newest: 1
            }
        );
        // Epoch 2 arrives: epoch 1 stays for the grace period only.
        ring.install(2, epoch_key(&foo(), &master(), 2), 20_000);
        assert!(ring.key(1, 20_999).is_ok());
        assert!(ring.key(2, 20_999).is_ok());
        assert_eq!(
            ring.key(1, 21_000).unwrap_err(),
            EpochError::Stale {
                epoch: 1,
                newest: 2
            }
        );
        // The newest key never expires.
        assert!(ring.key(2, u64::MAX).is_ok());
    }

    #[test]
    fn late_older_key_lives_only_for_the_grace_period() {
        let mut ring = Keyring::new(500);
        ring.install(5, epoch_key(&foo(), &master(), 5), 0);
        ring.install(4, epoch_key(&foo(), &master(), 4), 100);
        assert!(ring.key(4, 599).is_ok());
        assert!(ring.key(4, 600).is_err());
        assert_eq!(ring.newest(), Some(5));
        ring.clear();
        assert_eq!(ring.newest(), None);
    }
}
