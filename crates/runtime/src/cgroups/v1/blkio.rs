//! v1 `blkio` controller: weights and throttling; I/O statistics.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroups::{fs, stats, CgroupError, IoStats};

/// Whether the spec sets anything for block I/O.
pub(super) fn needed(b: &LinuxBlockIo) -> bool {
    let some = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    b.weight().is_some()
        || b.leaf_weight().is_some()
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || some(b.throttle_read_bps_device())
        || some(b.throttle_write_bps_device())
        || some(b.throttle_read_iops_device())
        || some(b.throttle_write_iops_device())
}

/// Writes weights (to `blkio.weight`, or `blkio.bfq.weight` under the BFQ scheduler),
/// per-device weights and throttle limits (`MAJ:MIN VALUE`, one write per device).
pub(super) fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(w) = b.weight() {
        let file = if !fs::exists(dir, "blkio.weight") && fs::exists(dir, "blkio.bfq.weight") {
            "blkio.bfq.weight"
        } else {
            "blkio.weight"
        };
        fs::write(dir, file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight() {
        fs::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let v = format!("{}:{} {w}", d.major(), d.minor());
            fs::write(dir, "blkio.weight_device", &v)?;
        }
        if let Some(w) = d.leaf_weight() {
            let v = format!("{}:{} {w}", d.major(), d.minor());
            fs::write(dir, "blkio.leaf_weight_device", &v)?;
        }
    }
    let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str); 4] = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
        ),
    ];
    for (devs, file) in throttles {
        for d in devs.iter().flatten() {
            fs::write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

/// Bytes and operations from the throttle accounting files (recursive variants when present).
pub(super) fn stats(dir: &Path, out: &mut IoStats) -> Result<(), CgroupError> {
    let read = |name: &str| -> Result<Option<String>, CgroupError> {
        match fs::read_opt(dir, &format!("{name}_recursive"))? {
            Some(s) => Ok(Some(s)),
            None => fs::read_opt(dir, name),
        }
    };
    if let Some(s) = read("blkio.throttle.io_service_bytes")? {
        out.read_bytes = stats::blkio_sum(&s, "Read");
        out.write_bytes = stats::blkio_sum(&s, "Write");
    }
    if let Some(s) = read("blkio.throttle.io_serviced")? {
        out.read_ops = stats::blkio_sum(&s, "Read");
        out.write_ops = stats::blkio_sum(&s, "Write");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn apply_writes_weights_and_throttles() {
        let d = fixture(&[
            "blkio.weight",
            "blkio.leaf_weight",
            "blkio.weight_device",
            "blkio.leaf_weight_device",
            "blkio.throttle.read_bps_device",
            "blkio.throttle.write_bps_device",
            "blkio.throttle.read_iops_device",
            "blkio.throttle.write_iops_device",
        ]);
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":500,"leafWeight":300,
                "weightDevice":[{"major":8,"minor":0,"weight":600,"leafWeight":200}],
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}],
                "throttleWriteBpsDevice":[{"major":8,"minor":16,"rate":2097152}],
                "throttleReadIOPSDevice":[{"major":8,"minor":0,"rate":100}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":200}]}"#,
        )
        .unwrap();
        assert!(needed(&b));
        apply(d.path(), &b).unwrap();
        assert_eq!(read(&d, "blkio.weight"), "500");
        assert_eq!(read(&d, "blkio.leaf_weight"), "300");
        assert_eq!(read(&d, "blkio.weight_device"), "8:0 600");
        assert_eq!(read(&d, "blkio.leaf_weight_device"), "8:0 200");
        assert_eq!(read(&d, "blkio.throttle.read_bps_device"), "8:0 1048576");
        assert_eq!(read(&d, "blkio.throttle.write_bps_device"), "8:16 2097152");
        assert_eq!(read(&d, "blkio.throttle.read_iops_device"), "8:0 100");
        assert_eq!(read(&d, "blkio.throttle.write_iops_device"), "8:0 200");
    }

    #[test]
    fn bfq_weight_and_nothing_needed() {
        let d = fixture(&["blkio.bfq.weight"]);
        let b: LinuxBlockIo = serde_json::from_str(r#"{"weight":100}"#).unwrap();
        apply(d.path(), &b).unwrap();
        assert_eq!(read(&d, "blkio.bfq.weight"), "100");
        let b: LinuxBlockIo = serde_json::from_str(r#"{"weightDevice":[]}"#).unwrap();
        assert!(!needed(&b));
    }

    #[test]
    fn stats_prefer_recursive_files() {
        let d = fixture(&[]);
        let w = |f: &str, v: &str| std::fs::write(d.path().join(f), v).unwrap();
        w(
            "blkio.throttle.io_service_bytes",
            "8:0 Read 1\n8:0 Write 2\nTotal 3\n",
        );
        w(
            "blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 10\n8:0 Write 20\n8:16 Read 5\nTotal 35\n",
        );
        w(
            "blkio.throttle.io_serviced",
            "8:0 Read 3\n8:0 Write 4\n8:0 Total 7\nTotal 7\n",
        );
        let mut s = IoStats::default();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(
            s,
            IoStats {
                read_bytes: 15,
                write_bytes: 20,
                read_ops: 3,
                write_ops: 4
            }
        );
    }
}
