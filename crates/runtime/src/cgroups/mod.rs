//! cgroups v1 and v2 behind one interface (cgroupfs driver).
//!
//! [`Manager`] dispatches to the v1 backend (one directory per mounted controller hierarchy,
//! `v1/`) or the v2 backend (one directory in the unified hierarchy, `v2/`). Each controller
//! lives in its own file with fixture tests beside it.

mod fs;
mod stats;
#[cfg(test)]
mod test_support;
mod v1;
mod v2;

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

/// A failure to create, configure, read or remove a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A control file or directory could not be read or written.
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Anything else: an invalid path, an unsupported resource, an unparsable file.
    #[error("cgroup: {0}")]
    Other(String),
}

/// Which cgroup hierarchy the host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    /// Legacy or hybrid: one hierarchy per controller.
    V1,
    /// Unified hierarchy.
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

/// CPU time and CFS throttling, in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    pub usage_total_ns: u64,
    pub usage_user_ns: u64,
    pub usage_system_ns: u64,
    pub nr_periods: u64,
    pub nr_throttled: u64,
    pub throttled_time_ns: u64,
}

/// Memory usage in bytes. `working_set` is usage minus inactive file pages; `swap_usage` is swap
/// alone (on v1 memsw usage minus memory usage).
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

/// Number of tasks and the pids limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// Block I/O summed over all devices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IoStats {
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

/// One hierarchy a cgroup lives in, e.g. for bind-mounting it into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// The controllers bound to the hierarchy (`["cpu", "cpuacct"]`); empty for the v2
    /// unified hierarchy.
    pub controllers: Vec<String>,
    /// Where the hierarchy is mounted (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup`).
    pub mount_point: PathBuf,
    /// The cgroup's directory in it.
    pub dir: PathBuf,
}

/// Where the host mounts its cgroup hierarchies.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One container's cgroup, on whichever hierarchy the host has.
#[derive(Debug, Clone)]
pub struct Manager {
    path: PathBuf,
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    V1(v1::Manager),
    V2(v2::Manager),
}

impl Manager {
    /// The cgroup at `cgroups_path` (the spec's `linux.cgroupsPath`, e.g. `/berth/<id>`), on the
    /// host's hierarchy (probed once per process). Creates nothing.
    ///
    /// Relative paths are also taken from the root of the hierarchy; `..` is rejected.
    pub fn new(cgroups_path: &Path) -> Result<Self, CgroupError> {
        let rel = relative(cgroups_path)?;
        let backend = match host_version()? {
            Version::V1 => Backend::V1(v1::Manager::from_mountinfo(&rel)?),
            Version::V2 => Backend::V2(v2::Manager::new(Path::new(CGROUP_ROOT), &rel)),
        };
        Ok(Manager {
            path: cgroups_path.to_path_buf(),
            backend,
        })
    }

    /// The cgroup at `cgroups_path` below an explicit hierarchy root instead of the host's.
    ///
    /// On v2 `root` is the unified hierarchy's mount point. On v1 `root` is a directory holding
    /// one directory per hierarchy, named after its controllers (`cpu,cpuacct`, `memory`, ...),
    /// like `/sys/fs/cgroup`; symlinks to the same hierarchy are merged.
    pub fn with_root(
        root: &Path,
        version: Version,
        cgroups_path: &Path,
    ) -> Result<Self, CgroupError> {
        let rel = relative(cgroups_path)?;
        let backend = match version {
            Version::V1 => Backend::V1(v1::Manager::from_root_dir(root, &rel)?),
            Version::V2 => Backend::V2(v2::Manager::new(root, &rel)),
        };
        Ok(Manager {
            path: cgroups_path.to_path_buf(),
            backend,
        })
    }

    /// Which hierarchy this cgroup is on.
    pub fn version(&self) -> Version {
        match self.backend {
            Backend::V1(_) => Version::V1,
            Backend::V2(_) => Version::V2,
        }
    }

    /// The cgroup path relative to the hierarchy root, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The hierarchies the cgroup lives in: one per mounted controller hierarchy on v1 (named
    /// hierarchies like `name=systemd` are not used), the unified one on v2.
    pub fn hierarchies(&self) -> Vec<Hierarchy> {
        match &self.backend {
            Backend::V1(m) => m.hierarchies().to_vec(),
            Backend::V2(m) => vec![m.hierarchy()],
        }
    }

    /// The cgroup's directories: one per mounted controller hierarchy on v1, one on v2.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.hierarchies().into_iter().map(|h| h.dir).collect()
    }

    /// Creates the cgroup directories (parents included).
    pub fn create(&self) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.create(),
            Backend::V2(m) => m.create(),
        }
    }

    /// Writes the spec's resources. Called before any process joins and again on update.
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.apply(resources),
            Backend::V2(m) => m.apply(resources),
        }
    }

    /// Moves a process into the cgroup (all hierarchies on v1).
    pub fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.add_task(pid),
            Backend::V2(m) => m.add_task(pid),
        }
    }

    /// On v1, the files a single-threaded process writes `0` to in order to move itself in
    /// (`<dir>/tasks` of every hierarchy). Moving oneself as a thread skips the global
    /// threadgroup lock, whose RCU grace period makes `cgroup.procs` writes take milliseconds.
    /// `None` on v2, where a process is moved with [`Manager::add_task`].
    pub fn self_attach_files(&self) -> Option<Vec<PathBuf>> {
        match &self.backend {
            Backend::V1(_) => Some(self.dirs().into_iter().map(|d| d.join("tasks")).collect()),
            Backend::V2(_) => None,
        }
    }

    /// Freezes every process in the cgroup; returns once the kernel reports it frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.freeze(),
            Backend::V2(m) => m.freeze(),
        }
    }

    /// Thaws a frozen cgroup.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.thaw(),
            Backend::V2(m) => m.thaw(),
        }
    }

    /// Whether the kernel reports the cgroup frozen.
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.is_frozen(),
            Backend::V2(m) => m.is_frozen(),
        }
    }

    /// Every pid in the cgroup (and its descendants).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.pids(),
            Backend::V2(m) => m.pids(),
        }
    }

    /// Current resource usage. Controllers that are not available are left at their defaults.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.stats(),
            Backend::V2(m) => m.stats(),
        }
    }

    /// How many times the kernel's OOM killer killed a process in this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64, CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.oom_kill_count(),
            Backend::V2(m) => m.oom_kill_count(),
        }
    }

    /// Removes the cgroup directories (child cgroups first). The cgroup must be empty; a cgroup
    /// that does not exist is not an error.
    pub fn remove(&self) -> Result<(), CgroupError> {
        match &self.backend {
            Backend::V1(m) => m.remove(),
            Backend::V2(m) => m.remove(),
        }
    }
}

/// The cgroup version of the host, probed once per process with `statfs(/sys/fs/cgroup)`: a
/// cgroup2 filesystem there means v2, anything else (tmpfs of v1 or hybrid hosts) v1.
pub fn host_version() -> Result<Version, CgroupError> {
    static VERSION: OnceLock<Version> = OnceLock::new();
    if let Some(v) = VERSION.get() {
        return Ok(*v);
    }
    let st = nix::sys::statfs::statfs(CGROUP_ROOT).map_err(|e| CgroupError::Io {
        path: PathBuf::from(CGROUP_ROOT),
        source: e.into(),
    })?;
    let v = if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        Version::V2
    } else {
        Version::V1
    };
    Ok(*VERSION.get_or_init(|| v))
}

/// `cgroups_path` as a path relative to the hierarchy root, without `..` or `.`.
fn relative(cgroups_path: &Path) -> Result<PathBuf, CgroupError> {
    let mut rel = PathBuf::new();
    for c in cgroups_path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => rel.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(CgroupError::Other(format!(
                    "cgroups path {} must not contain '..'",
                    cgroups_path.display()
                )))
            }
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/berth/a")).unwrap(),
            PathBuf::from("berth/a")
        );
        assert_eq!(
            relative(Path::new("berth/./a")).unwrap(),
            PathBuf::from("berth/a")
        );
        assert!(matches!(
            relative(Path::new("/berth/../etc")),
            Err(CgroupError::Other(_))
        ));
        assert!(Manager::with_root(Path::new("/x"), Version::V2, Path::new("../a")).is_err());
    }

    #[test]
    fn host_is_probed() {
        // This host has tmpfs at /sys/fs/cgroup with v1 controllers below it.
        let expect = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            Version::V2
        } else {
            Version::V1
        };
        assert_eq!(host_version().unwrap(), expect);
        let m = Manager::new(Path::new("/berth/probe")).unwrap();
        assert_eq!(m.version(), expect);
        assert_eq!(m.path(), Path::new("/berth/probe"));
    }
}
