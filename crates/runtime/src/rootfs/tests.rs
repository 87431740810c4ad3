//! prepare + pivot + finalize for real, in a forked child that unshared its mount namespace
//! (its mounts die with it). The child reports failures through a pipe and its exit code.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{unshare, CloneFlags};
use nix::sys::statvfs::FsFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use oci_spec::runtime::{
    LinuxDeviceBuilder, LinuxDeviceType, LinuxNamespaceType, MountBuilder, Spec,
};

use super::pivot::{self, Method};
use super::{finalize, prepare, RootfsOptions};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A host directory outside every rootfs, removed on drop.
struct HostDir(PathBuf);

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The namespaces of a test child.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Namespaces {
    /// New mount, UTS and IPC namespaces.
    Mount,
    /// Plus a new cgroup namespace.
    MountAndCgroup,
    /// A new user namespace (root mapped to root, like a rootless-style container without
    /// privileges over the host's mounts) owning new mount, UTS, IPC, cgroup and PID
    /// namespaces; the body runs as pid 1 of the new PID namespace.
    User,
}

/// Runs `body` in a forked child in new namespaces; returns the child's error message, if any.
fn in_child(ns: Namespaces, body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (read_end, write_end): (OwnedFd, OwnedFd) = nix::unistd::pipe().unwrap();
    // SAFETY: the child only runs `body` (system calls and plain Rust) and then _exits; it never
    // returns into the test harness.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(read_end);
            let result = enter(ns).and_then(|()| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
                    .unwrap_or_else(|_| Err("child panicked".to_string()))
            });
            let code = match result {
                Ok(()) => 0,
                Err(msg) => {
                    let mut pipe = std::fs::File::from(write_end);
                    let _ = pipe.write_all(msg.as_bytes());
                    1
                }
            };
            // SAFETY: ends the child without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut msg = String::new();
            std::fs::File::from(read_end)
                .read_to_string(&mut msg)
                .unwrap();
            match waitpid(child, None).unwrap() {
                WaitStatus::Exited(_, 0) => Ok(()),
                status => Err(format!("child {status:?}: {msg}")),
            }
        }
    }
}

/// Enters the namespaces (in the forked child). For `User`, forks again: the caller continues
/// in the grandchild (pid 1), the child relays the grandchild's exit code.
fn enter(ns: Namespaces) -> Result<(), String> {
    let base = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    match ns {
        Namespaces::Mount => unshare(base).map_err(|e| format!("unshare: {e}")),
        Namespaces::MountAndCgroup => {
            unshare(base | CloneFlags::CLONE_NEWCGROUP).map_err(|e| format!("unshare: {e}"))
        }
        Namespaces::User => {
            unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| format!("unshare user: {e}"))?;
            for (file, text) in [
                ("/proc/self/setgroups", "deny"),
                ("/proc/self/uid_map", "0 0 1"),
                ("/proc/self/gid_map", "0 0 1"),
            ] {
                std::fs::write(file, text).map_err(|e| format!("{file}: {e}"))?;
            }
            let flags = base | CloneFlags::CLONE_NEWCGROUP | CloneFlags::CLONE_NEWPID;
            unshare(flags).map_err(|e| format!("unshare: {e}"))?;
            // SAFETY: the single-threaded child forks; the grandchild returns into the body,
            // which ends with _exit in `in_child`.
            match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
                ForkResult::Child => Ok(()),
                ForkResult::Parent { child } => {
                    let code = match waitpid(child, None) {
                        Ok(WaitStatus::Exited(_, code)) => code,
                        _ => 3,
                    };
                    // SAFETY: ends the intermediate child; the grandchild reported already.
                    unsafe { libc::_exit(code) }
                }
            }
        }
    }
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn errno_of<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

/// A bundle with a minimal rootfs, a host dir to bind-mount (with a marker file), a file to
/// bind by a bundle-relative source, and a symlink in the rootfs pointing at an absolute host
/// path (`outside`, which exists on the host and must stay empty).
struct Fixture {
    bundle: tempfile::TempDir,
    outside: HostDir,
    spec: Spec,
}

impl Fixture {
    fn new() -> Fixture {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}-{n}", std::process::id());
        let bundle = tempfile::Builder::new()
            .prefix(&format!("berth-rootfs-{tag}-"))
            .tempdir()
            .unwrap();
        let rootfs = bundle.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::write(rootfs.join("marker"), "rootfs").unwrap();
        if Path::new("/bin/busybox").exists() {
            std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        }
        let outside = HostDir(PathBuf::from(format!("/tmp/berth-outside-{tag}")));
        std::fs::create_dir(&outside.0).unwrap();
        symlink(&outside.0, rootfs.join("tmp/link")).unwrap();

        let source = bundle.path().join("source");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("inside-marker"), "bound").unwrap();
        std::fs::write(bundle.path().join("hostfile"), "host file").unwrap();

        let mut spec = Spec::default();
        let mut mounts = spec.mounts().clone().unwrap();
        mounts.push(
            MountBuilder::default()
                .destination("/tmp/link")
                .typ("bind")
                .source(&source)
                .options(vec!["rbind".to_string(), "rw".to_string()])
                .build()
                .unwrap(),
        );
        mounts.push(
            MountBuilder::default()
                .destination("/etc/hostfile")
                .source("hostfile")
                .options(vec!["bind".into(), "ro".into(), "nosuid".into()])
                .build()
                .unwrap(),
        );
        mounts.push(
            MountBuilder::default()
                .destination("/run")
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec![
                    "nosuid".into(),
                    "rnoexec".into(),
                    "size=1m".into(),
                    "rprivate".into(),
                ])
                .build()
                .unwrap(),
        );
        spec.set_mounts(Some(mounts));
        Fixture {
            bundle,
            outside,
            spec,
        }
    }

    fn options(&self) -> RootfsOptions {
        RootfsOptions {
            rootfs: self.bundle.path().join("rootfs"),
            bundle: self.bundle.path().to_path_buf(),
            in_user_ns: false,
        }
    }
}

fn mountinfo_has(point: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let point = point.to_str().unwrap_or_default();
    info.lines().any(|l| l.split(' ').nth(4) == Some(point))
}

/// Before pivot: the symlinked bind went inside the rootfs, not to the host path.
fn check_symlinked_bind(fx: &Fixture, opts: &RootfsOptions) -> Result<(), String> {
    let host_entries = std::fs::read_dir(&fx.outside.0)
        .map_err(|e| e.to_string())?
        .count();
    check(
        host_entries == 0,
        "the host path behind the symlink got files",
    )?;
    check(
        !mountinfo_has(&fx.outside.0),
        "the host path behind the symlink was mounted",
    )?;
    let inside = opts
        .rootfs
        .join(fx.outside.0.strip_prefix("/").map_err(|e| e.to_string())?);
    check(
        inside.join("inside-marker").exists(),
        format!("{} did not get the bind mount", inside.display()),
    )?;
    check(mountinfo_has(&inside), "no mount inside the rootfs")
}

/// After pivot + finalize: what the container sees.
fn check_container_view(fx: &Fixture) -> Result<(), String> {
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("read {p}: {e}"));
    check(read("/marker")? == "rootfs", "/ is not the rootfs")?;
    check(
        Path::new(&fx.outside.0).join("inside-marker").exists(),
        "the bind is not visible in the container",
    )?;
    check(read("/etc/hostfile")? == "host file", "bound file content")?;
    check(
        errno_of(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/etc/hostfile"),
        ) == Some(libc::EROFS),
        "the ro bind of /etc/hostfile accepts writes",
    )?;
    // Devices and /dev symlinks.
    let null = std::fs::metadata("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    check(
        null.file_type().is_char_device() && null.rdev() == libc::makedev(1, 3),
        "/dev/null is not char 1:3",
    )?;
    check(null.mode() & 0o777 == 0o666, "/dev/null mode")?;
    check(
        std::fs::read_link("/sys").is_err() && Path::new("/sys/kernel").is_dir(),
        "no sysfs",
    )?;
    std::fs::write("/dev/null", "x").map_err(|e| format!("write /dev/null: {e}"))?;
    for (link, target) in [("/dev/fd", "/proc/self/fd"), ("/dev/ptmx", "pts/ptmx")] {
        let got = std::fs::read_link(link).map_err(|e| format!("{link}: {e}"))?;
        check(
            got == Path::new(target),
            format!("{link} -> {}", got.display()),
        )?;
    }
    check(Path::new("/dev/pts/ptmx").exists(), "no devpts")?;
    check(Path::new("/proc/self/status").exists(), "no proc")?;
    check(Path::new("/sys/kernel").exists(), "no sysfs")?;
    check(
        Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists(),
        "no memory cgroup mount",
    )?;
    check(
        errno_of(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/sys/fs/cgroup/memory/cgroup.procs"),
        ) == Some(libc::EROFS),
        "the cgroup mount is writable",
    )?;
    // A tmpfs with a recursive attribute (mount_setattr) and a propagation option.
    let run = nix::sys::statvfs::statvfs("/run").map_err(|e| format!("statvfs /run: {e}"))?;
    let want = FsFlags::ST_NOEXEC | FsFlags::ST_NOSUID;
    check(
        run.flags().contains(want),
        format!("/run flags {:?}", run.flags()),
    )?;
    std::fs::write("/run/x", "x").map_err(|e| format!("write /run/x: {e}"))?;
    // Masked and read-only paths, read-only root.
    // Every masked path that exists reads empty (this kernel may lack /proc/kcore, so count
    // the files actually checked).
    let mut masked_files = 0;
    for p in fx
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            let n = std::fs::read_dir(&p)
                .map_err(|e| format!("{p}: {e}"))?
                .count();
            check(n == 0, format!("{p} is not masked"))?;
        } else {
            let mut content = Vec::new();
            std::fs::File::open(&p)
                .and_then(|mut f| f.read_to_end(&mut content))
                .map_err(|e| format!("read {p}: {e}"))?;
            check(content.is_empty(), format!("{p} is not masked"))?;
            masked_files += 1;
        }
    }
    check(masked_files > 0, "no masked file was checked")?;
    // Opening for write is enough (EROFS comes at open time); never actually write.
    check(
        errno_of(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/proc/sys/kernel/hostname"),
        ) == Some(libc::EROFS),
        "/proc/sys is writable",
    )?;
    check(
        errno_of(std::fs::write("/new-file", "x")) == Some(libc::EROFS),
        "the root accepts writes",
    )?;
    Ok(())
}

#[test]
fn prepare_pivot_finalize_keep_mounts_inside_the_rootfs() {
    let mut fx = Fixture::new();
    let mut linux = fx.spec.linux().clone().unwrap();
    let device = LinuxDeviceBuilder::default()
        .path("/dev/extra/full")
        .typ(LinuxDeviceType::C)
        .major(1)
        .minor(7)
        .file_mode(0o640u32)
        .uid(1000u32)
        .gid(1001u32)
        .build()
        .unwrap();
    linux.set_devices(Some(vec![device]));
    fx.spec.set_linux(Some(linux));
    let opts = fx.options();
    in_child(Namespaces::MountAndCgroup, || {
        prepare(&fx.spec, &opts).map_err(|e| format!("prepare: {e}"))?;
        check_symlinked_bind(&fx, &opts)?;
        let method = pivot::pivot(&opts.rootfs, false).map_err(|e| format!("pivot: {e}"))?;
        check(
            method == Method::PivotRoot,
            format!("pivoted with {method:?}"),
        )?;
        // The old root is gone: the host's bundle path is not reachable any more.
        check(
            !fx.bundle.path().join("rootfs").exists(),
            "old root still visible",
        )?;
        finalize(&fx.spec).map_err(|e| format!("finalize: {e}"))?;
        check_container_view(&fx)?;
        let extra = std::fs::metadata("/dev/extra/full").map_err(|e| format!("extra: {e}"))?;
        check(
            extra.file_type().is_char_device()
                && extra.rdev() == libc::makedev(1, 7)
                && extra.mode() & 0o7777 == 0o640
                && extra.uid() == 1000
                && extra.gid() == 1001,
            "spec device /dev/extra/full",
        )?;
        let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let root = info.lines().find(|l| l.split(' ').nth(4) == Some("/"));
        check(
            root.is_some_and(|l| l.contains(" master:") || !l.contains(" shared:")),
            "root should not be shared by default",
        )
    })
    .unwrap();
    assert_eq!(std::fs::read_dir(&fx.outside.0).unwrap().count(), 0);
}

/// A shared root (`rshared`): pivot_root still works (the rootfs bind and its parent were
/// made private) and "/" is shared again afterwards. Devices are bound as in a user namespace
/// and the cgroup mount binds the process's own cgroups (no cgroup namespace).
fn shared_root(no_pivot: bool, expected: Method) {
    let mut fx = Fixture::new();
    let mut linux = fx.spec.linux().clone().unwrap();
    linux.set_rootfs_propagation(Some("rshared".to_string()));
    // No cgroup namespace: the cgroup mount binds the process's own cgroup dirs.
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    linux.set_namespaces(Some(
        namespaces
            .into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Cgroup)
            .collect(),
    ));
    fx.spec.set_linux(Some(linux));
    let opts = RootfsOptions {
        in_user_ns: true,
        ..fx.options()
    };
    in_child(Namespaces::Mount, || {
        prepare(&fx.spec, &opts).map_err(|e| format!("prepare: {e}"))?;
        check_symlinked_bind(&fx, &opts)?;
        let method = pivot::pivot(&opts.rootfs, no_pivot).map_err(|e| format!("pivot: {e}"))?;
        check(method == expected, format!("pivoted with {method:?}"))?;
        finalize(&fx.spec).map_err(|e| format!("finalize: {e}"))?;
        check_container_view(&fx)?;
        check(
            mountinfo_has(Path::new("/dev/null")),
            "/dev/null is not a bind mount",
        )?;
        let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
        let root = info.lines().find(|l| l.split(' ').nth(4) == Some("/"));
        check(
            root.is_some_and(|l| l.contains(" shared:")),
            format!("root is not shared: {root:?}"),
        )
    })
    .unwrap();
    assert_eq!(std::fs::read_dir(&fx.outside.0).unwrap().count(), 0);
}

#[test]
fn shared_root_with_pivot_root() {
    shared_root(false, Method::PivotRoot);
}

#[test]
fn no_pivot_moves_the_rootfs_and_chroots() {
    shared_root(true, Method::MoveAndChroot);
}

#[test]
fn child_failures_are_reported() {
    // The harness itself: a failing body must fail the test.
    let err = in_child(Namespaces::Mount, || Err("expected".to_string())).unwrap_err();
    assert!(err.contains("expected"));
}

#[test]
fn prepare_pivot_finalize_in_a_user_namespace() {
    // Mounts copied into a less privileged mount namespace are locked: remounts must keep
    // their flags; sysfs (no own network namespace) falls back to a bind of /sys; devices are
    // bind-mounted from the host.
    let fx = Fixture::new();
    let opts = RootfsOptions {
        in_user_ns: true,
        ..fx.options()
    };
    in_child(Namespaces::User, || {
        prepare(&fx.spec, &opts).map_err(|e| format!("prepare: {e}"))?;
        check_symlinked_bind(&fx, &opts)?;
        let method = pivot::pivot(&opts.rootfs, false).map_err(|e| format!("pivot: {e}"))?;
        check(
            method == Method::PivotRoot,
            format!("pivoted with {method:?}"),
        )?;
        finalize(&fx.spec).map_err(|e| format!("finalize: {e}"))?;
        check_container_view(&fx)?;
        check(std::process::id() == 1, "not pid 1 of a new pid namespace")
    })
    .unwrap();
    assert_eq!(std::fs::read_dir(&fx.outside.0).unwrap().count(), 0);
}
