//! v1 `freezer` controller.

use std::path::Path;
use std::time::Duration;

use crate::cgroups::{fs, CgroupError};

const STATE: &str = "freezer.state";

/// How long [`freeze`] waits for every task to stop.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes `FROZEN` until `freezer.state` reads `FROZEN` (it reads `FREEZING` while tasks are
/// still running); thaws again and fails after [`FREEZE_TIMEOUT`].
pub(super) fn freeze(dir: &Path) -> Result<(), CgroupError> {
    let frozen = fs::wait_until(FREEZE_TIMEOUT, || {
        fs::write(dir, STATE, "FROZEN")?;
        is_frozen(dir)
    })?;
    if frozen {
        return Ok(());
    }
    let _ = thaw(dir);
    Err(CgroupError::Other(format!(
        "{}: tasks did not freeze within {FREEZE_TIMEOUT:?}",
        dir.display()
    )))
}

/// Writes `THAWED`.
pub(super) fn thaw(dir: &Path) -> Result<(), CgroupError> {
    fs::write(dir, STATE, "THAWED")
}

/// Whether `freezer.state` reads `FROZEN`.
pub(super) fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    Ok(fs::read(dir, STATE)? == "FROZEN")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn freeze_and_thaw_fixture() {
        // A regular file reads back what was written, like a cgroup that froze at once.
        let d = fixture(&[STATE]);
        freeze(d.path()).unwrap();
        assert!(is_frozen(d.path()).unwrap());
        thaw(d.path()).unwrap();
        assert_eq!(read(&d, STATE), "THAWED");
        assert!(!is_frozen(d.path()).unwrap());
    }
}
