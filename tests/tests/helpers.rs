//! The test helpers themselves (no container runtime involved).

use std::process::Command;
use std::time::Duration;

use berth_tests::{guard, reaper, rootfs, Exit, SpecBuilder};

#[test]
fn rootfs_has_busybox_and_applets() {
    let dir = tempfile::tempdir().unwrap();
    rootfs::populate(dir.path()).unwrap();
    for path in ["bin/busybox", "etc/passwd", "etc/group"] {
        assert!(dir.path().join(path).is_file(), "{path} missing");
    }
    for dir_name in ["proc", "sys", "dev", "tmp", "root"] {
        assert!(dir.path().join(dir_name).is_dir(), "{dir_name} missing");
    }
    assert_eq!(
        std::fs::read_link(dir.path().join("bin/sh")).unwrap(),
        std::path::Path::new("busybox")
    );
    let out = Command::new(dir.path().join("bin/echo"))
        .arg("hello")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
}

#[test]
// The reaper, not std, waits for these children.
#[allow(clippy::zombie_processes)]
fn reaper_records_exit_codes_and_signals() {
    let child = Command::new("/bin/sh")
        .args(["-c", "exit 3"])
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    assert_eq!(
        reaper::wait_exit(pid, Duration::from_secs(5)),
        Some(Exit::Code(3))
    );
    // A second waiter gets the recorded status.
    assert_eq!(reaper::try_reap(pid), Some(Exit::Code(3)));

    let child = Command::new("/bin/sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    assert_eq!(reaper::wait_exit(pid, Duration::from_millis(50)), None);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    let exit = reaper::wait_exit(pid, Duration::from_secs(5)).unwrap();
    assert_eq!(exit, Exit::Signal(9));
    assert_eq!(exit.code(), Some(137));
}

#[test]
fn spec_builder_sets_test_defaults() {
    let spec = SpecBuilder::new("abc", &["echo", "hi"])
        .memory_limit(1 << 20)
        .user_namespace(100_000, 65_536)
        .time_offset("monotonic", 5)
        .build();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["echo", "hi"]);
    assert_eq!(process.terminal(), Some(false));
    assert_eq!(spec.hostname().as_deref(), Some("abc"));
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.cgroups_path().as_ref().unwrap(),
        std::path::Path::new("/berth-test/abc")
    );
    let types: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert!(types.contains(&oci_spec::runtime::LinuxNamespaceType::User));
    assert!(types.contains(&oci_spec::runtime::LinuxNamespaceType::Time));
    assert_eq!(linux.uid_mappings().as_ref().unwrap()[0].host_id(), 100_000);
    let memory = linux.resources().as_ref().unwrap().memory().unwrap();
    assert_eq!(memory.limit(), Some(1 << 20));
    assert!(
        spec.mounts().as_ref().unwrap().len() >= 5,
        "default mounts kept"
    );
}

#[test]
fn unique_ids_differ() {
    let a = guard::unique_id();
    let b = guard::unique_id();
    assert_ne!(a, b);
    assert!(a.starts_with(&format!("t{}-", std::process::id())));
}

#[test]
fn mounts_under_sees_a_real_mount() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("with space");
    std::fs::create_dir(&target).unwrap();
    // Mount in a child that has its own mount namespace? No: the helper reads our own
    // mountinfo, so mount here and unmount right after.
    nix::mount::mount(
        Some("tmpfs"),
        &target,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    let found = guard::mounts_under(dir.path());
    nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH).unwrap();
    assert_eq!(found, vec![target.to_string_lossy().into_owned()]);
    assert!(guard::mounts_under(dir.path()).is_empty());
}
