//! The per-attachment cache of ADD: the configuration, arguments and result, kept so DEL can
//! pass the same runtime config and the result as prevResult, even when the network's file
//! changed or disappeared since.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CniError;
use crate::fsutil;

/// What is remembered of one ADD of a network to a container interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    /// Format marker.
    pub kind: String,
    /// The container.
    pub container_id: String,
    /// The interface inside the container.
    pub if_name: String,
    /// The network name.
    pub network_name: String,
    /// The netns path given to the plugins.
    pub netns: PathBuf,
    /// The configuration list used for ADD (CNI file format).
    pub config: Value,
    /// CNI_ARGS pairs.
    pub cni_args: Vec<(String, String)>,
    /// The runtime config (capability arguments such as `portMappings`).
    pub runtime_config: Map<String, Value>,
    /// The result of the last plugin of the list.
    pub result: Value,
}

pub(crate) const CACHE_KIND: &str = "berthCniCacheV1";

pub(crate) fn path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cache_dir
        .join("results")
        .join(format!("{network}-{container_id}-{ifname}.json"))
}

pub(crate) fn write(cache_dir: &Path, entry: &CachedAttachment) -> Result<(), CniError> {
    let p = path(
        cache_dir,
        &entry.network_name,
        &entry.container_id,
        &entry.if_name,
    );
    let bytes = serde_json::to_vec_pretty(entry).map_err(|e| CniError::InvalidConfig {
        source_file: None,
        reason: e.to_string(),
    })?;
    fsutil::write_atomic(&p, &bytes, 0o600).map_err(|e| CniError::io(&p, e))
}

pub(crate) fn read(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<Option<CachedAttachment>, CniError> {
    let p = path(cache_dir, network, container_id, ifname);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CniError::io(&p, e)),
    };
    // A corrupt cache (a crash mid-write cannot cause one, a disk error can) is treated as
    // absent: DEL then runs without prevResult, which plugins must tolerate.
    Ok(serde_json::from_slice::<CachedAttachment>(&bytes)
        .ok()
        .filter(|c| c.kind == CACHE_KIND))
}

pub(crate) fn remove(
    cache_dir: &Path,
    network: &str,
    container_id: &str,
    ifname: &str,
) -> Result<(), CniError> {
    let p = path(cache_dir, network, container_id, ifname);
    fsutil::remove_if_exists(&p).map_err(|e| CniError::io(&p, e))
}
