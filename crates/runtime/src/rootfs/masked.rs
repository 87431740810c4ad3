//! After pivot_root: masked paths (hidden under /dev/null or an empty read-only tmpfs),
//! read-only paths and the read-only root.

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{fstat, major, minor, SFlag};

use super::safe_path::{self, is_dir, Root};
use super::spec_mounts::{bind_onto, remount_bind, remount_bind_path};
use super::RootfsError;

/// Opens `path` inside `root` as an O_PATH fd, or None when it does not exist.
fn open_existing(root: &Root, path: &Path) -> Result<Option<OwnedFd>, RootfsError> {
    match root.open_with(path, OFlag::O_PATH) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(RootfsError::sys(format!("open {}", path.display()), e)),
    }
}

/// Hides `path`: a directory under an empty read-only tmpfs, a file under /dev/null. A
/// missing path is skipped.
pub(super) fn mask(root: &Root, path: &str) -> Result<(), RootfsError> {
    let path = Path::new(path);
    let Some(target) = open_existing(root, path)? else {
        return Ok(());
    };
    if is_dir(&target)? {
        return nix::mount::mount(
            Some("tmpfs"),
            &safe_path::proc_fd(&target),
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|e| RootfsError::sys(format!("mask directory {}", path.display()), e));
    }
    let null = dev_null(root)?;
    bind_onto(&safe_path::proc_fd(&null), &target, MsFlags::empty()).map_err(|e| match e {
        RootfsError::Sys { source, .. } => {
            RootfsError::sys(format!("mask {} with /dev/null", path.display()), source)
        }
        other => other,
    })
}

/// The container's /dev/null, checked to be the real character device 1:3 (a regular file
/// there would leak writes, or show data, instead of masking).
fn dev_null(root: &Root) -> Result<OwnedFd, RootfsError> {
    let null = root.open_path(Path::new("/dev/null"))?;
    let st = fstat(&null).map_err(|e| RootfsError::sys("stat /dev/null", e))?;
    let is_chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_chr || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
        return Err(RootfsError::Invalid(
            "/dev/null in the container is not the null device (char 1:3)".into(),
        ));
    }
    Ok(null)
}

/// Makes `path` read-only (bind onto itself, then a read-only bind remount keeping its other
/// flags). A missing path is skipped.
pub(super) fn make_readonly(root: &Root, path: &str) -> Result<(), RootfsError> {
    let path = Path::new(path);
    let Some(target) = open_existing(root, path)? else {
        return Ok(());
    };
    bind_onto(&safe_path::proc_fd(&target), &target, MsFlags::MS_REC).map_err(|e| match e {
        RootfsError::Sys { source, .. } => {
            RootfsError::sys(format!("bind {} onto itself", path.display()), source)
        }
        other => other,
    })?;
    drop(target);
    let target = root.open_path(path)?;
    remount_bind(&target, MsFlags::MS_RDONLY)
        .map_err(|e| RootfsError::sys(format!("remount {} read-only", path.display()), e))
}

/// Remounts "/" read-only, keeping its locked flags.
pub(super) fn readonly_root() -> Result<(), RootfsError> {
    remount_bind_path(Path::new("/"), MsFlags::MS_RDONLY)
        .map_err(|e| RootfsError::sys("remount / read-only", e))
}
