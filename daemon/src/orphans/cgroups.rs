//! Cgroups under berthd's parent (`<cgroup_root>/<ns>/<id>`, on every hierarchy) that no
//! container owns. Their processes are killed first (a paused one is thawed so SIGKILL lands).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_proto::v1::Orphan;
use berth_runtime::cgroups::Manager;

use super::{orphan, settle};
use crate::daemon::Daemon;

pub async fn pass(d: &Arc<Daemon>, dry_run: bool) -> Vec<Orphan> {
    let root = d.cfg.cgroup_root.trim_end_matches('/').to_string();
    let Ok(parent) = Manager::new(Path::new(&root)) else {
        return Vec::new();
    };
    let mut found = BTreeSet::new();
    for dir in parent.dirs() {
        for ns in subdirs(&dir) {
            for id in subdirs(&dir.join(&ns)) {
                found.insert((ns.clone(), id));
            }
        }
    }
    let mut out = Vec::new();
    for (ns, id) in found {
        // The bundle is made before the cgroup and removed after it.
        let _lock = d.task_locks.lock(&ns, &id).await;
        let record = d.store.container(&ns, &id).ok().flatten().is_some();
        if record && d.bundles.path(&ns, &id).is_dir() {
            continue;
        }
        let path = format!("{root}/{ns}/{id}");
        let why = if record {
            "its container has no task"
        } else {
            "no container record"
        };
        let mut o = orphan("cgroup", &ns, &id, &path, why);
        if !dry_run {
            let r = tokio::task::spawn_blocking(move || remove(&path))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            settle(&mut o, r);
        }
        out.push(o);
    }
    out
}

fn subdirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Kills every process of the cgroup (until none is left, up to two seconds), then removes it.
fn remove(path: &str) -> Result<(), String> {
    let m = Manager::new(&PathBuf::from(path)).map_err(|e| e.to_string())?;
    let _ = m.thaw();
    for _ in 0..100 {
        let mut pids = m.pids().unwrap_or_default();
        for dir in m.dirs() {
            procs(&dir, &mut pids);
        }
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    m.remove().map_err(|e| e.to_string())
}

/// Every pid in `cgroup.procs` of `dir` and its descendants (on one hierarchy).
fn procs(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for sub in subdirs(dir) {
        procs(&dir.join(sub), out);
    }
}
