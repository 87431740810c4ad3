//! Paths resolved inside the rootfs, never outside it: every lookup goes through openat2 with
//! RESOLVE_IN_ROOT relative to an O_PATH fd of the rootfs, missing directories are created with
//! mkdirat in the directory found so far, and symlinks met on the way are resolved by hand as if
//! the rootfs were "/". Mounts then target "/proc/self/fd/<N>" of the opened fd, so a symlink
//! swapped in afterwards cannot redirect them.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};

use super::RootfsError;

/// Symlinks followed while resolving one path before giving up (like the kernel's 40).
const MAX_SYMLINKS: usize = 40;

/// What to create when the final component of a path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    File,
}

/// An O_PATH fd of a root directory; paths below are resolved as if it were "/".
#[derive(Debug)]
pub(super) struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `path` (a directory on the host) as a root.
    pub fn open(path: &Path) -> Result<Root, RootfsError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RootfsError::sys(format!("open root {}", path.display()), e))?;
        Ok(Root { fd })
    }

    /// Opens `path` (absolute or relative, taken inside the root) with `flags` (O_CLOEXEC
    /// added), resolving symlinks inside the root and refusing magic links.
    pub fn open_with(&self, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        let rel = relative(path);
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(&self.fd, rel.as_path(), how)
    }

    /// Opens `path` inside the root as an O_PATH fd (for mounting onto, or stat).
    pub fn open_path(&self, path: &Path) -> Result<OwnedFd, RootfsError> {
        self.open_with(path, OFlag::O_PATH)
            .map_err(|e| RootfsError::sys(format!("open {} in rootfs", path.display()), e))
    }

    /// Opens `path` inside the root, creating missing directories on the way and the last
    /// component as `last` when it is missing. Returns an O_PATH fd of the result.
    pub fn create(&self, path: &Path, last: Kind) -> Result<OwnedFd, RootfsError> {
        // Most mount destinations exist already (in the image, or made by an earlier mount):
        // one lookup, with the same resolution inside the root as the walk below. Only a
        // missing one (or one that fails to open) takes the walk.
        if let Ok(fd) = self.open_with(path, OFlag::O_PATH) {
            return Ok(fd);
        }
        let resolved = self.resolve_creating(path, last)?;
        self.open_path(&resolved)
    }

    /// Creates the parent directories of `path` inside the root and returns an O_PATH fd of
    /// the parent plus the last component's name (never `..`).
    pub fn create_parent(&self, path: &Path) -> Result<(OwnedFd, OsString), RootfsError> {
        let name = match path.components().next_back() {
            Some(Component::Normal(name)) => name.to_os_string(),
            _ => {
                return Err(RootfsError::Invalid(format!(
                    "{} does not name a file",
                    path.display()
                )))
            }
        };
        let parent = path.parent().unwrap_or(Path::new("/"));
        let dir = self.create(parent, Kind::Dir)?;
        Ok((dir, name))
    }

    /// Walks `path` component by component from the root: symlinks are read and resolved
    /// inside the root, missing components are created. Returns the resolved path (relative
    /// to the root, free of symlinks at the time of the walk).
    fn resolve_creating(&self, path: &Path, last: Kind) -> Result<PathBuf, RootfsError> {
        let fail = |e| RootfsError::sys(format!("resolve {} in rootfs", path.display()), e);
        let mut pending = components(path);
        let mut resolved: Vec<OsString> = Vec::new();
        let mut budget = MAX_SYMLINKS;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            let here: PathBuf = resolved.iter().collect();
            let dir = self
                .open_with(&here, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .map_err(fail)?;
            match fstatat(
                &dir,
                name.as_os_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK =>
                {
                    budget = budget.checked_sub(1).ok_or_else(|| fail(Errno::ELOOP))?;
                    let target = nix::fcntl::readlinkat(&dir, name.as_os_str()).map_err(fail)?;
                    let target = Path::new(&target);
                    if target.is_absolute() {
                        resolved.clear();
                    }
                    for c in components(target).into_iter().rev() {
                        pending.push_front(c);
                    }
                }
                Ok(_) => resolved.push(name),
                Err(Errno::ENOENT) => {
                    let created = if pending.is_empty() && last == Kind::File {
                        create_file(&dir, &name)
                    } else {
                        mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o755))
                    };
                    match created {
                        Ok(()) => resolved.push(name),
                        // Someone created it meanwhile: look at it again.
                        Err(Errno::EEXIST) => {
                            budget = budget.checked_sub(1).ok_or_else(|| fail(Errno::ELOOP))?;
                            pending.push_front(name);
                        }
                        Err(e) => return Err(fail(e)),
                    }
                }
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(resolved.iter().collect())
    }
}

fn create_file(dir: &OwnedFd, name: &OsStr) -> nix::Result<()> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map(drop)
}

/// The normal components and `..` of `path`; "/" and "." are dropped.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// `path` made relative (for openat2 below a root): "/" becomes ".".
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// The "/proc/self/fd/<N>" path of `fd`, for mount(2) to act on exactly that file.
pub(super) fn proc_fd(fd: &OwnedFd) -> PathBuf {
    let mut buf = Vec::from(&b"/proc/self/fd/"[..]);
    buf.extend_from_slice(fd.as_raw_fd().to_string().as_bytes());
    PathBuf::from(OsStr::from_bytes(&buf))
}

/// Whether the file behind an O_PATH fd is a directory.
pub(super) fn is_dir(fd: &OwnedFd) -> Result<bool, RootfsError> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| RootfsError::sys("fstat", e))?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn creation_follows_symlinks_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root_path = dir.path().join("root");
        std::fs::create_dir(&root_path).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // An absolute symlink to the host's `outside`, a relative one climbing above the root.
        symlink(&outside, root_path.join("abs")).unwrap();
        symlink("../../../../outside", root_path.join("rel")).unwrap();
        let root = Root::open(&root_path).unwrap();

        root.create(Path::new("/abs/sub"), Kind::Dir).unwrap();
        root.create(Path::new("rel/file"), Kind::File).unwrap();
        let inner = root_path.join(outside.strip_prefix("/").unwrap());
        assert!(inner.join("sub").is_dir());
        assert!(root_path.join("outside/file").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        let (parent, name) = root.create_parent(Path::new("/a/b/c")).unwrap();
        assert_eq!(name, "c");
        assert!(is_dir(&parent).unwrap());
        assert!(root_path.join("a/b").is_dir());
        assert!(root.create_parent(Path::new("/")).is_err());
    }

    #[test]
    fn symlink_loops_fail() {
        let dir = tempfile::tempdir().unwrap();
        symlink("loop", dir.path().join("loop")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let err = root.create(Path::new("/loop/x"), Kind::Dir).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ELOOP));
    }

    #[test]
    fn proc_fd_names_the_fd() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        let fd = root.open_path(Path::new("/")).unwrap();
        let link = std::fs::read_link(proc_fd(&fd)).unwrap();
        assert_eq!(link, dir.path());
    }
}
