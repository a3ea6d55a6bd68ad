//! hush-wasm
use wasm_bindgen::prelude::*;

/// Test.
#[wasm_bindgen]
pub fn device_id() -> Vec<u8> {
    let id = hush_crypto::identity::DeviceKeys::generate();
    id.device_id().0.to_vec()
}
