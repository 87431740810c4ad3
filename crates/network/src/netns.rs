//! Network namespaces pinned by a bind mount on a file, the way `ip netns add` does, so a
//! namespace outlives the thread that created it and can be joined by path (OCI spec
//! `linux.namespaces[].path`, `CNI_NETNS`).

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::fsutil;

/// Creating or removing a network namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum NetNsError {
    /// The name is not a single safe path component.
    #[error("invalid network namespace name {0:?}")]
    InvalidName(String),
    /// A namespace (or a stale file) is already pinned at this path.
    #[error("network namespace {} already exists", .0.display())]
    AlreadyExists(PathBuf),
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A namespace or mount system call failed.
    #[error("{call} {}: {source}", path.display())]
    Sys {
        /// The system call.
        call: &'static str,
        /// The path it was about.
        path: PathBuf,
        /// The errno.
        source: nix::Error,
    },
    /// The helper thread died.
    #[error("network namespace thread panicked")]
    ThreadPanicked,
}

/// A network namespace pinned at `<pin_dir>/<name>`. Dropping the value does not remove the
/// namespace; call [`NetNs::remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    path: PathBuf,
}

impl NetNs {
    /// Creates a new, empty network namespace (only a down `lo`) pinned at
    /// `<pin_dir>/<name>`. A short-lived thread unshares its network namespace and bind-mounts
    /// `/proc/thread-self/ns/net` onto an empty file; the calling thread's namespace is not
    /// touched, so this is safe to call from a multi-threaded (tokio) process. Blocking but
    /// brief (a thread spawn and two system calls).
    pub fn create(pin_dir: &Path, name: &str) -> Result<NetNs, NetNsError> {
        if !fsutil::is_safe_name(name) {
            return Err(NetNsError::InvalidName(name.to_string()));
        }
        std::fs::create_dir_all(pin_dir).map_err(|source| NetNsError::Io {
            path: pin_dir.to_path_buf(),
            source,
        })?;
        let path = pin_dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(NetNsError::AlreadyExists(path))
            }
            Err(source) => return Err(NetNsError::Io { path, source }),
        }
        let target = path.clone();
        let pinned = std::thread::Builder::new()
            .name("berth-netns".into())
            .spawn(move || -> Result<(), NetNsError> {
                // This thread alone moves to the new namespace, and it exits right after.
                unshare(CloneFlags::CLONE_NEWNET).map_err(|source| NetNsError::Sys {
                    call: "unshare(CLONE_NEWNET)",
                    path: target.clone(),
                    source,
                })?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|source| NetNsError::Sys {
                    call: "mount(MS_BIND)",
                    path: target.clone(),
                    source,
                })
            })
            .map_err(|source| NetNsError::Io {
                path: path.clone(),
                source,
            })?
            .join()
            .map_err(|_| NetNsError::ThreadPanicked)
            .and_then(|r| r);
        if let Err(e) = pinned {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(NetNs { path })
    }

    /// Refers to an existing pinned namespace (for instance one created before a restart).
    pub fn from_path(path: PathBuf) -> NetNs {
        NetNs { path }
    }

    /// The pin path: the OCI spec's network namespace `path` and `CNI_NETNS`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unpins the namespace (lazy unmount) and deletes the pin file. The namespace itself is
    /// freed by the kernel once no process is in it. Idempotent.
    pub fn remove(self) -> Result<(), NetNsError> {
        remove_pin(&self.path)
    }
}

/// Unpins and deletes the pin at `path`; a path that is not mounted or does not exist is
/// fine.
pub fn remove_pin(path: &Path) -> Result<(), NetNsError> {
    // Unmount until nothing is mounted there (a pin mounted twice needs two unmounts).
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => break,
            Err(source) => {
                return Err(NetNsError::Sys {
                    call: "umount2(MNT_DETACH)",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    fsutil::remove_if_exists(path).map_err(|source| NetNsError::Io {
        path: path.to_path_buf(),
        source,
    })
}
