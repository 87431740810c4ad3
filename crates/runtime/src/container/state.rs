//! What a container leaves on disk in its state directory (`<root>/<id>/state.json`), and how
//! its live status is worked out from that and the kernel.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const EXEC_FIFO: &str = "exec.fifo";

/// The persisted record of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub id: String,
    pub init_pid: i32,
    /// Start time of the init (field 22 of /proc/<pid>/stat): tells a recycled pid apart.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339.
    pub created: String,
    pub cgroup_path: PathBuf,
    pub spec: Spec,
}

impl State {
    pub(crate) fn load(dir: &Path, id: &str) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&data).map_err(|source| Error::State { path, source })
    }

    /// Writes the state atomically (temp file + rename).
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec(self).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        let mut f = std::fs::File::create(&tmp)
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        f.write_all(&data)
            .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
    }
}

/// A process as /proc shows it: alive (not a zombie) and its start time.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // Field 22 overall; after the state (field 3) it is the 19th.
    fields.nth(18)?.parse().ok()
}

/// Is the recorded init still the same live process?
pub(crate) fn init_alive(pid: i32, start_time: u64) -> bool {
    pid > 0 && process_start_time(pid) == Some(start_time)
}

/// The OCI state document, as `runc state` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: crate::Status,
    /// The init's host pid; 0 once stopped (like runc).
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

/// Container ids: what runc accepts (letters, digits, `_ + - .`), not `.`/`..`, bounded length,
/// so an id is always one safe path component.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("empty")
    } else if id.len() > 1024 {
        Some("longer than 1024 bytes")
    } else if id == "." || id == ".." {
        Some("a path component")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        Some("only letters, digits and _ + - . are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidId {
            id: id.chars().take(64).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_single_safe_path_components() {
        for ok in ["a", "abc-1.2_3+x", "X"] {
            validate_id(ok).unwrap();
        }
        let long = "a".repeat(1025);
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\0b",
            "sp ace",
            long.as_str(),
        ] {
            assert!(
                matches!(validate_id(bad), Err(Error::InvalidId { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn our_own_process_is_alive_and_pid_reuse_is_detected() {
        let me = std::process::id() as i32;
        let start = process_start_time(me).unwrap();
        assert!(init_alive(me, start));
        assert!(!init_alive(me, start + 1));
        assert!(!init_alive(0, 0));
    }
}
