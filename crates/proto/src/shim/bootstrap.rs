//! The answer of `berth-shim start`, stored by the daemon in the bundle.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Name of the file in the bundle that holds the shim's bootstrap answer.
pub const BOOTSTRAP_FILE: &str = "bootstrap.json";

/// What `berth-shim start` prints on stdout (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// The shim protocol version (`berth.shim.v1` → 1).
    pub version: u32,
    /// `unix:///path/to/socket`.
    pub address: String,
    /// Always `grpc` for now.
    pub protocol: String,
    pub pid: i32,
}

impl Bootstrap {
    /// The socket path of a `unix://` address.
    pub fn socket_path(&self) -> Option<&Path> {
        self.address.strip_prefix("unix://").map(Path::new)
    }

    /// Stores the answer in `bundle/bootstrap.json` atomically (temp file, rename). Not
    /// fsynced: the bundle lives in the state dir, which does not outlive the host (nor do
    /// the shim and its socket the file points to), like the shim's exit file.
    pub fn store(&self, bundle: &Path) -> std::io::Result<()> {
        let tmp = bundle.join(".bootstrap.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, bundle.join(BOOTSTRAP_FILE))
    }

    pub fn load(bundle: &Path) -> std::io::Result<Bootstrap> {
        let data = std::fs::read(bundle.join(BOOTSTRAP_FILE))?;
        serde_json::from_slice(&data).map_err(std::io::Error::other)
    }
}
