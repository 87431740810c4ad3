//! Detaching: `berth-shim start` binds the socket, forks the real shim (before any async
//! runtime exists), waits until it is ready, prints the bootstrap answer and exits; the shim
//! is left in its own session, reparented to init or the nearest subreaper.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use anyhow::{bail, Context};
use nix::unistd::{fork, setsid, ForkResult};

/// In the parent: the shim's pid once it is ready. In the child: never returns normally; it
/// runs `serve` and exits.
pub fn detach(
    listener: UnixListener,
    log_file: &Path,
    serve: impl FnOnce(UnixListener, OwnedFd) -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: single-threaded here (no runtime started yet); the child goes on to build its own.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(ready_r);
            let code = match child_setup(log_file).and_then(|()| serve(listener, ready_w)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("berth-shim: {e:#}");
                    1
                }
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            drop(listener);
            let mut byte = [0u8; 1];
            let mut r = std::fs::File::from(ready_r);
            if r.read(&mut byte).context("waiting for the shim")? != 1 {
                bail!("the shim exited during start (see {})", log_file.display());
            }
            Ok(child.as_raw())
        }
    }
}

/// New session, stdio away from the starter (stderr to the shim's log file).
fn child_setup(log_file: &Path) -> anyhow::Result<()> {
    setsid().context("setsid")?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)
        .with_context(|| format!("opening {}", log_file.display()))?;
    for (src, dst) in [
        (null.as_raw_fd(), 0),
        (null.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: dup2 onto the standard fds of this single-threaded process.
        if unsafe { libc::dup2(src, dst) } < 0 {
            bail!("dup2: {}", std::io::Error::last_os_error());
        }
    }
    std::env::set_current_dir("/")?;
    Ok(())
}
