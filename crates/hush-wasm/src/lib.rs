//! hush's end-to-end encryption core for browsers: hush-crypto compiled to
//! WebAssembly, plus a sans-I/O device core (`core`) reproducing
//! hush-client's `e2ee` behaviour and wire formats. This file is the thin
//! wasm-bindgen adapter; the API is documented in README.md.
#![forbid(unsafe_code)]

pub mod core;
#[cfg(feature = "kat")]
mod kat;

use wasm_bindgen::prelude::*;

use crate::core::CoreError;

fn js(e: CoreError) -> JsError {
    JsError::new(&e.to_js_message())
}

fn step_json(s: &core::Step) -> String {
    s.to_json().to_string()
}

/// One device's whole E2EE state (see README.md).
#[wasm_bindgen]
pub struct Device {
    inner: core::Device,
}

/// One operation in progress, advanced by `Device.step`.
#[wasm_bindgen]
pub struct Op {
    inner: core::Op,
}

fn op(r: Result<core::Op, CoreError>) -> Result<Op, JsError> {
    r.map(|inner| Op { inner }).map_err(js)
}

#[wasm_bindgen]
impl Device {
    /// New keys for `user_id` (with an identity key when `first_device`).
    pub fn create(user_id: &str, first_device: bool) -> Result<Device, JsError> {
        core::Device::create(user_id, first_device)
            .map(|inner| Device { inner })
            .map_err(js)
    }

    /// A device from `save()`'s bytes.
    pub fn load(state: &[u8]) -> Result<Device, JsError> {
        core::Device::load(state)
            .map(|inner| Device { inner })
            .map_err(js)
    }

    /// The whole state (secrets included): encrypt it at rest.
    pub fn save(&self) -> Result<Vec<u8>, JsError> {
        self.inner.save().map(|z| z.to_vec()).map_err(js)
    }

    /// The user id.
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> String {
        self.inner.user_id().to_owned()
    }

    /// The device id (hex).
    #[wasm_bindgen(getter, js_name = deviceId)]
    pub fn device_id(&self) -> String {
        self.inner.device_id()
    }

    /// This device's card (base64).
    pub fn card(&self) -> Option<String> {
        self.inner.card()
    }

    /// Whether this device holds the identity key.
    #[wasm_bindgen(js_name = hasIdentityKey)]
    pub fn has_identity_key(&self) -> bool {
        self.inner.has_identity_key()
    }

    /// Pins the directory's log key (base64).
    #[wasm_bindgen(js_name = pinDirectoryKey)]
    pub fn pin_directory_key(&mut self, key: &str) -> Result<(), JsError> {
        self.inner.pin_directory_key(key).map_err(js)
    }

    /// Pins the directory's VRF key (base64).
    #[wasm_bindgen(js_name = pinVrfKey)]
    pub fn pin_vrf_key(&mut self, key: &str) -> Result<(), JsError> {
        self.inner.pin_vrf_key(key).map_err(js)
    }

    /// Allows trust on first use of unpinned directory keys.
    #[wasm_bindgen(js_name = setTrustOnFirstUse)]
    pub fn set_trust_on_first_use(&mut self, allow: bool) {
        self.inner.set_trust_on_first_use(allow);
    }

    /// Bound on a served head's age (ms).
    #[wasm_bindgen(js_name = setMaxHeadAge)]
    pub fn set_max_head_age(&mut self, ms: f64) {
        self.inner.set_max_head_age(ms_u64(ms));
    }

    /// Sender-card cache lifetime (ms).
    #[wasm_bindgen(js_name = setCacheTtl)]
    pub fn set_cache_ttl(&mut self, ms: f64) {
        self.inner.set_cache_ttl(ms_u64(ms));
    }

    /// Verified lookup of users.
    pub fn lookup(&self, users: Vec<String>) -> Result<Op, JsError> {
        op(self.inner.lookup_op(&users))
    }

    /// Publishes (or renews) this device's card.
    pub fn publish(&self) -> Op {
        Op {
            inner: self.inner.publish_op(),
        }
    }

    /// Seals a suite 1 envelope for `users`' devices.
    pub fn seal(
        &self,
        channel: &str,
        outer_event: &str,
        inner_event: &str,
        data_json: &str,
        users: Vec<String>,
    ) -> Result<Op, JsError> {
        op(self
            .inner
            .seal_op(channel, outer_event, inner_event, data_json, &users))
    }

    /// Opens a suite 1 channel event.
    pub fn open(&self, channel: &str, outer_event: &str, data: &str) -> Result<Op, JsError> {
        op(self.inner.open_op(channel, outer_event, data))
    }

    /// The safety number with `user`.
    #[wasm_bindgen(js_name = safetyNumber)]
    pub fn safety_number(&self, user: &str) -> Result<Op, JsError> {
        op(self.inner.safety_number_op(user))
    }

    /// Marks `user` verified.
    #[wasm_bindgen(js_name = markVerified)]
    pub fn mark_verified(&self, user: &str) -> Result<Op, JsError> {
        op(self.inner.mark_verified_op(user))
    }

    /// Owner self-check.
    #[wasm_bindgen(js_name = checkOwnKeys)]
    pub fn check_own_keys(&self) -> Op {
        Op {
            inner: self.inner.check_own_keys_op(),
        }
    }

    /// A second device's card request.
    #[wasm_bindgen(js_name = cardRequest)]
    pub fn card_request(&self) -> Op {
        Op {
            inner: self.inner.card_request_op(),
        }
    }

    /// Restores the identity key from a backup (Argon2id now).
    #[cfg(feature = "backup")]
    #[wasm_bindgen(js_name = restoreIdentity)]
    pub fn restore_identity(&self, blob: &[u8], password: &str) -> Result<Op, JsError> {
        op(self.inner.restore_identity_op(blob, password.as_bytes()))
    }

    /// Revokes one of this user's devices (hex id).
    #[wasm_bindgen(js_name = revokeDevice)]
    pub fn revoke_device(&self, device: &str) -> Result<Op, JsError> {
        op(self.inner.revoke_device_op(device))
    }

    /// Seals a mailbox message for `users`.
    #[wasm_bindgen(js_name = sealForUsers)]
    pub fn seal_for_users(
        &self,
        inner_event: &str,
        data_json: &str,
        users: Vec<String>,
    ) -> Result<Op, JsError> {
        op(self.inner.seal_for_users_op(inner_event, data_json, &users))
    }

    /// Opens one mailbox item (JSON).
    #[wasm_bindgen(js_name = openMailbox)]
    pub fn open_mailbox(&self, item: &str) -> Result<Op, JsError> {
        op(self.inner.open_mailbox_op(item))
    }

    /// Advances `op` (result: the JSON `result` of the request it asked).
    pub fn step(
        &mut self,
        op: &mut Op,
        result: Option<String>,
        now_ms: f64,
    ) -> Result<String, JsError> {
        self.inner
            .step(&mut op.inner, result.as_deref(), ms_u64(now_ms))
            .map(|s| step_json(&s))
            .map_err(js)
    }

    /// The request `op` asked failed (error response or lost connection).
    pub fn fail(&mut self, op: &mut Op, code: &str, message: &str) -> Result<String, JsError> {
        self.inner
            .fail(&mut op.inner, code, message)
            .map(|s| step_json(&s))
            .map_err(js)
    }

    /// Queued events (JSON array).
    #[wasm_bindgen(js_name = takeEvents)]
    pub fn take_events(&mut self) -> String {
        serde_json::Value::Array(self.inner.take_events_json()).to_string()
    }

    /// Whether `user` is verified (and unchanged since).
    #[wasm_bindgen(js_name = isVerified)]
    pub fn is_verified(&self, user: &str) -> bool {
        self.inner.is_verified(user)
    }

    /// Drops `user`'s verified mark.
    pub fn unverify(&mut self, user: &str) {
        self.inner.unverify(user);
    }

    /// Compares a scanned safety-number QR payload.
    #[wasm_bindgen(js_name = compareScanned)]
    pub fn compare_scanned(&mut self, user: &str, qr: &[u8]) -> Result<bool, JsError> {
        self.inner.compare_scanned(user, qr).map_err(js)
    }

    /// Cross-signs a new device's card request; returns its card (base64).
    #[wasm_bindgen(js_name = approveDevice)]
    pub fn approve_device(&mut self, request: &str) -> Result<String, JsError> {
        self.inner.approve_device(request).map_err(js)
    }

    /// Installs this device's approved card.
    #[wasm_bindgen(js_name = installCard)]
    pub fn install_card(&mut self, card: &str) -> Result<(), JsError> {
        self.inner.install_card(card).map_err(js)
    }

    /// Silences owner alarms for these devices (hex ids).
    #[wasm_bindgen(js_name = acknowledgeOwnDevices)]
    pub fn acknowledge_own_devices(&mut self, devices: Vec<String>) -> Result<(), JsError> {
        let ids = devices
            .iter()
            .map(|d| {
                hex::decode(d)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .map(hush_crypto::identity::DeviceId)
                    .ok_or_else(|| js(CoreError::Invalid(format!("device id {d:?}"))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.acknowledge_own_devices(&ids);
        Ok(())
    }

    /// Seals the identity key under `password` (Argon2id, RFC 9106
    /// parameters).
    #[cfg(feature = "backup")]
    pub fn backup(&self, password: &str) -> Result<Vec<u8>, JsError> {
        self.inner
            .backup(
                password.as_bytes(),
                hush_crypto::backup::BackupParams::DEFAULT,
            )
            .map_err(js)
    }

    /// `device.auth` params (JSON) for a `device.challenge` nonce.
    #[wasm_bindgen(js_name = deviceAuth)]
    pub fn device_auth(
        &self,
        nonce: &str,
        app_key: &str,
        socket_id: &str,
    ) -> Result<String, JsError> {
        self.inner
            .device_auth(nonce, app_key, socket_id)
            .map(|v| v.to_string())
            .map_err(js)
    }
}

fn ms_u64(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        // Saturating float-to-int conversion (Rust `as` saturates).
        ms as u64
    } else {
        0
    }
}

/// A suite 0 channel key from the app's master key (base64).
#[wasm_bindgen(js_name = suite0SharedSecret)]
pub fn suite0_shared_secret(channel: &str, master_key: &str) -> Result<String, JsError> {
    core::channel::suite0_shared_secret(channel, master_key).map_err(js)
}

/// The channel key of a key epoch (base64).
#[wasm_bindgen(js_name = epochKey)]
pub fn epoch_key(channel: &str, master_key: &str, epoch: f64) -> Result<String, JsError> {
    core::channel::epoch_key_b64(channel, master_key, ms_u64(epoch)).map_err(js)
}

/// Suite 0 seal (epoch label when not 0).
#[wasm_bindgen(js_name = suite0Seal)]
pub fn suite0_seal(key: &str, epoch: f64, plaintext: &str) -> Result<String, JsError> {
    core::channel::suite0_seal(key, ms_u64(epoch), plaintext).map_err(js)
}

/// Suite 0 open.
#[wasm_bindgen(js_name = suite0Open)]
pub fn suite0_open(key: &str, data: &str) -> Result<String, JsError> {
    core::channel::suite0_open(key, data).map_err(js)
}

/// The mailbox conversation channel of a set of users.
#[wasm_bindgen(js_name = conversationChannel)]
pub fn conversation_channel(users: Vec<String>) -> Result<String, JsError> {
    let u: Vec<&str> = users.iter().map(String::as_str).collect();
    core::ops::conversation_channel(&u).map_err(js)
}

/// One encrypted channel's keys (epochs) and sealed-event state.
#[wasm_bindgen]
pub struct ChannelCrypto {
    inner: core::channel::ChannelCrypto,
}

#[wasm_bindgen]
impl ChannelCrypto {
    /// State for `channel`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        channel: &str,
        epoch_grace_ms: f64,
        sealed_max_age_ms: f64,
    ) -> Result<ChannelCrypto, JsError> {
        core::channel::ChannelCrypto::new(
            channel,
            ms_u64(epoch_grace_ms),
            ms_u64(sealed_max_age_ms),
        )
        .map(|inner| ChannelCrypto { inner })
        .map_err(js)
    }

    /// Installs the key of an epoch.
    #[wasm_bindgen(js_name = installKey)]
    pub fn install_key(&mut self, epoch: f64, key: &str, now_ms: f64) -> Result<(), JsError> {
        self.inner
            .install_key(ms_u64(epoch), key, ms_u64(now_ms))
            .map_err(js)
    }

    /// Opens an encrypted event; JSON `{event, data, epoch, sealed?}`.
    pub fn open(&mut self, event: &str, data: &str, now_ms: f64) -> Result<String, JsError> {
        self.inner
            .open(event, data, ms_u64(now_ms))
            .map(|v| v.to_string())
            .map_err(js)
    }

    /// Seals a sealed event under the newest key.
    pub fn seal(&mut self, event: &str, data: &str, now_ms: f64) -> Result<String, JsError> {
        self.inner.seal(event, data, ms_u64(now_ms)).map_err(js)
    }
}

/// The mailbox receiver's ordering: offer fetched / pushed items, open what
/// comes back in order with `Device.openMailbox` (see README.md).
#[wasm_bindgen]
#[derive(Default)]
pub struct MailboxReceiver {
    inner: core::mailbox::MailboxReceiver,
}

#[wasm_bindgen]
impl MailboxReceiver {
    /// An empty receiver.
    #[wasm_bindgen(constructor)]
    pub fn new() -> MailboxReceiver {
        MailboxReceiver::default()
    }

    /// Offers one item (JSON); returns the items to open now (JSON array).
    pub fn offer(
        &mut self,
        device: &Device,
        item: &str,
        push: bool,
        now_ms: f64,
    ) -> Result<String, JsError> {
        self.inner
            .offer(&device.inner, item, push, ms_u64(now_ms))
            .map(|v| serde_json::Value::Array(v).to_string())
            .map_err(js)
    }

    /// Releases the pushes whose wait ran out (JSON array).
    pub fn expire(&mut self, now_ms: f64) -> String {
        serde_json::Value::Array(self.inner.expire(ms_u64(now_ms))).to_string()
    }

    /// Releases everything held (end of a fetch cycle; JSON array).
    pub fn flush(&mut self) -> String {
        serde_json::Value::Array(self.inner.flush()).to_string()
    }

    /// When to call `expire` next (ms), if anything is held.
    #[wasm_bindgen(js_name = nextDeadline)]
    pub fn next_deadline(&self) -> Option<f64> {
        self.inner.next_deadline().map(|t| t as f64)
    }
}
