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
/// lead their own session (the short-lived starter does not), in berthd's pid namespace, whose
/// parent is not such a process too: a container's init is forked by its shim and keeps the
/// shim's command line until it execs (a pod sandbox's holder never does). (pid, ns, id).
fn list(socket_dir: &Path) -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    let mut parents = std::collections::HashMap::new();
    let own_pid_ns = std::fs::read_link("/proc/self/ns/pid").ok();
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
        let Some((ppid, sid)) = parent_and_session(pid) else {
            continue;
        };
        if PathBuf::from(dir) != socket_dir || sid != pid {
            continue;
        }
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() != own_pid_ns {
            continue;
        }
        parents.insert(pid, ppid);
        out.push((pid, ns, id));
    }
    // A candidate forked by another candidate is a container process, not a shim.
    out.retain(|(pid, _, _)| {
        parents
            .get(pid)
            .is_none_or(|ppid| !parents.contains_key(ppid) && !is_shim(*ppid))
    });
    out
}

/// Whether a process runs the berth-shim binary (any command line).
fn is_shim(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| {
            let first = c.split(|&b| b == 0).next()?.to_vec();
            let first = String::from_utf8(first).ok()?;
            Some(Path::new(&first).file_name()? == "berth-shim")
        })
        .unwrap_or(false)
}

/// The parent pid and session id of a process, from /proc/<pid>/stat (the fields after the
/// command name: state ppid pgrp session).
fn parent_and_session(pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = stat.get(stat.rfind(')')? + 2..)?.split(' ');
    let ppid = f.nth(1)?.parse().ok()?;
    let sid = f.nth(1)?.parse().ok()?;
    Some((ppid, sid))
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
