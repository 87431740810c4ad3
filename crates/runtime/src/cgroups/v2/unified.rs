//! The spec's `linux.resources.unified` map: raw v2 control file writes.

use std::collections::HashMap;
use std::path::Path;

use crate::cgroups::{fs, CgroupError};

/// Writes each value to the control file named by its key, in key order. Keys naming a path
/// (with `/`) are rejected.
pub(super) fn apply(dir: &Path, unified: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<&String> = unified.keys().collect();
    keys.sort();
    for k in keys {
        let file = fs::name_part("unified key", k)?;
        fs::write(dir, file, &unified[k])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn writes_keys_and_rejects_paths() {
        let d = fixture(&["memory.oom.group", "memory.high"]);
        let m = HashMap::from([
            ("memory.oom.group".to_string(), "1".to_string()),
            ("memory.high".to_string(), "max".to_string()),
        ]);
        apply(d.path(), &m).unwrap();
        assert_eq!(read(&d, "memory.oom.group"), "1");
        assert_eq!(read(&d, "memory.high"), "max");
        let bad = HashMap::from([("../x".to_string(), "1".to_string())]);
        assert!(matches!(apply(d.path(), &bad), Err(CgroupError::Other(_))));
        let missing = HashMap::from([("memory.nope".to_string(), "1".to_string())]);
        assert!(matches!(
            apply(d.path(), &missing),
            Err(CgroupError::Io { .. })
        ));
    }
}
