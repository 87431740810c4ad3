//! Waiting for a child (a container init or an exec'd process) and turning its end into an exit
//! code the way a shell does.

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Waits until our child `pid` exits; returns its exit code, or 128 + the signal that killed it.
pub fn wait_exit_code(pid: i32) -> anyhow::Result<u8> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok((128 + sig as i32) as u8),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err).with_context(|| format!("waiting for process {pid}")),
        }
    }
}
