//! v1 `hugetlb` controller: huge page limits.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroups::{fs, CgroupError};

/// Writes `hugetlb.<size>.limit_in_bytes` for each limit.
pub(super) fn apply(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for l in limits {
        let size = fs::name_part("huge page size", l.page_size())?;
        fs::write(
            dir,
            &format!("hugetlb.{size}.limit_in_bytes"),
            &l.limit().to_string(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn apply_writes_limits() {
        let d = fixture(&["hugetlb.2MB.limit_in_bytes", "hugetlb.1GB.limit_in_bytes"]);
        let l: Vec<LinuxHugepageLimit> = serde_json::from_str(
            r#"[{"pageSize":"2MB","limit":4194304},{"pageSize":"1GB","limit":0}]"#,
        )
        .unwrap();
        apply(d.path(), &l).unwrap();
        assert_eq!(read(&d, "hugetlb.2MB.limit_in_bytes"), "4194304");
        assert_eq!(read(&d, "hugetlb.1GB.limit_in_bytes"), "0");
        let bad: Vec<LinuxHugepageLimit> =
            serde_json::from_str(r#"[{"pageSize":"../x","limit":1}]"#).unwrap();
        assert!(matches!(apply(d.path(), &bad), Err(CgroupError::Other(_))));
    }
}
