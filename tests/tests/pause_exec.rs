//! Pause/resume through the freezer, exec into a running container, and a clean delete.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_runtime::{ExecOptions, Status};
use berth_tests::guard::{cgroup_dirs, mounts_under, TIMEOUT};
use berth_tests::{bundle, reaper, Capture, ContainerGuard, Exit};
use nix::sys::signal::Signal;
use oci_spec::runtime::Process;

/// The counter the container writes, once it is a number.
fn read_count(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn wait_count(path: &Path, capture: &Capture) -> u64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(n) = read_count(path) {
            return n;
        }
        let output = capture.text();
        assert!(
            Instant::now() < deadline,
            "the counter never started: {output}"
        );
        assert!(!output.contains("NOT-IN-TEST-ROOTFS"), "{output}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&[])
        .script("i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; done")
        .build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    container.start().expect("start");
    let counter = guard.rootfs().join("tmp/count");
    wait_count(&counter, &capture);

    container.pause().expect("pause");
    assert_eq!(container.status(), Status::Paused);
    assert_eq!(container.oci_state().status, Status::Paused);
    let frozen = wait_count(&counter, &capture);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        wait_count(&counter, &capture),
        frozen,
        "the counter moved while paused"
    );
    assert!(container.pause().is_err(), "pausing twice is refused");

    container.resume().expect("resume");
    assert_eq!(container.status(), Status::Running);
    let deadline = Instant::now() + Duration::from_secs(5);
    while wait_count(&counter, &capture) == frozen {
        assert!(
            Instant::now() < deadline,
            "the counter did not move after resume"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!capture.text().contains("NOT-IN-TEST-ROOTFS"));
}

#[test]
fn exec_joins_the_init_namespaces_and_cgroup() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).build();
    let container = guard.create(&spec, Capture::new().stdio()).expect("create");
    let init = container.pid().unwrap();
    container.start().expect("start");

    let mut process: Process = spec.process().clone().unwrap();
    process.set_args(Some(
        [
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup; echo ---; \
             for ns in pid mnt net; do readlink /proc/self/ns/$ns; done; hostname",
        ]
        .map(String::from)
        .to_vec(),
    ));
    let capture = Capture::new();
    let pid = container
        .exec(
            &process,
            ExecOptions {
                stdio: capture.stdio(),
                ..Default::default()
            },
        )
        .expect("exec");
    assert_eq!(
        reaper::wait_exit(pid, TIMEOUT),
        Some(Exit::Code(0)),
        "{}",
        capture.text()
    );
    let output = capture.text();
    let parts: Vec<&str> = output.split("---\n").collect();
    assert_eq!(parts.len(), 3, "{output}");
    assert_eq!(
        parts[0], parts[1],
        "exec'd process and init in different cgroups"
    );
    let links: Vec<&str> = parts[2].lines().collect();
    for (i, ns) in ["pid", "mnt", "net"].iter().enumerate() {
        let host_view = std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap();
        assert_eq!(
            links[i],
            host_view.to_str().unwrap(),
            "{ns} namespace differs"
        );
    }
    assert_eq!(links[3], guard.id(), "uts namespace (hostname)");

    // The init still runs; exec'd processes were in its cgroup.
    assert_eq!(container.status(), Status::Running);
    let host_cgroup = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert!(
        host_cgroup.contains(&bundle::cgroups_path(guard.id())),
        "{host_cgroup}"
    );
}

#[test]
fn exec_in_a_stopped_container_is_refused() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["true"]).build();
    let container = guard.create(&spec, Capture::new().stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Code(0)));
    let process = spec.process().clone().unwrap();
    assert!(container.exec(&process, ExecOptions::default()).is_err());
}

#[test]
fn delete_leaves_no_mount_and_no_cgroup() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).build();
    let container = guard.create(&spec, Capture::new().stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    assert!(
        !cgroup_dirs(guard.id()).is_empty(),
        "the container has cgroup dirs while running"
    );
    let pids = container.pids().expect("pids");
    assert!(pids.contains(&pid), "{pids:?} lacks the init {pid}");

    container.kill(Signal::SIGKILL, true).expect("kill");
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Signal(9)));
    let container = guard.runtime().load(guard.id()).expect("load");
    container.delete(false).expect("delete");
    assert_eq!(cgroup_dirs(guard.id()), Vec::<std::path::PathBuf>::new());
    assert_eq!(mounts_under(guard.bundle()), Vec::<String>::new());
    assert!(
        !guard.state_root().join(guard.id()).exists(),
        "state dir removed"
    );
}
