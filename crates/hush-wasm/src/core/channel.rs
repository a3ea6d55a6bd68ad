//! Suite 0 channels (Pusher's `private-encrypted-`), key epochs and sealed
//! events, as hush-client's `sansio/channel.rs` opens them: one channel's
//! keyring (epochs with a grace period), the sealed-event replay guard, and
//! this client's sealed-event sender key.

use hush_crypto::epoch::{EpochError, Keyring, epoch_key};
use hush_crypto::sealed::{self, ReplayGuard, SealedError, Sender};
use hush_crypto::{ChannelKey, EncryptedData, MasterKey, shared_secret};
use hush_protocol::ChannelName;
use serde_json::{Value, json};

use super::error::CoreError;

fn channel_name(s: &str) -> Result<ChannelName, CoreError> {
    ChannelName::parse(s).map_err(|e| CoreError::Invalid(format!("channel: {e}")))
}

fn sealed_err(e: SealedError) -> CoreError {
    CoreError::Channel(
        match e {
            SealedError::Replayed | SealedError::Stale => "replay",
            SealedError::Expired => "expired",
            SealedError::Decrypt => "decrypt",
            SealedError::BadSignature => "bad-envelope-signature",
            _ => "sealed",
        },
        e.to_string(),
    )
}

/// A channel key (base64) from the Pusher master key (`shared_secret`).
pub fn suite0_shared_secret(channel: &str, master_key_b64: &str) -> Result<String, CoreError> {
    let master = MasterKey::from_base64(master_key_b64)
        .map_err(|e| CoreError::Invalid(format!("master key: {e}")))?;
    Ok(shared_secret(&channel_name(channel)?, &master).to_base64())
}

/// The channel key of `epoch` (hush-crypto `epoch_key`).
pub fn epoch_key_b64(channel: &str, master_key_b64: &str, epoch: u64) -> Result<String, CoreError> {
    let master = MasterKey::from_base64(master_key_b64)
        .map_err(|e| CoreError::Invalid(format!("master key: {e}")))?;
    Ok(epoch_key(&channel_name(channel)?, &master, epoch).to_base64())
}

fn channel_key(b64: &str) -> Result<ChannelKey, CoreError> {
    ChannelKey::from_base64(b64).map_err(|e| CoreError::Invalid(format!("channel key: {e}")))
}

/// Seals `plaintext` under a channel key (suite 0 `data`, epoch label when
/// not 0).
pub fn suite0_seal(key_b64: &str, epoch: u64, plaintext: &str) -> Result<String, CoreError> {
    let key = channel_key(key_b64)?;
    Ok(EncryptedData::seal(&key, plaintext.as_bytes())
        .with_epoch(epoch)
        .to_json())
}

/// Opens suite 0 `data` under a channel key.
pub fn suite0_open(key_b64: &str, data: &str) -> Result<String, CoreError> {
    let key = channel_key(key_b64)?;
    let plain =
        hush_crypto::open(&key, data).map_err(|e| CoreError::Channel("decrypt", e.to_string()))?;
    String::from_utf8(plain).map_err(|_| CoreError::Channel("suite0", "not UTF-8".into()))
}

/// One encrypted channel's keys and sealed-event state.
pub struct ChannelCrypto {
    name: ChannelName,
    keys: Keyring,
    guard: ReplayGuard,
    sender: Sender,
}

impl ChannelCrypto {
    /// State for `channel` (grace for old epochs, sealed-event max age).
    pub fn new(
        channel: &str,
        epoch_grace_ms: u64,
        sealed_max_age_ms: u64,
    ) -> Result<Self, CoreError> {
        Ok(Self {
            name: channel_name(channel)?,
            keys: Keyring::new(epoch_grace_ms),
            guard: ReplayGuard::new(sealed_max_age_ms, sealed::DEFAULT_MAX_SENDERS),
            sender: Sender::new(),
        })
    }

    /// Installs the key of `epoch` (from the auth answer).
    pub fn install_key(&mut self, epoch: u64, key_b64: &str, now_ms: u64) -> Result<(), CoreError> {
        self.keys.install(epoch, channel_key(key_b64)?, now_ms);
        Ok(())
    }

    /// Opens an encrypted event: a sealed event (`hush-sealed` /
    /// `client-hush-sealed`, signed, replay-checked) or a plain suite 0 one.
    pub fn open(&mut self, event: &str, data: &str, now_ms: u64) -> Result<Value, CoreError> {
        let env = EncryptedData::from_json(data)
            .map_err(|e| CoreError::Channel("malformed", e.to_string()))?;
        let epoch = env.epoch();
        let key = self.keys.key(epoch, now_ms).map_err(|e| {
            CoreError::Channel(
                match e {
                    EpochError::NoKey | EpochError::Newer { .. } => "no-key",
                    EpochError::Stale { .. } => "stale-epoch",
                },
                e.to_string(),
            )
        })?;
        if event == sealed::SERVER_EVENT || event == sealed::CLIENT_EVENT {
            let opened = sealed::open(key, &self.name, &env).map_err(sealed_err)?;
            self.guard.check(&opened, now_ms).map_err(sealed_err)?;
            Ok(json!({
                "event": opened.event, "data": opened.data, "epoch": opened.epoch,
                "sealed": {"sender": opened.sender, "seq": opened.seq,
                           "messageId": opened.message_id, "timestampMs": opened.timestamp_ms},
            }))
        } else {
            let plain = env
                .open(key)
                .map_err(|e| CoreError::Channel("decrypt", e.to_string()))?;
            let text = String::from_utf8(plain)
                .map_err(|_| CoreError::Channel("malformed", "not UTF-8".into()))?;
            Ok(json!({ "event": event, "data": text, "epoch": epoch }))
        }
    }

    /// Seals a sealed event under the newest key (the `data` of a
    /// `client-hush-sealed` event).
    pub fn seal(&mut self, event: &str, data: &str, now_ms: u64) -> Result<String, CoreError> {
        let epoch = self
            .keys
            .newest()
            .ok_or_else(|| CoreError::Channel("no-key", "no key received yet".into()))?;
        let key = self
            .keys
            .key(epoch, now_ms)
            .map_err(|e| CoreError::Channel("no-key", e.to_string()))?;
        self.sender
            .seal(key, &self.name, epoch, event, data, now_ms)
            .map_err(sealed_err)
    }
}
