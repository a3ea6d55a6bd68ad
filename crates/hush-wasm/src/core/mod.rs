//! The sans-I/O device core, plain Rust (tested natively); `lib.rs` adapts
//! it to JavaScript.

pub mod channel;
pub mod data;
pub mod device;
pub mod devices;
pub mod directory;
pub mod error;
pub mod events;
pub mod gossip;
pub mod mailbox;
pub mod messaging;
pub mod ops;
pub mod owner;
#[cfg(test)]
mod tests;

pub use device::Device;
pub use error::CoreError;
pub use ops::{Op, Step};
