//! Container lifecycle: create, start, state, exit, delete; namespaces seen from inside.

use std::time::Duration;

use berth_runtime::{Error, Status};
use berth_tests::guard::TIMEOUT;
use berth_tests::{reaper, Capture, ContainerGuard, Exit};
use nix::sys::signal::Signal;

#[test]
fn create_start_exit_delete() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&["sh", "-c", "echo started; sleep 2; exit 3"])
        .build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    assert_eq!(container.status(), Status::Created);
    assert_eq!(container.id(), guard.id());
    let pid = container.pid().expect("pid of the created init");
    assert!(reaper::is_alive(pid));
    let state = container.oci_state();
    assert_eq!(state.status, Status::Created);
    assert_eq!(state.pid, pid);
    assert_eq!(state.id, guard.id());
    assert_eq!(state.bundle, guard.bundle());
    assert_eq!(state.rootfs, guard.rootfs());

    // Loading from the state dir sees the same container.
    let loaded = guard.runtime().load(guard.id()).expect("load");
    assert_eq!(loaded.pid(), Some(pid));
    assert_eq!(loaded.status(), Status::Created);
    let ids: Vec<String> = guard
        .runtime()
        .list()
        .unwrap()
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    assert_eq!(ids, vec![guard.id().to_string()]);
    assert!(capture.text().is_empty(), "nothing runs before start");

    container.start().expect("start");
    assert!(capture.wait_for("started", TIMEOUT), "{}", capture.text());
    assert_eq!(
        guard.runtime().load(guard.id()).unwrap().status(),
        Status::Running
    );

    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Code(3)));
    let container = guard.runtime().load(guard.id()).unwrap();
    assert_eq!(container.status(), Status::Stopped);
    container.delete(false).expect("delete");
    assert!(matches!(
        guard.runtime().load(guard.id()),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn start_twice_is_refused() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).build();
    let container = guard.create(&spec, Capture::new().stdio()).unwrap();
    container.start().unwrap();
    assert!(
        container.start().is_err(),
        "a running container cannot start again"
    );
}

#[test]
fn kill_stops_a_running_container() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["sleep", "30"]).build();
    let container = guard.create(&spec, Capture::new().stdio()).unwrap();
    let pid = container.pid().unwrap();
    container.start().unwrap();
    // A delete without force is refused while it runs.
    let container = match container.delete(false) {
        Ok(_) => panic!("deleted a running container"),
        Err(_) => guard.runtime().load(guard.id()).unwrap(),
    };
    container.kill(Signal::SIGKILL, false).unwrap();
    assert_eq!(reaper::wait_exit(pid, TIMEOUT), Some(Exit::Signal(9)));
    assert_eq!(container.status(), Status::Stopped);
}

#[test]
fn unknown_container_is_not_found() {
    let guard = ContainerGuard::new();
    match guard.runtime().load("no-such-container") {
        Err(Error::NotFound(id)) => assert_eq!(id, "no-such-container"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn init_is_pid_1_and_ps_shows_only_the_container() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&["sh", "-c", "echo pid=$$; ps -o pid,comm; true"])
        .build();
    let result = guard.run(&spec);
    assert_eq!(result.exit, Exit::Code(0), "{}", result.output);
    assert!(result.output.contains("pid=1\n"), "{}", result.output);
    let processes: Vec<&str> = result
        .output
        .lines()
        .skip_while(|l| !l.contains("PID"))
        .skip(1)
        .collect();
    // `true` after ps keeps sh from exec'ing ps: exactly sh (1) and ps (2).
    assert_eq!(processes.len(), 2, "only sh and ps: {}", result.output);
    for line in processes {
        let pid: i32 = line.split_whitespace().next().unwrap().parse().unwrap();
        assert!(pid <= 2, "unexpected process {line:?}");
    }
}

#[test]
fn hostname_is_set() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["hostname"]).hostname("berth-box").build();
    let result = guard.run(&spec);
    assert_eq!(result.exit, Exit::Code(0), "{}", result.output);
    assert_eq!(result.output.trim(), "berth-box");
}

#[test]
fn network_namespace_has_only_loopback() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&["cat", "/proc/net/dev"]).build();
    let result = guard.run(&spec);
    assert_eq!(result.exit, Exit::Code(0), "{}", result.output);
    let interfaces: Vec<&str> = result
        .output
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, vec!["lo"], "{}", result.output);
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_uid() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&["sh", "-c", "echo uid=$(id -u); sleep 30"])
        .user_namespace(100_000, 65_536)
        .build();
    let capture = Capture::new();
    let container = guard.create(&spec, capture.stdio()).expect("create");
    let pid = container.pid().unwrap();
    container.start().expect("start");
    assert!(capture.wait_for("uid=", TIMEOUT), "{}", capture.text());
    assert!(capture.text().contains("uid=0\n"), "{}", capture.text());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    assert_eq!(uids, vec!["100000"; 4], "{uid_line}");
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields, vec!["0", "100000", "65536"]);
}

#[test]
fn time_namespace_offsets_uptime() {
    let guard = ContainerGuard::new();
    let spec = guard
        .spec(&["cat", "/proc/uptime"])
        .time_offset("monotonic", 86_400)
        .time_offset("boottime", 86_400)
        .build();
    let result = guard.run(&spec);
    assert_eq!(result.exit, Exit::Code(0), "{}", result.output);
    let uptime: f64 = result
        .output
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uptime >= 86_400.0, "uptime {uptime} inside");
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uptime - host > 86_000.0, "inside {uptime}, host {host}");
}

#[test]
fn created_container_can_be_deleted_without_starting() {
    let guard = ContainerGuard::new();
    let spec = guard.spec(&[]).script("touch /ran").build();
    let container = guard.create(&spec, Capture::new().stdio()).unwrap();
    let pid = container.pid().unwrap();
    container.delete(true).expect("delete a created container");
    assert!(reaper::wait_exit(pid, Duration::from_secs(10)).is_some());
    assert!(
        !guard.rootfs().join("ran").exists(),
        "the process never ran"
    );
}
