//! The `berth-oci` command line, run as a separate process like a user (or containerd) would.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::bin::berth_oci;
use berth_tests::guard::TIMEOUT;
use berth_tests::oci::Cli;
use berth_tests::{bundle, Capture, ContainerGuard};
use serde_json::Value;

/// `berth-oci --root <state root> <args>` (see [`berth_tests::oci::run`]).
fn oci(guard: &ContainerGuard, args: &[&str]) -> Cli {
    berth_tests::oci::run(guard.state_root(), args)
}

/// `berth-oci spec` in the guard's bundle, then the test's changes: `args`, no terminal, the
/// test cgroup.
fn write_spec(guard: &ContainerGuard, args: &[&str]) -> Value {
    let spec = oci(guard, &["spec", "-b", guard.bundle().to_str().unwrap()]);
    assert_eq!(spec.code, Some(0), "{spec:?}");
    let path = guard.bundle().join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(config["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(config["process"]["terminal"], Value::Bool(true));
    assert_eq!(config["root"]["path"], "rootfs");
    config["process"]["args"] = serde_json::json!(args);
    config["process"]["terminal"] = Value::Bool(false);
    config["linux"]["cgroupsPath"] = Value::String(bundle::cgroups_path(guard.id()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    config
}

fn bundle_arg(guard: &ContainerGuard) -> &str {
    guard.bundle().to_str().unwrap()
}

#[test]
fn run_prints_and_exits_zero() {
    let guard = ContainerGuard::new();
    write_spec(&guard, &["echo", "hi"]);
    let run = oci(&guard, &["run", "-b", bundle_arg(&guard), guard.id()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "hi\n", "{run:?}");
    // Deleted after the run (no --keep).
    let state = oci(&guard, &["state", guard.id()]);
    assert_ne!(state.code, Some(0));
}

#[test]
fn run_exits_with_the_container_exit_code() {
    let guard = ContainerGuard::new();
    write_spec(&guard, &["sh", "-c", "exit 7"]);
    let run = oci(
        &guard,
        &["run", "--keep", "-b", bundle_arg(&guard), guard.id()],
    );
    assert_eq!(run.code, Some(7), "{run:?}");
    // --keep: still there, stopped.
    let state = oci(&guard, &["state", guard.id()]);
    let state: Value = serde_json::from_str(&state.stdout).expect("state JSON");
    assert_eq!(state["status"], "stopped");
    assert_eq!(oci(&guard, &["delete", guard.id()]).code, Some(0));
}

#[test]
fn start_of_a_missing_container_fails() {
    let guard = ContainerGuard::new();
    let start = oci(&guard, &["start", "missing"]);
    assert_ne!(start.code, Some(0));
    assert!(start.stderr.contains("does not exist"), "{start:?}");
    assert!(start.stderr.starts_with("berth-oci: "), "{start:?}");
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let guard = ContainerGuard::new();
    write_spec(&guard, &["sleep", "30"]);
    let run = oci(&guard, &["run", "-d", "-b", bundle_arg(&guard), guard.id()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let state: Value = serde_json::from_str(&oci(&guard, &["state", guard.id()]).stdout).unwrap();
    assert_eq!(state["status"], "running");

    let delete = oci(&guard, &["delete", guard.id()]);
    assert_ne!(delete.code, Some(0), "{delete:?}");
    assert!(delete.stderr.contains("running"), "{delete:?}");

    let forced = oci(&guard, &["delete", "--force", guard.id()]);
    assert_eq!(forced.code, Some(0), "{forced:?}");
    let state = oci(&guard, &["state", guard.id()]);
    assert!(state.stderr.contains("does not exist"), "{state:?}");
}

#[test]
fn state_ps_list_and_kill() {
    let guard = ContainerGuard::new();
    write_spec(&guard, &["sleep", "30"]);
    let create = oci(&guard, &["create", "-b", bundle_arg(&guard), guard.id()]);
    assert_eq!(create.code, Some(0), "{create:?}");

    let state: Value = serde_json::from_str(&oci(&guard, &["state", guard.id()]).stdout).unwrap();
    for key in [
        "ociVersion",
        "id",
        "status",
        "pid",
        "bundle",
        "rootfs",
        "created",
    ] {
        assert!(state.get(key).is_some(), "{key} missing in {state}");
    }
    assert_eq!(state["id"], guard.id());
    assert_eq!(state["status"], "created");
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    let bundle = std::fs::canonicalize(guard.bundle()).unwrap();
    assert_eq!(Path::new(state["bundle"].as_str().unwrap()), bundle);
    assert!(state["created"].as_str().unwrap().contains('T'), "{state}");

    let list: Value =
        serde_json::from_str(&oci(&guard, &["list", "--format", "json"]).stdout).unwrap();
    assert_eq!(list[0]["id"], guard.id());
    let quiet = oci(&guard, &["list", "-q"]);
    assert_eq!(quiet.stdout.trim(), guard.id());

    assert_eq!(oci(&guard, &["start", guard.id()]).code, Some(0));
    let state: Value = serde_json::from_str(&oci(&guard, &["state", guard.id()]).stdout).unwrap();
    assert_eq!(state["status"], "running");
    let ps: Value =
        serde_json::from_str(&oci(&guard, &["ps", "--format", "json", guard.id()]).stdout).unwrap();
    assert_eq!(ps, serde_json::json!([pid]));

    let kill = oci(&guard, &["kill", guard.id(), "KILL"]);
    assert_eq!(kill.code, Some(0), "{kill:?}");
    // The init was reparented to us (subreaper) when berth-oci exited.
    berth_tests::reaper::wait_exit(pid as i32, TIMEOUT).expect("init did not die");
    let state: Value = serde_json::from_str(&oci(&guard, &["state", guard.id()]).stdout).unwrap();
    assert_eq!(state["status"], "stopped");
    assert_eq!(oci(&guard, &["delete", guard.id()]).code, Some(0));
}

#[test]
fn exec_runs_in_the_container_and_returns_its_code() {
    let guard = ContainerGuard::new();
    write_spec(&guard, &["sleep", "30"]);
    let run = oci(&guard, &["run", "-d", "-b", bundle_arg(&guard), guard.id()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let exec = oci(
        &guard,
        &["exec", guard.id(), "sh", "-c", "hostname; exit 5"],
    );
    assert_eq!(exec.code, Some(5), "{exec:?}");
    assert_eq!(exec.stdout.trim(), "berth", "{exec:?}");
    let env = oci(
        &guard,
        &["exec", "-e", "FOO=bar", guard.id(), "sh", "-c", "echo $FOO"],
    );
    assert_eq!(env.stdout.trim(), "bar", "{env:?}");
}

#[test]
fn spec_rootless_and_features() {
    let guard = ContainerGuard::new();
    let spec = oci(&guard, &["spec", "--rootless", "-b", bundle_arg(&guard)]);
    assert_eq!(spec.code, Some(0), "{spec:?}");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(guard.bundle().join("config.json")).unwrap())
            .unwrap();
    let namespaces: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ns| ns["type"].as_str().unwrap())
        .collect();
    assert!(namespaces.contains(&"user"), "{namespaces:?}");
    assert!(!namespaces.contains(&"network"), "{namespaces:?}");
    assert_eq!(config["linux"]["uidMappings"][0]["containerID"], 0);
    // A second spec refuses to overwrite.
    let again = oci(&guard, &["spec", "-b", bundle_arg(&guard)]);
    assert_ne!(again.code, Some(0));

    let features = oci(&guard, &["features"]);
    let features: Value = serde_json::from_str(&features.stdout).expect("features JSON");
    assert!(features["ociVersionMax"].is_string());
    assert_eq!(features["linux"]["seccomp"]["enabled"], true);
    let namespaces = features["linux"]["namespaces"].as_array().unwrap();
    assert!(
        namespaces.contains(&Value::String("pid".into())),
        "{namespaces:?}"
    );
}

#[test]
fn systemd_cgroup_is_refused() {
    let guard = ContainerGuard::new();
    let list = oci(&guard, &["--systemd-cgroup", "list"]);
    assert_ne!(list.code, Some(0));
    assert!(list.stderr.contains("not supported"), "{list:?}");
}

/// Like [`write_spec`], with `process.terminal` set.
fn write_terminal_spec(guard: &ContainerGuard, args: &[&str]) {
    write_spec(guard, args);
    let path = guard.bundle().join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["process"]["terminal"] = Value::Bool(true);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

#[test]
fn console_socket_receives_the_pty_master() {
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    let guard = ContainerGuard::new();
    write_terminal_spec(&guard, &["sh", "-c", "tty; echo console-ok; sleep 30"]);
    let socket = guard.scratch().join("console.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let (out, err) = (Capture::new(), Capture::new());
    let mut child = Command::new(berth_oci())
        .arg("--root")
        .arg(guard.state_root())
        .args(["run", "-d", "--console-socket"])
        .arg(&socket)
        .args(["-b", bundle_arg(&guard), guard.id()])
        .stdin(std::process::Stdio::null())
        .stdout(out.fd())
        .stderr(err.fd())
        .spawn()
        .unwrap();
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "berth-oci exited ({status}) without connecting: {}",
                        err.text()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "no connection on the console socket"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    let master = berth_runtime::console::receive_pty_master(&stream).expect("pty master");
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", err.text());

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut master = std::fs::File::from(master);
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains("console-ok") {
                break;
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
    });
    let seen = rx.recv_timeout(TIMEOUT).expect("no output on the pty");
    assert!(seen.contains("console-ok"), "{seen:?}");
    assert!(seen.contains("/dev/pts/"), "stdin is the pty: {seen:?}");
}

#[test]
fn run_in_the_foreground_proxies_its_own_terminal() {
    let guard = ContainerGuard::new();
    write_terminal_spec(&guard, &["sh", "-c", "tty; echo from-the-pty"]);
    let run = oci(&guard, &["run", "-b", bundle_arg(&guard), guard.id()]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("from-the-pty"), "{run:?}");
    assert!(run.stdout.contains("/dev/pts/"), "{run:?}");
}

#[test]
fn run_forwards_sigterm_to_the_container() {
    let guard = ContainerGuard::new();
    write_spec(
        &guard,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    let (out, err) = (Capture::new(), Capture::new());
    let mut child = Command::new(berth_oci())
        .arg("--root")
        .arg(guard.state_root())
        .args(["run", "-b", bundle_arg(&guard), guard.id()])
        .stdin(std::process::Stdio::null())
        .stdout(out.fd())
        .stderr(err.fd())
        .spawn()
        .unwrap();
    assert!(
        out.wait_for("ready", TIMEOUT),
        "{}{}",
        out.text(),
        err.text()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "berth-oci run did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(3), "{}{}", out.text(), err.text());
    assert!(out.text().contains("got-term"), "{}", out.text());
}

#[test]
fn pause_resume_update_events_and_exec_process_file() {
    let guard = ContainerGuard::new();
    write_spec(&guard, &["sleep", "30"]);
    let pid_file = guard.scratch().join("init.pid");
    let run = oci(
        &guard,
        &[
            "run",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "-b",
            bundle_arg(&guard),
            guard.id(),
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let state = |guard: &ContainerGuard| -> Value {
        serde_json::from_str(&oci(guard, &["state", guard.id()]).stdout).unwrap()
    };
    let pid = state(&guard)["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );

    assert_eq!(oci(&guard, &["pause", guard.id()]).code, Some(0));
    assert_eq!(state(&guard)["status"], "paused");
    assert_eq!(oci(&guard, &["resume", guard.id()]).code, Some(0));
    assert_eq!(state(&guard)["status"], "running");

    let update = oci(
        &guard,
        &["update", "--pids-limit", "9", "--memory", "64M", guard.id()],
    );
    assert_eq!(update.code, Some(0), "{update:?}");
    let events = oci(&guard, &["events", "--stats", guard.id()]);
    let event: Value = serde_json::from_str(&events.stdout).expect("events JSON");
    assert_eq!(event["type"], "stats");
    assert_eq!(event["data"]["pids"]["limit"], 9, "{event}");
    assert_eq!(event["data"]["memory"]["limit"], 64 << 20, "{event}");

    // exec --process: a full OCI process object.
    let process = serde_json::json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo from-process-json; exit 4"],
        "env": ["PATH=/bin"],
        "cwd": "/tmp"
    });
    let file = guard.scratch().join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let exec = oci(
        &guard,
        &["exec", "--process", file.to_str().unwrap(), guard.id()],
    );
    assert_eq!(exec.code, Some(4), "{exec:?}");
    assert_eq!(exec.stdout, "from-process-json\n");

    // ps lists the init and a detached exec'd sleep.
    let detached = oci(&guard, &["exec", "-d", guard.id(), "sleep", "20"]);
    assert_eq!(detached.code, Some(0), "{detached:?}");
    let ps: Value =
        serde_json::from_str(&oci(&guard, &["ps", "--format", "json", guard.id()]).stdout).unwrap();
    assert_eq!(ps.as_array().unwrap().len(), 2, "{ps}");
    let table = oci(&guard, &["ps", guard.id()]);
    assert!(table.stdout.contains("sleep 20"), "{table:?}");
}

#[test]
fn run_of_a_missing_binary_fails_and_leaves_nothing() {
    let guard = ContainerGuard::new();
    write_spec(&guard, &["/no/such/binary"]);
    let run = oci(&guard, &["run", "-b", bundle_arg(&guard), guard.id()]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.starts_with("berth-oci: "), "{run:?}");
    assert!(
        run.stderr.contains("/no/such/binary"),
        "names the binary: {run:?}"
    );
    let list = oci(&guard, &["list", "-q"]);
    assert_eq!(list.stdout, "", "{list:?}");
}

#[test]
fn debug_log_goes_to_the_log_file_as_json() {
    let guard = ContainerGuard::new();
    let log = guard.scratch().join("oci.log");
    let list = oci(
        &guard,
        &[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "--debug",
            "list",
        ],
    );
    assert_eq!(list.code, Some(0), "{list:?}");
    assert_eq!(list.stderr, "", "logs go to the file, not stderr");
    let text = std::fs::read_to_string(&log).expect("log file written");
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).expect("JSON line");
    assert_eq!(first["level"], "DEBUG", "{first}");
}
