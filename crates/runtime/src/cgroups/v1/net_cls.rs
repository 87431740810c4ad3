//! v1 `net_cls` (traffic class id) and `net_prio` (per-interface priority) controllers.

use std::path::Path;

use oci_spec::runtime::LinuxInterfacePriority;

use crate::cgroups::{fs, CgroupError};

/// Writes `net_cls.classid`.
pub(super) fn apply_class_id(dir: &Path, class_id: u32) -> Result<(), CgroupError> {
    fs::write(dir, "net_cls.classid", &class_id.to_string())
}

/// Writes one `IFNAME PRIORITY` line per interface to `net_prio.ifpriomap`.
pub(super) fn apply_priorities(
    dir: &Path,
    prios: &[LinuxInterfacePriority],
) -> Result<(), CgroupError> {
    for p in prios {
        fs::write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn class_id_and_priorities() {
        let d = fixture(&["net_cls.classid", "net_prio.ifpriomap"]);
        apply_class_id(d.path(), 0x100001).unwrap();
        assert_eq!(read(&d, "net_cls.classid"), "1048577");
        let p: Vec<LinuxInterfacePriority> =
            serde_json::from_str(r#"[{"name":"lo","priority":1},{"name":"eth0","priority":5}]"#)
                .unwrap();
        apply_priorities(d.path(), &p).unwrap();
        assert_eq!(read(&d, "net_prio.ifpriomap"), "eth0 5");
    }
}
