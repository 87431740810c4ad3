//! The default bridge network, written as a CNI configuration list when the configuration
//! directory holds no network yet.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cni::{load_networks, CniError, IpNet};
use crate::fsutil;

/// The shape of the default network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    /// Network name (default `berth`), also the file name `<name>.conflist`.
    pub name: String,
    /// Bridge device name (default `berth0`, at most 15 bytes).
    pub bridge: String,
    /// The IPv4 subnet containers get addresses from (default `10.89.0.0/16`; podman uses
    /// 10.88.0.0/16). The bridge is the first address and the containers' gateway.
    pub subnet: IpNet,
    /// host-local's address database; `None` keeps the plugin default
    /// (`/var/lib/cni/networks/<name>`).
    pub ipam_data_dir: Option<PathBuf>,
    /// Add the `firewall` plugin, which accepts the containers' forwarded traffic even when
    /// the FORWARD chain's policy is DROP (default true).
    pub firewall: bool,
}

impl Default for DefaultNetwork {
    fn default() -> Self {
        DefaultNetwork {
            name: "berth".into(),
            bridge: "berth0".into(),
            subnet: IpNet {
                addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 89, 0, 0)),
                prefix_len: 16,
            },
            ipam_data_dir: None,
            firewall: true,
        }
    }
}

impl DefaultNetwork {
    /// The configuration list (CNI 1.0.0): bridge with gateway, masquerade and hairpin,
    /// host-local addresses with a default route, portmap, and optionally firewall.
    pub fn to_conflist(&self) -> Value {
        let mut ipam = json!({
            "type": "host-local",
            "ranges": [[{"subnet": self.subnet.to_string()}]],
            "routes": [{"dst": "0.0.0.0/0"}],
        });
        if let (Some(dir), Some(obj)) = (&self.ipam_data_dir, ipam.as_object_mut()) {
            obj.insert("dataDir".into(), Value::String(dir.display().to_string()));
        }
        let mut plugins = vec![
            json!({
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": ipam,
            }),
            json!({"type": "portmap", "capabilities": {"portMappings": true}}),
        ];
        if self.firewall {
            plugins.push(json!({"type": "firewall", "backend": "iptables"}));
        }
        json!({"cniVersion": "1.0.0", "name": self.name, "plugins": plugins})
    }
}

/// Writes `<conf_dir>/<name>.conflist` for `net` when `conf_dir` holds no valid network
/// configuration. Returns the file written, or `None` when networks already exist.
pub fn ensure_default_network(
    conf_dir: &Path,
    net: &DefaultNetwork,
) -> Result<Option<PathBuf>, CniError> {
    let invalid = |reason: String| CniError::InvalidConfig {
        source_file: None,
        reason,
    };
    if !fsutil::is_safe_name(&net.name) {
        return Err(invalid(format!("invalid network name {:?}", net.name)));
    }
    if net.bridge.is_empty() || net.bridge.len() > 15 || !fsutil::is_safe_name(&net.bridge) {
        return Err(invalid(format!("invalid bridge name {:?}", net.bridge)));
    }
    if !net.subnet.addr.is_ipv4() || net.subnet.prefix_len > 30 {
        return Err(invalid(format!(
            "subnet {} must be IPv4 with room for addresses",
            net.subnet
        )));
    }
    if !load_networks(conf_dir)?.is_empty() {
        return Ok(None);
    }
    let path = conf_dir.join(format!("{}.conflist", net.name));
    let bytes =
        serde_json::to_vec_pretty(&net.to_conflist()).map_err(|e| invalid(e.to_string()))?;
    fsutil::write_atomic(&path, &bytes, 0o644).map_err(|e| CniError::io(&path, e))?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_only_into_an_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("net.d");
        let net = DefaultNetwork {
            ipam_data_dir: Some(dir.path().join("ipam")),
            ..DefaultNetwork::default()
        };
        let written = ensure_default_network(&conf, &net).unwrap().unwrap();
        assert_eq!(written, conf.join("berth.conflist"));
        let nets = load_networks(&conf).unwrap();
        assert_eq!(nets[0].plugin_types(), ["bridge", "portmap", "firewall"]);
        assert_eq!(
            nets[0].plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.89.0.0/16"
        );
        assert_eq!(
            nets[0].plugins[0]["ipam"]["dataDir"],
            dir.path().join("ipam").display().to_string()
        );
        assert_eq!(ensure_default_network(&conf, &net).unwrap(), None);
        let bad = DefaultNetwork {
            bridge: "a-very-long-bridge-name".into(),
            ..DefaultNetwork::default()
        };
        assert!(ensure_default_network(&conf, &bad).is_err());
    }
}
