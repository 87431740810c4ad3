//! Berth's container networking library: CNI plugin invocation (ADD/CHECK/DEL with result
//! caching), network namespaces pinned by bind mounts, the default bridge network, published
//! ports, the container's hosts/resolv.conf/hostname files, and [`Network`], the high-level
//! setup/teardown the daemon calls around container creation and deletion.
//!
//! Async: CNI plugins run as `tokio::process` children; blocking kernel calls inside
//! [`Network`] run on `spawn_blocking`. [`NetNs`] and the file writers are plain blocking
//! functions (brief). All futures are `Send`.
//!
//! # How the daemon uses it
//!
//! At start: `ensure_default_network(&opts.conf_dir, &DefaultNetwork::default())` (writes
//! `berth.conflist`, bridge `berth0` on 10.89.0.0/16, if the directory has no network), one
//! `Network::new(opts)` (clone it freely), and for every id of `list_attached()` whose
//! container no longer exists, `teardown(id)`.
//!
//! Per container, in this order:
//! 1. `let info = network.setup(id, mode).await?` before the container is created.
//! 2. Write the files into the bundle: `write_hosts(.., hostname, info.ip, extra)`,
//!    `write_hostname`, `write_resolv_conf(.., info.dns.as_ref(), &host_resolv_conf(),
//!    host_network)`; bind-mount them read-only onto `/etc/hosts`, `/etc/hostname`,
//!    `/etc/resolv.conf`.
//! 3. In the OCI spec: with `info.netns_path` = `Some(p)` set the `network` namespace entry's
//!    `path` to `p`; with `None` (host mode) remove the `network` namespace entry.
//! 4. Create and run the container. If creation fails, `teardown(id)`.
//! 5. After the container (task) is deleted: `network.teardown(id).await` (idempotent; also
//!    fine after a crash in the middle of `setup`).

pub mod cni;
mod default_network;
mod files;
mod fsutil;
mod netns;
mod network;
mod port;
mod state;
mod summary;

pub use default_network::{ensure_default_network, DefaultNetwork};
pub use files::{
    host_resolv_conf, is_valid_hostname, write_hostname, write_hosts, write_resolv_conf, FilesError,
};
pub use netns::{remove_pin, NetNs, NetNsError};
pub use network::{Network, NetworkError, NetworkInfo, NetworkMode, NetworkOptions};
pub use port::{parse_publish, PortMapping, PortParseError, Protocol};
pub use summary::NetworkSummary;
