//! Making the rootfs the process's root: pivot_root, or MS_MOVE + chroot.

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use super::RootfsError;

const NONE: Option<&str> = None;

/// How the rootfs became the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    PivotRoot,
    MoveAndChroot,
}

/// pivot_root(".", ".") inside the new root (no put_old directory needed), then detach the old
/// root. Falls back to `move_root` when asked (`no_pivot`) or when the current root cannot be
/// pivoted (EINVAL: an initramfs root).
pub(super) fn pivot(rootfs: &Path, no_pivot: bool) -> Result<Method, RootfsError> {
    if no_pivot {
        return move_root(rootfs);
    }
    let dir = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let old_root = open("/", dir, Mode::empty()).map_err(|e| RootfsError::sys("open /", e))?;
    let new_root = open(rootfs, dir, Mode::empty())
        .map_err(|e| RootfsError::sys(format!("open rootfs {}", rootfs.display()), e))?;
    fchdir(&new_root).map_err(|e| RootfsError::sys("chdir to the rootfs", e))?;
    match pivot_root(".", ".") {
        Ok(()) => {}
        Err(Errno::EINVAL) => return move_root(rootfs),
        Err(e) => return Err(RootfsError::sys("pivot_root", e)),
    }
    // The old root is now mounted on top of the new one, at ".": go to it, keep unmount events
    // from reaching the host, and detach it.
    fchdir(&old_root).map_err(|e| RootfsError::sys("chdir to the old root", e))?;
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .map_err(|e| RootfsError::sys("make the old root rslave", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| RootfsError::sys("detach the old root", e))?;
    chdir("/").map_err(|e| RootfsError::sys("chdir /", e))?;
    Ok(Method::PivotRoot)
}

/// For roots pivot_root refuses: move the rootfs mount onto "/" and chroot into it.
fn move_root(rootfs: &Path) -> Result<Method, RootfsError> {
    chdir(rootfs).map_err(|e| RootfsError::sys(format!("chdir {}", rootfs.display()), e))?;
    mount(Some(rootfs), "/", NONE, MsFlags::MS_MOVE, NONE)
        .map_err(|e| RootfsError::sys("move the rootfs onto /", e))?;
    chroot(".").map_err(|e| RootfsError::sys("chroot", e))?;
    chdir("/").map_err(|e| RootfsError::sys("chdir /", e))?;
    Ok(Method::MoveAndChroot)
}
