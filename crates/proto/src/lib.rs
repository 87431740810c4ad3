//! Berth's gRPC APIs, generated from the `.proto` files under `proto/`, and the small pieces
//! of protocol around them (the shim's bootstrap answer, unix-socket clients).

pub mod shim;
