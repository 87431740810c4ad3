//! v2 `pids` controller.

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::cgroups::{fs, stats, CgroupError, PidsStats};

/// Writes `pids.max`; a limit of 0 or less means `max`.
pub(super) fn apply(dir: &Path, p: &LinuxPids) -> Result<(), CgroupError> {
    let v = if p.limit() <= 0 {
        "max".to_string()
    } else {
        p.limit().to_string()
    };
    fs::write(dir, "pids.max", &v)
}

/// `pids.current` and `pids.max`; nothing when the controller is not enabled.
pub(super) fn stats(dir: &Path, out: &mut PidsStats) -> Result<(), CgroupError> {
    if let Some(cur) = fs::read_u64_opt(dir, "pids.current")? {
        out.current = cur;
        out.limit = stats::max_or_value(&fs::read(dir, "pids.max")?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn apply_and_stats() {
        let d = fixture(&["pids.max"]);
        apply(d.path(), &serde_json::from_str(r#"{"limit":10}"#).unwrap()).unwrap();
        assert_eq!(read(&d, "pids.max"), "10");
        apply(d.path(), &serde_json::from_str(r#"{"limit":-1}"#).unwrap()).unwrap();
        assert_eq!(read(&d, "pids.max"), "max");
        let mut s = PidsStats::default();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(s, PidsStats::default());
        std::fs::write(d.path().join("pids.current"), "4\n").unwrap();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(
            s,
            PidsStats {
                current: 4,
                limit: None
            }
        );
    }
}
