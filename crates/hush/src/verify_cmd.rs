//! `hush verify USER_A USER_B`: looks both users' identity keys up in the
//! app's key directory (signed epoch head and akd lookup proofs checked) and
//! prints their safety number and its QR payload.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, ValueEnum};
use hush_crypto::identity::IdentityPublicKey;
use hush_crypto::safety::SafetyNumber;
use hush_crypto::transparency::proofs::VrfPublicKey;
use hush_crypto::transparency::{LogMonitor, LogPublicKey};
use hush_protocol::UserId;
use hush_sdk::Client;
use serde_json::json;

use crate::api_cmds::{ConnArgs, runtime};

/// How to print the QR payload.
#[derive(Clone, Copy, ValueEnum)]
pub enum QrFormat {
    /// Lowercase hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// Options of `hush verify`.
#[derive(Args)]
#[command(after_help = "\
Both users must have published an identity (a device card) in the app's key
directory. The answer is checked like a device would: the epoch head is signed
by the directory's key (--pin-key to insist on one), and each user's lookup
proof shows, under the directory's VRF key (--pin-vrf), that the entry served
(identity key, cards, revocations) is the user's latest at that epoch.
The safety number is the same for both users (Signal's algorithm over the
Ed25519 identity keys and user ids); compare it with the one the other person
sees, or scan the QR payload. The payload is written from USER_A's side.")]
pub struct VerifyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The first user (the local side of the QR payload).
    user_a: String,
    /// The second user.
    user_b: String,
    /// The head-signing public key you expect (base64, as `hush
    /// directory-key` prints it): fail if the server signs with another.
    #[arg(long, value_name = "BASE64")]
    pin_key: Option<String>,
    /// The VRF public key you expect (base64, as `hush directory-key` prints
    /// it): fail if the server serves another.
    #[arg(long, value_name = "BASE64")]
    pin_vrf: Option<String>,
    /// Encoding of the QR payload in text output (JSON has both).
    #[arg(long, value_enum, default_value = "hex")]
    qr: QrFormat,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Parses a pinned log key (base64, 32 bytes).
pub fn parse_pin(b64: &str) -> anyhow::Result<LogPublicKey> {
    LogPublicKey::from_bytes(&key32(b64).context("--pin-key: expected 32 bytes of base64")?)
        .context("--pin-key: not a valid Ed25519 public key")
}

/// Parses a pinned VRF key (base64, 32 bytes).
pub fn parse_vrf_pin(b64: &str) -> anyhow::Result<VrfPublicKey> {
    VrfPublicKey::from_bytes(&key32(b64).context("--pin-vrf: expected 32 bytes of base64")?)
        .context("--pin-vrf: not a valid VRF public key")
}

fn key32(b64: &str) -> Option<[u8; 32]> {
    STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
}

/// Looks users up with every proof checked: the head signed by the
/// directory's key (the pinned one, if any), then each user's lookup proof
/// under its VRF key (the pinned one, if any): the entry returned is the
/// user's latest at that epoch. Returns the epoch and each user's identity
/// key (none for a user without an entry).
pub async fn verified_identities(
    client: &Client,
    users: &[UserId],
    pins: (Option<LogPublicKey>, Option<VrfPublicKey>),
) -> anyhow::Result<(u64, Vec<Option<IdentityPublicKey>>)> {
    let app_id = client.config().app_id.clone();
    let served = client
        .directory_log_head()
        .await
        .context("fetching the directory head")?;
    let (pin_key, pin_vrf) = pins;
    let key = pin_key.unwrap_or(served.key);
    if key != served.key {
        bail!(
            "the server's log key {} is not the pinned key {}",
            STANDARD.encode(served.key.to_bytes()),
            STANDARD.encode(key.to_bytes())
        );
    }
    let vrf = pin_vrf.unwrap_or(served.vrf);
    if vrf != served.vrf {
        bail!(
            "the server's VRF key {} is not the pinned key {}",
            STANDARD.encode(served.vrf.to_bytes()),
            STANDARD.encode(vrf.to_bytes())
        );
    }
    let mut monitor = LogMonitor::new(app_id, key);
    monitor
        .update(&served.head)
        .context("the directory head does not verify")?;
    let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
    let lookup = client
        .directory_users(&ids)
        .await
        .context("looking the users up")?;
    if !lookup.more.is_empty() {
        bail!("the server left users out of its answer: {:?}", lookup.more);
    }
    let verified = lookup
        .verify(&mut monitor, &vrf)
        .context("the directory's answer does not verify")?;
    let epoch = monitor.trusted().map_or(0, |h| h.epoch);
    let keys = users
        .iter()
        .map(|u| verified.get(u.as_str()).map(|v| v.entry.identity))
        .collect();
    Ok((epoch, keys))
}

/// Runs `hush verify`.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let client = args.conn.client()?;
    let parse = |u: &str| UserId::parse(u).with_context(|| format!("user id {u:?}"));
    let users = [parse(&args.user_a)?, parse(&args.user_b)?];
    if users[0] == users[1] {
        bail!("name two different users");
    }
    let pins = (
        args.pin_key.as_deref().map(parse_pin).transpose()?,
        args.pin_vrf.as_deref().map(parse_vrf_pin).transpose()?,
    );
    let (epoch, keys) = runtime()?.block_on(verified_identities(&client, &users, pins))?;
    let mut found = Vec::new();
    for (user, key) in users.iter().zip(keys) {
        match key {
            Some(k) => found.push(k),
            None => bail!("user {user} has no identity key in the directory"),
        }
    }
    let number = SafetyNumber::for_users(&users[0], &found[0], &users[1], &found[1]);
    let qr = number.scannable();
    let key_b64 = |k: &IdentityPublicKey| STANDARD.encode(k.to_bytes());
    if args.json {
        println!(
            "{}",
            json!({
                "users": [users[0].as_str(), users[1].as_str()],
                "identity_keys": {
                    users[0].as_str(): key_b64(&found[0]),
                    users[1].as_str(): key_b64(&found[1]),
                },
                "safety_number": number.display(),
                "grouped": number.display_grouped(),
                "qr_hex": hex::encode(&qr),
                "qr_base64": STANDARD.encode(&qr),
                "epoch": epoch,
            })
        );
    } else {
        let qr_text = match args.qr {
            QrFormat::Hex => format!("QR payload (hex):    {}", hex::encode(&qr)),
            QrFormat::Base64 => format!("QR payload (base64): {}", STANDARD.encode(&qr)),
        };
        println!(
            "safety number of {} and {}:\n  {}\n{qr_text}\nidentity keys (verified in the key directory at epoch {epoch}):\n  {}: {}\n  {}: {}",
            users[0],
            users[1],
            number.display_grouped(),
            users[0],
            key_b64(&found[0]),
            users[1],
            key_b64(&found[1]),
        );
    }
    Ok(())
}
