//! cgroups v1 and v2 behind one interface (cgroupfs driver).
//!
//! STUB: the cgroups work stream replaces this file and adds `v1/`, `v2/` and `stats.rs`.
//! The public surface below is the contract the rest of the runtime uses.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cgroup: {0}")]
    Other(String),
}

/// Which cgroup hierarchy the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    V1,
    V2,
}

/// Resource usage of one cgroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    pub io: IoStats,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    pub usage_total_ns: u64,
    pub usage_user_ns: u64,
    pub usage_system_ns: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_time_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    pub usage: u64,
    pub max_usage: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
    pub rss: u64,
    pub cache: u64,
    pub working_set: u64,
    pub swap_usage: u64,
    pub oom_kill_count: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IoStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

/// One container's cgroup, on whichever hierarchy the host has.
#[derive(Debug, Clone)]
pub struct Manager {
    path: PathBuf,
}

impl Manager {
    /// The cgroup at `cgroups_path` (the spec's `linux.cgroupsPath`, e.g. `/berth/<id>`), on the
    /// host's hierarchy (probed once per process). Creates nothing.
    pub fn new(cgroups_path: &Path) -> Result<Self, CgroupError> {
        Ok(Manager {
            path: cgroups_path.to_path_buf(),
        })
    }

    pub fn version(&self) -> Version {
        Version::V1
    }

    /// The cgroup path relative to the hierarchy root, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the cgroup directories (parents included).
    pub fn create(&self) -> Result<(), CgroupError> {
        Ok(())
    }

    /// Writes the spec's resources. Called before any process joins and again on update.
    pub fn apply(&self, _resources: &LinuxResources) -> Result<(), CgroupError> {
        Ok(())
    }

    /// Moves a process into the cgroup (all hierarchies on v1).
    pub fn add_task(&self, _pid: i32) -> Result<(), CgroupError> {
        Ok(())
    }

    pub fn freeze(&self) -> Result<(), CgroupError> {
        Err(CgroupError::Other("not implemented".into()))
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        Err(CgroupError::Other("not implemented".into()))
    }

    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        Ok(false)
    }

    /// Every pid in the cgroup (and its descendants).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Ok(Vec::new())
    }

    pub fn stats(&self) -> Result<Stats, CgroupError> {
        Ok(Stats::default())
    }

    /// How many times the kernel's OOM killer killed a process in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        Ok(0)
    }

    /// Removes the cgroup directories. The cgroup must be empty.
    pub fn remove(&self) -> Result<(), CgroupError> {
        Ok(())
    }
}
