//! A process's exit status, and the exit file that keeps the init's status on disk until the
//! task is deleted (so a daemon that was away, or a new shim, can still learn it).

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::wait::WaitStatus;
use serde::{Deserialize, Serialize};

/// Name of the exit file in the bundle.
pub const EXIT_FILE: &str = "exit";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub pid: i32,
    /// 128 + signal when killed by a signal.
    pub code: i32,
    pub signal: i32,
    pub oom_killed: bool,
    pub exited_at_ns: i64,
}

impl Exit {
    /// From a waitpid status; `None` for stops and continues.
    pub fn from_wait(status: WaitStatus) -> Option<Exit> {
        let (pid, code, signal) = match status {
            WaitStatus::Exited(pid, code) => (pid, code, 0),
            WaitStatus::Signaled(pid, sig, _) => (pid, 128 + sig as i32, sig as i32),
            _ => return None,
        };
        Some(Exit {
            pid: pid.as_raw(),
            code,
            signal,
            oom_killed: false,
            exited_at_ns: now_ns(),
        })
    }

    pub fn to_proto(self) -> berth_proto::shim::v1::ExitStatus {
        berth_proto::shim::v1::ExitStatus {
            code: self.code,
            signal: self.signal,
            oom_killed: self.oom_killed,
            exited_at_ns: self.exited_at_ns,
            pid: self.pid as u32,
        }
    }

    /// Writes the exit file atomically (temp file, rename) before anyone is told. No fsync:
    /// the bundle lives in the state dir (`/run`, tmpfs), which does not outlive the host, and
    /// a daemon or shim killed with SIGKILL loses nothing the kernel already has.
    pub fn persist(&self, bundle: &Path) -> std::io::Result<()> {
        let tmp = bundle.join(".exit.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        drop(f);
        std::fs::rename(&tmp, bundle.join(EXIT_FILE))
    }

    #[cfg(test)]
    pub fn load(bundle: &Path) -> std::io::Result<Option<Exit>> {
        match std::fs::read(bundle.join(EXIT_FILE)) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn codes_follow_the_shell_convention_and_survive_the_file() {
        let e = Exit::from_wait(WaitStatus::Exited(Pid::from_raw(5), 3)).unwrap();
        assert_eq!((e.code, e.signal), (3, 0));
        let k = Exit::from_wait(WaitStatus::Signaled(
            Pid::from_raw(5),
            Signal::SIGKILL,
            false,
        ))
        .unwrap();
        assert_eq!((k.code, k.signal), (137, 9));
        let dir = tempfile::tempdir().unwrap();
        k.persist(dir.path()).unwrap();
        assert_eq!(Exit::load(dir.path()).unwrap(), Some(k));
    }
}
