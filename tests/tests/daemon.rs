//! berthd + berthctl end to end (containers from a busybox `--rootfs`).

use std::time::{Duration, Instant};

use berth_tests::daemon::{err_text, ok, text, DaemonGuard};

#[test]
fn run_prints_output_and_exits_with_the_container_code() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let o = d.run(&[
        "run",
        "--rm",
        "--rootfs",
        &r,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(text(&o), "out\n");
    assert_eq!(err_text(&o), "err\n");
    // --rm: nothing left.
    assert_eq!(text(&d.run(&["ps", "-aq"])), "");
}

/// --privileged gives the container every capability the daemon itself holds (this host
/// withholds some from root: asking for those would fail the start).
#[test]
fn privileged_gets_the_daemons_capabilities_and_host_devices() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let host_bnd = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let o = d.run(&[
        "run",
        "--rm",
        "--privileged",
        "--network",
        "none",
        "--rootfs",
        &r,
        "sh",
        "-c",
        "grep CapEff /proc/self/status; test -e /dev/kmsg && echo devices",
    ]);
    assert!(o.status.success(), "{} {}", text(&o), err_text(&o));
    let out = text(&o);
    assert!(out.contains(&host_bnd), "{out} vs {host_bnd}");
    assert!(out.contains("devices"), "{out}");
}

#[test]
fn exec_logs_follow_stop_pause_stats_inspect_rm() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let o = d.run(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "--memory",
        "64m",
        "--pids-limit",
        "30",
        "--cpus",
        "0.5",
        "--rootfs",
        &r,
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    ]);
    ok(&o);
    // exec joins it, with its own exit code; the resource flags are in its cgroup.
    let o = d.run(&["exec", "ticker", "sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", err_text(&o));
    assert_eq!(text(&o), "67108864\n30\n");
    // logs -f sees lines written after it started.
    let follow = d
        .ctl()
        .args(["logs", "-f", "ticker"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let o = d.run(&["logs", "--tail", "1", "ticker"]);
    assert!(text(&o).starts_with("tick "), "{}", text(&o));
    // pause: no progress while paused.
    ok(&d.run(&["pause", "ticker"]));
    assert!(text(&d.run(&["ps"])).contains("paused"));
    let before = text(&d.run(&["logs", "ticker"])).lines().count();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(text(&d.run(&["logs", "ticker"])).lines().count(), before);
    ok(&d.run(&["unpause", "ticker"]));
    std::thread::sleep(Duration::from_millis(400));
    assert!(text(&d.run(&["logs", "ticker"])).lines().count() > before);
    let stats = d.run(&["stats", "--no-stream", "--format", "json", "ticker"]);
    ok(&stats);
    let v: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(v[0]["memory_limit"], 64 * 1024 * 1024);
    assert!(v[0]["pids"].as_u64().unwrap() >= 1);
    let inspect: serde_json::Value =
        serde_json::from_slice(&d.run(&["inspect", "ticker"]).stdout).unwrap();
    assert_eq!(inspect[0]["State"]["Status"], "running");
    // rm of a running container needs -f.
    let o = d.run(&["rm", "ticker"]);
    assert!(!o.status.success());
    assert!(err_text(&o).contains("running"), "{}", err_text(&o));
    // stop: sh as pid 1 ignores SIGTERM, so SIGKILL comes after the grace period.
    let t = Instant::now();
    ok(&d.run(&["stop", "-t", "1", "ticker"]));
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert!(text(&d.run(&["ps", "-a"])).contains("exited (137)"));
    let out = follow.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).lines().count() >= 5);
    ok(&d.run(&["rm", "ticker"]));
    assert_eq!(text(&d.run(&["ps", "-aq"])), "");
}

#[test]
fn stop_lets_a_cooperative_process_exit_in_time() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    ok(&d.run(&[
        "run",
        "-d",
        "--name",
        "polite",
        "--init",
        "--rootfs",
        &r,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    ok(&d.run(&["stop", "-t", "10", "polite"]));
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        text(&d.run(&["ps", "-a"])).contains("exited (0)"),
        "{}",
        text(&d.run(&["ps", "-a"]))
    );
}

#[test]
fn init_reaps_zombies() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    // Without --init, the orphaned sleeps would stay zombies under `sh -c` (exec'd away).
    let script = "for i in 1 2 3; do (sleep 0.1 &); done; sleep 1; ps -o stat | grep -c Z || true";
    let o = d.run(&["run", "--rm", "--init", "--rootfs", &r, "sh", "-c", script]);
    assert_eq!(o.status.code(), Some(0), "{}", err_text(&o));
    assert_eq!(text(&o).trim(), "0");
    let o = d.run(&[
        "run",
        "--rm",
        "--init",
        "--rootfs",
        &r,
        "sh",
        "-c",
        "ps -o pid,args | head -3",
    ]);
    assert!(
        text(&o)
            .lines()
            .nth(1)
            .unwrap_or("")
            .trim()
            .starts_with('1'),
        "{}",
        text(&o)
    );
}

#[test]
fn user_names_come_from_the_image_and_volumes_bind() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let host = d.dir.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host\n").unwrap();
    let vol = format!("{}:/data", host.display());
    let o = d.run(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        "-v",
        &vol,
        "--rootfs",
        &r,
        "sh",
        "-c",
        "id -u; cat /data/in.txt",
    ]);
    assert_eq!(text(&o), "65534\nfrom host\n", "{}", err_text(&o));
    let rovol = format!("{}:/data:ro", host.display());
    let o = d.run(&[
        "run",
        "--rm",
        "-v",
        &rovol,
        "--rootfs",
        &r,
        "sh",
        "-c",
        "touch /data/x",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!host.join("x").exists());
    let o = d.run(&["run", "--rm", "-u", "nosuchuser", "--rootfs", &r, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err_text(&o).contains("nosuchuser"), "{}", err_text(&o));
}

#[test]
fn errors_have_clear_messages_and_codes() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    for (args, needle) in [
        (vec!["rm", "missing"], "does not exist"),
        (vec!["stop", "missing"], "does not exist"),
        (vec!["logs", "a/b"], "invalid"),
        (vec!["exec", "..", "true"], "invalid"),
        (vec!["-n", "nope", "ps"], "namespace"),
    ] {
        let o = d.run(&args);
        assert!(!o.status.success(), "{args:?}");
        assert!(err_text(&o).contains(needle), "{args:?}: {}", err_text(&o));
        assert_eq!(
            err_text(&o).lines().count(),
            1,
            "{args:?}: one line per error"
        );
    }
    ok(&d.run(&["create", "--name", "dup", "--rootfs", &r, "true"]));
    let o = d.run(&["create", "--name", "dup", "--rootfs", &r, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err_text(&o).contains("already in use"));
    let long = "x".repeat(77);
    let o = d.run(&["create", "--name", &long, "--rootfs", &r, "true"]);
    assert!(err_text(&o).contains("76"), "{}", err_text(&o));
}

#[test]
fn twenty_containers_in_parallel_all_run_and_are_listed() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let mut c = d.ctl();
            c.args([
                "run",
                "-d",
                "--name",
                &format!("p{i}"),
                "--rootfs",
                &r,
                "sleep",
                "30",
            ]);
            std::thread::spawn(move || c.output().unwrap())
        })
        .collect();
    for h in handles {
        ok(&h.join().unwrap());
    }
    let ps = text(&d.run(&["ps"]));
    assert_eq!(
        ps.lines().filter(|l| l.contains("running")).count(),
        20,
        "{ps}"
    );
}

#[test]
fn events_report_the_lifecycle() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let mut ev = d
        .ctl()
        .args(["events", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = d.run(&[
        "run", "--rm", "--name", "evt", "--rootfs", &r, "sh", "-c", "exit 2",
    ]);
    assert_eq!(o.status.code(), Some(2));
    std::thread::sleep(Duration::from_millis(300));
    let _ = ev.kill();
    let out = ev.wait_with_output().unwrap();
    let topics: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["topic"].as_str().unwrap_or("").to_string())
        .collect();
    for t in [
        "/containers/create",
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
        "/containers/delete",
    ] {
        assert!(topics.iter().any(|x| x == t), "{t} missing from {topics:?}");
    }
}

#[test]
fn kill_9_during_creates_and_deletes_leaves_a_consistent_store() {
    let mut d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let socket = d.socket.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let ctl = berth_tests::bin::bin("berthctl");
    let worker = std::thread::spawn(move || {
        let mut i = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let name = format!("k{i}");
            let _ = std::process::Command::new(&ctl)
                .env("BERTH_ADDRESS", &socket)
                .args(["create", "--name", &name, "--rootfs", &r, "true"])
                .output();
            let _ = std::process::Command::new(&ctl)
                .env("BERTH_ADDRESS", &socket)
                .args(["rm", &name])
                .output();
            i += 1;
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    d.stop(nix::sys::signal::Signal::SIGKILL);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    worker.join().unwrap();
    d.spawn();
    let ps = d.run(&["ps", "-a", "--format", "json"]);
    ok(&ps);
    let list: serde_json::Value = serde_json::from_slice(&ps.stdout).unwrap();
    // Every listed container can be inspected and removed.
    for c in list.as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        ok(&d.run(&["inspect", id]));
        ok(&d.run(&["rm", "-f", id]));
    }
    assert_eq!(text(&d.run(&["ps", "-aq"])), "");
}

#[test]
fn containers_survive_daemon_restarts_and_exits_while_down_are_reported() {
    let mut d = DaemonGuard::start();
    let r = d.rootfs_arg();
    ok(&d.run(&[
        "run", "-d", "--name", "long", "--rootfs", &r, "sleep", "1000",
    ]));
    ok(&d.run(&[
        "run",
        "-d",
        "--name",
        "short",
        "--rootfs",
        &r,
        "sh",
        "-c",
        "sleep 1; exit 9",
    ]));
    d.stop(nix::sys::signal::Signal::SIGTERM);
    d.spawn();
    assert!(text(&d.run(&["ps"])).contains("long"));
    let o = d.run(&["exec", "long", "echo", "still-here"]);
    assert_eq!(text(&o), "still-here\n", "{}", err_text(&o));
    d.stop(nix::sys::signal::Signal::SIGKILL);
    // "short" exits while the daemon is down.
    std::thread::sleep(Duration::from_millis(1500));
    d.spawn();
    let ps = text(&d.run(&["ps", "-a"]));
    assert!(ps.contains("exited (9)"), "{ps}");
    assert!(
        ps.lines()
            .any(|l| l.contains("long") && l.contains("running")),
        "{ps}"
    );
    ok(&d.run(&["stop", "-t", "1", "long"]));
}

#[test]
fn prometheus_metrics_show_running_containers() {
    let port = berth_tests::free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = DaemonGuard::start_with(&["--metrics-address", &addr]);
    let r = d.rootfs_arg();
    let o = d.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--rootfs",
        &r,
        "sleep",
        "30",
    ]);
    ok(&o);
    let id = text(&o).trim().to_string();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    let line = body
        .lines()
        .find(|l| l.starts_with("berth_container_pids{") && l.contains(&id))
        .unwrap_or_else(|| panic!("no pids gauge for {id}: {body}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(body.contains("berthd_containers 1"));
}

#[test]
fn a_dead_shim_is_noticed_and_its_task_cleaned_up() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let mut ev = d
        .ctl()
        .args([
            "events",
            "--format",
            "json",
            "--filter",
            "topic=/tasks/exit",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = d.run(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--network",
        "none",
        "--rootfs",
        &r,
        "sleep",
        "1000",
    ]);
    ok(&o);
    let id = text(&o).trim().to_string();
    let shim = berth_tests::daemon::shim_pids(&d.state())[0];
    let pids = text(&d.run(&["top", "victim"]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    berth_tests::reaper::wait_exit(shim, Duration::from_secs(5));
    // Noticed within a second: the task is reported exited and cleaned up.
    let deadline = Instant::now() + Duration::from_secs(1);
    while d.state().join("tasks/default").join(&id).exists() {
        assert!(
            Instant::now() < deadline,
            "the dead shim's task is still there after 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its processes were killed with it (they were reparented to us, the subreaper).
    for pid in pids
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i32>().ok())
    {
        let gone = berth_tests::reaper::wait_exit(pid, Duration::from_secs(5));
        assert!(gone.is_some(), "container process {pid} survived its shim");
    }
    std::thread::sleep(Duration::from_millis(200));
    let _ = ev.kill();
    let out = ev.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        events.contains(&id) && events.contains("unknown"),
        "{events}"
    );
    assert!(!text(&d.run(&["ps"])).contains("victim"));
}
