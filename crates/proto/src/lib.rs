//! Berth's gRPC APIs, generated from the `.proto` files under `proto/`.

/// The shim API (`berth.shim.v1`): berthd ↔ berth-shim.
pub mod shim {
    pub mod v1 {
        tonic::include_proto!("berth.shim.v1");

        /// The protocol version a shim announces in its bootstrap answer.
        pub const PROTOCOL_VERSION: u32 = 1;
    }
}
