//! The result of a CNI ADD (spec 0.3.x, 0.4.0 and 1.0.0 share this shape; 0.3/0.4 add an
//! ignored `version` field per IP).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An address with its prefix length, as CNI writes it (`10.88.0.2/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix_len: u8,
}

/// An address in CIDR notation could not be parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid CIDR address {0:?}")]
pub struct IpNetParseError(pub String);

impl FromStr for IpNet {
    type Err = IpNetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetParseError(s.to_string());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix_len: u8 = len.parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(err());
        }
        Ok(IpNet { addr, prefix_len })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An interface created or configured by a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Interface name (`eth0`, `berth0`, `veth1234`).
    pub name: String,
    /// Hardware address, when the plugin reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The netns path when the interface lives inside the container; `None` on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address assigned by a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address and prefix.
    pub address: IpNet,
    /// The default gateway for this subnet, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`] of the interface holding the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route added inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network.
    pub dst: IpNet,
    /// Next hop; `None` means the plugin's default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// DNS settings a plugin wants in the container's resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options (`ndots:5`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when the plugin asked for nothing.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// The parsed result of a network's ADD (the result of its last plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The spec version the result is written in.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Interfaces created or configured.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes added.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default)]
    pub dns: Dns,
}

impl CniResult {
    /// Parses a plugin's JSON result.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        CniResult::deserialize(value)
    }

    /// The first address on an interface inside the container (`sandbox` set), or else the
    /// first address at all.
    pub fn container_ip(&self) -> Option<&IpConfig> {
        let in_sandbox = |ip: &&IpConfig| {
            ip.interface
                .and_then(|i| self.interfaces.get(i))
                .is_some_and(|iface| iface.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
        };
        self.ips
            .iter()
            .find(in_sandbox)
            .or_else(|| self.ips.first())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_1_0_0_result() {
        let v = serde_json::json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "br0", "mac": "aa"}, {"name": "eth0", "sandbox": "/run/n"}],
            "ips": [{"interface": 1, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let r = CniResult::from_value(&v).unwrap();
        let ip = r.container_ip().unwrap();
        assert_eq!(ip.address.to_string(), "10.1.0.2/24");
        assert_eq!(ip.gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(r.routes[0].dst.prefix_len, 0);
        assert!(r.dns.is_empty());
    }

    #[test]
    fn parses_a_0_4_0_result_with_ip_versions() {
        let v = serde_json::json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "sandbox": "/x"}],
            "ips": [{"version": "6", "interface": 0, "address": "fd00::5/64"}],
            "dns": {"nameservers": ["10.0.0.53"], "search": ["a.example"]}
        });
        let r = CniResult::from_value(&v).unwrap();
        assert_eq!(r.ips[0].address.addr, "fd00::5".parse::<IpAddr>().unwrap());
        assert_eq!(r.dns.nameservers, vec!["10.0.0.53"]);
    }

    #[test]
    fn rejects_bad_cidrs() {
        assert!("10.0.0.1".parse::<IpNet>().is_err());
        assert!("10.0.0.1/33".parse::<IpNet>().is_err());
        assert!("x/3".parse::<IpNet>().is_err());
        assert_eq!("::/0".parse::<IpNet>().unwrap().prefix_len, 0);
    }
}
