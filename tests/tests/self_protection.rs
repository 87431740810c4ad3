//! The runtime's own binary and processes, as seen from outside the container:
//! CVE-2019-5736 (overwriting the runtime through /proc/<pid>/exe) and non-dumpable setup.

use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{bin, reaper, Capture, ContainerGuard};
use oci_spec::runtime::LinuxNamespaceType;

/// A running `berth-oci run` (foreground, waiting for its container) of a container sharing
/// the host's pid namespace, where container processes can see it: its /proc/<pid>/exe is a
/// read-only detached mount of the binary, so it cannot be opened for writing.
#[test]
fn the_runtime_binary_cannot_be_opened_for_writing_through_proc_exe() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&["sleep", "5"])
        .without_namespace(LinuxNamespaceType::Pid)
        .build();
    spec.save(guard.bundle().join("config.json")).unwrap();
    let before = std::fs::read(bin::berth_oci()).unwrap();
    let mut child = Command::new(bin::berth_oci())
        .arg("--root")
        .arg(guard.state_root())
        .args(["run", "--bundle"])
        .arg(guard.bundle())
        .arg(guard.id())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while guard.runtime().load(guard.id()).is_err() {
        assert!(Instant::now() < deadline, "container never created");
        std::thread::sleep(Duration::from_millis(10));
    }
    let exe = format!("/proc/{}/exe", child.id());
    let err = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&exe)
        .expect_err("the runtime's exe must not open for writing");
    // ETXTBSY while it runs; the read-only mount (checked below) holds even when it would not.
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "{err}"
    );
    let vfs = nix::sys::statvfs::statvfs(exe.as_str()).unwrap();
    assert!(
        vfs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the runtime runs from a writable mount of its binary"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    assert_eq!(std::fs::read(bin::berth_oci()).unwrap(), before);
}

/// A container with a pid namespace of its own is started by a berth-oci that did not
/// re-execute itself; its init execs the program through the sealed exec trampoline. A program
/// whose interpreter is `#!/proc/self/exe` (the CVE-2019-5736 entry) then re-enters the
/// trampoline, never the runtime binary, and fails with the trampoline's message.
#[test]
fn a_program_interpreted_by_proc_self_exe_never_reaches_the_runtime_binary() {
    let guard = ContainerGuard::new();
    let script = guard.rootfs().join("evil");
    std::fs::write(&script, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let spec = guard.spec(&["/evil"]).build();
    spec.save(guard.bundle().join("config.json")).unwrap();
    let before = std::fs::read(bin::berth_oci()).unwrap();
    let out = oci(
        &guard,
        &[
            "run",
            "--bundle",
            guard.bundle().to_str().unwrap(),
            guard.id(),
        ],
    );
    let stderr = &out.stderr;
    assert_eq!(out.code, Some(127), "{stderr}");
    assert!(stderr.contains("berth-exec: no program to run"), "{stderr}");
    assert_eq!(std::fs::read(bin::berth_oci()).unwrap(), before);
}

/// The init of a container created through the trampoline runs the (unprotected) runtime
/// binary until it is started: `exec` into it is refused until then, and works after.
#[test]
fn exec_into_a_container_created_without_protection_waits_for_start() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).build();
    spec.save(guard.bundle().join("config.json")).unwrap();
    let bundle = guard.bundle().to_str().unwrap().to_string();
    let create = oci(&guard, &["create", "--bundle", &bundle, guard.id()]);
    assert!(create.success(), "{create:?}");
    let early = oci(&guard, &["exec", guard.id(), "true"]);
    let stderr = &early.stderr;
    assert!(!early.success(), "exec before start worked");
    assert!(stderr.contains("before it is started"), "{stderr}");
    assert!(oci(&guard, &["start", guard.id()]).success());
    let later = oci(&guard, &["exec", guard.id(), "true"]);
    assert!(later.success(), "{later:?}");
    let pid = guard.runtime().load(guard.id()).unwrap().pid().unwrap();
    assert!(oci(&guard, &["kill", guard.id(), "KILL"]).success());
    reaper::wait_exit(pid, Duration::from_secs(10));
    assert!(oci(&guard, &["delete", guard.id()]).success());
}

/// `berth-oci --root <state root> <args>` (see [`berth_tests::oci::run`]).
fn oci(guard: &ContainerGuard, args: &[&str]) -> berth_tests::oci::Cli {
    berth_tests::oci::run(guard.state_root(), args)
}

/// Until exec, the container's init is not dumpable: a process without CAP_SYS_PTRACE (even
/// root) cannot look at its /proc/<pid>/exe; after start (exec) it can.
#[test]
fn the_init_is_not_dumpable_until_exec() {
    let guard = ContainerGuard::new();
    let capture = Capture::new();
    let spec = guard.spec(&["sleep", "5"]).build();
    let container = guard.create(&spec, capture.stdio()).unwrap();
    let pid = container.pid().unwrap();
    assert_eq!(
        readlink_without_ptrace(pid),
        Some(libc::EACCES),
        "created init is dumpable"
    );
    container.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while readlink_without_ptrace(pid).is_some() {
        assert!(
            Instant::now() < deadline,
            "the exec'd process stays non-dumpable"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    container
        .kill(nix::sys::signal::Signal::SIGKILL, false)
        .unwrap();
    reaper::wait_exit(pid, Duration::from_secs(10));
    container.delete(true).unwrap();
}

/// readlink(/proc/<pid>/exe) from a forked child that dropped CAP_SYS_PTRACE: the errno, or
/// None when it worked.
fn readlink_without_ptrace(pid: i32) -> Option<i32> {
    // SAFETY: the child only makes syscalls and exits.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            for set in [caps::CapSet::Effective, caps::CapSet::Permitted] {
                if caps::drop(None, set, caps::Capability::CAP_SYS_PTRACE).is_err() {
                    // SAFETY: leave the forked test process at once.
                    unsafe { libc::_exit(99) }
                }
            }
            let code = match std::fs::read_link(format!("/proc/{pid}/exe")) {
                Ok(_) => 0,
                Err(e) => e.raw_os_error().unwrap_or(1),
            };
            // SAFETY: leave the forked test process at once.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            match nix::sys::wait::waitpid(child, None).unwrap() {
                nix::sys::wait::WaitStatus::Exited(_, 0) => None,
                nix::sys::wait::WaitStatus::Exited(_, e) => Some(e),
                other => panic!("{other:?}"),
            }
        }
    }
}

/// A shim berthd started runs from a read-only clone of its binary (berthd executes the clone,
/// so the shim does not re-execute itself): /proc/<shim>/exe cannot be opened for writing, the
/// binary on disk is unchanged, and the process is still named berth-shim.
#[test]
fn a_shim_started_by_berthd_cannot_be_overwritten_through_proc_exe() {
    use berth_tests::daemon::{shim_pids, DaemonGuard};
    use nix::sys::statvfs::{statvfs, FsFlags};

    let d = DaemonGuard::start();
    let rootfs = d.rootfs_arg();
    let o = d.run(&[
        "run", "-d", "--name", "held", "--rootfs", &rootfs, "sleep", "30",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = std::fs::read(bin::bin("berth-shim")).unwrap();
    let pids = shim_pids(&d.state());
    assert_eq!(pids.len(), 1, "one shim: {pids:?}");
    let exe = format!("/proc/{}/exe", pids[0]);
    let flags = statvfs(exe.as_str()).unwrap().flags();
    assert!(
        flags.contains(FsFlags::ST_RDONLY),
        "the shim's exe is writable: {flags:?}"
    );
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&exe)
        .expect_err("the shim's exe must not open for writing");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::ETXTBSY)),
        "{err}"
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pids[0])).unwrap();
    assert_eq!(comm.trim(), "berth-shim");
    assert!(d.run(&["rm", "-f", "held"]).status.success());
    assert_eq!(std::fs::read(bin::bin("berth-shim")).unwrap(), before);
}
