//! The exit file: a shim keeps its init's exit status in `<bundle>/exit` until the task is
//! deleted, so that a daemon that was away, or one cleaning up after a dead shim, still
//! learns it. Written by berth-shim, read by berthd.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Name of the exit file in the bundle.
pub const EXIT_FILE: &str = "exit";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    #[serde(default)]
    pub pid: i32,
    /// 128 + signal when killed by a signal.
    pub code: i32,
    #[serde(default)]
    pub signal: i32,
    #[serde(default)]
    pub oom_killed: bool,
    #[serde(default)]
    pub exited_at_ns: i64,
}

impl ExitRecord {
    /// Writes the exit file atomically (temp file, rename). No fsync: the bundle lives in the
    /// state dir (`/run`, tmpfs), which does not outlive the host, and a daemon or shim killed
    /// with SIGKILL loses nothing the kernel already has.
    pub fn store(&self, bundle: &Path) -> std::io::Result<()> {
        let tmp = bundle.join(".exit.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        drop(f);
        std::fs::rename(&tmp, bundle.join(EXIT_FILE))
    }

    /// The exit file of `bundle`; None when there is none.
    pub fn load(bundle: &Path) -> std::io::Result<Option<ExitRecord>> {
        match std::fs::read(bundle.join(EXIT_FILE)) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_garbage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("berth-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(ExitRecord::load(&dir).unwrap(), None);
        let e = ExitRecord {
            pid: 7,
            code: 137,
            signal: 9,
            oom_killed: true,
            exited_at_ns: 5,
        };
        e.store(&dir).unwrap();
        assert_eq!(ExitRecord::load(&dir).unwrap(), Some(e));
        // The format the shims of earlier releases wrote.
        std::fs::write(dir.join(EXIT_FILE), r#"{"pid":7,"code":3}"#).unwrap();
        assert_eq!(ExitRecord::load(&dir).unwrap().map(|e| e.code), Some(3));
        std::fs::write(dir.join(EXIT_FILE), "{not json").unwrap();
        assert!(ExitRecord::load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
