//! Webhook signatures: `X-Pusher-Signature` = hex HMAC-SHA256 of the raw body.

use crate::auth::{Signature, hmac_sha256, verify_hmac};

/// Signs the exact body bytes that will be sent.
pub fn sign_body(secret: &[u8], body: &[u8]) -> Signature {
    hmac_sha256(secret, body)
}

/// Verifies an `X-Pusher-Signature` header value (hex) in constant time.
pub fn verify_body(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let mut sig = [0u8; 32];
    signature_hex.len() == 64
        && hex::decode_to_slice(signature_hex, &mut sig).is_ok()
        && verify_hmac(secret, body, &sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kat() {
        let s = b"7ad3773142a6692b25b8";
        let b1 = br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}"#;
        assert_eq!(
            sign_body(s, b1).to_hex(),
            "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa"
        );
        let b2 = br#"{"time_ms":1530710011901,"events":[{"name":"client_event","channel":"private-my-channel","event":"client-event","data":"Unencrypted","socket_id":"240621.35780774"}]}"#;
        assert!(verify_body(
            s,
            b2,
            "6a11f381b211b0ebbd9dbd3d74744392b06dca9f0a7d43adff26b68dd77db525"
        ));
        assert!(!verify_body(
            s,
            b1,
            "6a11f381b211b0ebbd9dbd3d74744392b06dca9f0a7d43adff26b68dd77db525"
        ));
        assert!(!verify_body(s, b1, "xyz"));
    }
}
