//! Manager-level tests for v2: a fixture unified hierarchy, and a real cgroup2 mount with a
//! device program.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use crate::cgroups::test_support::{read_at, unique_path, CgroupGuard, Child, ChildKind};
use crate::cgroups::{CgroupError, Manager, Version};

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

#[test]
fn fixture_create_enables_controllers_down_to_parent() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::write(
        r.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    )
    .unwrap();
    std::fs::write(r.join("cgroup.subtree_control"), "cpu\n").unwrap();
    // The intermediate cgroup exists already and offers fewer controllers.
    std::fs::create_dir(r.join("berth")).unwrap();
    std::fs::write(r.join("berth/cgroup.controllers"), "cpu memory pids\n").unwrap();
    std::fs::write(r.join("berth/cgroup.subtree_control"), "").unwrap();

    let m = Manager::with_root(r, Version::V2, Path::new("/berth/c1")).unwrap();
    assert_eq!(m.version(), Version::V2);
    assert_eq!(m.dirs(), vec![r.join("berth/c1")]);
    assert!(matches!(m.stats(), Err(CgroupError::Io { .. })));
    m.create().unwrap();
    assert!(r.join("berth/c1").is_dir());
    // Only missing, wanted, offered controllers: not cpu (enabled), rdma, misc.
    assert_eq!(
        read_at(r, "cgroup.subtree_control"),
        "+cpuset +io +memory +hugetlb +pids"
    );
    assert_eq!(
        read_at(&r.join("berth"), "cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
}

#[test]
fn fixture_apply_checks_available_controllers() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("c");
    std::fs::create_dir(&d).unwrap();
    for f in [
        "memory.max",
        "memory.swap.max",
        "pids.max",
        "cpu.weight",
        "cpu.max",
    ] {
        std::fs::write(d.join(f), "").unwrap();
    }
    std::fs::write(d.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
    let m = Manager::with_root(t.path(), Version::V2, Path::new("c")).unwrap();
    m.apply(&resources(
        r#"{"memory":{"limit":1000,"swap":3000},"pids":{"limit":7},
            "cpu":{"shares":2,"quota":1000,"period":10000}}"#,
    ))
    .unwrap();
    assert_eq!(read_at(&d, "memory.max"), "1000");
    assert_eq!(read_at(&d, "memory.swap.max"), "2000");
    assert_eq!(read_at(&d, "pids.max"), "7");
    assert_eq!(read_at(&d, "cpu.weight"), "1");
    assert_eq!(read_at(&d, "cpu.max"), "1000 10000");
    for (json, ctrl) in [
        (r#"{"blockIO":{"weight":100}}"#, "io"),
        (
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#,
            "hugetlb",
        ),
        (r#"{"cpu":{"mems":"0"}}"#, "cpuset"),
        (r#"{"network":{"classID":1}}"#, "network"),
    ] {
        match m.apply(&resources(json)) {
            Err(CgroupError::Other(msg)) => assert!(msg.contains(ctrl), "{msg}"),
            other => panic!("{json}: {other:?}"),
        }
    }

    // Stats and pids of a fixture with a child cgroup.
    std::fs::write(d.join("cgroup.procs"), "10\n").unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/cgroup.procs"), "11\n").unwrap();
    assert_eq!(m.pids().unwrap(), vec![10, 11]);
    std::fs::write(d.join("pids.current"), "2\n").unwrap();
    std::fs::write(d.join("memory.events"), "oom 1\noom_kill 3\n").unwrap();
    std::fs::write(d.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    let s = m.stats().unwrap();
    assert_eq!((s.pids.current, s.pids.limit), (2, Some(7)));
    assert_eq!(m.oom_kill_count().unwrap(), 3);
    assert!(!m.is_frozen().unwrap());
}

/// Restores the root's `cgroup.subtree_control` when the test enabled controllers there.
struct SubtreeRestore {
    root: PathBuf,
    before: String,
}

impl Drop for SubtreeRestore {
    fn drop(&mut self) {
        let Ok(now) = std::fs::read_to_string(self.root.join("cgroup.subtree_control")) else {
            return;
        };
        for c in now.split_whitespace() {
            if !self.before.split_whitespace().any(|b| b == c) {
                let _ = std::fs::write(self.root.join("cgroup.subtree_control"), format!("-{c}"));
            }
        }
    }
}

/// A device program on the host's cgroup2 mount (`/sys/fs/cgroup/unified`, which only has
/// hugetlb here): /dev/null denied, everything else allowed; then replaced on a second apply.
#[test]
fn real_v2_device_program() {
    let root = Path::new("/sys/fs/cgroup/unified");
    assert!(
        root.join("cgroup.controllers").exists(),
        "this test needs a cgroup2 mount at {}",
        root.display()
    );
    let _restore = SubtreeRestore {
        root: root.to_path_buf(),
        before: read_at(root, "cgroup.subtree_control"),
    };
    let path = unique_path("bpf");
    let m = Manager::with_root(root, Version::V2, &path).unwrap();
    let g = CgroupGuard::new(m.clone());
    m.create().unwrap();
    m.apply(&resources(
        r#"{"devices":[{"allow":true,"access":"rwm"},
                       {"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#,
    ))
    .unwrap();
    let dir_fd =
        || -> std::os::fd::OwnedFd { std::fs::File::open(m.dirs()[0].clone()).unwrap().into() };
    assert_eq!(
        super::bpf::query_device_programs(&dir_fd()).unwrap().len(),
        1
    );

    let mut probe = Child::spawn(ChildKind::ProbeDevices);
    m.add_task(probe.pid).unwrap();
    assert_eq!(m.pids().unwrap(), vec![probe.pid]);
    assert_eq!(
        probe.go_and_wait(),
        3,
        "/dev/null must fail with EPERM, /dev/zero open"
    );

    // Applying again replaces the program: still exactly one, now allowing /dev/null.
    m.apply(&resources(r#"{"devices":[{"allow":true}]}"#))
        .unwrap();
    assert_eq!(
        super::bpf::query_device_programs(&dir_fd()).unwrap().len(),
        1
    );
    let mut probe = Child::spawn(ChildKind::ProbeDevices);
    m.add_task(probe.pid).unwrap();
    assert_eq!(
        probe.go_and_wait(),
        2,
        "/dev/null must open after the update"
    );

    // Freezing works on any cgroup2 directory.
    let sleeper = Child::spawn(ChildKind::Sleep);
    m.add_task(sleeper.pid).unwrap();
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());

    let mut g = g;
    g.children.push(sleeper);
    g.children.clear();
    m.remove().unwrap();
    assert!(!m.dirs()[0].exists());
}
