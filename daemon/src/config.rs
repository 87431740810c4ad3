//! berthd's configuration: a TOML file, overridden by flags.
//!
//! ```toml
//! root = "/var/lib/berth"         # metadata, content store, snapshots
//! state = "/run/berth"            # sockets, task bundles
//! address = "/run/berth/berth.sock"
//! group = "berth"                 # group allowed on the socket (mode 0660); none: root only
//! log_level = "info"
//! shim = "/usr/local/bin/berth-shim"  # default: next to berthd
//! metrics_address = "127.0.0.1:9323"  # Prometheus /metrics; off when absent
//! cgroup_root = "/berth"          # containers go to <cgroup_root>/<namespace>/<id>
//! cni_conf_dir = "/etc/cni/net.d"
//! cni_plugin_dirs = ["/usr/lib/cni", "/opt/cni/bin"]
//! bridge = "berth0"               # the default network, written when the conf dir has none
//! subnet = "10.89.0.0/16"
//! registry_dir = "/etc/berth/registry"  # <host>/hosts.json: mirrors, plain_http, auth
//! stream_address = "127.0.0.1:0"  # CRI streaming server (exec/attach/port-forward URLs)
//!
//! [cri]
//! log_roots = ["/var/log/pods"]          # where pods may have container logs written
//! [cri.registry.mirrors."docker.io"]    # CRI pulls only, like containerd's CRI plugin
//! endpoints = ["http://127.0.0.1:5000"]
//! [cri.registry.configs."registry.example.com".auth]
//! username = "u"
//! password = "p"
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub root: PathBuf,
    pub state: PathBuf,
    pub address: PathBuf,
    pub group: Option<String>,
    pub log_level: String,
    pub shim: Option<PathBuf>,
    pub metrics_address: Option<String>,
    pub cgroup_root: String,
    pub cni_conf_dir: PathBuf,
    pub cni_plugin_dirs: Vec<PathBuf>,
    pub bridge: String,
    pub subnet: String,
    pub registry_dir: PathBuf,
    /// Where the CRI streaming server listens (port 0: a free one).
    pub stream_address: String,
    pub cri: CriConfig,
}

/// The `[cri]` table: Kubernetes CRI settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriConfig {
    /// Mirrors and credentials for CRI image pulls.
    pub registry: crate::cri::image::mirrors::CriRegistry,
    /// The only directories pods may have container logs written in (kubelet's
    /// `/var/log/pods` by default; empty: any absolute directory).
    pub log_roots: Vec<PathBuf>,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            registry: Default::default(),
            log_roots: vec![PathBuf::from("/var/log/pods")],
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("/var/lib/berth"),
            state: PathBuf::from("/run/berth"),
            address: PathBuf::from("/run/berth/berth.sock"),
            group: None,
            log_level: "info".into(),
            shim: None,
            metrics_address: None,
            cgroup_root: "/berth".into(),
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_plugin_dirs: vec![PathBuf::from("/usr/lib/cni"), PathBuf::from("/opt/cni/bin")],
            bridge: "berth0".into(),
            subnet: "10.89.0.0/16".into(),
            registry_dir: PathBuf::from("/etc/berth/registry"),
            stream_address: "127.0.0.1:0".into(),
            cri: CriConfig::default(),
        }
    }
}

impl Config {
    /// The file at `path`, or the defaults when `path` is None.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The shim binary: configured, else `berth-shim` next to this executable.
    pub fn shim_binary(&self) -> PathBuf {
        if let Some(p) = &self.shim {
            return p.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("berth-shim")))
            .unwrap_or_else(|| PathBuf::from("berth-shim"))
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.state.join("tasks")
    }

    pub fn sockets_dir(&self) -> PathBuf {
        self.state.join("s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "root = \"/x\"\ngroup = \"wheel\"\n").unwrap();
        let c = Config::load(Some(&p)).unwrap();
        assert_eq!(c.root, PathBuf::from("/x"));
        assert_eq!(c.state, PathBuf::from("/run/berth"));
        std::fs::write(&p, "bogus = 1\n").unwrap();
        assert!(Config::load(Some(&p)).is_err());
    }
}
