//! Berth's gRPC APIs, generated from the `.proto` files under `proto/`, and the small pieces
//! of protocol around them (the shim's bootstrap answer, unix-socket clients).

pub mod shim;

/// Berth's own API (`berth.v1`): berthctl ↔ berthd.
pub mod v1 {
    tonic::include_proto!("berth.v1");

    /// The request header that names the namespace of a call.
    pub const NAMESPACE_HEADER: &str = "berth-namespace";
    /// The namespace used when a call names none.
    pub const DEFAULT_NAMESPACE: &str = "default";
}
