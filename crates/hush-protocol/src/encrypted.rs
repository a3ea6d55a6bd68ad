//! Shape check of suite 0 payloads (`{"nonce","ciphertext"}`), PROTOCOL.md §11.
//!
//! The server cannot and must not decrypt; it only refuses data that is plainly
//! not ciphertext, so plaintext is never published on an encrypted channel by
//! mistake.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// Secretbox nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length (the minimum ciphertext).
pub const TAG_LEN: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    nonce: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    ciphertext: std::borrow::Cow<'a, str>,
    /// Key epoch (docs/E2EE-CHANNELS.md §1); absent means 0, `null` is
    /// refused (clients read only a number there).
    #[serde(default, deserialize_with = "present_u64")]
    #[allow(dead_code)]
    epoch: Option<u64>,
}

/// A member that, when present, must be a `u64` (not `null`).
fn present_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(d).map(Some)
}

/// True if `data` is exactly `{"nonce": base64(24 bytes), "ciphertext": base64(≥16 bytes)}`,
/// optionally with `"epoch": <u64>` (hush key epochs, docs/E2EE-CHANNELS.md).
pub fn is_ciphertext_envelope(data: &str) -> bool {
    if !crate::wire::is_json_object(data.as_bytes()) {
        return false;
    }
    let Ok(env) = serde_json::from_str::<Envelope<'_>>(data) else {
        return false;
    };
    let nonce_ok = STANDARD
        .decode(env.nonce.as_bytes())
        .map(|n| n.len() == NONCE_LEN)
        .unwrap_or(false);
    let ct_ok = STANDARD
        .decode(env.ciphertext.as_bytes())
        .map(|c| c.len() >= TAG_LEN)
        .unwrap_or(false);
    nonce_ok && ct_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        assert!(is_ciphertext_envelope(
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#
        ));
        assert!(!is_ciphertext_envelope(r#"{"message":"hello"}"#));
        assert!(is_ciphertext_envelope(
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=","epoch":7}"#
        ));
        assert!(!is_ciphertext_envelope(
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=","epoch":-1}"#
        ));
        assert!(!is_ciphertext_envelope(
            r#"{"nonce":"AAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc="}"#
        ));
        assert!(!is_ciphertext_envelope(
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"AAAA"}"#
        ));
        assert!(!is_ciphertext_envelope(
            r#"{"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ciphertext":"lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=","x":1}"#
        ));
        assert!(!is_ciphertext_envelope("hello"));
    }

    #[test]
    fn only_what_clients_can_read() {
        // Found by fuzzing (fuzz/fuzz_targets/suite0_sealed.rs): the server
        // passed a JSON array (serde's derived structs read arrays field by
        // field) and `"epoch":null`, which no client reads as an envelope.
        let nonce = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let ct = "lASjUQmPpH/VfJaOS29+6nBwF+Te0FVD0E2j3CIm2EsHStc=";
        assert!(!is_ciphertext_envelope(&format!(r#"["{nonce}","{ct}"]"#)));
        assert!(!is_ciphertext_envelope(&format!(r#"["{nonce}","{ct}",3]"#)));
        assert!(!is_ciphertext_envelope(&format!(
            r#"{{"nonce":"{nonce}","ciphertext":"{ct}","epoch":null}}"#
        )));
        assert!(is_ciphertext_envelope(&format!(
            " {{\"nonce\":\"{nonce}\",\"ciphertext\":\"{ct}\",\"epoch\":0}}"
        )));
    }
}
