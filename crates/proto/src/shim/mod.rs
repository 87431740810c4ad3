//! The shim API (`berth.shim.v1`): berthd ↔ berth-shim.

mod bootstrap;
#[cfg(feature = "client")]
mod client;

pub use bootstrap::{Bootstrap, BOOTSTRAP_FILE};
#[cfg(feature = "client")]
pub use client::{connect, unix_channel};

pub mod v1 {
    tonic::include_proto!("berth.shim.v1");

    /// The protocol version a shim announces in its bootstrap answer.
    pub const PROTOCOL_VERSION: u32 = 1;
}
