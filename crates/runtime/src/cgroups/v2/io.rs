//! v2 `io` controller: `io.weight` and `io.max`; I/O statistics from `io.stat`.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use crate::cgroups::{fs, stats, CgroupError, IoStats};

/// Whether the spec sets anything v2 can apply (leaf weights do not exist on v2).
pub(super) fn needed(b: &LinuxBlockIo) -> bool {
    let some = |v: &Option<Vec<LinuxThrottleDevice>>| v.as_ref().is_some_and(|v| !v.is_empty());
    b.weight().is_some_and(|w| w != 0)
        || b.weight_device()
            .as_ref()
            .is_some_and(|v| v.iter().any(|d| d.weight().is_some()))
        || some(b.throttle_read_bps_device())
        || some(b.throttle_write_bps_device())
        || some(b.throttle_read_iops_device())
        || some(b.throttle_write_iops_device())
}

/// v1 blkio weight (10..=1000) to v2 io weight (1..=10000).
pub(super) fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// Writes `io.weight` (`default W`, then `MAJ:MIN W` per device) and one `io.max` line per
/// device with every limit the spec gives it (`MAJ:MIN rbps=N wbps=N riops=N wiops=N`).
pub(super) fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        fs::write(
            dir,
            "io.weight",
            &format!("default {}", blkio_to_io_weight(w)),
        )?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            apply_device_weight(dir, d.major(), d.minor(), w)?;
        }
    }
    for line in io_max_lines(b) {
        fs::write(dir, "io.max", &line)?;
    }
    Ok(())
}

/// A per-device weight: BFQ's `io.bfq.weight` takes the v1 range as is; `io.weight` only
/// accepts device lines where io.cost is enabled. A device whose scheduler supports neither is
/// skipped (EOPNOTSUPP), like runc does, instead of failing the whole container.
fn apply_device_weight(dir: &Path, major: i64, minor: i64, w: u16) -> Result<(), CgroupError> {
    if dir.join("io.bfq.weight").exists() {
        return fs::write(dir, "io.bfq.weight", &format!("{major}:{minor} {w}"));
    }
    let line = format!("{major}:{minor} {}", blkio_to_io_weight(w));
    match fs::write(dir, "io.weight", &line) {
        Err(CgroupError::Io { source, .. }) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            tracing::debug!(
                major,
                minor,
                "device weight not supported by the device's scheduler"
            );
            Ok(())
        }
        other => other,
    }
}

/// The `io.max` lines, one per device in the order devices first appear.
fn io_max_lines(b: &LinuxBlockIo) -> Vec<String> {
    let mut devs: Vec<((i64, i64), String)> = Vec::new();
    let kinds = [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ];
    for (list, key) in kinds {
        for d in list.iter().flatten() {
            let id = (d.major(), d.minor());
            let i = match devs.iter().position(|(k, _)| *k == id) {
                Some(i) => i,
                None => {
                    devs.push((id, format!("{}:{}", id.0, id.1)));
                    devs.len() - 1
                }
            };
            devs[i].1.push_str(&format!(" {key}={}", d.rate()));
        }
    }
    devs.into_iter().map(|(_, l)| l).collect()
}

/// Bytes and operations summed over the devices of `io.stat`.
pub(super) fn stats(dir: &Path, out: &mut IoStats) -> Result<(), CgroupError> {
    if let Some(s) = fs::read_opt(dir, "io.stat")? {
        out.read_bytes = stats::nested_sum(&s, "rbytes");
        out.write_bytes = stats::nested_sum(&s, "wbytes");
        out.read_ops = stats::nested_sum(&s, "rios");
        out.write_ops = stats::nested_sum(&s, "wios");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn weight_conversion() {
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(500), 4950);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(blkio_to_io_weight(1), 1);
    }

    #[test]
    fn apply_weight_and_max() {
        let d = fixture(&["io.weight", "io.max"]);
        let b: LinuxBlockIo = serde_json::from_str(
            r#"{"weight":1000,
                "throttleReadBpsDevice":[{"major":8,"minor":0,"rate":100}],
                "throttleWriteBpsDevice":[{"major":8,"minor":0,"rate":200}],
                "throttleReadIOPSDevice":[{"major":8,"minor":16,"rate":5}],
                "throttleWriteIOPSDevice":[{"major":8,"minor":0,"rate":7}]}"#,
        )
        .unwrap();
        assert!(needed(&b));
        assert_eq!(
            io_max_lines(&b),
            vec!["8:0 rbps=100 wbps=200 wiops=7", "8:16 riops=5"]
        );
        apply(d.path(), &b).unwrap();
        assert_eq!(read(&d, "io.weight"), "default 10000");
        assert_eq!(read(&d, "io.max"), "8:16 riops=5");
        let b: LinuxBlockIo =
            serde_json::from_str(r#"{"weightDevice":[{"major":8,"minor":0,"weight":10}]}"#)
                .unwrap();
        apply(d.path(), &b).unwrap();
        assert_eq!(read(&d, "io.weight"), "8:0 1");
        let b: LinuxBlockIo = serde_json::from_str(r#"{"leafWeight":10}"#).unwrap();
        assert!(!needed(&b));
    }

    #[test]
    fn stats_sum_devices() {
        let d = fixture(&[]);
        std::fs::write(
            d.path().join("io.stat"),
            "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=3 wios=4\n",
        )
        .unwrap();
        let mut s = IoStats::default();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(
            s,
            IoStats {
                read_bytes: 11,
                write_bytes: 22,
                read_ops: 4,
                write_ops: 6
            }
        );
    }
}
