//! v1 `cpuset` controller: CPU and memory node placement.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::{fs, CgroupError};

/// Whether the spec sets CPUs or memory nodes.
pub(super) fn needed(c: &LinuxCpu) -> bool {
    c.cpus().as_ref().is_some_and(|s| !s.is_empty())
        || c.mems().as_ref().is_some_and(|s| !s.is_empty())
}

/// Writes `cpuset.cpus` then `cpuset.mems` (empty values are left alone).
pub(super) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(v) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.mems", v)?;
    }
    Ok(())
}

/// A new v1 cpuset starts with no CPUs and no memory nodes, and no task can join it. Copies
/// them from the parent into every empty cpuset from below `mount_point` down to `dir`.
pub(super) fn populate_down(mount_point: &Path, dir: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(mount_point) else {
        return Ok(());
    };
    let mut parent = mount_point.to_path_buf();
    for c in rel.components() {
        let cur = parent.join(c);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if fs::read(&cur, file)?.is_empty() {
                fs::write(&cur, file, &fs::read(&parent, file)?)?;
            }
        }
        parent = cur;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read, read_at};

    #[test]
    fn apply_writes_cpus_and_mems() {
        let d = fixture(&["cpuset.cpus", "cpuset.mems"]);
        let c: LinuxCpu = serde_json::from_str(r#"{"cpus":"0-1","mems":"0"}"#).unwrap();
        assert!(needed(&c));
        apply(d.path(), &c).unwrap();
        assert_eq!(read(&d, "cpuset.cpus"), "0-1");
        assert_eq!(read(&d, "cpuset.mems"), "0");
        let c: LinuxCpu = serde_json::from_str(r#"{"cpus":""}"#).unwrap();
        assert!(!needed(&c));
    }

    #[test]
    fn new_cpusets_inherit_from_parent() {
        let d = fixture(&[
            "cpuset.cpus",
            "cpuset.mems",
            "a/cpuset.cpus",
            "a/cpuset.mems",
            "a/b/cpuset.cpus",
            "a/b/cpuset.mems",
        ]);
        std::fs::write(d.path().join("cpuset.cpus"), "0-3\n").unwrap();
        std::fs::write(d.path().join("cpuset.mems"), "0\n").unwrap();
        std::fs::write(d.path().join("a/b/cpuset.cpus"), "2\n").unwrap();
        populate_down(d.path(), &d.path().join("a/b")).unwrap();
        assert_eq!(read(&d, "a/cpuset.cpus"), "0-3");
        assert_eq!(read(&d, "a/cpuset.mems"), "0");
        assert_eq!(read_at(&d.path().join("a/b"), "cpuset.cpus"), "2");
        assert_eq!(read_at(&d.path().join("a/b"), "cpuset.mems"), "0");
    }
}
