//! The spec's `cgroup` mount: `cgroup2` on a unified host; on a v1 host a tmpfs holding one
//! `cgroup` mount per hierarchy of the current process (plus symlinks for combined ones such as
//! `cpu,cpuacct`).

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::Mode;

use super::mount_options::MountOptions;
use super::spec_mounts::{bind, fresh, fresh_on, remount_bind, Context};
use super::RootfsError;

const HOST_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Mounts the cgroup filesystem(s) at `dest`.
pub(super) fn mount(
    ctx: &Context<'_>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<(), RootfsError> {
    if host_is_unified() {
        let mut opts = opts.clone();
        opts.data.clear();
        return match fresh(ctx.root, Path::new("cgroup2"), dest, "cgroup2", &opts) {
            Err(e) if matches!(e.errno(), Some(Errno::EPERM | Errno::EBUSY)) => {
                opts.flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC);
                bind(ctx.root, Path::new(HOST_CGROUP_ROOT), dest, &opts)
            }
            other => other,
        };
    }
    mount_v1(ctx, dest, opts)
}

fn host_is_unified() -> bool {
    nix::sys::statfs::statfs(HOST_CGROUP_ROOT)
        .map(|st| st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// One line of /proc/self/cgroup: `id:controllers:path`.
struct Hierarchy<'a> {
    controllers: &'a str,
    path: &'a str,
}

fn hierarchies(text: &str) -> impl Iterator<Item = Hierarchy<'_>> {
    text.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        Some(Hierarchy { controllers, path })
    })
}

fn mount_v1(ctx: &Context<'_>, dest: &Path, opts: &MountOptions) -> Result<(), RootfsError> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| {
        RootfsError::sys(
            "read /proc/self/cgroup",
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    let mut tmpfs = MountOptions {
        flags: opts.flags - MsFlags::MS_RDONLY,
        data: "mode=755".to_string(),
        ..MountOptions::default()
    };
    tmpfs.flags.remove(MsFlags::MS_REMOUNT);
    fresh(ctx.root, Path::new("tmpfs"), dest, "tmpfs", &tmpfs)?;
    // The tmpfs is ours and empty: its entries are made right in it, without walking the
    // rootfs again for each.
    let tmpfs_dir = ctx.root.open_path(dest)?;

    let sub = MountOptions {
        flags: opts.flags - MsFlags::MS_REMOUNT,
        ..MountOptions::default()
    };
    for h in hierarchies(&cgroups) {
        let (dir, fstype, data) = if h.controllers.is_empty() {
            ("unified", "cgroup2", String::new())
        } else if let Some(name) = h.controllers.strip_prefix("name=") {
            (name, "cgroup", format!("none,{}", h.controllers))
        } else {
            (h.controllers, "cgroup", h.controllers.to_string())
        };
        let target = dest.join(dir);
        let host = Path::new(HOST_CGROUP_ROOT)
            .join(dir)
            .join(h.path.trim_start_matches('/'));
        let mut bind_opts = sub.clone();
        bind_opts.flags.insert(MsFlags::MS_BIND | MsFlags::MS_REC);
        if !ctx.new_cgroup_ns && host.is_dir() {
            // Without a cgroup namespace a fresh mount would show the host's whole tree:
            // bind only the process's own cgroup, like runc.
            bind(ctx.root, &host, &target, &bind_opts)?;
        } else {
            let sub = MountOptions {
                data,
                ..sub.clone()
            };
            let mounted = sub_dir(&tmpfs_dir, dir)
                .and_then(|fd| fresh_on(&fd, Path::new("cgroup"), &target, fstype, &sub));
            match mounted {
                // Refused (a user namespace): the process's own cgroup from the host.
                Err(e) if e.errno() == Some(Errno::EPERM) && host.is_dir() => {
                    bind(ctx.root, &host, &target, &bind_opts)?
                }
                other => other?,
            }
        }
        if h.controllers.contains(',') {
            link_controllers(&tmpfs_dir, dest, h.controllers)?;
        }
    }

    if opts.flags.contains(MsFlags::MS_RDONLY) {
        remount_bind(
            &tmpfs_dir,
            opts.flags - MsFlags::MS_REMOUNT - MsFlags::MS_BIND,
        )
        .map_err(|e| RootfsError::sys(format!("remount {} read-only", dest.display()), e))?;
    }
    Ok(())
}

/// Directory `name` (one component) in the directory `dir`, created unless it exists, as an
/// O_PATH fd; a symlink there is refused.
fn sub_dir(dir: &OwnedFd, name: &str) -> Result<OwnedFd, RootfsError> {
    match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(RootfsError::sys(format!("mkdir {name}"), e)),
    }
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::sys(format!("open {name}"), e))
}

/// `cpu -> cpu,cpuacct` and `cpuacct -> cpu,cpuacct` next to a combined hierarchy, in the
/// directory `dir` (`dest` in the rootfs).
fn link_controllers(dir: &OwnedFd, dest: &Path, combined: &str) -> Result<(), RootfsError> {
    for controller in combined.split(',') {
        let name = controller.strip_prefix("name=").unwrap_or(controller);
        match nix::unistd::symlinkat(combined, dir, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(RootfsError::sys(
                    format!("symlink {name} -> {combined} in {}", dest.display()),
                    e,
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_self_cgroup() {
        let text = "12:cpu,cpuacct:/a\n9:name=systemd:/\n0::/x:y\n";
        let all: Vec<(&str, &str)> = hierarchies(text).map(|h| (h.controllers, h.path)).collect();
        assert_eq!(
            all,
            vec![("cpu,cpuacct", "/a"), ("name=systemd", "/"), ("", "/x:y")]
        );
    }
}
