//! The daemon's view of container networking: set a container's network up before it is
//! created, tear it down after it is deleted (or after a crash), list networks.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cni::{self, Attachment, Cni, CniError, CniResult, Dns, Interface, NetworkConfigList};
use crate::fsutil;
use crate::netns::{self, NetNs, NetNsError};
use crate::port::PortMapping;
use crate::state::{self, AttachmentRecord, Record};
use crate::summary::{self, NetworkSummary};

/// The name of the internal one-plugin network that brings `lo` up.
const LOOPBACK_NETWORK: &str = "berth-loopback";

/// A container network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CNI operation failed.
    #[error(transparent)]
    Cni(#[from] CniError),
    /// Creating or removing the namespace failed.
    #[error(transparent)]
    NetNs(#[from] NetNsError),
    /// The container ID cannot be used as a file name.
    #[error("invalid container id {0:?}")]
    InvalidContainerId(String),
    /// The container's network is already set up; tear it down first.
    #[error("network of container {0:?} is already set up")]
    AlreadySetUp(String),
    /// Bridge mode without a network name and no network configured.
    #[error("no CNI network configured in {}", .0.display())]
    NoNetwork(PathBuf),
    /// Container mode with a namespace path that does not exist.
    #[error("network namespace {} does not exist", .0.display())]
    NetNsMissing(PathBuf),
    /// A state file is corrupt.
    #[error("network state: {0}")]
    State(serde_json::Error),
    /// A state file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A blocking helper task failed.
    #[error("network task failed: {0}")]
    Task(String),
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A private namespace attached to a CNI network (`network`, or the default network)
    /// with published ports.
    Bridge {
        /// The CNI network name; `None` for [`NetworkOptions::default_network`], or else the
        /// first network of the configuration directory.
        network: Option<String>,
        /// Host ports forwarded to the container.
        ports: Vec<PortMapping>,
    },
    /// The host's network namespace.
    Host,
    /// A private namespace with only `lo`.
    None,
    /// Joins another container's (or any pinned) network namespace.
    Container(PathBuf),
}

/// What the daemon needs to create the container and to show its network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The namespace to put in the OCI spec (`linux.namespaces` network `path`); `None` in
    /// host mode (then the spec must have no network namespace entry).
    pub netns_path: Option<PathBuf>,
    /// The CNI network attached (bridge mode).
    pub network: Option<String>,
    /// The container's address (bridge mode).
    pub ip: Option<IpAddr>,
    /// Its prefix length.
    pub prefix_len: Option<u8>,
    /// The default gateway.
    pub gateway: Option<IpAddr>,
    /// Interfaces reported by the plugins (host side and container side).
    pub interfaces: Vec<Interface>,
    /// DNS settings from the plugins, for [`crate::write_resolv_conf`].
    pub dns: Option<Dns>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
}

/// Where things are and how plugins run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkOptions {
    /// CNI configuration directory (default `/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Plugin search path (default `/usr/lib/cni`, `/opt/cni/bin`).
    pub plugin_dirs: Vec<PathBuf>,
    /// Persistent state: `results/` (CNI result cache) and `containers/` (setup records).
    /// Default `/var/lib/berth/network`.
    pub state_dir: PathBuf,
    /// Where namespaces are pinned (default `/run/berth/netns`).
    pub netns_dir: PathBuf,
    /// The network of bridge mode when the mode names none.
    pub default_network: Option<String>,
    /// The container's interface name (default `eth0`).
    pub ifname: String,
    /// How long one plugin may run (default 60 s).
    pub plugin_timeout: Duration,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            conf_dir: PathBuf::from(cni::DEFAULT_CONF_DIR),
            plugin_dirs: cni::DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
            state_dir: PathBuf::from("/var/lib/berth/network"),
            netns_dir: PathBuf::from("/run/berth/netns"),
            default_network: None,
            ifname: "eth0".into(),
            plugin_timeout: Duration::from_secs(60),
        }
    }
}

/// Container networking for the daemon. Cheap to clone; all state is on disk.
#[derive(Debug, Clone)]
pub struct Network {
    opts: NetworkOptions,
    cni: Cni,
}

impl Network {
    /// A network manager with these options.
    pub fn new(opts: NetworkOptions) -> Self {
        let cni = Cni::new(opts.plugin_dirs.clone(), opts.state_dir.clone())
            .with_timeout(opts.plugin_timeout);
        Network { opts, cni }
    }

    /// The options in use.
    pub fn options(&self) -> &NetworkOptions {
        &self.opts
    }

    /// Sets up the network of `container_id` before the container is created. In bridge and
    /// none modes a namespace is pinned at `<netns_dir>/<container_id>` and `lo` brought up;
    /// bridge mode then runs the network's CNI ADD with the port mappings. On failure
    /// everything done so far is undone.
    pub async fn setup(
        &self,
        container_id: &str,
        mode: NetworkMode,
    ) -> Result<NetworkInfo, NetworkError> {
        if !fsutil::is_safe_name(container_id) {
            return Err(NetworkError::InvalidContainerId(container_id.to_string()));
        }
        if state::read(&self.opts.state_dir, container_id)?.is_some() {
            return Err(NetworkError::AlreadySetUp(container_id.to_string()));
        }
        // Resolve the network before anything is created.
        let bridge_net = match &mode {
            NetworkMode::Bridge { network, .. } => Some(self.resolve_network(network.as_deref())?),
            _ => None,
        };
        let mut record = Record {
            container_id: container_id.to_string(),
            mode: mode.clone(),
            netns: None,
            owns_netns: false,
            attachments: Vec::new(),
            info: None,
        };
        match &mode {
            NetworkMode::Host => {}
            NetworkMode::Container(path) => {
                if !path.exists() {
                    return Err(NetworkError::NetNsMissing(path.clone()));
                }
                record.netns = Some(path.clone());
            }
            NetworkMode::None | NetworkMode::Bridge { .. } => {
                record.netns = Some(self.opts.netns_dir.join(container_id));
                record.owns_netns = true;
                record.attachments.push(AttachmentRecord {
                    network: LOOPBACK_NETWORK.into(),
                    ifname: "lo".into(),
                });
                if let Some(net) = &bridge_net {
                    record.attachments.push(AttachmentRecord {
                        network: net.name.clone(),
                        ifname: self.opts.ifname.clone(),
                    });
                }
            }
        }
        // The record goes first, so a crash at any later point leaves something to undo.
        state::write(&self.opts.state_dir, &record)?;
        match self.create(&mut record, bridge_net.as_ref()).await {
            Ok(info) => Ok(info),
            Err(e) => {
                let _ = self.teardown(container_id).await;
                Err(e)
            }
        }
    }

    async fn create(
        &self,
        record: &mut Record,
        bridge_net: Option<&NetworkConfigList>,
    ) -> Result<NetworkInfo, NetworkError> {
        let mut info = NetworkInfo {
            netns_path: record.netns.clone(),
            ..NetworkInfo::default()
        };
        if record.owns_netns {
            let dir = self.opts.netns_dir.clone();
            let id = record.container_id.clone();
            blocking(move || NetNs::create(&dir, &id)).await??;
            let netns = self.opts.netns_dir.join(&record.container_id);
            let lo = Attachment::new(&record.container_id, &netns, "lo");
            self.cni.add(&loopback_network()?, &lo).await?;
            if let (Some(net), NetworkMode::Bridge { ports, .. }) = (bridge_net, &record.mode) {
                let mut att = Attachment::new(&record.container_id, &netns, &self.opts.ifname);
                att.args.push(("IgnoreUnknown".into(), "1".into()));
                if !ports.is_empty() {
                    let mappings: Vec<Value> = ports.iter().map(PortMapping::to_cni).collect();
                    att.runtime_config
                        .insert("portMappings".into(), Value::Array(mappings));
                }
                let result = self.cni.add(net, &att).await?;
                fill_info(&mut info, &result);
                info.network = Some(net.name.clone());
                info.ports = ports.clone();
            }
        }
        record.info = Some(info.clone());
        state::write(&self.opts.state_dir, record)?;
        Ok(info)
    }

    /// Tears down the network of `container_id` after the container is deleted: CNI DEL of
    /// every attached network (in reverse; this removes the veth, NAT and port rules and
    /// releases the address), then unpins the namespace and forgets the record. Idempotent and
    /// safe after a crash at any point of [`Network::setup`]. On a DEL failure the namespace
    /// is still unpinned but the record is kept, so a later call retries the DEL.
    pub async fn teardown(&self, container_id: &str) -> Result<(), NetworkError> {
        if !fsutil::is_safe_name(container_id) {
            return Err(NetworkError::InvalidContainerId(container_id.to_string()));
        }
        let Some(record) = state::read(&self.opts.state_dir, container_id)? else {
            // Nothing recorded; still drop a pin left by a crash of an older process.
            let pin = self.opts.netns_dir.join(container_id);
            blocking(move || netns::remove_pin(&pin)).await??;
            return Ok(());
        };
        let mut first_error: Option<NetworkError> = None;
        for att in record.attachments.iter().rev() {
            if let Err(e) = self.del_attachment(&record, att).await {
                first_error.get_or_insert(e);
            }
        }
        if let (true, Some(pin)) = (record.owns_netns, record.netns.clone()) {
            if let Err(e) = blocking(move || netns::remove_pin(&pin)).await? {
                first_error.get_or_insert(e.into());
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => state::remove(&self.opts.state_dir, container_id),
        }
    }

    async fn del_attachment(
        &self,
        record: &Record,
        att: &AttachmentRecord,
    ) -> Result<(), NetworkError> {
        let id = &record.container_id;
        if self.cni.del_cached(&att.network, id, &att.ifname).await? {
            return Ok(());
        }
        // Not cached (ADD never started): DEL with the current configuration, if any.
        let net = if att.network == LOOPBACK_NETWORK {
            loopback_network()?
        } else {
            match cni::find_network(&self.opts.conf_dir, &att.network) {
                Ok(net) => net,
                Err(CniError::NetworkNotFound { .. }) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        };
        let netns = record.netns.clone().unwrap_or_default();
        let attachment = Attachment::new(id, &netns, &att.ifname);
        self.cni.del(&net, &attachment).await?;
        Ok(())
    }

    /// CNI CHECK of every network attached to `container_id`.
    pub async fn check(&self, container_id: &str) -> Result<(), NetworkError> {
        let Some(record) = state::read(&self.opts.state_dir, container_id)? else {
            return Ok(());
        };
        for att in record
            .attachments
            .iter()
            .filter(|a| a.network != LOOPBACK_NETWORK)
        {
            let cached = self
                .cni
                .cached(&att.network, container_id, &att.ifname)?
                .ok_or_else(|| CniError::NotAttached {
                    network: att.network.clone(),
                    container_id: container_id.to_string(),
                })?;
            let net =
                NetworkConfigList::from_list_json(cached.config.to_string().as_bytes(), None)?;
            let attachment = Attachment {
                container_id: cached.container_id,
                netns: cached.netns,
                ifname: cached.if_name,
                args: cached.cni_args,
                runtime_config: cached.runtime_config,
            };
            self.cni.check(&net, &attachment).await?;
        }
        Ok(())
    }

    /// The network of a set-up container (from its record; also after a daemon restart).
    pub fn info(&self, container_id: &str) -> Result<Option<NetworkInfo>, NetworkError> {
        if !fsutil::is_safe_name(container_id) {
            return Err(NetworkError::InvalidContainerId(container_id.to_string()));
        }
        Ok(state::read(&self.opts.state_dir, container_id)?.and_then(|r| r.info))
    }

    /// The containers with a network set up (or half set up), for cleanup at daemon start:
    /// tear down those whose container no longer exists.
    pub fn list_attached(&self) -> Result<Vec<String>, NetworkError> {
        state::list(&self.opts.state_dir)
    }

    /// The networks of the configuration directory, in the order they are chosen by default.
    pub fn list_networks(&self) -> Result<Vec<NetworkSummary>, NetworkError> {
        Ok(cni::load_networks(&self.opts.conf_dir)?
            .iter()
            .map(summary::summarize)
            .collect())
    }

    fn resolve_network(&self, name: Option<&str>) -> Result<NetworkConfigList, NetworkError> {
        match name.or(self.opts.default_network.as_deref()) {
            Some(name) => Ok(cni::find_network(&self.opts.conf_dir, name)?),
            None => cni::load_networks(&self.opts.conf_dir)?
                .into_iter()
                .next()
                .ok_or_else(|| NetworkError::NoNetwork(self.opts.conf_dir.clone())),
        }
    }
}

fn loopback_network() -> Result<NetworkConfigList, CniError> {
    let list = json!({
        "cniVersion": "1.0.0",
        "name": LOOPBACK_NETWORK,
        "plugins": [{"type": "loopback"}],
    });
    NetworkConfigList::from_list_json(list.to_string().as_bytes(), None)
}

fn fill_info(info: &mut NetworkInfo, result: &CniResult) {
    if let Some(ip) = result.container_ip() {
        info.ip = Some(ip.address.addr);
        info.prefix_len = Some(ip.address.prefix_len);
        info.gateway = ip.gateway;
    }
    info.interfaces = result.interfaces.clone();
    info.dns = Some(result.dns.clone()).filter(|d| !d.is_empty());
}

/// Runs a short blocking job (mount, unshare) off the async worker threads.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetworkError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| NetworkError::Task(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futures_are_send_for_tokio_spawn() {
        fn is_send<T: Send>(_: T) {}
        let n = Network::new(NetworkOptions::default());
        is_send(n.setup("x", NetworkMode::Host));
        is_send(n.teardown("x"));
        is_send(n.check("x"));
    }
}
