//! The start handshake: where the shim listens and what it answers its starter.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// A short, deterministic socket path for a task (unix socket paths are limited to 108 bytes,
/// task ids are not).
pub fn socket_path(socket_dir: &Path, namespace: &str, id: &str) -> PathBuf {
    // FNV-1a, 64 bits: stable across versions and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.bytes().chain([b'/']).chain(id.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    socket_dir.join(format!("{h:016x}.sock"))
}

/// The pid of a live shim serving `path`, if one answers within a second (a listener that
/// never accepts must not hang the starter).
pub fn live_shim(path: &Path) -> Option<i32> {
    use nix::sys::socket::{
        connect, getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
        UnixAddr,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let timeout = nix::sys::time::TimeVal::new(1, 0);
    setsockopt(&fd, sockopt::SendTimeout, &timeout).ok()?;
    let addr = UnixAddr::new(path).ok()?;
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).ok()?;
    let cred = getsockopt(&fd, sockopt::PeerCredentials).ok()?;
    let stream = UnixStream::from(fd);
    drop(stream);
    Some(cred.pid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_short_stable_and_distinct() {
        let dir = Path::new("/run/berth/s");
        let a = socket_path(dir, "default", &"x".repeat(500));
        assert!(a.as_os_str().len() < 108);
        assert_eq!(a, socket_path(dir, "default", &"x".repeat(500)));
        assert_ne!(
            socket_path(dir, "default", "a"),
            socket_path(dir, "k8s.io", "a")
        );
    }
}
