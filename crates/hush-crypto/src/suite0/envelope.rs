//! Sealing and opening suite 0 event data (NaCl `secretbox`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, AeadCore, KeyInit, OsRng};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};

use super::keys::ChannelKey;

/// Length of a secretbox nonce.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that starts every box.
pub const TAG_LEN: usize = 16;

/// Why encrypted data could not be opened. Deliberately opaque: it never says
/// which byte or which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The data is not `{"nonce": base64(24 bytes), "ciphertext": base64(≥ 16 bytes)}`.
    #[error("not an encrypted payload: expected {{\"nonce\",\"ciphertext\"}} in base64")]
    Malformed,
    /// Wrong key, or the nonce or ciphertext was changed.
    #[error("decryption failed: wrong key or altered data")]
    Decrypt,
}

/// A sealed payload: the nonce and the box (`tag ‖ ciphertext`, the tweetnacl
/// and libsodium "easy" layout), plus the key epoch it was sealed under
/// (0, Pusher's only epoch, unless the app rotates keys: see
/// [`crate::epoch`] and docs/E2EE-CHANNELS.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedData {
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
    epoch: u64,
}

fn cipher(key: &ChannelKey) -> XSalsa20Poly1305 {
    XSalsa20Poly1305::new(Key::from_slice(key.as_bytes()))
}

impl EncryptedData {
    /// Seals `plaintext` under `key` with a fresh random nonce.
    pub fn seal(key: &ChannelKey, plaintext: &[u8]) -> Self {
        let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
        Self::seal_with_nonce(key, nonce.into(), plaintext)
    }

    /// Seals with a caller-chosen nonce. Reusing a nonce under one key breaks
    /// the cipher, so this exists only for known-answer tests.
    pub(crate) fn seal_with_nonce(
        key: &ChannelKey,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
    ) -> Self {
        // `encrypt` fails only for inputs beyond the cipher's 256 GiB limit,
        // which no `&[u8]` event payload approaches; an empty box can never
        // open, so that impossible case cannot leak plaintext either.
        let ciphertext = cipher(key)
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        Self {
            nonce,
            ciphertext,
            epoch: 0,
        }
    }

    /// Labels the payload with the key epoch it was sealed under. The label
    /// travels in clear (`"epoch": N`, omitted for 0) so a receiver picks the
    /// right key; changing it only makes opening fail.
    #[must_use]
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// The key epoch the payload names (0 when the wire string has none).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Opens the box: the plaintext, or [`OpenError::Decrypt`] if the key is
    /// wrong or any byte of nonce, tag or ciphertext was changed.
    pub fn open(&self, key: &ChannelKey) -> Result<Vec<u8>, OpenError> {
        cipher(key)
            .decrypt(Nonce::from_slice(&self.nonce), self.ciphertext.as_slice())
            .map_err(|_| OpenError::Decrypt)
    }

    /// Parses the wire `data` string. Unknown members are ignored (as pusher-js
    /// does); both members must be standard base64 strings, the nonce exactly
    /// 24 bytes and the box at least the 16-byte tag; `epoch`, when present,
    /// a non-negative integer.
    pub fn from_json(data: &str) -> Result<Self, OpenError> {
        // A JSON object (an array must not pass for one, as serde's derive
        // would allow), read like pusher-js reads `data.nonce`.
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(data).map_err(|_| OpenError::Malformed)?;
        let member = |name: &str| object.get(name).and_then(serde_json::Value::as_str);
        let (Some(nonce), Some(ciphertext)) = (member("nonce"), member("ciphertext")) else {
            return Err(OpenError::Malformed);
        };
        let nonce: [u8; NONCE_LEN] = STANDARD
            .decode(nonce.as_bytes())
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(OpenError::Malformed)?;
        let ciphertext = STANDARD
            .decode(ciphertext.as_bytes())
            .map_err(|_| OpenError::Malformed)?;
        if ciphertext.len() < TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let epoch = match object.get("epoch") {
            None => 0,
            Some(value) => value.as_u64().ok_or(OpenError::Malformed)?,
        };
        Ok(Self {
            nonce,
            ciphertext,
            epoch,
        })
    }

    /// The wire `data` string: for epoch 0 byte for byte what
    /// pusher-http-node's `JSON.stringify({nonce, ciphertext})` produces; a
    /// later epoch adds `,"epoch":N` (which pusher-js ignores).
    pub fn to_json(&self) -> String {
        // Standard base64 never needs JSON escaping.
        let (nonce, ciphertext) = (
            STANDARD.encode(self.nonce),
            STANDARD.encode(&self.ciphertext),
        );
        if self.epoch == 0 {
            format!(r#"{{"nonce":"{nonce}","ciphertext":"{ciphertext}"}}"#)
        } else {
            let epoch = self.epoch;
            format!(r#"{{"nonce":"{nonce}","ciphertext":"{ciphertext}","epoch":{epoch}}}"#)
        }
    }

    /// The nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The box: 16-byte Poly1305 tag followed by the ciphertext.
    pub fn ciphertext(&self) -> &[u8] {
        &self.ciphertext
    }

    /// Length in bytes of the wire string for a plaintext of `plaintext_len`
    /// bytes (what counts against the 10 240-byte event limit).
    pub fn wire_len(plaintext_len: usize) -> usize {
        Self::wire_len_at(plaintext_len, 0)
    }

    /// [`Self::wire_len`] for a payload labelled with `epoch`.
    pub fn wire_len_at(plaintext_len: usize, epoch: u64) -> usize {
        let b64 = |n: usize| n.div_ceil(3) * 4;
        let label = if epoch == 0 {
            0
        } else {
            r#","epoch":"#.len() + epoch.to_string().len()
        };
        r#"{"nonce":"","ciphertext":""}"#.len()
            + b64(NONCE_LEN)
            + b64(plaintext_len + TAG_LEN)
            + label
    }
}

/// Seals `plaintext` for a channel and returns the wire `data` string
/// `{"nonce":"…","ciphertext":"…"}` (random nonce).
pub fn seal(key: &ChannelKey, plaintext: &[u8]) -> String {
    EncryptedData::seal(key, plaintext).to_json()
}

/// Opens a wire `data` string sealed for this channel key.
pub fn open(key: &ChannelKey, data: &str) -> Result<Vec<u8>, OpenError> {
    EncryptedData::from_json(data)?.open(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite0::keys::{MasterKey, shared_secret};
    use hush_protocol::ChannelName;
    use proptest::prelude::*;

    static VECTOR: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| crate::known_answers::ka("suite0.data"));

    fn foo_key() -> ChannelKey {
        let master =
            MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").unwrap();
        shared_secret(
            &ChannelName::parse("private-encrypted-foo").unwrap(),
            &master,
        )
    }

    #[test]
    fn kat_protocol_17d_seal() {
        let sealed = EncryptedData::seal_with_nonce(&foo_key(), [0; 24], br#"{"message":"hello"}"#);
        assert_eq!(
            hex::encode(sealed.ciphertext()),
            crate::known_answers::ka("suite0.ciphertext_hex")
        );
        assert_eq!(sealed.to_json(), *VECTOR);
        assert_eq!(EncryptedData::wire_len(19), VECTOR.len());
    }

    #[test]
    fn kat_protocol_17d_open() {
        assert_eq!(
            open(&foo_key(), &VECTOR).unwrap(),
            br#"{"message":"hello"}"#
        );
        // Key order and unknown members do not matter to the reader.
        let reordered = crate::known_answers::ka("suite0.data_reordered");
        assert_eq!(
            open(&foo_key(), &reordered).unwrap(),
            br#"{"message":"hello"}"#
        );
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let good = EncryptedData::from_json(&VECTOR).unwrap();
        for i in 0..good.ciphertext.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = good.clone();
                bad.ciphertext[i] ^= bit;
                assert_eq!(bad.open(&foo_key()), Err(OpenError::Decrypt), "byte {i}");
            }
        }
        for i in 0..NONCE_LEN {
            let mut bad = good.clone();
            bad.nonce[i] ^= 1;
            assert_eq!(bad.open(&foo_key()), Err(OpenError::Decrypt), "nonce {i}");
        }
        let mut truncated = good.clone();
        truncated.ciphertext.pop();
        assert_eq!(truncated.open(&foo_key()), Err(OpenError::Decrypt));
        let mut extended = good;
        extended.ciphertext.push(0);
        assert_eq!(extended.open(&foo_key()), Err(OpenError::Decrypt));
    }

    #[test]
    fn wrong_key_is_refused() {
        let master =
            MasterKey::from_base64("dGhpcyBpcyAzMiBieXRlcyBsb25nLCBpdCByZWFsbHk=").unwrap();
        let other = shared_secret(
            &ChannelName::parse("private-encrypted-bar").unwrap(),
            &master,
        );
        assert_eq!(open(&other, &VECTOR), Err(OpenError::Decrypt));
        assert_eq!(
            open(&ChannelKey::from_bytes([0; 32]), &VECTOR),
            Err(OpenError::Decrypt)
        );
    }

    #[test]
    fn malformed_envelopes() {
        let k = foo_key();
        for bad in [
            "",
            "hello",
            r#"{"message":"hello"}"#,
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
            r#"{"ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#,
            // 23-byte nonce
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#,
            // box shorter than a tag
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaO"}"#,
            // not base64
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#,
            r#"{"nonce":1,"ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#,
            r#"["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="]"#,
        ] {
            assert_eq!(open(&k, bad), Err(OpenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn epoch_label_round_trips_and_is_checked() {
        let k = foo_key();
        let sealed =
            EncryptedData::seal_with_nonce(&k, [0; 24], br#"{"message":"hello"}"#).with_epoch(7);
        let wire = sealed.to_json();
        assert_eq!(
            wire,
            VECTOR.trim_end_matches('}').to_owned() + r#","epoch":7}"#
        );
        assert_eq!(wire.len(), EncryptedData::wire_len_at(19, 7));
        let parsed = EncryptedData::from_json(&wire).unwrap();
        assert_eq!(parsed.epoch(), 7);
        assert_eq!(parsed.open(&k).unwrap(), br#"{"message":"hello"}"#);
        assert_eq!(EncryptedData::from_json(&VECTOR).unwrap().epoch(), 0);
        for bad in [r#""7""#, "-1", "1.5", "null", "18446744073709551616"] {
            let wire = VECTOR.trim_end_matches('}').to_owned() + r#","epoch":"# + bad + "}";
            assert_eq!(open(&k, &wire), Err(OpenError::Malformed), "{bad}");
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let k = foo_key();
        let a = EncryptedData::seal(&k, b"same");
        let b = EncryptedData::seal(&k, b"same");
        assert_ne!(a.nonce(), b.nonce());
        assert_ne!(a.ciphertext(), b.ciphertext());
        assert_eq!(a.open(&k).unwrap(), b"same");
    }

    #[test]
    fn error_text_reveals_nothing() {
        assert_eq!(
            OpenError::Decrypt.to_string(),
            "decryption failed: wrong key or altered data"
        );
    }

    proptest! {
        #[test]
        fn round_trip(pt in proptest::collection::vec(any::<u8>(), 0..600)) {
            let k = foo_key();
            let wire = seal(&k, &pt);
            prop_assert_eq!(wire.len(), EncryptedData::wire_len(pt.len()));
            prop_assert!(hush_protocol::encrypted::is_ciphertext_envelope(&wire));
            prop_assert_eq!(open(&k, &wire).unwrap(), pt);
        }
    }
}
