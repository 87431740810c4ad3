//! Security battery, resources: a fork bomb under a pids limit, a memory bomb under a memory
//! limit and disk filling of size-limited tmpfs mounts stay inside their container; the host and
//! a neighbour container keep working during and after.

use std::time::{Duration, Instant};

use berth_tests::attack::{Battery, IMAGE};
use berth_tests::daemon::{err_text, text};

/// Starts a detached neighbour container and returns its name.
fn neighbour(b: &Battery, name: &str) -> String {
    let o = b.d.run(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        IMAGE,
        "sleep",
        "300",
    ]);
    assert!(o.status.success(), "{}", err_text(&o));
    name.to_string()
}

/// The neighbour answers an exec.
fn assert_alive(b: &Battery, name: &str) {
    let o = b.d.run(&["exec", name, "echo", "alive"]);
    assert_eq!(text(&o), "alive\n", "{name}: {}", err_text(&o));
}

/// The cgroup v1/v2 file `file` of container `id` under the daemon's cgroup root.
fn cgroup_file(b: &Battery, controller: &str, id: &str, file: &str) -> String {
    let rel = format!(
        "{}/default/{id}/{file}",
        b.d.cgroup_root.trim_start_matches('/')
    );
    for dir in [
        format!("/sys/fs/cgroup/{controller}"),
        "/sys/fs/cgroup".into(),
    ] {
        let p = std::path::Path::new(&dir).join(&rel);
        if let Ok(v) = std::fs::read_to_string(&p) {
            return v.trim().to_string();
        }
    }
    panic!("no {controller} {file} for {id}")
}

#[test]
fn a_fork_bomb_is_held_by_the_pids_limit() {
    let b = Battery::start();
    let n = neighbour(&b, "fb-neighbour");
    let o = b.d.run(&[
        "run",
        "-d",
        "--name",
        "forkbomb",
        "--network",
        "none",
        "--pids-limit",
        "64",
        IMAGE,
        "sh",
        "-c",
        "exec 2>/dev/null; b() { b | b & }; b; while :; do sleep 1000 & done",
    ]);
    assert!(o.status.success(), "{}", err_text(&o));
    let id = text(&o).trim().to_string();
    // The bomb reaches its limit (forks refused: pids.events counts them) and stays there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = cgroup_file(&b, "pids", &id, "pids.events");
        let refused: u64 = events
            .strip_prefix("max ")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if refused > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bomb never hit its limit: {events}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        let current: u64 = cgroup_file(&b, "pids", &id, "pids.current")
            .parse()
            .unwrap_or(0);
        assert!(current <= 64, "pids.current {current} over the limit");
        assert_alive(&b, &n);
        std::thread::sleep(Duration::from_millis(200));
    }
    // The host still forks.
    let o = std::process::Command::new("true").output().unwrap();
    assert!(o.status.success());
    // And the bomb can be removed.
    let o = b.d.run(&["rm", "-f", "forkbomb"]);
    assert!(o.status.success(), "{}", err_text(&o));
    assert_alive(&b, &n);
}

#[test]
fn a_memory_bomb_is_killed_inside_its_limit() {
    let b = Battery::start();
    let n = neighbour(&b, "mb-neighbour");
    let o = b.run(
        &["-m", "32m", "--memory-swap", "32m"],
        &["sh", "-c", "x=0123456789abcdef; while :; do x=$x$x; done"],
    );
    // OOM-killed: SIGKILL, 137.
    assert_eq!(o.status.code(), Some(137), "{}{}", text(&o), err_text(&o));
    assert_alive(&b, &n);
}

#[test]
fn filling_a_size_limited_tmpfs_stops_at_its_size() {
    let b = Battery::shared();
    let n = neighbour(&b, "fill-neighbour");
    let script = "dd if=/dev/zero of=/fill/big bs=1M count=16 2>&1; echo rc=$?; \
                  du -k /fill/big; df -k /dev/shm /dev | tail -2";
    let (out, err, _) = b.sh(&["--tmpfs", "/fill:size=2m"], script);
    assert!(out.contains("No space left on device"), "{out}{err}");
    let used: u64 = out
        .lines()
        .find(|l| l.ends_with("/fill/big"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(used <= 2048, "{used} KiB written into a 2 MiB tmpfs");
    // /dev/shm and /dev are size-limited too (64 MiB).
    for line in out.lines().filter(|l| l.contains("/dev")) {
        let size: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(size <= 65536, "unlimited tmpfs: {line}");
    }
    assert_alive(&b, &n);
    b.d.run(&["rm", "-f", &n]);
}
