//! The built-in init (`io.berth.init` annotation, `--init`): pid 1 of the container stays our
//! own code, needing no binary in the image. It forks the container's program, forwards every
//! signal it receives to it, reaps every zombie reparented to it, and exits with the program's
//! status (128 + signal when a signal killed it). With the value `hold` it runs no program at
//! all and only keeps the container's namespaces alive (pod sandboxes without a pause image).

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::ProcessError;

/// The spec annotation that asks for the built-in init.
pub const ANNOTATION: &str = "io.berth.init";

/// Forks: returns in the child (which goes on to exec the program); the parent never returns.
pub(crate) fn fork_and_reap() -> Result<(), ProcessError> {
    let all = SigSet::all();
    // Block everything first so no signal is lost between fork and the wait loop.
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
        .map_err(|e| ProcessError::sys("blocking signals in the init", e))?;
    // SAFETY: single-threaded; the child only restores its mask and execs.
    match unsafe { fork() }.map_err(|e| ProcessError::sys("fork of the init's child", e))? {
        ForkResult::Child => {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None)
                .map_err(|e| ProcessError::sys("restoring the signal mask", e))?;
            Ok(())
        }
        ForkResult::Parent { child } => {
            let code = reap(child, &all);
            // SAFETY: leave without running anything inherited from the runtime.
            unsafe { libc::_exit(code) }
        }
    }
}

/// The holding init of a pod sandbox: runs no program, reaps whatever is reparented to it, and
/// exits 0 on SIGTERM, SIGINT or SIGHUP (SIGKILL ends it like any process). Never returns.
pub(crate) fn hold() -> ! {
    let all = SigSet::all();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), None);
    loop {
        match all.wait() {
            Ok(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) => {
                // SAFETY: leave without running anything inherited from the runtime.
                unsafe { libc::_exit(0) }
            }
            Ok(Signal::SIGCHLD) => {
                while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    if status == WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
}

fn reap(child: Pid, set: &SigSet) -> i32 {
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => return code,
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => return 128 + s as i32,
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
