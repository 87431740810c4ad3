//! Shims whose container record or bundle is gone (or whose bundle names another shim): a crash
//! during create can leave one running with nothing that will ever talk to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_proto::shim::Bootstrap;
use berth_proto::v1::Orphan;

use super::{orphan, settle};
use crate::daemon::Daemon;

pub async fn pass(d: &Arc<Daemon>, dry_run: bool) -> Vec<Orphan> {
    let mut out = Vec::new();
    for (pid, ns, id) in list(&d.cfg.sockets_dir()) {
        // Under the task's lock a create has either stored the shim's bootstrap or failed.
        let _lock = d.task_locks.lock(&ns, &id).await;
        let record = d.store.container(&ns, &id).ok().flatten().is_some();
        let bootstrap = Bootstrap::load(&d.bundles.path(&ns, &id));
        let named = bootstrap.as_ref().is_ok_and(|b| b.pid == pid);
        if (record && named) || !alive(pid) {
            continue;
        }
        let why = match (record, &bootstrap) {
            (false, _) => "its container record is gone".to_string(),
            (true, Ok(b)) => format!("its bundle names shim {}", b.pid),
            (true, Err(e)) => format!("its bundle names no shim ({e})"),
        };
        let mut o = orphan("shim", &ns, &id, &pid.to_string(), &why);
        if !dry_run {
            let r = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .map_err(|e| format!("kill {pid}: {e}"));
            settle(&mut o, r);
        }
        out.push(o);
    }
    out
}

/// Serving shims of this daemon: `berth-shim start ... --socket-dir <ours>` processes that
/// lead their own session (the short-lived starter does not). (pid, namespace, id).
fn list(socket_dir: &Path) -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_shim = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .is_some_and(|n| n == "berth-shim");
        if !is_shim || args.get(1).map(String::as_str) != Some("start") {
            continue;
        }
        let flag = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let (Some(ns), Some(id), Some(dir)) =
            (flag("--namespace"), flag("--id"), flag("--socket-dir"))
        else {
            continue;
        };
        if PathBuf::from(dir) != socket_dir || session(pid) != Some(pid) {
            continue;
        }
        out.push((pid, ns, id));
    }
    // A container init that never execs (a pod sandbox's `hold` init) still carries its shim's
    // command line and leads its own session; it is the shim's child, a shim never is.
    let shims: Vec<i32> = out.iter().map(|(pid, _, _)| *pid).collect();
    out.retain(|(pid, _, _)| !stat_field(*pid, 1).is_some_and(|ppid| shims.contains(&ppid)));
    out
}

/// The session id of a process.
fn session(pid: i32) -> Option<i32> {
    stat_field(pid, 3)
}

/// A numeric field of /proc/<pid>/stat counted after the command name: 1 ppid, 2 pgrp, 3 session.
fn stat_field(pid: i32, n: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(n)?.parse().ok()
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let i = s.rfind(')')?;
            s.get(i + 2..i + 3).map(|st| st != "Z")
        })
        .unwrap_or(false)
}
