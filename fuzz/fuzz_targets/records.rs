//! Binary key-directory records as a client or the server receives them:
//! device cards, revocations, key-directory records (`0x01 ‖ card`,
//! `0x02 ‖ revocation`), signed epoch heads (format v2) and the per-user
//! entries the akd directory commits to (hush-crypto identity.rs,
//! transparency.rs, transparency/proofs.rs), all parsed strictly.
//!
//! Oracles: no panic; the encodings are canonical — anything accepted
//! re-encodes to exactly the bytes given (a second encoding of one record
//! would give it a second card id, of one entry a second value in the
//! tree); the record entry and the record inside it agree; an accepted user
//! entry holds only the user's own cards, cross-signed by the entry's
//! identity, with strictly increasing device ids
//! ([`hush_fuzz::check_user_entry`]).
#![no_main]

use hush_crypto::identity::{DeviceCard, Revocation};
use hush_crypto::transparency::proofs::UserEntry;
use hush_crypto::transparency::{LogEntry, SignedTreeHead};
use hush_fuzz::check_user_entry;
use hush_protocol::UserId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(card) = DeviceCard::from_bytes(data) {
        assert_eq!(card.to_bytes(), data, "card encoding is not canonical");
        assert_eq!(card.id(), card.body().id());
        assert!(card.body().expires_at > card.body().created_at);
    }
    if let Ok(rev) = Revocation::from_bytes(data) {
        assert_eq!(rev.to_bytes(), data, "revocation encoding is not canonical");
    }
    if let Ok(entry) = LogEntry::from_bytes(data) {
        assert_eq!(
            entry.to_bytes(),
            data,
            "log entry encoding is not canonical"
        );
        match &entry {
            LogEntry::Card(c) => assert_eq!(c.to_bytes(), data[1..]),
            LogEntry::Revocation(r) => assert_eq!(r.to_bytes(), data[1..]),
        }
    }
    if let Ok(sth) = SignedTreeHead::from_bytes(data) {
        assert_eq!(sth.to_bytes(), data, "tree head encoding is not canonical");
    }
    // The seeds' records are alice's (examples/seeds.rs).
    let alice = UserId::parse("alice").expect("user id");
    if let Ok(entry) = UserEntry::from_bytes(&alice, data) {
        check_user_entry(&alice, data, &entry);
    }
});
