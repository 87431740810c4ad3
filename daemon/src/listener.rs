//! The daemon's socket: one daemon per root (a lock), a stale socket replaced only when nothing
//! listens on it, mode 0660 with an optional group.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context};
use nix::fcntl::{Flock, FlockArg};

/// Holds the root's lock for the daemon's life.
pub struct RootLock(#[allow(dead_code)] Flock<File>);

pub fn lock_root(root: &Path) -> anyhow::Result<RootLock> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
    let path = root.join("berthd.lock");
    let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(RootLock(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            bail!("another berthd is running on {}", root.display())
        }
        Err((_, e)) => bail!("locking {}: {e}", path.display()),
    }
}

pub fn bind(address: &Path, group: Option<&str>) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = address.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if address.exists() {
        if std::os::unix::net::UnixStream::connect(address).is_ok() {
            bail!("{} is in use by a running daemon", address.display());
        }
        std::fs::remove_file(address)
            .with_context(|| format!("removing the stale socket {}", address.display()))?;
    }
    // Bind with a restrictive umask so the socket never exists with looser permissions.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = std::os::unix::net::UnixListener::bind(address);
    nix::sys::stat::umask(old);
    let listener = listener.with_context(|| format!("binding {}", address.display()))?;
    let gid = match group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)?
                .with_context(|| format!("no group named {name}"))?
                .gid,
        ),
        None => None,
    };
    // root:root 0660 is root-only; a configured group gets access too.
    let gid = gid.unwrap_or(nix::unistd::Gid::from_raw(0));
    nix::unistd::chown(address, Some(nix::unistd::Uid::from_raw(0)), Some(gid))?;
    std::fs::set_permissions(address, std::fs::Permissions::from_mode(0o660))?;
    listener.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(listener)?)
}
