//! The spec's mounts, one at a time, each onto a destination resolved safely inside the rootfs.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::statvfs::{fstatvfs, FsFlags};
use oci_spec::runtime::Mount;

use super::mount_options::MountOptions;
use super::safe_path::{self, Kind, Root};
use super::{cgroup_mount, RootfsError};

/// Everything a spec mount needs besides itself.
pub(super) struct Context<'a> {
    pub root: &'a Root,
    pub bundle: &'a Path,
    pub in_user_ns: bool,
    pub new_cgroup_ns: bool,
}

/// Mounts one spec mount inside the rootfs.
pub(super) fn mount(ctx: &Context<'_>, m: &Mount) -> Result<(), RootfsError> {
    let options = m.options().as_deref().unwrap_or_default();
    if m.uid_mappings().is_some()
        || m.gid_mappings().is_some()
        || options.iter().any(|o| o == "idmap" || o == "ridmap")
    {
        return Err(RootfsError::Invalid(format!(
            "mount {}: id-mapped mounts are not supported",
            m.destination().display()
        )));
    }
    let mut opts = MountOptions::parse(options);
    let typ = m.typ().as_deref().unwrap_or("");
    if typ == "bind" {
        opts.flags.insert(MsFlags::MS_BIND);
    }
    let dest = m.destination();
    if opts.is_bind() {
        let source = m.source().as_deref().ok_or_else(|| {
            RootfsError::Invalid(format!("bind mount {} has no source", dest.display()))
        })?;
        let source = if source.is_absolute() {
            source.to_path_buf()
        } else {
            ctx.bundle.join(source)
        };
        return bind(ctx.root, &source, dest, &opts);
    }
    let source = m
        .source()
        .as_deref()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(typ));
    match typ {
        "cgroup" => cgroup_mount::mount(ctx, dest, &opts),
        "sysfs" | "mqueue" => match fresh(ctx.root, &source, dest, typ, &opts) {
            // Not allowed in this user namespace (no own network/ipc namespace): bind the
            // host's instead, like runc.
            Err(e) if e.errno() == Some(Errno::EPERM) => {
                let host = if typ == "sysfs" {
                    "/sys"
                } else {
                    "/dev/mqueue"
                };
                let mut opts = opts.clone();
                opts.flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC);
                bind(ctx.root, Path::new(host), dest, &opts)
            }
            other => other,
        },
        "devpts" => match fresh(ctx.root, &source, dest, typ, &opts) {
            // gid=5 (tty) is not mapped in this user namespace: let devpts pick the gid.
            Err(e) if e.errno() == Some(Errno::EINVAL) && ctx.in_user_ns => {
                let mut opts = opts.clone();
                opts.data = without_gid(&opts.data);
                fresh(ctx.root, &source, dest, typ, &opts)
            }
            other => other,
        },
        _ => fresh(ctx.root, &source, dest, typ, &opts),
    }
}

/// A data string without its `gid=` option.
fn without_gid(data: &str) -> String {
    data.split(',')
        .filter(|o| !o.starts_with("gid="))
        .collect::<Vec<_>>()
        .join(",")
}

/// Mounts a new filesystem of type `typ` at `dest`.
pub(super) fn fresh(
    root: &Root,
    source: &Path,
    dest: &Path,
    typ: &str,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let target = root.create(dest, Kind::Dir)?;
    fresh_on(&target, source, dest, typ, opts)?;
    drop(target);
    after_mount(root, dest, opts)
}

/// The mount(2) of [`fresh`] onto an opened directory `target` (`dest` in the rootfs, for the
/// error), without the propagation and attributes that follow.
pub(super) fn fresh_on(
    target: &OwnedFd,
    source: &Path,
    dest: &Path,
    typ: &str,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let data = Some(opts.data.as_str()).filter(|d| !d.is_empty());
    nix::mount::mount(
        Some(source),
        &safe_path::proc_fd(target),
        Some(typ),
        opts.flags,
        data,
    )
    .map_err(|e| RootfsError::sys(format!("mount {typ} on {}", dest.display()), e))
}

/// Bind-mounts host path `source` at `dest` (created as a directory or an empty file like the
/// source), then applies the flags bind(2) ignores with a bind remount.
pub(super) fn bind(
    root: &Root,
    source: &Path,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    let st = nix::sys::stat::stat(source)
        .map_err(|e| RootfsError::sys(format!("bind source {}", source.display()), e))?;
    let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        Kind::Dir
    } else {
        Kind::File
    };
    let target = root.create(dest, kind)?;
    bind_onto(source, &target, opts.flags & MsFlags::MS_REC).map_err(|e| match e {
        RootfsError::Sys { source: errno, .. } => RootfsError::sys(
            format!("bind {} on {}", source.display(), dest.display()),
            errno,
        ),
        other => other,
    })?;
    drop(target);
    let flags = opts.bind_remount_flags();
    if !flags.is_empty() {
        let target = root.open_path(dest)?;
        remount_bind(&target, flags)
            .map_err(|e| RootfsError::sys(format!("remount {}", dest.display()), e))?;
    }
    after_mount(root, dest, opts)
}

/// Bind-mounts `source` onto the file `target` is an fd of.
pub(super) fn bind_onto(source: &Path, target: &OwnedFd, rec: MsFlags) -> Result<(), RootfsError> {
    nix::mount::mount(
        Some(source),
        &safe_path::proc_fd(target),
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .map_err(|e| RootfsError::sys(format!("bind {}", source.display()), e))
}

/// Remounts the bind mount `target` (an fd of its root) with `flags`, keeping the flags that
/// are already set and may be locked (in a user namespace, clearing them fails with EPERM).
pub(super) fn remount_bind(target: &OwnedFd, flags: MsFlags) -> nix::Result<()> {
    let keep = kept_flags(fstatvfs(target)?.flags(), flags);
    remount(&safe_path::proc_fd(target), flags | keep)
}

/// `remount_bind` for a path outside any rootfs fd (such as "/" itself).
pub(super) fn remount_bind_path(target: &Path, flags: MsFlags) -> nix::Result<()> {
    let keep = kept_flags(nix::sys::statvfs::statvfs(target)?.flags(), flags);
    remount(target, flags | keep)
}

fn remount(target: &Path, flags: MsFlags) -> nix::Result<()> {
    nix::mount::mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags,
        None::<&str>,
    )
}

/// The per-mount flags set in `current` that a remount with `flags` must repeat.
fn kept_flags(current: FsFlags, flags: MsFlags) -> MsFlags {
    let mut keep = MsFlags::empty();
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if current.contains(st) {
            keep |= ms;
        }
    }
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
    if !flags.intersects(atime) {
        for (st, ms) in [
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if current.contains(st) {
                keep |= ms;
            }
        }
    }
    keep
}

/// Propagation changes and recursive attributes, on the mount now at `dest`.
fn after_mount(root: &Root, dest: &Path, opts: &MountOptions) -> Result<(), RootfsError> {
    if opts.propagation.is_empty() && !opts.has_attrs() {
        return Ok(());
    }
    let target = root.open_path(dest)?;
    for flags in &opts.propagation {
        nix::mount::mount(
            None::<&str>,
            &safe_path::proc_fd(&target),
            None::<&str>,
            *flags,
            None::<&str>,
        )
        .map_err(|e| {
            RootfsError::sys(
                format!("set propagation {flags:?} on {}", dest.display()),
                e,
            )
        })?;
    }
    if opts.has_attrs() {
        set_attr_recursive(&target, opts.attr_set, opts.attr_clr)
            .map_err(|e| RootfsError::sys(format!("mount_setattr {}", dest.display()), e))?;
    }
    Ok(())
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(fd, "", AT_EMPTY_PATH|AT_RECURSIVE): attributes on the whole mount tree.
fn set_attr_recursive(target: &OwnedFd, set: u64, clr: u64) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a NUL-terminated static string, `attr` is a live, correctly sized
    // `struct mount_attr`, and the fd is owned by `target` for the whole call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_only_the_gid_option() {
        assert_eq!(
            without_gid("newinstance,ptmxmode=0666,mode=0620,gid=5"),
            "newinstance,ptmxmode=0666,mode=0620"
        );
        assert_eq!(without_gid("gid=5"), "");
    }

    #[test]
    fn remounts_keep_set_flags_and_atime_unless_asked() {
        let current = FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOATIME;
        assert_eq!(
            kept_flags(current, MsFlags::MS_RDONLY),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME
        );
        assert_eq!(
            kept_flags(current, MsFlags::MS_RDONLY | MsFlags::MS_STRICTATIME),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        );
    }
}
