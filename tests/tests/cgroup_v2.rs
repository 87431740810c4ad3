//! cgroup v2 only: the eBPF device program, io.max on a real block device, the container's view
//! of its own cgroup, the control files the spec's resources end up in, the freezer files, and
//! usage statistics.
//!
//! Every test returns early (printing "skipped: not cgroup v2") on a v1 or hybrid host. In the
//! VM lane (`tests/vm/run`, which sets `BERTH_VM_LANE`), a v1 host or a missing block device is a
//! failure instead, so the lane cannot pass by skipping.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_runtime::cgroups::{host_version, Version};
use berth_tests::guard::TIMEOUT;
use berth_tests::{bundle, reaper, Capture, ContainerGuard, Exit, SpecBuilder};
use nix::sys::signal::Signal;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use serde_json::json;

/// Whether the host runs cgroup v2 (else the caller skips).
fn v2() -> bool {
    let v2 = matches!(host_version(), Ok(Version::V2));
    if !v2 {
        assert!(
            std::env::var_os("BERTH_VM_LANE").is_none(),
            "the VM lane must run on cgroup v2"
        );
        println!("skipped: not cgroup v2");
    }
    v2
}

/// The container's cgroup directory on the host.
fn cgroup_dir(id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(bundle::cgroups_path(id).trim_start_matches('/'))
}

fn read(dir: &Path, file: &str) -> String {
    let path = dir.join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// A whole-disk block device of the host with data on it (the VM lane's virtio disk).
struct BlockDevice {
    path: PathBuf,
    major: i64,
    minor: i64,
}

impl BlockDevice {
    fn id(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

/// The first disk in /sys/block with a size and a node in /dev; `None` (printing why) when
/// there is none, which fails the test in the VM lane.
fn block_device() -> Option<BlockDevice> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let found = names.into_iter().find_map(|name| {
        let sys = Path::new("/sys/block").join(&name);
        let size: u64 = std::fs::read_to_string(sys.join("size"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let dev = std::fs::read_to_string(sys.join("dev")).ok()?;
        let (major, minor) = dev.trim().split_once(':')?;
        let path = Path::new("/dev").join(&name);
        let is_block = std::fs::metadata(&path)
            .map(|m| m.file_type().is_block_device())
            .unwrap_or(false);
        if size < 8192 || !is_block {
            return None;
        }
        Some(BlockDevice {
            path,
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    });
    if found.is_none() {
        assert!(
            std::env::var_os("BERTH_VM_LANE").is_none(),
            "the VM lane must have a block device (/dev/vda)"
        );
        println!("skipped: no block device");
    }
    found
}

/// `spec` with `dev` bind-mounted read-only at /dev/disk0 (device nodes allowed).
fn with_disk(spec: SpecBuilder, dev: &BlockDevice) -> SpecBuilder {
    let source = dev.path.to_str().expect("utf-8 device path");
    spec.mount(bundle::mount(
        "bind",
        source,
        "/dev/disk0",
        &["rbind", "nosuid", "ro"],
    ))
}

fn device_rules(rules: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
    serde_json::from_value(rules).expect("device rules")
}

/// Reads 512 bytes of the disk inside the container: the eBPF device program decides whether
/// opening it is allowed. /dev/null must work whatever the rules say.
const PROBE_DISK: &str = "if dd if=/dev/disk0 of=/dev/null bs=512 count=1 2>/tmp/err; \
     then echo OPENED; else echo DENIED; cat /tmp/err; fi; \
     echo x > /dev/null && echo NULL-OK";

#[test]
fn device_program_enforces_the_spec_rules() {
    if !v2() {
        return;
    }
    let Some(disk) = block_device() else { return };
    let (maj, min) = (disk.major, disk.minor);
    let cases = [
        ("no rule for the disk", json!([]), false),
        (
            "deny all, then read allowed",
            json!([{"allow": false, "access": "rwm"},
                   {"allow": true, "type": "b", "major": maj, "minor": min, "access": "r"}]),
            true,
        ),
        (
            "only write allowed",
            json!([{"allow": true, "type": "b", "major": maj, "minor": min, "access": "w"}]),
            false,
        ),
        (
            "any minor of the major",
            json!([{"allow": true, "type": "b", "major": maj, "access": "rm"}]),
            true,
        ),
        (
            "char rule with the same numbers",
            json!([{"allow": true, "type": "c", "major": maj, "minor": min, "access": "rwm"}]),
            false,
        ),
        ("allow all", json!([{"allow": true, "access": "rwm"}]), true),
        (
            "allow all, then deny the disk",
            json!([{"allow": true, "access": "rwm"},
                   {"allow": false, "type": "b", "major": maj, "minor": min, "access": "rwm"}]),
            false,
        ),
    ];
    for (what, rules, allowed) in cases {
        let guard = ContainerGuard::new();
        let rules = device_rules(rules);
        let spec = with_disk(guard.spec(&[]).script(PROBE_DISK), &disk)
            .resources(|r| {
                r.set_devices(Some(rules));
            })
            .build();
        let result = guard.run(&spec);
        let out = &result.output;
        assert_eq!(result.exit, Exit::Code(0), "{what}: {out}");
        assert!(out.contains("NULL-OK"), "{what}: /dev/null refused: {out}");
        if allowed {
            assert!(out.contains("OPENED"), "{what}: disk refused: {out}");
        } else {
            assert!(
                out.contains("DENIED") && out.contains("Operation not permitted"),
                "{what}: disk not refused by the device program: {out}"
            );
        }
    }
}

#[test]
fn io_max_is_written_and_throttles_reads() {
    if !v2() {
        return;
    }
    let Some(disk) = block_device() else { return };
    let guard = ContainerGuard::new();
    let blkio = json!({
        "throttleReadBpsDevice": [{"major": disk.major, "minor": disk.minor, "rate": 1_048_576}],
        "throttleWriteIOPSDevice": [{"major": disk.major, "minor": disk.minor, "rate": 100}],
    });
    let rules = device_rules(json!([
        {"allow": true, "type": "b", "major": disk.major, "minor": disk.minor, "access": "r"}
    ]));
    // 3 MiB of direct reads at 1 MiB/s.
    let spec = with_disk(
        guard
            .spec(&[])
            .script("dd if=/dev/disk0 of=/dev/null bs=256k count=12 iflag=direct && echo READ"),
        &disk,
    )
    .resources(|r| {
        r.set_block_io(Some(serde_json::from_value(blkio).expect("blockIO")));
        r.set_devices(Some(rules));
    })
    .build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    let pid = container.pid().unwrap();
    let io_max = read(&cgroup_dir(guard.id()), "io.max");
    assert_eq!(
        io_max,
        format!("{} rbps=1048576 wbps=max riops=max wiops=100", disk.id())
    );
    let started = Instant::now();
    container.start().expect("start");
    let exit = reaper::wait_exit(pid, TIMEOUT).expect("the reader did not finish");
    let elapsed = started.elapsed();
    assert_eq!(exit, Exit::Code(0), "{}", capture.text());
    assert!(capture.text().contains("READ"), "{}", capture.text());
    assert!(
        elapsed >= Duration::from_millis(1500),
        "3 MiB at 1 MiB/s took only {elapsed:?}: io.max is not enforced"
    );
    let stats = container.stats().expect("stats");
    assert!(stats.io.read_bytes >= 3 << 20, "{:?}", stats.io);
    assert!(stats.io.read_ops >= 12, "{:?}", stats.io);
}

/// A per-device weight where the device has neither BFQ nor io.cost: the create succeeds
/// (the weight is skipped, like runc), it used to fail with EOPNOTSUPP.
#[test]
fn io_weight_per_device_is_accepted() {
    if !v2() {
        return;
    }
    let Some(disk) = block_device() else { return };
    let guard = ContainerGuard::new();
    let blkio = json!({
        "weight": 100,
        "weightDevice": [{"major": disk.major, "minor": disk.minor, "weight": 1000}],
    });
    let spec = guard
        .spec(&["true"])
        .resources(|r| {
            r.set_block_io(Some(serde_json::from_value(blkio).expect("blockIO")));
        })
        .build();
    let container = guard
        .create(&spec, Capture::new().stdio())
        .expect("create with a per-device io weight");
    let weights = read(&cgroup_dir(guard.id()), "io.weight");
    // 1 + (100 - 10) * 9999 / 990 by default; the device's weight where the kernel keeps one.
    assert!(weights.starts_with("default 910"), "{weights}");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Code(0)));
}

#[test]
fn a_container_sees_only_its_own_cgroup() {
    if !v2() {
        return;
    }
    let guard = ContainerGuard::new();
    let script = "cat /proc/self/cgroup; echo ---; ls /sys/fs/cgroup; echo ---; \
                  cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; echo ---; \
                  cat /sys/fs/cgroup/cgroup.controllers; echo ---; \
                  if echo 1 > /sys/fs/cgroup/cgroup.freeze; then echo WRITABLE; \
                  else echo READ-ONLY; fi; echo ---; sleep 30";
    let spec = guard
        .spec(&[])
        .script(script)
        .memory_limit(48 << 20)
        .pids_limit(64)
        .build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    let done = capture.wait_for("READ-ONLY\n---\n", TIMEOUT);
    let output = capture.text();
    assert!(done, "{output}");
    let parts: Vec<&str> = output.split("---\n").collect();
    assert_eq!(
        parts[0], "0::/\n",
        "a cgroup namespace rooted at the container"
    );
    let files: Vec<&str> = parts[1].lines().collect();
    for file in [
        "cgroup.procs",
        "memory.max",
        "pids.max",
        "cpu.max",
        "io.max",
    ] {
        assert!(files.contains(&file), "{file} missing: {files:?}");
    }
    assert!(
        !files.contains(&bundle::CGROUP_PARENT),
        "the host's tree is visible: {files:?}"
    );
    assert_eq!(parts[2], "50331648\n64\n");
    let controllers: Vec<&str> = parts[3].split_whitespace().collect();
    for c in ["cpu", "io", "memory", "pids"] {
        assert!(controllers.contains(&c), "{c} not enabled: {controllers:?}");
    }
    // The host sees the container's cgroup at its full path.
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(
        host_view,
        format!("0::{}\n", bundle::cgroups_path(guard.id()))
    );
    container.kill(Signal::SIGKILL, true).unwrap();
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Signal(9)));
}

#[test]
fn resources_and_updates_land_in_the_control_files() {
    if !v2() {
        return;
    }
    let guard = ContainerGuard::new();
    let cpu = json!({"shares": 2048, "quota": 50000, "period": 100000, "burst": 1000, "cpus": "0"});
    let spec = guard
        .spec(&["sh", "-c", "grep Cpus_allowed_list /proc/self/status"])
        .resources(|r| {
            let memory = json!({"limit": 64 << 20, "reservation": 16 << 20, "swap": 96 << 20});
            r.set_memory(Some(serde_json::from_value(memory).expect("memory")));
            r.set_cpu(Some(serde_json::from_value(cpu).expect("cpu")));
            let unified = [("memory.high".to_string(), (56 << 20).to_string())];
            r.set_unified(Some(unified.into_iter().collect()));
            let huge = json!([{"pageSize": "2MB", "limit": 4 << 20}]);
            r.set_hugepage_limits(Some(serde_json::from_value(huge).expect("hugepages")));
            let blkio = json!({"weight": 500});
            r.set_block_io(Some(serde_json::from_value(blkio).expect("blockIO")));
        })
        .pids_limit(33)
        .build();
    let capture = Capture::new();
    let mut container = guard.create(&spec, capture.stdio()).expect("create");
    let dir = cgroup_dir(guard.id());
    let expected = [
        ("memory.max", "67108864"),
        ("memory.low", "16777216"),
        ("memory.swap.max", "33554432"),
        ("memory.high", "58720256"),
        // 1 + (2048 - 2) * 9999 / 262142
        ("cpu.weight", "79"),
        ("cpu.max", "50000 100000"),
        ("cpu.max.burst", "1000"),
        ("cpuset.cpus", "0"),
        ("hugetlb.2MB.max", "4194304"),
        // 1 + (500 - 10) * 9999 / 990
        ("io.weight", "default 4950"),
        ("pids.max", "33"),
    ];
    for (file, value) in expected {
        assert_eq!(read(&dir, file), value, "{file}");
    }

    let update: LinuxResources = serde_json::from_value(json!({
        "memory": {"limit": 80 << 20},
        "cpu": {"quota": 20000},
        "pids": {"limit": -1},
    }))
    .expect("update");
    container.update(&update).expect("update");
    for (file, value) in [
        ("memory.max", "83886080"),
        ("memory.swap.max", "33554432"),
        ("cpu.max", "20000 100000"),
        ("pids.max", "max"),
    ] {
        assert_eq!(read(&dir, file), value, "{file} after update");
    }
    let stats = container.stats().expect("stats");
    assert_eq!(stats.memory.limit, Some(80 << 20));
    assert_eq!(stats.pids.limit, None);

    let pid = container.pid().unwrap();
    container.start().expect("start");
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Code(0)));
    assert_eq!(capture.text().split_whitespace().last(), Some("0"));
}

#[test]
fn pause_and_resume_drive_cgroup_freeze() {
    if !v2() {
        return;
    }
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).build();
    let container = guard.create(&spec, Capture::new().stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    let dir = cgroup_dir(guard.id());
    let frozen = || read(&dir, "cgroup.events").contains("frozen 1");
    assert!(!frozen());
    container.pause().expect("pause");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert!(frozen(), "{}", read(&dir, "cgroup.events"));
    container.resume().expect("resume");
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
    assert!(!frozen(), "{}", read(&dir, "cgroup.events"));
    // Killing a paused container works too (the kernel delivers SIGKILL to frozen tasks).
    container.pause().expect("pause again");
    container.kill(Signal::SIGKILL, true).expect("kill");
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Signal(9)));
}

#[test]
fn stats_report_cpu_memory_pids_and_io() {
    if !v2() {
        return;
    }
    let disk = block_device();
    let guard = ContainerGuard::new();
    let mut script = String::from(
        "dd if=/dev/zero of=/tmp/blob bs=1M count=8 2>/dev/null; \
         i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; ",
    );
    let mut spec = guard.spec(&[]);
    if let Some(disk) = &disk {
        script.push_str("dd if=/dev/disk0 of=/dev/null bs=64k count=16 iflag=direct; ");
        let rules = device_rules(json!([
            {"allow": true, "type": "b", "major": disk.major, "minor": disk.minor, "access": "r"}
        ]));
        spec = with_disk(spec, disk).resources(|r| {
            r.set_devices(Some(rules));
        });
    }
    script.push_str("echo READY; sleep 30");
    let spec = spec.script(&script).build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    assert!(capture.wait_for("READY", TIMEOUT), "{}", capture.text());
    let stats = container.stats().expect("stats");
    assert!(stats.cpu.usage_total_ns > 0, "{:?}", stats.cpu);
    assert!(stats.cpu.usage_user_ns > 0, "{:?}", stats.cpu);
    assert!(stats.memory.usage >= 8 << 20, "{:?}", stats.memory);
    assert!(
        stats.memory.max_usage >= stats.memory.usage,
        "{:?}",
        stats.memory
    );
    assert!(stats.memory.cache >= 8 << 20, "{:?}", stats.memory);
    assert!(stats.memory.working_set > 0, "{:?}", stats.memory);
    assert_eq!(stats.memory.limit, None);
    assert_eq!(stats.memory.oom_kill_count, 0);
    // sh and sleep, or sleep alone when sh execs its last command.
    assert!((1..=2).contains(&stats.pids.current), "{:?}", stats.pids);
    assert_eq!(stats.pids.limit, None);
    if disk.is_some() {
        assert!(stats.io.read_bytes >= 1 << 20, "{:?}", stats.io);
        assert!(stats.io.read_ops >= 16, "{:?}", stats.io);
    }
    container.kill(Signal::SIGKILL, true).unwrap();
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Signal(9)));
}
