//! What was set up for each container, kept on disk under `<state_dir>/containers/<id>.json`
//! so teardown knows what to undo, also after a daemon crash or restart. The record is written
//! before anything is created and removed after everything is undone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::network::{NetworkError, NetworkInfo, NetworkMode};

/// One CNI network attached to the container's namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AttachmentRecord {
    pub network: String,
    pub ifname: String,
}

/// A container's network setup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub container_id: String,
    pub mode: NetworkMode,
    /// The namespace the container joins (none in host mode).
    pub netns: Option<PathBuf>,
    /// Whether the namespace is ours to unpin on teardown (not in container mode).
    pub owns_netns: bool,
    /// Attached networks, in ADD order.
    pub attachments: Vec<AttachmentRecord>,
    /// Filled in once setup has completed.
    pub info: Option<NetworkInfo>,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("containers")
}

fn path(state_dir: &Path, container_id: &str) -> PathBuf {
    dir(state_dir).join(format!("{container_id}.json"))
}

pub(crate) fn write(state_dir: &Path, record: &Record) -> Result<(), NetworkError> {
    let p = path(state_dir, &record.container_id);
    let bytes = serde_json::to_vec_pretty(record).map_err(NetworkError::State)?;
    fsutil::write_atomic(&p, &bytes, 0o600).map_err(|source| NetworkError::Io { path: p, source })
}

pub(crate) fn read(state_dir: &Path, container_id: &str) -> Result<Option<Record>, NetworkError> {
    let p = path(state_dir, container_id);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(NetworkError::State),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NetworkError::Io { path: p, source }),
    }
}

pub(crate) fn remove(state_dir: &Path, container_id: &str) -> Result<(), NetworkError> {
    let p = path(state_dir, container_id);
    fsutil::remove_if_exists(&p).map_err(|source| NetworkError::Io { path: p, source })
}

/// The IDs of all containers with a record, sorted.
pub(crate) fn list(state_dir: &Path) -> Result<Vec<String>, NetworkError> {
    let d = dir(state_dir);
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(NetworkError::Io { path: d, source }),
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_suffix(".json")?;
            fsutil::is_safe_name(id).then(|| id.to_string())
        })
        .collect();
    ids.sort();
    Ok(ids)
}
