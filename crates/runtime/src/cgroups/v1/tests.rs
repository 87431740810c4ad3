//! Manager-level tests for v1: fixture hierarchies, and the real hierarchies of this host.

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use crate::cgroups::test_support::{read_at, unique_path, CgroupGuard, Child, ChildKind};
use crate::cgroups::{host_version, CgroupError, Manager, Version};

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

/// A fake `/sys/fs/cgroup` with `cpu,cpuacct` (plus symlinks), memory, pids and freezer, and
/// the cgroup `berth/c1` already holding the files the tests touch.
fn fake_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let files: &[(&str, &[&str])] = &[
        (
            "cpu,cpuacct",
            &["cgroup.procs", "cpu.shares", "cpu.cfs_quota_us"],
        ),
        ("memory", &["cgroup.procs", "memory.limit_in_bytes"]),
        ("pids", &["cgroup.procs", "pids.max"]),
        ("freezer", &["cgroup.procs", "freezer.state"]),
    ];
    for (h, fs) in files {
        let d = r.join(h).join("berth/c1");
        std::fs::create_dir_all(&d).unwrap();
        for f in *fs {
            std::fs::write(d.join(f), "").unwrap();
        }
    }
    std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpu")).unwrap();
    std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpuacct")).unwrap();
    t
}

#[test]
fn fixture_apply_add_task_and_missing_controllers() {
    let t = fake_root();
    let m = Manager::with_root(t.path(), Version::V1, Path::new("/berth/c1")).unwrap();
    assert_eq!(m.version(), Version::V1);
    assert_eq!(m.dirs().len(), 4);
    let h = m.hierarchies();
    assert_eq!(
        h[0].controllers,
        vec!["cpu".to_string(), "cpuacct".to_string()]
    );
    assert_eq!(h[0].dir, h[0].mount_point.join("berth/c1"));
    m.create().unwrap();
    m.apply(&resources(
        r#"{"cpu":{"shares":256,"quota":20000},"memory":{"limit":1048576},"pids":{"limit":5}}"#,
    ))
    .unwrap();
    let cpu = t.path().join("cpu,cpuacct/berth/c1");
    assert_eq!(read_at(&cpu, "cpu.shares"), "256");
    assert_eq!(read_at(&cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(
        read_at(&t.path().join("memory/berth/c1"), "memory.limit_in_bytes"),
        "1048576"
    );
    assert_eq!(read_at(&t.path().join("pids/berth/c1"), "pids.max"), "5");

    m.add_task(4242).unwrap();
    for h in ["cpu,cpuacct", "memory", "pids", "freezer"] {
        assert_eq!(
            read_at(&t.path().join(h).join("berth/c1"), "cgroup.procs"),
            "4242"
        );
    }
    // pids() reads the pids hierarchy.
    assert_eq!(m.pids().unwrap(), vec![4242]);

    // Absent controllers fail only when the spec asks for them, naming the controller.
    for (json, ctrl) in [
        (
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#,
            "hugetlb",
        ),
        (r#"{"network":{"classID":1}}"#, "net_cls"),
        (
            r#"{"network":{"priorities":[{"name":"lo","priority":1}]}}"#,
            "net_prio",
        ),
        (r#"{"devices":[]}"#, "devices"),
        (r#"{"blockIO":{"weight":100}}"#, "blkio"),
        (r#"{"cpu":{"cpus":"0"}}"#, "cpuset"),
    ] {
        match m.apply(&resources(json)) {
            Err(CgroupError::Other(msg)) => assert!(msg.contains(ctrl), "{msg}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    m.apply(&resources(r#"{"hugepageLimits":[],"network":{}}"#))
        .unwrap();
    assert!(m.apply(&resources(r#"{"unified":{"a":"b"}}"#)).is_err());
}

/// The real v1 hierarchies: create, limits, a child, pids, freeze, stats, remove.
#[test]
fn real_v1_lifecycle() {
    assert_eq!(
        host_version().unwrap(),
        Version::V1,
        "this test needs a v1 host"
    );
    let path = unique_path("v1");
    let m = Manager::new(&path).unwrap();
    let mut g = CgroupGuard::new(m.clone());
    m.create().unwrap();
    for d in m.dirs() {
        assert!(d.is_dir(), "{}", d.display());
    }
    let dir = |ctrl: &str| {
        Path::new("/sys/fs/cgroup")
            .join(ctrl)
            .join(path.strip_prefix("/").unwrap())
    };
    // A new cpuset got its CPUs and memory nodes from its parent.
    assert!(!read_at(&dir("cpuset"), "cpuset.cpus").is_empty());

    m.apply(&resources(
        r#"{"devices":[{"allow":false,"access":"rwm"},
                       {"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"}],
            "memory":{"limit":67108864,"swap":134217728,"reservation":33554432},
            "cpu":{"shares":512,"quota":50000,"period":100000},
            "pids":{"limit":16}}"#,
    ))
    .unwrap();
    assert_eq!(read_at(&dir("memory"), "memory.limit_in_bytes"), "67108864");
    assert_eq!(
        read_at(&dir("memory"), "memory.memsw.limit_in_bytes"),
        "134217728"
    );
    assert_eq!(read_at(&dir("cpu"), "cpu.cfs_quota_us"), "50000");
    assert_eq!(read_at(&dir("cpu"), "cpu.shares"), "512");
    assert_eq!(read_at(&dir("pids"), "pids.max"), "16");
    assert_eq!(read_at(&dir("devices"), "devices.list"), "c 1:5 rwm");
    // Lowering both again exercises the other write order (limit before memsw).
    m.apply(&resources(
        r#"{"memory":{"limit":33554432,"swap":33554432}}"#,
    ))
    .unwrap();
    assert_eq!(
        read_at(&dir("memory"), "memory.memsw.limit_in_bytes"),
        "33554432"
    );
    // hugetlb and net_cls are not mounted here.
    assert!(m
        .apply(&resources(
            r#"{"hugepageLimits":[{"pageSize":"2MB","limit":0}]}"#
        ))
        .is_err());

    let sleeper = Child::spawn(ChildKind::Sleep);
    let pid = sleeper.pid;
    g.children.push(sleeper);
    m.add_task(pid).unwrap();
    assert_eq!(m.pids().unwrap(), vec![pid]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&format!("memory:{}", path.display())), "{own}");

    assert!(!m.is_frozen().unwrap());
    m.freeze().unwrap();
    assert!(m.is_frozen().unwrap());
    m.thaw().unwrap();
    assert!(!m.is_frozen().unwrap());

    let s = m.stats().unwrap();
    assert_eq!(s.pids.current, 1);
    assert_eq!(s.pids.limit, Some(16));
    assert_eq!(s.memory.limit, Some(33554432));
    assert_eq!(m.oom_kill_count().unwrap(), 0);

    // The device allowlist is enforced: /dev/null (1:3) denied, /dev/zero (1:5) allowed.
    let mut probe = Child::spawn(ChildKind::ProbeDevices);
    m.add_task(probe.pid).unwrap();
    assert_eq!(probe.go_and_wait(), 3);

    // A child cgroup is removed with its parent.
    let sub = Manager::new(&path.join("sub")).unwrap();
    sub.create().unwrap();
    g.children.clear();
    drop(probe);
    m.remove().unwrap();
    for d in m.dirs() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    m.remove().unwrap();
}

/// The OOM killer fires in a small v1 memory cgroup and is counted.
#[test]
fn real_v1_oom_kill_is_counted() {
    assert_eq!(
        host_version().unwrap(),
        Version::V1,
        "this test needs a v1 host"
    );
    let m = Manager::new(&unique_path("oom")).unwrap();
    let mut g = CgroupGuard::new(m.clone());
    m.create().unwrap();
    // 16 MiB of memory and no swap on top of it.
    m.apply(&resources(
        r#"{"memory":{"limit":16777216,"swap":16777216}}"#,
    ))
    .unwrap();
    assert_eq!(m.oom_kill_count().unwrap(), 0);
    let mut eater = Child::spawn(ChildKind::EatMemory);
    m.add_task(eater.pid).unwrap();
    let st = eater.go_and_wait_status();
    assert_eq!(
        st,
        nix::sys::wait::WaitStatus::Signaled(
            nix::unistd::Pid::from_raw(eater.pid),
            nix::sys::signal::Signal::SIGKILL,
            false
        )
    );
    assert_eq!(m.oom_kill_count().unwrap(), 1);
    let s = m.stats().unwrap();
    assert_eq!(s.memory.oom_kill_count, 1);
    assert!(s.memory.max_usage > 8 << 20, "{:?}", s.memory);
    assert_eq!(s.memory.limit, Some(16 << 20));
    g.children.push(eater);
}
