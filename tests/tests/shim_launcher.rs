//! The shim launcher (docs/shim.md, "Launcher"): berthd forks each task's shim from one
//! long-lived `berth-shim launcher` child instead of executing the binary per task. The shim
//! carries `berth-shim start`'s command line and session, so ps and the orphan pass see it as
//! before; a launcher that dies is replaced at the next start; with BERTH_SHIM_LAUNCHER=0
//! every shim is executed.

use std::path::Path;

use berth_tests::daemon::{err_text, ok, text, DaemonGuard};
use serde_json::Value;

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// (state, ppid, session) from /proc/<pid>/stat.
fn stat(pid: i32) -> Option<(String, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some((f[0].to_string(), f[1].parse().ok()?, f[3].parse().ok()?))
}

/// Live `berth-shim launcher` children of `parent`.
fn launchers_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Some((state, ppid, _)) = stat(pid) else {
            continue;
        };
        let args = cmdline(pid);
        if ppid == parent && state != "Z" && args.get(1).map(String::as_str) == Some("launcher") {
            out.push(pid);
        }
    }
    out
}

fn shim_of(d: &DaemonGuard, id: &str) -> i32 {
    berth_proto::shim::Bootstrap::load(&d.state().join("tasks/default").join(id))
        .expect("bootstrap.json")
        .pid
}

fn run_detached(d: &DaemonGuard, name: &str) -> String {
    let r = d.rootfs_arg();
    let o = d.run(&["run", "-d", "--name", name, "--rootfs", &r, "sleep", "1000"]);
    ok(&o);
    text(&o).trim().to_string()
}

#[test]
fn shims_are_forked_by_the_launcher_and_look_executed() {
    let d = DaemonGuard::start();
    let id = run_detached(&d, "one");
    let berthd = d.pid() as i32;
    let launchers = launchers_of(berthd);
    assert_eq!(launchers.len(), 1, "one launcher under berthd");
    let shim = shim_of(&d, &id);
    let bundle = d.state().join("tasks/default").join(&id);
    let args = cmdline(shim);
    assert!(
        Path::new(&args[0]).file_name() == Some("berth-shim".as_ref()),
        "{args:?}"
    );
    let (bundle_arg, sockets) = (
        bundle.to_string_lossy().into_owned(),
        d.state().join("s").to_string_lossy().into_owned(),
    );
    let expected_rest = [
        "start",
        "--namespace",
        "default",
        "--id",
        &id,
        "--bundle",
        &bundle_arg,
        "--socket-dir",
        &sockets,
    ];
    assert_eq!(args[1..], expected_rest, "the shim's command line");
    // Detached: its own session, not a child of the launcher or of berthd.
    let (_, ppid, sid) = stat(shim).expect("shim alive");
    assert_eq!(sid, shim);
    assert!(ppid != launchers[0] && ppid != berthd, "ppid {ppid}");

    // The orphan pass recognises it by that command line: a bundle naming another shim
    // makes it an orphan shim of task `id`.
    let boot_file = bundle.join("bootstrap.json");
    let saved = std::fs::read(&boot_file).unwrap();
    let mut other: Value = serde_json::from_slice(&saved).unwrap();
    other["pid"] = Value::from(1);
    std::fs::write(&boot_file, serde_json::to_vec(&other).unwrap()).unwrap();
    let o = d.run(&["doctor", "--dry-run", "--format", "json"]);
    std::fs::write(&boot_file, &saved).unwrap();
    // (doctor exits non-zero when it lists something)
    let listed: Vec<Value> = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor json: {e}: {}{}", text(&o), err_text(&o)));
    assert!(
        listed
            .iter()
            .any(|o| o["kind"] == "shim" && o["id"] == id.as_str()),
        "{listed:?}"
    );

    // A launcher that dies is replaced by the next start.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(launchers[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let o = d.run(&["run", "--rm", "--rootfs", &d.rootfs_arg(), "echo", "after"]);
    ok(&o);
    assert_eq!(text(&o).trim(), "after");
    let now = launchers_of(berthd);
    assert_eq!(now.len(), 1, "a new launcher");
    assert_ne!(now[0], launchers[0]);
    ok(&d.run(&["rm", "-f", &id]));
}

#[test]
fn without_the_launcher_each_shim_is_executed() {
    let d = DaemonGuard::start_with_env(&[], &[("BERTH_SHIM_LAUNCHER", "0")]);
    let o = d.run(&[
        "run",
        "--rm",
        "--rootfs",
        &d.rootfs_arg(),
        "echo",
        "executed",
    ]);
    ok(&o);
    assert_eq!(text(&o).trim(), "executed");
    let id = run_detached(&d, "two");
    assert!(launchers_of(d.pid() as i32).is_empty());
    let args = cmdline(shim_of(&d, &id));
    assert_eq!(args.get(1).map(String::as_str), Some("start"), "{args:?}");
    ok(&d.run(&["rm", "-f", &id]));
}
