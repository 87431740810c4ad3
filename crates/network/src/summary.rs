//! A configured network as `berthctl network ls` shows it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cni::NetworkConfigList;

/// A configured network, for `berthctl network ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSummary {
    /// Network name.
    pub name: String,
    /// CNI spec version.
    pub cni_version: String,
    /// Plugin types in order.
    pub plugins: Vec<String>,
    /// The bridge device, for bridge networks.
    pub bridge: Option<String>,
    /// Subnets of the IPAM configuration.
    pub subnets: Vec<String>,
    /// The configuration file.
    pub file: Option<PathBuf>,
}

pub(crate) fn summarize(net: &NetworkConfigList) -> NetworkSummary {
    let str_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let mut subnets = Vec::new();
    let mut bridge = None;
    for plugin in &net.plugins {
        if str_of(plugin.get("type")).as_deref() == Some("bridge") {
            bridge = bridge.or_else(|| str_of(plugin.get("bridge")).or(Some("cni0".into())));
        }
        let Some(ipam) = plugin.get("ipam").and_then(Value::as_object) else {
            continue;
        };
        subnets.extend(str_of(ipam.get("subnet")));
        collect_range_subnets(ipam, &mut subnets);
    }
    NetworkSummary {
        name: net.name.clone(),
        cni_version: net.cni_version.clone(),
        plugins: net.plugin_types().iter().map(|s| s.to_string()).collect(),
        bridge,
        subnets,
        file: net.source.clone(),
    }
}

/// host-local `ranges`: a list of range sets, each a list of `{"subnet": ...}`.
fn collect_range_subnets(ipam: &Map<String, Value>, out: &mut Vec<String>) {
    let sets = ipam.get("ranges").and_then(Value::as_array);
    for set in sets.into_iter().flatten().filter_map(Value::as_array) {
        for range in set {
            if let Some(s) = range.get("subnet").and_then(Value::as_str) {
                out.push(s.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_bridge_and_subnets() {
        let net = NetworkConfigList::from_list_json(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[
              {"type":"bridge","bridge":"br9","ipam":{"type":"host-local",
                "ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00::/64"}]]}},
              {"type":"portmap"}]}"#,
            None,
        )
        .unwrap();
        let s = summarize(&net);
        assert_eq!(s.bridge.as_deref(), Some("br9"));
        assert_eq!(s.subnets, ["10.1.0.0/24", "fd00::/64"]);
        assert_eq!(s.plugins, ["bridge", "portmap"]);
    }
}
