//! Berth's container networking library: CNI plugin invocation (ADD/CHECK/DEL with result
//! caching), network namespaces pinned by bind mounts, the default bridge network, published
//! ports, the container's hosts/resolv.conf/hostname files, and [`Network`], the high-level
//! setup/teardown the daemon calls around container creation and deletion.
//!
//! Async: CNI plugins run as `tokio::process` children; blocking kernel calls inside
//! [`Network`] run on `spawn_blocking`. [`NetNs`] and the file writers are plain blocking
//! functions (brief).

pub mod cni;
mod default_network;
mod files;
mod fsutil;
mod netns;
mod network;
mod port;
mod state;

pub use default_network::{ensure_default_network, DefaultNetwork};
pub use files::{is_valid_hostname, write_hostname, write_hosts, write_resolv_conf, FilesError};
pub use netns::{remove_pin, NetNs, NetNsError};
pub use network::{
    Network, NetworkError, NetworkInfo, NetworkMode, NetworkOptions, NetworkSummary,
};
pub use port::{parse_publish, PortMapping, PortParseError, Protocol};
