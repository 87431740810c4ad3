//! v2 freezer: `cgroup.freeze` and the `frozen` field of `cgroup.events`.

use std::path::Path;
use std::time::Duration;

use crate::cgroups::{fs, stats, CgroupError};

/// How long [`freeze`] waits for the kernel to report the cgroup frozen.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes `1` to `cgroup.freeze` and waits until `cgroup.events` shows `frozen 1`; thaws again
/// and fails after [`FREEZE_TIMEOUT`].
pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    fs::write(dir, "cgroup.freeze", "1")?;
    if fs::wait_until(FREEZE_TIMEOUT, || is_frozen(dir))? {
        return Ok(());
    }
    let _ = thaw(dir);
    Err(CgroupError::Other(format!(
        "{}: cgroup did not freeze within {FREEZE_TIMEOUT:?}",
        dir.display()
    )))
}

/// Writes `0` to `cgroup.freeze`.
pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    fs::write(dir, "cgroup.freeze", "0")
}

/// Whether `cgroup.events` reports `frozen 1` (false when there is no such file: the root).
pub(super) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(fs::read_opt(dir, "cgroup.events")?.is_some_and(|s| stats::keyed(&s, "frozen") == Some(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn freeze_waits_for_events() {
        let d = fixture(&["cgroup.freeze"]);
        std::fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        freeze(d.path()).unwrap();
        assert_eq!(read(&d, "cgroup.freeze"), "1");
        assert!(is_frozen(d.path()).unwrap());
        thaw(d.path()).unwrap();
        assert_eq!(read(&d, "cgroup.freeze"), "0");
        std::fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        assert!(!is_frozen(d.path()).unwrap());
    }
}
