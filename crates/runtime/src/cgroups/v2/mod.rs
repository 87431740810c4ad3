//! cgroup v2: one directory in the unified hierarchy.

mod bpf;
mod cpu;
mod cpuset;
mod devices;
mod freezer;
mod hugetlb;
mod io;
mod memory;
mod pids;
mod unified;

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::{fs, CgroupError, Hierarchy, Stats};

/// The controllers Berth enables for its cgroups, when the parent offers them.
const WANTED: &[&str] = &["cpu", "cpuset", "hugetlb", "io", "memory", "pids"];

/// A cgroup in a unified hierarchy.
#[derive(Debug, Clone)]
pub(super) struct Manager {
    root: PathBuf,
    dir: PathBuf,
}

impl Manager {
    /// The cgroup `rel` below the hierarchy mounted at `root`.
    pub(super) fn new(root: &Path, rel: &Path) -> Self {
        Manager {
            root: root.to_path_buf(),
            dir: root.join(rel),
        }
    }

    pub(super) fn hierarchy(&self) -> Hierarchy {
        Hierarchy {
            controllers: Vec::new(),
            mount_point: self.root.clone(),
            dir: self.dir.clone(),
        }
    }

    /// A missing cgroup is an error for reads that would otherwise find no files and report
    /// zeros.
    fn must_exist(&self) -> Result<(), CgroupError> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(CgroupError::Io {
                path: self.dir.clone(),
                source: std::io::ErrorKind::NotFound.into(),
            })
        }
    }

    /// Creates the directory, enabling the wanted controllers in `cgroup.subtree_control` of
    /// every ancestor from the root down to the parent.
    pub(super) fn create(&self) -> Result<(), CgroupError> {
        let Ok(rel) = self.dir.strip_prefix(&self.root) else {
            return Err(CgroupError::Other(format!(
                "{} is not below {}",
                self.dir.display(),
                self.root.display()
            )));
        };
        // A shared ancestor removed by a concurrent cleanup between two levels shows up as
        // ENOENT: walk again from the root.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.create_levels(rel) {
                Err(CgroupError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound && attempts < 10 => {}
                other => return other,
            }
        }
    }

    fn create_levels(&self, rel: &std::path::Path) -> Result<(), CgroupError> {
        let mut cur = self.root.clone();
        for c in rel.components() {
            enable_controllers(&cur)?;
            cur.push(c);
            match std::fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fs::io_err(&cur)(e)),
            }
        }
        Ok(())
    }

    /// Controllers available in this cgroup (`cgroup.controllers`).
    fn available(&self) -> Result<Vec<String>, CgroupError> {
        Ok(fs::read_opt(&self.dir, "cgroup.controllers")?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }

    /// Fails unless `controller` is enabled for this cgroup.
    fn require(
        &self,
        available: &[String],
        controller: &str,
        what: &str,
    ) -> Result<(), CgroupError> {
        if available.iter().any(|c| c == controller) {
            Ok(())
        } else {
            Err(CgroupError::Other(format!(
                "the spec sets {what}, but the {controller} controller is not available in {}",
                self.dir.display()
            )))
        }
    }

    pub(super) fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let avail = self.available()?;
        let dir = self.dir.as_path();
        if let Some(c) = r.cpu() {
            if cpu::needed(c) {
                self.require(&avail, "cpu", "cpu limits")?;
                cpu::apply(dir, c)?;
            }
            if cpuset::needed(c) {
                self.require(&avail, "cpuset", "cpu.cpus/mems")?;
                cpuset::apply(dir, c)?;
            }
        }
        if let Some(m) = r.memory() {
            if memory::needed(m) {
                self.require(&avail, "memory", "memory limits")?;
                memory::apply(dir, m)?;
            }
        }
        if let Some(p) = r.pids() {
            self.require(&avail, "pids", "pids.limit")?;
            pids::apply(dir, p)?;
        }
        if let Some(b) = r.block_io() {
            if io::needed(b) {
                self.require(&avail, "io", "blockIO")?;
                io::apply(dir, b)?;
            }
        }
        if let Some(h) = r.hugepage_limits() {
            if !h.is_empty() {
                self.require(&avail, "hugetlb", "hugepageLimits")?;
                hugetlb::apply(dir, h)?;
            }
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(CgroupError::Other(
                    "the spec sets linux.resources.network, which cgroup v2 does not support"
                        .into(),
                ));
            }
        }
        if let Some(u) = r.unified() {
            unified::apply(dir, u)?;
        }
        if let Some(rules) = r.devices() {
            devices::apply(dir, rules)?;
        }
        Ok(())
    }

    pub(super) fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        fs::write(&self.dir, "cgroup.procs", &pid.to_string())
    }

    pub(super) fn freeze(&self) -> Result<(), CgroupError> {
        freezer::freeze(&self.dir)
    }

    pub(super) fn thaw(&self) -> Result<(), CgroupError> {
        freezer::thaw(&self.dir)
    }

    pub(super) fn is_frozen(&self) -> Result<bool, CgroupError> {
        freezer::is_frozen(&self.dir)
    }

    pub(super) fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        fs::procs_recursive(&self.dir)
    }

    pub(super) fn stats(&self) -> Result<Stats, CgroupError> {
        self.must_exist()?;
        let mut s = Stats::default();
        let dir = self.dir.as_path();
        cpu::stats(dir, &mut s.cpu)?;
        memory::stats(dir, &mut s.memory)?;
        pids::stats(dir, &mut s.pids)?;
        io::stats(dir, &mut s.io)?;
        Ok(s)
    }

    pub(super) fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        self.must_exist()?;
        memory::oom_kill_count(&self.dir)
    }

    pub(super) fn remove(&self) -> Result<(), CgroupError> {
        fs::remove_tree(&self.dir)
    }
}

/// Enables in `dir/cgroup.subtree_control` each wanted controller that `dir` offers and that is
/// not enabled yet. All at once first; if the kernel refuses the set, one by one, ignoring
/// refusals (a resource needing a refused controller then fails in `apply`).
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let offered = fs::read_opt(dir, "cgroup.controllers")?.unwrap_or_default();
    let enabled = fs::read_opt(dir, "cgroup.subtree_control")?.unwrap_or_default();
    let missing: Vec<&str> = offered
        .split_whitespace()
        .filter(|c| WANTED.contains(c))
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    if fs::write(dir, "cgroup.subtree_control", &all.join(" ")).is_ok() {
        return Ok(());
    }
    for c in all {
        let _ = fs::write(dir, "cgroup.subtree_control", &c);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
