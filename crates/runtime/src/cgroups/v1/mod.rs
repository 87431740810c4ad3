//! cgroup v1: one directory per mounted controller hierarchy.

mod blkio;
mod cpu;
mod cpuset;
mod devices;
mod freezer;
mod hugetlb;
mod memory;
mod mounts;
mod net_cls;
mod pids;

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{fs, CgroupError, Hierarchy, Stats};

/// A cgroup on a v1 host.
#[derive(Debug, Clone)]
pub(super) struct Manager {
    hierarchies: Vec<Hierarchy>,
}

/// The hierarchies mounted in this process's mount namespace, read from mountinfo once per
/// process: they are mounted at boot, and a command or a shim asks for them several times
/// (create, joins, stats, delete), each read and parse of mountinfo costing ~0.2 ms.
fn host_mounts() -> Result<Vec<mounts::Mount>, CgroupError> {
    static MOUNTS: std::sync::OnceLock<Vec<mounts::Mount>> = std::sync::OnceLock::new();
    if let Some(m) = MOUNTS.get() {
        return Ok(m.clone());
    }
    let path = Path::new("/proc/self/mountinfo");
    let info = std::fs::read_to_string(path).map_err(fs::io_err(path))?;
    Ok(MOUNTS
        .get_or_init(|| mounts::parse_mountinfo(&info))
        .clone())
}

impl Manager {
    /// The cgroup `rel` in every hierarchy mounted in this process's mount namespace.
    pub(super) fn from_mountinfo(rel: &Path) -> Result<Self, CgroupError> {
        Ok(Self::from_mounts(host_mounts()?, rel))
    }

    /// The cgroup `rel` in every hierarchy directory below `root`.
    pub(super) fn from_root_dir(root: &Path, rel: &Path) -> Result<Self, CgroupError> {
        Ok(Self::from_mounts(mounts::scan_root_dir(root)?, rel))
    }

    fn from_mounts(mounts: Vec<mounts::Mount>, rel: &Path) -> Self {
        let hierarchies = mounts
            .into_iter()
            .map(|m| Hierarchy {
                dir: m.mount_point.join(rel),
                controllers: m.controllers,
                mount_point: m.mount_point,
            })
            .collect();
        Manager { hierarchies }
    }

    pub(super) fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The cgroup's directory in the hierarchy of `controller`, if that is mounted.
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.dir.as_path())
    }

    /// Like [`Self::dir`], but a missing controller is an error naming what the spec asked for.
    fn require(&self, controller: &str, what: &str) -> Result<&Path, CgroupError> {
        self.dir(controller).ok_or_else(|| {
            CgroupError::Other(format!(
                "the spec sets {what}, but the {controller} cgroup controller is not mounted on this host"
            ))
        })
    }

    pub(super) fn create(&self) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            fs::mkdir_all(&h.dir)?;
            if h.controllers.iter().any(|c| c == "cpuset") {
                cpuset::populate_down(&h.mount_point, &h.dir)?;
            }
        }
        Ok(())
    }

    pub(super) fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(rules) = r.devices() {
            devices::apply(self.require("devices", "linux.resources.devices")?, rules)?;
        }
        if let Some(c) = r.cpu() {
            if cpuset::needed(c) {
                cpuset::apply(self.require("cpuset", "cpu.cpus/mems")?, c)?;
            }
            if cpu::needed(c) {
                cpu::apply(self.require("cpu", "cpu limits")?, c)?;
            }
        }
        if let Some(m) = r.memory() {
            if memory::needed(m) {
                memory::apply(self.require("memory", "memory limits")?, m)?;
            }
        }
        if let Some(p) = r.pids() {
            pids::apply(self.require("pids", "pids.limit")?, p)?;
        }
        if let Some(b) = r.block_io() {
            if blkio::needed(b) {
                blkio::apply(self.require("blkio", "blockIO")?, b)?;
            }
        }
        if let Some(h) = r.hugepage_limits() {
            if !h.is_empty() {
                hugetlb::apply(self.require("hugetlb", "hugepageLimits")?, h)?;
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                net_cls::apply_class_id(self.require("net_cls", "network.classID")?, id)?;
            }
            if let Some(p) = n.priorities() {
                if !p.is_empty() {
                    net_cls::apply_priorities(self.require("net_prio", "network.priorities")?, p)?;
                }
            }
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(CgroupError::Other(
                "the spec sets linux.resources.unified, which needs cgroup v2".into(),
            ));
        }
        Ok(())
    }

    pub(super) fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        for h in &self.hierarchies {
            fs::write(&h.dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    pub(super) fn freeze(&self) -> Result<(), CgroupError> {
        freezer::freeze(self.require("freezer", "a freeze")?)
    }

    pub(super) fn thaw(&self) -> Result<(), CgroupError> {
        freezer::thaw(self.require("freezer", "a thaw")?)
    }

    pub(super) fn is_frozen(&self) -> Result<bool, CgroupError> {
        match self.dir("freezer") {
            Some(d) => freezer::is_frozen(d),
            None => Ok(false),
        }
    }

    pub(super) fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self
            .dir("pids")
            .or_else(|| self.dir("freezer"))
            .or_else(|| self.hierarchies.first().map(|h| h.dir.as_path()))
            .ok_or_else(|| CgroupError::Other("no cgroup v1 hierarchy is mounted".into()))?;
        fs::procs_recursive(dir)
    }

    pub(super) fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        cpu::stats(
            self.dir("cpu"),
            self.dir("cpuacct"),
            cpu::clock_ticks(),
            &mut s.cpu,
        )?;
        if let Some(d) = self.dir("memory") {
            memory::stats(d, &mut s.memory)?;
        }
        if let Some(d) = self.dir("pids") {
            pids::stats(d, &mut s.pids)?;
        }
        if let Some(d) = self.dir("blkio") {
            blkio::stats(d, &mut s.io)?;
        }
        Ok(s)
    }

    pub(super) fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        match self.dir("memory") {
            Some(d) => memory::oom_kill_count(d),
            None => Ok(0),
        }
    }

    pub(super) fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for h in &self.hierarchies {
            if let Err(e) = fs::remove_tree(&h.dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
