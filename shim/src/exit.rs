//! A process's exit status. The init's is also kept on disk until the task is deleted
//! (`berth_proto::shim::ExitRecord`, the exit file berthd reads).

use std::time::{SystemTime, UNIX_EPOCH};

pub use berth_proto::shim::{ExitRecord as Exit, EXIT_FILE};
use nix::sys::wait::WaitStatus;

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

pub fn to_proto(e: Exit) -> berth_proto::shim::v1::ExitStatus {
    berth_proto::shim::v1::ExitStatus {
        code: e.code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        exited_at_ns: e.exited_at_ns,
        pid: e.pid as u32,
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
        let e = from_wait(WaitStatus::Exited(Pid::from_raw(5), 3)).unwrap();
        assert_eq!((e.code, e.signal), (3, 0));
        let k = from_wait(WaitStatus::Signaled(
            Pid::from_raw(5),
            Signal::SIGKILL,
            false,
        ))
        .unwrap();
        assert_eq!((k.code, k.signal), (137, 9));
        let dir = tempfile::tempdir().unwrap();
        k.store(dir.path()).unwrap();
        assert_eq!(Exit::load(dir.path()).unwrap(), Some(k));
    }
}
