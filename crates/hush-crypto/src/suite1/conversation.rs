//! The mailbox channel name of a conversation (docs/PROTOCOL-EXT.md §4):
//! one name per set of users, whatever the order, derived so the server
//! learns nothing but that the same users talk again. Shared by hush-client
//! and hush-wasm, so both name a conversation alike.

use hush_protocol::{ChannelName, UserId};
use sha2::{Digest, Sha256};

use crate::identity::hex_str;

/// Prefix of every conversation channel.
pub const CONVERSATION_PREFIX: &str = "private-hush-mailbox-";
const CONVERSATION_CTX: &[u8] = b"hush/v1/mailbox-conversation\0";

/// `CONVERSATION_PREFIX ‖ hex(SHA-256("hush/v1/mailbox-conversation\0" ‖
/// (id ‖ 0x00) for each distinct id, sorted))[..16 bytes]`; `None` for no
/// user.
pub fn conversation_channel(users: &[UserId]) -> Option<ChannelName> {
    let mut ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
    if ids.is_empty() {
        return None;
    }
    ids.sort_unstable();
    ids.dedup();
    let mut h = Sha256::new();
    h.update(CONVERSATION_CTX);
    for id in &ids {
        h.update(id.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    // Always a valid private channel name (prefix + 32 hex digits).
    ChannelName::parse(&format!("{CONVERSATION_PREFIX}{}", hex_str(&digest[..16]))).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ids(users: &[&str]) -> Vec<UserId> {
        users.iter().map(|u| UserId::parse(u).unwrap()).collect()
    }

    #[test]
    fn one_name_per_set_of_users_with_a_known_answer() {
        // Computed independently: SHA-256("hush/v1/mailbox-conversation\0alice\0bob\0").
        let name = conversation_channel(&ids(&["bob", "alice", "bob"])).unwrap();
        assert_eq!(
            name.as_str(),
            "private-hush-mailbox-f4c4bb6cc20485fcb5a607a397453ebe"
        );
        assert_eq!(name, conversation_channel(&ids(&["alice", "bob"])).unwrap());
        assert_ne!(
            name,
            conversation_channel(&ids(&["alice", "carol"])).unwrap()
        );
        assert!(conversation_channel(&[]).is_none());
    }
}
