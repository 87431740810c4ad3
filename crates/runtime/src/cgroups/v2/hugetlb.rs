//! v2 `hugetlb` controller.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroups::{fs, CgroupError};

/// Writes `hugetlb.<size>.max` for each limit (`max` for a negative limit).
pub(super) fn apply(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for l in limits {
        let size = fs::name_part("huge page size", l.page_size())?;
        let v = if l.limit() < 0 {
            "max".to_string()
        } else {
            l.limit().to_string()
        };
        fs::write(dir, &format!("hugetlb.{size}.max"), &v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn apply_writes_max() {
        let d = fixture(&["hugetlb.2MB.max", "hugetlb.1GB.max"]);
        let l: Vec<LinuxHugepageLimit> = serde_json::from_str(
            r#"[{"pageSize":"2MB","limit":2097152},{"pageSize":"1GB","limit":-1}]"#,
        )
        .unwrap();
        apply(d.path(), &l).unwrap();
        assert_eq!(read(&d, "hugetlb.2MB.max"), "2097152");
        assert_eq!(read(&d, "hugetlb.1GB.max"), "max");
        let bad: Vec<LinuxHugepageLimit> =
            serde_json::from_str(r#"[{"pageSize":"../x","limit":1}]"#).unwrap();
        assert!(apply(d.path(), &bad).is_err());
    }
}
