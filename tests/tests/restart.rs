//! Daemon restart and crash recovery (issue 6): containers outlive SIGTERM and SIGKILL of
//! berthd with the same pids; exits that happen while berthd is down keep their real codes (also
//! when the shim died too; "unknown" when nothing recorded one); a chaos loop of create, start,
//! stop and delete with kill -9 of berthd and of shims leaves a consistent store and, after
//! `doctor`, zero orphans; `doctor --dry-run` lists planted orphans and `doctor` removes them;
//! a shim speaking an unknown protocol is reported, never killed.
//!
//! Heavy: these run one at a time under nextest (.config/nextest.toml, group `restart`).

use std::collections::HashMap;
use std::io::BufRead;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::daemon::{cgroups_under, err_text, ok, shim_pids, text, DaemonGuard};
use berth_tests::images::{busybox_image, layout_files, tar_of};
use berth_tests::reaper;
use nix::sys::signal::Signal;
use serde_json::Value;

/// `ps -a --format json` of a namespace, by name.
fn ps(d: &DaemonGuard, ns: &str) -> HashMap<String, Value> {
    let o = d.run(&["-n", ns, "ps", "-a", "--format", "json"]);
    ok(&o);
    let list: Vec<Value> = serde_json::from_slice(&o.stdout).expect("ps json");
    list.into_iter()
        .map(|c| (c["name"].as_str().unwrap_or_default().to_string(), c))
        .collect()
}

fn kill(pid: i32, sig: Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// The pid of the shim of a task, from its bootstrap.json.
fn shim_of(d: &DaemonGuard, ns: &str, id: &str) -> i32 {
    berth_proto::shim::Bootstrap::load(&d.state().join("tasks").join(ns).join(id))
        .expect("bootstrap.json")
        .pid
}

fn doctor(d: &DaemonGuard, dry_run: bool) -> Vec<Value> {
    let mut args = vec!["doctor", "--format", "json"];
    if dry_run {
        args.push("--dry-run");
    }
    let o = d.run(&args);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor json: {e}: {}{}", text(&o), err_text(&o)))
}

#[test]
fn fifty_containers_survive_sigterm_and_sigkill_of_berthd() {
    let mut d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let names: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(7) {
            let (d, r) = (&d, &r);
            s.spawn(move || {
                for n in chunk {
                    let script = if n == "c0" {
                        // Attach needs output after the restart.
                        "while true; do echo tick; sleep 0.2; done".to_string()
                    } else {
                        format!("echo hello-{n}; exec sleep 1000")
                    };
                    ok(&d.run(&[
                        "run",
                        "-d",
                        "--name",
                        n,
                        "--network",
                        "none",
                        "--rootfs",
                        r,
                        "sh",
                        "-c",
                        &script,
                    ]));
                }
            });
        }
    });
    let before = ps(&d, "default");
    assert_eq!(before.len(), 50);
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        d.stop(sig);
        d.spawn();
        let after = ps(&d, "default");
        for n in &names {
            let (b, a) = (&before[n], &after[n]);
            assert_eq!(a["status"], "running", "{n} after {sig}: {a}");
            assert_eq!(a["pid"], b["pid"], "{n} changed pid after {sig}");
            assert!(alive(a["pid"].as_i64().unwrap() as i32));
        }
    }
    let logs = d.run(&["logs", "c7"]);
    assert_eq!(text(&logs), "hello-c7\n", "{}", err_text(&logs));
    let o = d.run(&["exec", "c8", "echo", "exec-ok"]);
    assert_eq!(text(&o), "exec-ok\n", "{}", err_text(&o));
    // attach: the ticker's output reaches a client attached after the restarts.
    let mut att = d
        .ctl()
        .args(["attach", "c0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = att.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10));
    let _ = att.kill();
    let _ = att.wait();
    assert_eq!(line.as_deref().map(str::trim), Ok("tick"));
    ok(&d.run(&["stop", "-t", "1", "c9"]));
    let st = &ps(&d, "default")["c9"];
    assert_eq!(st["status"], "exited", "{st}");
    assert!(st["exit_code"].is_i64(), "{st}");
}

#[test]
fn exits_while_berthd_is_down_keep_their_real_codes() {
    let mut d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let run = |name: &str, script: &str| {
        let o = d.run(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--rootfs",
            &r,
            "sh",
            "-c",
            script,
        ]);
        ok(&o);
        text(&o).trim().to_string()
    };
    let _a = run("a", "sleep 1; exit 7");
    let b = run("b", "sleep 1; exit 9");
    let c = run("c", "exec sleep 1000");
    let e = run("e", "exec sleep 1000");
    // e: its shim is killed while berthd runs; noticed within a second.
    let e_pid = ps(&d, "default")["e"]["pid"].as_i64().unwrap() as i32;
    let e_shim = shim_of(&d, "default", &e);
    kill(e_shim, Signal::SIGKILL);
    reaper::wait_exit(e_shim, Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(1);
    while d.state().join("tasks/default").join(&e).exists() {
        assert!(
            Instant::now() < deadline,
            "the dead shim's task is still there after 1 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ps(&d, "default")["e"]["status"], "exited");
    assert!(reaper::wait_exit(e_pid, Duration::from_secs(5)).is_some());
    assert!(text(&d.run(&["ps", "-a"])).contains("exited (unknown)"));

    let c_pid = ps(&d, "default")["c"]["pid"].as_i64().unwrap() as i32;
    let (b_shim, c_shim) = (shim_of(&d, "default", &b), shim_of(&d, "default", &c));
    d.stop(Signal::SIGKILL);
    // a and b exit while berthd is down; then b's shim (exit recorded) and c's shim (its
    // container still running, nothing recorded) are killed too.
    std::thread::sleep(Duration::from_millis(1800));
    for shim in [b_shim, c_shim] {
        kill(shim, Signal::SIGKILL);
        reaper::wait_exit(shim, Duration::from_secs(5));
    }
    d.spawn();
    let st = ps(&d, "default");
    assert_eq!(st["a"]["exit_code"], 7, "{}", st["a"]);
    assert_eq!(st["b"]["exit_code"], 9, "{}", st["b"]);
    assert_eq!(st["b"]["status"], "exited");
    assert_eq!(st["c"]["status"], "exited", "{}", st["c"]);
    assert!(st["c"]["exit_code"].is_null(), "{}", st["c"]);
    let table = text(&d.run(&["ps", "-a"]));
    assert!(
        table.contains("exited (7)") && table.contains("exited (9)"),
        "{table}"
    );
    // c's process was killed with its dead shim's task; the bundles of b and c are gone.
    assert!(reaper::wait_exit(c_pid, Duration::from_secs(5)).is_some());
    for id in [&b, &c] {
        assert!(!d.state().join("tasks/default").join(id).exists());
    }
    // The exits survive another restart (they are in the records now).
    d.stop(Signal::SIGTERM);
    d.spawn();
    let st = ps(&d, "default");
    assert_eq!(st["b"]["exit_code"], 9);
    assert_eq!(st["a"]["exit_code"], 7);
}

/// A tiny deterministic PRNG (xorshift), seeded from the clock and printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn chaos_cycles_with_kill_9_leave_a_consistent_store_and_no_orphans() {
    const CYCLES: usize = 200;
    const WORKERS: usize = 4;
    let mut d = DaemonGuard::start();
    let img = busybox_image();
    let tar = d.dir.path().join("img.tar");
    std::fs::write(&tar, tar_of(&layout_files(&[(&img, None)]))).unwrap();
    ok(&d.run(&["import", "--name", "chaos:1", tar.to_str().unwrap()]));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("chaos seed {seed}");
    let mut rng = Rng(seed);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let ctl = berth_tests::bin::bin("berthctl");
    let socket = d.socket.clone();
    let (mut kills, mut shim_kills) = (0, 0);
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (done, ctl, socket) = (&done, &ctl, &socket);
            s.spawn(move || {
                let run = |args: &[&str]| {
                    std::process::Command::new(ctl)
                        .env("BERTH_ADDRESS", socket)
                        .args(args)
                        .stdin(Stdio::null())
                        .output()
                        .map(|o| o.status.success())
                        .unwrap_or(false)
                };
                for i in 0..CYCLES / WORKERS {
                    let name = format!("w{w}-{i}");
                    // Every fourth on the bridge network (CNI, netns, IPAM), others none.
                    let net = if i % 4 == 0 { "bridge" } else { "none" };
                    let script = "trap 'exit 3' TERM; while true; do sleep 0.1; done";
                    run(&[
                        "create",
                        "--name",
                        &name,
                        "--network",
                        net,
                        "chaos:1",
                        "sh",
                        "-c",
                        script,
                    ]);
                    run(&["start", &name]);
                    run(&["stop", "-t", "2", &name]);
                    if !run(&["rm", &name]) {
                        run(&["rm", "-f", &name]);
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        // kill -9 of berthd at random points (and of a random shim now and then).
        while done.load(std::sync::atomic::Ordering::Relaxed) < CYCLES {
            std::thread::sleep(Duration::from_millis(300 + rng.next(1200)));
            if rng.next(3) == 0 {
                let shims = shim_pids(&d.state());
                if !shims.is_empty() {
                    let shim = shims[rng.next(shims.len() as u64) as usize];
                    kill(shim, Signal::SIGKILL);
                    reaper::wait_exit(shim, Duration::from_secs(5));
                    shim_kills += 1;
                }
            }
            if done.load(std::sync::atomic::Ordering::Relaxed) >= CYCLES {
                break;
            }
            d.stop(Signal::SIGKILL);
            kills += 1;
            std::thread::sleep(Duration::from_millis(rng.next(300)));
            d.spawn();
        }
    });
    // The final restart, then the cleanup.
    d.stop(Signal::SIGKILL);
    kills += 1;
    d.spawn();
    // The start-up pass runs in the background; doctor finds whatever it has not yet removed.
    let found = doctor(&d, false);
    let left_by_doctor: Vec<_> = found.iter().filter(|o| o["removed"] != true).collect();
    assert!(
        left_by_doctor.is_empty(),
        "doctor could not remove: {left_by_doctor:?}"
    );
    // Consistency: every record can be inspected, has a state, and can be removed.
    let list = ps(&d, "default");
    for (name, c) in &list {
        let st = c["status"].as_str().unwrap_or_default();
        assert!(
            ["created", "running", "exited"].contains(&st),
            "{name} in state {st}: {c}"
        );
        ok(&d.run(&["inspect", name]));
        ok(&d.run(&["rm", "-f", name]));
    }
    assert_eq!(text(&d.run(&["ps", "-aq"])), "");
    let left = doctor(&d, true);
    // The start-up passes (one per restart) log each orphan they find and remove.
    let at_start = d
        .log()
        .lines()
        .filter(|l| l.contains("berthd::orphans") && l.contains(" orphan "))
        .count();
    println!(
        "chaos: cycles={CYCLES} berthd_kills={kills} shim_kills={shim_kills} \
         records_left={} orphans_found={} (start-up passes {at_start}, doctor {}) orphans_left={}",
        list.len(),
        at_start + found.len(),
        found.len(),
        left.len()
    );
    for o in &found {
        println!("  orphan {o}");
    }
    if !left.is_empty() {
        let log = d.log();
        for o in &left {
            let id = o["id"].as_str().unwrap_or("?");
            for l in log.lines().filter(|l| l.contains(id)) {
                println!("  log: {l}");
            }
        }
    }
    assert!(left.is_empty(), "orphans left: {left:?}");
    // Nothing of a task is left on disk either.
    let bundles: Vec<_> = std::fs::read_dir(d.state().join("tasks/default"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(bundles.is_empty(), "bundles left: {bundles:?}");
}

#[test]
fn doctor_dry_run_lists_planted_orphans_and_doctor_removes_them() {
    let d = DaemonGuard::start();
    let r = d.rootfs_arg();
    // Owned things that must never be listed: a running container in default and in k8s.io.
    let o = d.run(&[
        "run", "-d", "--name", "keep", "--rootfs", &r, "sleep", "1000",
    ]);
    ok(&o);
    let keep = text(&o).trim().to_string();
    let o = d.run(&[
        "-n", "k8s.io", "run", "-d", "--name", "pod", "--rootfs", &r, "sleep", "1000",
    ]);
    ok(&o);
    let pod = text(&o).trim().to_string();
    // Planted: a bundle without a record, a cgroup with a process in it, a mount.
    let bundle = d.state().join("tasks/default/ghost-bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    let cg_rel = format!("{}/default/ghost-cg", d.cgroup_root.trim_start_matches('/'));
    let mut cg_dirs = Vec::new();
    for h in ["pids", "memory"] {
        let dir = std::path::Path::new("/sys/fs/cgroup").join(h).join(&cg_rel);
        std::fs::create_dir_all(&dir).unwrap();
        cg_dirs.push(dir);
    }
    let mut sleeper = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let sleeper_pid = sleeper.id() as i32;
    std::fs::write(cg_dirs[0].join("cgroup.procs"), sleeper_pid.to_string()).unwrap();
    let mnt = d.state().join("ghost-mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    let mounted = |p: &std::path::Path| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!(" {} ", p.display()))
    };

    let listed = doctor(&d, true);
    let has = |l: &[Value], kind: &str, needle: &str| {
        l.iter()
            .any(|o| o["kind"] == kind && o["path"].as_str().unwrap_or("").contains(needle))
    };
    assert!(has(&listed, "bundle", "ghost-bundle"), "{listed:?}");
    assert!(has(&listed, "cgroup", "ghost-cg"), "{listed:?}");
    assert!(has(&listed, "mount", "ghost-mnt"), "{listed:?}");
    for o in &listed {
        assert_eq!(o["removed"], false, "dry run removed {o}");
        let id = o["id"].as_str().unwrap_or_default();
        assert!(id != keep && id != pod, "an owned task was listed: {o}");
    }
    // --dry-run removed nothing.
    assert!(bundle.exists() && cg_dirs.iter().all(|d| d.exists()) && mounted(&mnt));
    assert!(alive(sleeper_pid));

    let removed = doctor(&d, false);
    for (kind, needle) in [
        ("bundle", "ghost-bundle"),
        ("cgroup", "ghost-cg"),
        ("mount", "ghost-mnt"),
    ] {
        assert!(
            removed.iter().any(|o| o["kind"] == kind
                && o["path"].as_str().unwrap_or("").contains(needle)
                && o["removed"] == true),
            "{kind} not removed: {removed:?}"
        );
    }
    assert!(!bundle.exists());
    assert!(cg_dirs.iter().all(|d| !d.exists()), "{cg_dirs:?}");
    assert!(!mounted(&mnt));
    let _ = sleeper.wait();
    assert!(doctor(&d, true).is_empty());
    // The owned tasks still run.
    assert_eq!(ps(&d, "default")["keep"]["status"], "running");
    assert_eq!(ps(&d, "k8s.io")["pod"]["status"], "running");
    assert!(cgroups_under(&d.cgroup_root)
        .iter()
        .all(|p| !p.to_string_lossy().contains("ghost")));
}

#[test]
fn a_shim_speaking_an_unknown_protocol_is_reported_and_never_killed() {
    let mut d = DaemonGuard::start();
    let r = d.rootfs_arg();
    let o = d.run(&[
        "run", "-d", "--name", "old", "--rootfs", &r, "sleep", "1000",
    ]);
    ok(&o);
    let id = text(&o).trim().to_string();
    let pid = ps(&d, "default")["old"]["pid"].as_i64().unwrap() as i32;
    let bundle = d.state().join("tasks/default").join(&id);
    let boot_file = bundle.join("bootstrap.json");
    let original = std::fs::read_to_string(&boot_file).unwrap();
    let shim = shim_of(&d, "default", &id);
    d.stop(Signal::SIGTERM);
    let mut boot: Value = serde_json::from_str(&original).unwrap();
    boot["version"] = 99.into();
    std::fs::write(&boot_file, boot.to_string()).unwrap();
    d.spawn();
    let st = &ps(&d, "default")["old"];
    assert_eq!(st["status"], "unknown", "{st}");
    assert!(
        st["detail"].as_str().unwrap().contains("protocol 99"),
        "{st}"
    );
    assert!(text(&d.run(&["ps"])).contains("unknown (shim incompatible)"));
    let insp = text(&d.run(&["inspect", "old"]));
    assert!(insp.contains("protocol 99"), "{insp}");
    // doctor reports it and keeps it; removal is refused; the shim and container live on.
    let found = doctor(&d, false);
    assert!(
        found.iter().any(|o| o["kind"] == "incompatible-shim"
            && o["id"] == id.as_str()
            && o["removed"] == false),
        "{found:?}"
    );
    let rm = d.run(&["rm", "-f", "old"]);
    assert!(!rm.status.success());
    assert!(err_text(&rm).contains("protocol 99"), "{}", err_text(&rm));
    assert!(alive(shim) && alive(pid));
    assert!(bundle.exists());
    // Back to a version this berthd speaks: managed again.
    d.stop(Signal::SIGTERM);
    std::fs::write(&boot_file, original).unwrap();
    d.spawn();
    assert_eq!(ps(&d, "default")["old"]["status"], "running");
    ok(&d.run(&["rm", "-f", "old"]));
    assert!(reaper::wait_exit(pid, Duration::from_secs(5)).is_some());
}
