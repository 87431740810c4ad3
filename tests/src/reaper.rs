//! Exit statuses of our children (container inits and exec'd processes).
//!
//! The machine's pid 1 does not reap orphans, and the library makes container processes
//! children of the test process. This module makes the test process a child subreaper (so
//! processes orphaned by a `berth-oci` we ran come back to us) and reaps children by pid.
//!
//! One global table guarded by a mutex: a status is reaped at most once, recorded, and every
//! later waiter for the same pid reads it from the table, so parallel tests (and a test and its
//! guard) never lose each other's statuses. Only the waited-for pid is ever reaped
//! (`waitpid(pid, WNOHANG)`, never `waitpid(-1)`), so children the runtime library waits for
//! itself are left alone.

use std::collections::HashMap;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
    /// It is gone (or a zombie) but was not our child, so its status is unknown.
    Gone,
}

impl Exit {
    /// The status a shell would report (`128 + signal` when killed).
    pub fn code(self) -> Option<i32> {
        match self {
            Exit::Code(code) => Some(code),
            Exit::Signal(sig) => Some(128 + sig),
            Exit::Gone => None,
        }
    }
}

static SUBREAPER: Once = Once::new();
static STATUSES: Mutex<Option<HashMap<i32, Exit>>> = Mutex::new(None);

/// Makes this process a child subreaper (once).
pub fn init() {
    SUBREAPER.call_once(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER failed");
    });
}

/// Waits up to `timeout` for `pid` to end; `None` on timeout.
pub fn wait_exit(pid: i32, timeout: Duration) -> Option<Exit> {
    init();
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(exit) = try_reap(pid) {
            return Some(exit);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The recorded status of `pid`, reaping it first if it just ended.
pub fn try_reap(pid: i32) -> Option<Exit> {
    let mut guard = STATUSES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let table = guard.get_or_insert_with(HashMap::new);
    if let Some(exit) = table.get(&pid) {
        return Some(*exit);
    }
    let exit = match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Exit::Code(code),
        Ok(WaitStatus::Signaled(_, sig, _)) => Exit::Signal(sig as i32),
        Ok(_) => return None,
        Err(Errno::ECHILD) => {
            if is_alive(pid) {
                return None;
            }
            Exit::Gone
        }
        Err(err) => panic!("waitpid({pid}): {err}"),
    };
    table.insert(pid, exit);
    Some(exit)
}

/// Reaps every zombie child of ours that lived in a child pid namespace, i.e. a container
/// process (an init, or one orphaned by a `berth-oci exec -d` and reparented to us). Their
/// statuses go into the table, so a test waiting for one of them still gets it. The runtime's
/// own helper processes live in our pid namespace and are left alone.
pub fn reap_container_zombies() {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let zombie = field("State:").starts_with('Z');
        let ours = field("PPid:") == me;
        let nested = field("NSpid:").split_whitespace().count() > 1;
        if zombie && ours && nested {
            let _ = try_reap(pid);
        }
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the command name in parentheses, which may contain spaces.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}
