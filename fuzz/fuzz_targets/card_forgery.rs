//! Device cards and revocations made by the real signing code from
//! fuzzer-chosen keys, ids and times, then changed the way an attacker on the
//! path (or a malicious directory) could change them.
//!
//! Oracles: an issued card or revocation parses back to itself; any change
//! of its bytes (one byte flipped, cut short, extended, or a byte range
//! replaced) is refused — there is no second valid encoding and no way to
//! alter a signed field; a card checks against its own user and identity
//! and against no other; a revocation retires exactly the cards it names.
#![no_main]

use arbitrary::Arbitrary;
use hush_crypto::identity::{
    CardId, DeviceCard, DeviceId, DeviceKeys, IdentityKey, Revocation, UnsignedCard,
};
use hush_protocol::UserId;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Change {
    Flip { at: usize, xor: u8 },
    Truncate { len: usize },
    Extend { tail: Vec<u8> },
    Splice { at: usize, bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    identity: [u8; 32],
    other_identity: [u8; 32],
    signing: [u8; 32],
    encryption: [u8; 32],
    user: String,
    device: [u8; 16],
    created_at: u64,
    lifetime: u64,
    previous: Option<[u8; 32]>,
    revoked_at: u64,
    rotate: bool,
    change: Change,
}

fn changed(bytes: &[u8], change: &Change) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match change {
        Change::Flip { at, xor } => {
            if !out.is_empty() {
                let i = at % out.len();
                out[i] ^= xor.max(&1);
            }
        }
        Change::Truncate { len } => out.truncate(len % out.len().max(1)),
        Change::Extend { tail } => {
            out.extend_from_slice(tail);
            if tail.is_empty() {
                out.push(0);
            }
        }
        Change::Splice { at, bytes } => {
            let i = at % out.len().max(1);
            let end = (i + bytes.len()).min(out.len());
            out.splice(i..end, bytes.iter().copied());
        }
    }
    out
}

fn check(input: &Input) {
    let Ok(user) = UserId::parse(&input.user) else {
        return;
    };
    let identity = IdentityKey::from_secret_bytes(&input.identity);
    let other = IdentityKey::from_secret_bytes(&input.other_identity);
    let device = DeviceKeys::from_secret_bytes(&input.signing, &input.encryption);
    let mut body = UnsignedCard::new(
        user.clone(),
        &identity.public_key(),
        &device,
        input.created_at,
        input.created_at.saturating_add(input.lifetime),
        input.previous.map(CardId),
    );
    // Half the inputs claim a device id of their choosing: refused unless
    // it is the one derived from the signing key.
    let claimed = DeviceId(input.device);
    if input.device[0] & 1 == 1 {
        body.device_id = claimed;
    }
    let derived = device.device_id();
    let card = match DeviceCard::issue(body, &device, &identity) {
        Ok(c) => c,
        Err(hush_crypto::identity::CardError::DeviceIdNotDerived) => {
            assert_ne!(claimed, derived);
            return;
        }
        Err(_) => {
            // Refused only for an empty validity period (or a weak key,
            // which from_secret_bytes never makes).
            assert_eq!(input.lifetime.min(u64::MAX - input.created_at), 0);
            return;
        }
    };
    let bytes = card.to_bytes();
    assert_eq!(DeviceCard::from_bytes(&bytes).as_ref(), Ok(&card));
    let tampered = changed(&bytes, &input.change);
    if tampered != bytes {
        assert!(
            DeviceCard::from_bytes(&tampered).is_err(),
            "a changed card was accepted ({:?})",
            input.change
        );
    }
    let now = input.created_at;
    assert!(card.verify(&user, &identity.public_key(), now).is_ok());
    if other.public_key() != identity.public_key() {
        assert!(card.verify(&user, &other.public_key(), now).is_err());
    }
    if let Ok(another_user) = UserId::parse(&format!("{user}x")) {
        assert!(
            card.verify(&another_user, &identity.public_key(), now)
                .is_err()
        );
    }
    assert!(
        card.verify(&user, &identity.public_key(), card.body().expires_at)
            .is_err()
    );
    // The wrong identity cannot cross-sign.
    if other.public_key() != identity.public_key() {
        assert!(DeviceCard::issue(card.body().clone(), &device, &other).is_err());
    }

    let rev = if input.rotate {
        Revocation::rotate_identity(user.clone(), &identity, &other, input.revoked_at)
    } else {
        Revocation::revoke_device(&identity, &card, input.revoked_at)
    }
    .expect("revocation by the card's own identity");
    let bytes = rev.to_bytes();
    assert_eq!(Revocation::from_bytes(&bytes).as_ref(), Ok(&rev));
    let tampered = changed(&bytes, &input.change);
    if tampered != bytes {
        assert!(
            Revocation::from_bytes(&tampered).is_err(),
            "a changed revocation was accepted ({:?})",
            input.change
        );
    }
    assert!(rev.revokes(&card));
    assert!(rev.verify(&user, &identity.public_key()).is_ok());
    // A revocation signed by another identity cannot retire this card.
    if other.public_key() != identity.public_key() {
        let foreign = Revocation::rotate_identity(user, &other, &identity, input.revoked_at)
            .expect("rotation");
        assert!(!foreign.revokes(&card));
    }
}

fuzz_target!(|input: Input| check(&input));
