//! CNI network configuration lists: `*.conflist` files, and single-plugin `*.conf` / `*.json`
//! files wrapped into a one-plugin list, loaded from a configuration directory.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::CniError;

/// One network: a named, versioned list of plugin configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// The network name (unique in a configuration directory).
    pub name: String,
    /// The spec version the runtime speaks to the plugins of this network.
    pub cni_version: String,
    /// `disableCheck`: CHECK is skipped for this network.
    pub disable_check: bool,
    /// The plugin configurations, in ADD order. Each has a string `type`.
    pub plugins: Vec<Map<String, Value>>,
    /// The file the list was loaded from, if any.
    pub source: Option<PathBuf>,
}

impl NetworkConfigList {
    /// Parses a configuration list (`{"name", "cniVersion", "plugins": [...]}`).
    pub fn from_list_json(bytes: &[u8], source: Option<PathBuf>) -> Result<Self, CniError> {
        let invalid = |reason: String| CniError::InvalidConfig {
            source_file: source.clone(),
            reason,
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(mut obj) = value else {
            return Err(invalid("not a JSON object".into()));
        };
        let name = string_field(&obj, "name").ok_or_else(|| invalid("no \"name\"".into()))?;
        let cni_version =
            string_field(&obj, "cniVersion").ok_or_else(|| invalid("no \"cniVersion\"".into()))?;
        let disable_check = obj
            .get("disableCheck")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(Value::Array(raw_plugins)) = obj.remove("plugins") else {
            return Err(invalid("no \"plugins\" array".into()));
        };
        if raw_plugins.is_empty() {
            return Err(invalid("\"plugins\" is empty".into()));
        }
        let mut plugins = Vec::with_capacity(raw_plugins.len());
        for plugin in raw_plugins {
            let Value::Object(plugin) = plugin else {
                return Err(invalid("a plugin is not a JSON object".into()));
            };
            match string_field(&plugin, "type") {
                Some(t) if valid_plugin_type(&t) => plugins.push(plugin),
                Some(t) => return Err(invalid(format!("invalid plugin type {t:?}"))),
                None => return Err(invalid("a plugin has no \"type\"".into())),
            }
        }
        validate_name(&name).map_err(invalid)?;
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            plugins,
            source,
        })
    }

    /// Parses a single plugin configuration (`*.conf`) and wraps it into a one-plugin list
    /// with the configuration's own name and version.
    pub fn from_single_json(bytes: &[u8], source: Option<PathBuf>) -> Result<Self, CniError> {
        let invalid = |reason: String| CniError::InvalidConfig {
            source_file: source.clone(),
            reason,
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(obj) = value else {
            return Err(invalid("not a JSON object".into()));
        };
        if obj.contains_key("plugins") {
            return Err(invalid(
                "a single configuration must not hold \"plugins\"".into(),
            ));
        }
        let name = string_field(&obj, "name").ok_or_else(|| invalid("no \"name\"".into()))?;
        let version =
            string_field(&obj, "cniVersion").ok_or_else(|| invalid("no \"cniVersion\"".into()))?;
        let list = serde_json::json!({"name": name, "cniVersion": version, "plugins": [obj]});
        Self::from_list_json(list.to_string().as_bytes(), source)
    }

    /// Serializes the list back to the CNI file format.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": self.plugins,
        })
    }

    /// The `type` of each plugin, in order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins
            .iter()
            .filter_map(|p| p.get("type").and_then(Value::as_str))
            .collect()
    }

    /// The configuration sent on stdin to plugin `index`: the plugin's own object plus the
    /// list's name and version, the runtime config keys the plugin declared in its
    /// `capabilities`, and the previous result when there is one.
    pub(crate) fn plugin_stdin(
        &self,
        index: usize,
        runtime_config: &Map<String, Value>,
        prev_result: Option<&Value>,
    ) -> Option<Value> {
        let mut conf = self.plugins.get(index)?.clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        let caps = conf.get("capabilities").and_then(Value::as_object);
        let wanted: Map<String, Value> = runtime_config
            .iter()
            .filter(|(key, _)| {
                caps.and_then(|c| c.get(key.as_str()))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !wanted.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(wanted));
        }
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        Some(Value::Object(conf))
    }

    /// Whether the spec version supports CHECK (0.4.0 and later).
    pub fn supports_check(&self) -> bool {
        !(self.cni_version.starts_with("0.1")
            || self.cni_version.starts_with("0.2")
            || self.cni_version.starts_with("0.3"))
    }
}

/// Loads every network in `conf_dir`, ordered by file name (the first file wins when two
/// files define the same name). A missing directory holds no networks; an invalid file is
/// skipped with a warning, so one bad file does not hide the others.
pub fn load_networks(conf_dir: &Path) -> Result<Vec<NetworkConfigList>, CniError> {
    let entries = match std::fs::read_dir(conf_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CniError::io(conf_dir, e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| config_kind(p).is_some())
        .collect();
    files.sort();
    let mut networks: Vec<NetworkConfigList> = Vec::new();
    for file in files {
        match load_file(&file) {
            Ok(net) if networks.iter().any(|n| n.name == net.name) => {}
            Ok(net) => networks.push(net),
            Err(e) => tracing::warn!(file = %file.display(), error = %e, "skipping CNI config"),
        }
    }
    Ok(networks)
}

/// Loads the network called `name` from `conf_dir`.
pub fn find_network(conf_dir: &Path, name: &str) -> Result<NetworkConfigList, CniError> {
    load_networks(conf_dir)?
        .into_iter()
        .find(|n| n.name == name)
        .ok_or_else(|| CniError::NetworkNotFound {
            name: name.to_string(),
            conf_dir: conf_dir.to_path_buf(),
        })
}

/// Loads one configuration file, by its extension a list or a single configuration.
pub fn load_file(path: &Path) -> Result<NetworkConfigList, CniError> {
    let bytes = std::fs::read(path).map_err(|e| CniError::io(path, e))?;
    match config_kind(path) {
        Some(ConfigKind::List) => {
            NetworkConfigList::from_list_json(&bytes, Some(path.to_path_buf()))
        }
        Some(ConfigKind::Single) => {
            NetworkConfigList::from_single_json(&bytes, Some(path.to_path_buf()))
        }
        None => Err(CniError::InvalidConfig {
            source_file: Some(path.to_path_buf()),
            reason: "not a .conflist, .conf or .json file".into(),
        }),
    }
}

enum ConfigKind {
    List,
    Single,
}

fn config_kind(path: &Path) -> Option<ConfigKind> {
    match path.extension()?.to_str()? {
        "conflist" => Some(ConfigKind::List),
        "conf" | "json" => Some(ConfigKind::Single),
        _ => None,
    }
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A plugin type names an executable in a plugin directory: no path separators.
fn valid_plugin_type(t: &str) -> bool {
    !t.is_empty() && !t.contains('/') && t != "." && t != ".."
}

/// Network names end up in file names (result cache, host-local data dir).
fn validate_name(name: &str) -> Result<(), String> {
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid network name {name:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_lists_and_wraps_single_configs_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("20-b.conf"),
            r#"{"cniVersion":"0.4.0","name":"b","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("30-dup.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        std::fs::write(d.join("40-bad.conflist"), "{not json").unwrap();
        std::fs::write(d.join("README"), "ignored").unwrap();
        let nets = load_networks(d).unwrap();
        let names: Vec<_> = nets.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(nets[0].plugin_types(), ["bridge", "portmap"]);
        assert_eq!(nets[1].plugin_types(), ["bridge"]);
        assert_eq!(nets[1].cni_version, "0.4.0");
        assert!(find_network(d, "zzz").is_err());
        assert!(load_networks(&d.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn rejects_invalid_lists() {
        for bad in [
            r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#,
            r#"{"name":"n","plugins":[{"type":"x"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}"#,
            r#"{"cniVersion":"1.0.0","name":"a/b","plugins":[{"type":"x"}]}"#,
            r#"[1]"#,
        ] {
            assert!(
                NetworkConfigList::from_list_json(bad.as_bytes(), None).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn plugin_stdin_injects_name_version_capabilities_and_prev_result() {
        let list = NetworkConfigList::from_list_json(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[
                {"type":"bridge"},
                {"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            None,
        )
        .unwrap();
        let mut rc = Map::new();
        rc.insert("portMappings".into(), serde_json::json!([{"hostPort": 1}]));
        rc.insert("bandwidth".into(), serde_json::json!({}));
        let first = list.plugin_stdin(0, &rc, None).unwrap();
        assert_eq!(first["name"], "n");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("runtimeConfig").is_none());
        assert!(first.get("prevResult").is_none());
        let prev = serde_json::json!({"cniVersion": "1.0.0"});
        let second = list.plugin_stdin(1, &rc, Some(&prev)).unwrap();
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        assert!(second["runtimeConfig"].get("bandwidth").is_none());
        assert_eq!(second["prevResult"], prev);
        assert!(list.plugin_stdin(2, &rc, None).is_none());
    }
}
