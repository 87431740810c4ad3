//! Helpers shared by Berth's integration tests (`tests/tests/*.rs`).
//!
//! Every test builds its own container with a [`guard::ContainerGuard`]: a unique id, its own
//! state root and bundle (a busybox rootfs from [`rootfs`]), a spec from [`bundle::SpecBuilder`],
//! and on drop it kills and deletes whatever is left and checks that no cgroup or mount remains.
//! Exit statuses of container processes (our children) come from [`reaper`].

pub mod attack;
pub mod bin;
pub mod bundle;
pub mod cri;
pub mod daemon;
pub mod guard;
pub mod hostile_images;
pub mod images;
pub mod images_registry;
pub mod netslot;
pub mod oci;
pub mod output;
pub mod reaper;
pub mod rootfs;
pub mod shim;

pub use bundle::SpecBuilder;
pub use guard::ContainerGuard;
pub use output::Capture;
pub use reaper::{wait_exit, Exit};

/// A TCP port free on loopback right now (for registries and published ports in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}
