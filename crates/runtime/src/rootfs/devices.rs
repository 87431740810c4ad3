//! Device nodes in the container's /dev: the default ones, the spec's `linux.devices` and the
//! standard /dev symlinks. Nodes are made with mknodat in a directory fd resolved inside the
//! rootfs; in a user namespace (no mknod) the host's device is bind-mounted onto an empty file.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, makedev, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{fchownat, Gid, Uid};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use super::safe_path::{Kind, Root};
use super::spec_mounts::bind_onto;
use super::RootfsError;

/// A device node to create.
struct Node<'a> {
    path: &'a Path,
    kind: SFlag,
    major: u64,
    minor: u64,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// The devices every container gets (char devices, mode 0666).
const DEFAULTS: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Whether the spec gives the container a fresh /dev (not a bind of the host's): only then are
/// default devices and symlinks created.
pub(super) fn dev_is_fresh(mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .rev()
        .find(|m| m.destination() == Path::new("/dev"))
        .is_some_and(|m| {
            let bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|o| o == "bind" || o == "rbind");
            !bind
        })
}

/// Creates the default devices the spec does not list itself.
pub(super) fn create_defaults(
    root: &Root,
    spec_devices: &[LinuxDevice],
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    for (path, major, minor) in DEFAULTS {
        let path = Path::new(path);
        if spec_devices.iter().any(|d| d.path() == path) {
            continue;
        }
        let node = Node {
            path,
            kind: SFlag::S_IFCHR,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: None,
            gid: None,
        };
        create(root, &node, in_user_ns)?;
    }
    Ok(())
}

/// Creates the spec's `linux.devices`.
pub(super) fn create_spec_devices(
    root: &Root,
    devices: &[LinuxDevice],
    in_user_ns: bool,
) -> Result<(), RootfsError> {
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::Invalid(format!(
                    "device {}: type \"a\" cannot be created",
                    d.path().display()
                )))
            }
        };
        let (Ok(major), Ok(minor)) = (u64::try_from(d.major()), u64::try_from(d.minor())) else {
            return Err(RootfsError::Invalid(format!(
                "device {}: negative major/minor",
                d.path().display()
            )));
        };
        let node = Node {
            path: d.path(),
            kind,
            major,
            minor,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid(),
            gid: d.gid(),
        };
        create(root, &node, in_user_ns)?;
    }
    Ok(())
}

fn create(root: &Root, node: &Node<'_>, in_user_ns: bool) -> Result<(), RootfsError> {
    if in_user_ns {
        return bind_host_device(root, node.path);
    }
    let (dir, name) = root.create_parent(node.path)?;
    let fail = |e| RootfsError::sys(format!("create device {}", node.path.display()), e);
    let mode = Mode::from_bits_truncate(node.mode);
    match mknodat(
        &dir,
        name.as_os_str(),
        node.kind,
        mode,
        makedev(node.major, node.minor),
    ) {
        Ok(()) => {}
        // Already there (e.g. listed twice, or an image ships it): leave it.
        Err(Errno::EEXIST) => return Ok(()),
        Err(e) => return Err(fail(e)),
    }
    // mknod applies the umask: set the exact mode.
    fchmodat(&dir, name.as_os_str(), mode, FchmodatFlags::NoFollowSymlink)
        .or_else(|e| match e {
            // Some kernels refuse AT_SYMLINK_NOFOLLOW for chmod; the node is not a symlink.
            Errno::EOPNOTSUPP => {
                fchmodat(&dir, name.as_os_str(), mode, FchmodatFlags::FollowSymlink)
            }
            e => Err(e),
        })
        .map_err(fail)?;
    if node.uid.is_some() || node.gid.is_some() {
        fchownat(
            &dir,
            name.as_os_str(),
            node.uid.map(Uid::from_raw),
            node.gid.map(Gid::from_raw),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(fail)?;
    }
    Ok(())
}

/// In a user namespace: an empty file with the host's device bind-mounted onto it.
fn bind_host_device(root: &Root, path: &Path) -> Result<(), RootfsError> {
    let target: OwnedFd = root.create(path, Kind::File)?;
    bind_onto(path, &target, nix::mount::MsFlags::empty())
}

/// The standard /dev symlinks (`fd`, `stdin`, `stdout`, `stderr`, `ptmx`, and `core` when
/// /proc/kcore exists).
pub(super) fn create_symlinks(root: &Root) -> Result<(), RootfsError> {
    let dir = root.create(Path::new("/dev"), Kind::Dir)?;
    let mut links: Vec<(&str, &str)> = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        if name == "ptmx" {
            // A ptmx node from the image or the spec would hide the devpts one.
            match nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(RootfsError::sys("remove /dev/ptmx", e)),
            }
        }
        match nix::unistd::symlinkat(OsStr::new(target), &dir, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(RootfsError::sys(
                    format!("symlink /dev/{name} -> {target}"),
                    e,
                ))
            }
        }
    }
    Ok(())
}
