//! v1 `pids` controller: the task limit and count.

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::cgroups::{fs, stats, CgroupError, PidsStats};

/// Writes `pids.max`; a limit of 0 or less means unlimited.
pub(super) fn apply(dir: &Path, p: &LinuxPids) -> Result<(), CgroupError> {
    fs::write(dir, "pids.max", &limit_value(p.limit()))
}

/// The `pids.max` value for a spec limit .
fn limit_value(limit: i64) -> String {
    if limit <= 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

/// `pids.current` and `pids.max`.
pub(super) fn stats(dir: &Path, out: &mut PidsStats) -> Result<(), CgroupError> {
    out.current = fs::read_u64(dir, "pids.current")?;
    out.limit = stats::max_or_value(&fs::read(dir, "pids.max")?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn apply_limits() {
        let d = fixture(&["pids.max"]);
        apply(d.path(), &serde_json::from_str(r#"{"limit":32}"#).unwrap()).unwrap();
        assert_eq!(read(&d, "pids.max"), "32");
        apply(d.path(), &serde_json::from_str(r#"{"limit":0}"#).unwrap()).unwrap();
        assert_eq!(read(&d, "pids.max"), "max");
        apply(d.path(), &serde_json::from_str(r#"{"limit":-1}"#).unwrap()).unwrap();
        assert_eq!(read(&d, "pids.max"), "max");
    }

    #[test]
    fn stats_read_current_and_max() {
        let d = fixture(&[]);
        std::fs::write(d.path().join("pids.current"), "3\n").unwrap();
        std::fs::write(d.path().join("pids.max"), "max\n").unwrap();
        let mut s = PidsStats::default();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(
            s,
            PidsStats {
                current: 3,
                limit: None
            }
        );
        std::fs::write(d.path().join("pids.max"), "64\n").unwrap();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(s.limit, Some(64));
    }
}
