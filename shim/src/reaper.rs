//! Reaping: the shim is a child subreaper, so the container's init, every exec process and
//! every orphan they leave end up as its children. Each SIGCHLD reaps all that exited; exits
//! of our processes are recorded once their output is drained.

use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};

use crate::task::Shared;

/// How long an exit waits for the process's output to reach end-of-file (a daemonized
/// grandchild may hold the pipes open forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Marks the shim as the subreaper of everything below it.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)
}

/// Runs forever. Must be started before the first container process is created.
pub fn spawn(task: Shared) -> std::io::Result<()> {
    let mut sigchld = signal(SignalKind::child())?;
    tokio::spawn(async move {
        loop {
            reap_all(&task);
            if sigchld.recv().await.is_none() {
                break;
            }
        }
    });
    Ok(())
}

fn reap_all(task: &Shared) {
    loop {
        let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(s) => s,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("waitpid: {e}");
                return;
            }
        };
        let pending = match task.lock() {
            Ok(mut t) => t.on_reaped(status),
            Err(_) => return,
        };
        let Some(pending) = pending else { continue };
        let task = task.clone();
        tokio::spawn(async move {
            let drained = async {
                for pump in pending.pumps {
                    let _ = pump.await;
                }
            };
            if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
                tracing::warn!(
                    pid = pending.exit.pid,
                    "output still open after exit; reporting the exit anyway"
                );
            }
            if let Ok(mut t) = task.lock() {
                t.finish_exit(&pending.exec_id, pending.exit);
            }
        });
    }
}
