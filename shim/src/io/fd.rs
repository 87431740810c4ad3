//! Non-blocking reads and writes on raw fds (pipes and pty masters) with tokio's reactor.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::unix::AsyncFd;

pub fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A shareable fd registered with the reactor.
pub struct Fd(pub Arc<OwnedFd>);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// Reads once; Ok(0) is end-of-file (EIO from a pty master whose slave closed counts as EOF).
pub async fn read(fd: &AsyncFd<Fd>, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| {
            nix::unistd::read(inner.get_ref().0.as_ref(), buf).map_err(std::io::Error::from)
        }) {
            Ok(Ok(n)) => return Ok(n),
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// Writes all of `data` to a non-blocking fd.
pub async fn write_all(fd: Arc<OwnedFd>, mut data: &[u8]) -> std::io::Result<()> {
    let afd = register(fd)?;
    while !data.is_empty() {
        let mut guard = afd.writable().await?;
        match guard.try_io(|inner| {
            nix::unistd::write(inner.get_ref().0.as_ref(), data).map_err(std::io::Error::from)
        }) {
            Ok(Ok(n)) => data = &data[n..],
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

/// Registers an fd with the reactor. An fd number can be registered once at a time: callers
/// that read and write the same file (a pty master) use a dup for the second.
pub fn register(fd: Arc<OwnedFd>) -> std::io::Result<AsyncFd<Fd>> {
    // SAFETY: `Fd` owns (a share of) the OwnedFd, so the fd stays open and the same for the
    // AsyncFd's whole life.
    unsafe { AsyncFd::register(Fd(fd)) }.map_err(|e| e.into_parts().1)
}
