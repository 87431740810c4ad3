//! Cgroup resource limits, seen from a real container: memory (OOM kill), pids, cpu quota.

use std::time::Duration;

use berth_tests::guard::TIMEOUT;
use berth_tests::{reaper, Capture, ContainerGuard, Exit};
use nix::sys::signal::Signal;

#[test]
fn memory_limit_oom_kills_a_hog() {
    let guard = ContainerGuard::new();
    // busybox tail keeps the last "line" of /dev/zero, which never ends: it grows without bound.
    let spec = guard
        .spec(&["tail", "/dev/zero"])
        .memory_limit(32 << 20)
        .build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    let pid = container.pid().unwrap();
    cap_address_space(pid, 512 << 20);
    container.start().expect("start");
    let exit = reaper::wait_exit(pid, TIMEOUT).expect("the hog was not killed in time");
    assert_eq!(exit, Exit::Signal(9), "{}", capture.text());
    let stats = container.stats().expect("stats");
    assert_eq!(stats.memory.limit, Some(32 << 20));
    let outcome = container.delete(false).expect("delete");
    assert!(
        outcome.oom_killed || stats.memory.oom_kill_count > 0,
        "no OOM kill recorded: {outcome:?}, {stats:?}"
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let guard = ContainerGuard::new();
    let script = "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo all-forked";
    let spec = guard.spec(&["sh", "-c", script]).pids_limit(20).build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    assert!(
        capture.wait_for("can't fork", TIMEOUT),
        "forks beyond pids.max must fail: {}",
        capture.text()
    );
    assert!(!capture.text().contains("all-forked"), "{}", capture.text());
    let stats = container.stats().expect("stats");
    assert_eq!(stats.pids.limit, Some(20));
    assert!(stats.pids.current <= 20, "{stats:?}");
    // The host is not limited.
    let status = std::process::Command::new("/bin/true").status().unwrap();
    assert!(status.success());
    container.kill(Signal::SIGKILL, true).unwrap();
    assert!(reaper::wait_exit(pid, TIMEOUT).is_some());
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&["sh", "-c", "while :; do :; done"])
        .cpu_quota(10_000, 100_000)
        .build();
    let container = guard.create(&spec, Capture::new().stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    std::thread::sleep(Duration::from_millis(1500));
    let stats = container.stats().expect("stats");
    assert!(stats.cpu.nr_throttled > 0, "{:?}", stats.cpu);
    // 10% of one cpu: well under the 1.5 s of wall time.
    assert!(
        stats.cpu.usage_total_ns < 600_000_000,
        "used {} ns of cpu",
        stats.cpu.usage_total_ns
    );
    container.kill(Signal::SIGKILL, true).unwrap();
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Signal(9)));
}

#[test]
fn update_changes_the_pids_limit() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).pids_limit(50).build();
    let mut container = guard.create(&spec, Capture::new().stdio()).expect("create");
    container.start().expect("start");
    let mut resources = oci_spec::runtime::LinuxResources::default();
    let mut pids = oci_spec::runtime::LinuxPids::default();
    pids.set_limit(7);
    resources.set_pids(Some(pids));
    container.update(&resources).expect("update");
    assert_eq!(container.stats().unwrap().pids.limit, Some(7));
    let reloaded = guard.runtime().load(guard.id()).unwrap();
    let limit = reloaded
        .spec()
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.pids().as_ref().map(|p| p.limit()));
    assert_eq!(limit, Some(7), "the update is recorded in the state");
}

/// A safety net for the host if the memory limit does not work: the hog fails with ENOMEM at
/// `bytes` of address space instead of eating the machine's memory.
fn cap_address_space(pid: i32, bytes: u64) {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: prlimit reads `limit`, a live local, and writes nothing (null old-limit pointer).
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_AS, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}
