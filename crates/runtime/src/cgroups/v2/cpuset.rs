//! v2 `cpuset` controller.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::{fs, CgroupError};

/// Whether the spec sets CPUs or memory nodes.
pub(super) fn needed(c: &LinuxCpu) -> bool {
    c.cpus().as_ref().is_some_and(|s| !s.is_empty())
        || c.mems().as_ref().is_some_and(|s| !s.is_empty())
}

/// Writes `cpuset.cpus` and `cpuset.mems` (empty values are left alone).
pub(super) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(v) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.cpus", v)?;
    }
    if let Some(v) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        fs::write(dir, "cpuset.mems", v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn apply_writes_cpus_and_mems() {
        let d = fixture(&["cpuset.cpus", "cpuset.mems"]);
        let c: LinuxCpu = serde_json::from_str(r#"{"cpus":"1","mems":"0"}"#).unwrap();
        assert!(needed(&c));
        apply(d.path(), &c).unwrap();
        assert_eq!(read(&d, "cpuset.cpus"), "1");
        assert_eq!(read(&d, "cpuset.mems"), "0");
    }
}
