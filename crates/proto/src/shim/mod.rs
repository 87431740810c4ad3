//! The shim API (`berth.shim.v1`): berthd ↔ berth-shim.

mod bootstrap;
#[cfg(feature = "client")]
mod client;
mod exit_file;
mod launch;

pub use bootstrap::{Bootstrap, BOOTSTRAP_FILE};
#[cfg(feature = "client")]
pub use client::{connect, unix_channel};
pub use exit_file::{ExitRecord, EXIT_FILE};
pub use launch::{LaunchAnswer, LaunchRequest};

pub mod v1 {
    tonic::include_proto!("berth.shim.v1");

    /// The protocol version a shim announces in its bootstrap answer (and the newest this
    /// build speaks).
    pub const PROTOCOL_VERSION: u32 = 1;
    /// The oldest shim protocol this build still speaks: berthd reconnects to shims announcing
    /// any version in `OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION` (started by an older berthd
    /// before an upgrade) and reports, never kills, any other.
    pub const OLDEST_PROTOCOL_VERSION: u32 = 1;

    /// Whether this build can speak to a shim announcing `version`.
    pub fn speaks(version: u32) -> bool {
        (OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version)
    }
}

#[cfg(test)]
mod tests {
    use super::v1::{speaks, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION};

    #[test]
    fn the_protocol_range_is_spoken_and_nothing_outside_it() {
        const { assert!(OLDEST_PROTOCOL_VERSION <= PROTOCOL_VERSION) };
        for v in OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION {
            assert!(speaks(v));
        }
        if let Some(older) = OLDEST_PROTOCOL_VERSION.checked_sub(1) {
            assert!(!speaks(older));
        }
        assert!(!speaks(PROTOCOL_VERSION + 1));
    }
}
