//! v1 `memory` controller: limits, swap (memsw), swappiness, OOM killer; memory statistics.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::{fs, stats, CgroupError, MemoryStats};

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

/// Whether the spec sets anything this controller handles (kernel memory limits are ignored:
/// recent kernels dropped them).
pub(super) fn needed(m: &LinuxMemory) -> bool {
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
}

/// Writes the limits. The kernel requires `limit <= memsw` at every moment, so when both are
/// set memsw is written first if it is at least the current limit, else last. `swap` (memory
/// plus swap, as in the spec) is skipped when the kernel has no swap accounting.
pub(super) fn apply(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    if let Some(v) = m.reservation() {
        fs::write(dir, "memory.soft_limit_in_bytes", &v.to_string())?;
    }
    let swap = m.swap().filter(|_| fs::exists(dir, MEMSW));
    match (m.limit(), swap) {
        (Some(limit), Some(swap)) => {
            let current = fs::read_u64(dir, LIMIT)?;
            if swap < 0 || swap as u64 >= current {
                fs::write(dir, MEMSW, &swap.to_string())?;
                fs::write(dir, LIMIT, &limit.to_string())?;
            } else {
                fs::write(dir, LIMIT, &limit.to_string())?;
                fs::write(dir, MEMSW, &swap.to_string())?;
            }
        }
        (Some(limit), None) => fs::write(dir, LIMIT, &limit.to_string())?,
        (None, Some(swap)) => fs::write(dir, MEMSW, &swap.to_string())?,
        (None, None) => {}
    }
    if let Some(v) = m.swappiness() {
        if v > 100 {
            return Err(CgroupError::Other(format!(
                "memory.swappiness {v} is out of range 0..=100"
            )));
        }
        fs::write(dir, "memory.swappiness", &v.to_string())?;
    }
    if let Some(disable) = m.disable_oom_killer() {
        fs::write(dir, "memory.oom_control", if disable { "1" } else { "0" })?;
    }
    Ok(())
}

/// Usage, limit and `memory.stat` breakdown; hierarchical (`total_*`) counters when present.
pub(super) fn stats(dir: &Path, out: &mut MemoryStats) -> Result<(), CgroupError> {
    out.usage = fs::read_u64(dir, "memory.usage_in_bytes")?;
    out.max_usage = fs::read_u64(dir, "memory.max_usage_in_bytes")?;
    out.limit = stats::v1_limit(fs::read_u64(dir, LIMIT)?);
    let st = fs::read(dir, "memory.stat")?;
    let pick = |total: &str, local: &str| {
        stats::keyed(&st, total).unwrap_or_else(|| stats::keyed_or_zero(&st, local))
    };
    out.rss = pick("total_rss", "rss");
    out.cache = pick("total_cache", "cache");
    out.working_set = out
        .usage
        .saturating_sub(pick("total_inactive_file", "inactive_file"));
    if let Some(memsw) = fs::read_u64_opt(dir, "memory.memsw.usage_in_bytes")? {
        out.swap_usage = memsw.saturating_sub(out.usage);
    }
    out.oom_kill_count = oom_kill_count(dir)?;
    Ok(())
}

/// `oom_kill` of `memory.oom_control` (0 on kernels that do not report it).
pub(super) fn oom_kill_count(dir: &Path) -> Result<u64, CgroupError> {
    Ok(fs::read_opt(dir, "memory.oom_control")?
        .map(|s| stats::keyed_or_zero(&s, "oom_kill"))
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    const FILES: &[&str] = &[
        LIMIT,
        MEMSW,
        "memory.soft_limit_in_bytes",
        "memory.swappiness",
        "memory.oom_control",
    ];

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn apply_writes_limits() {
        let d = fixture(FILES);
        std::fs::write(d.path().join(LIMIT), "9223372036854771712").unwrap();
        let m = mem(
            r#"{"limit":67108864,"reservation":33554432,"swap":134217728,
                "swappiness":10,"disableOOMKiller":true,"kernel":1}"#,
        );
        assert!(needed(&m));
        apply(d.path(), &m).unwrap();
        assert_eq!(read(&d, LIMIT), "67108864");
        assert_eq!(read(&d, MEMSW), "134217728");
        assert_eq!(read(&d, "memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(read(&d, "memory.swappiness"), "10");
        assert_eq!(read(&d, "memory.oom_control"), "1");
    }

    #[test]
    fn swap_is_skipped_without_memsw_and_swappiness_checked() {
        let d = fixture(&[LIMIT, "memory.swappiness"]);
        apply(d.path(), &mem(r#"{"limit":-1,"swap":-1}"#)).unwrap();
        assert_eq!(read(&d, LIMIT), "-1");
        assert!(!d.path().join(MEMSW).exists());
        assert!(apply(d.path(), &mem(r#"{"swappiness":101}"#)).is_err());
        assert!(!needed(&mem(r#"{"kernel":1}"#)));
    }

    #[test]
    fn stats_parse_usage_and_working_set() {
        let d = fixture(&[]);
        let w = |f: &str, v: &str| std::fs::write(d.path().join(f), v).unwrap();
        w("memory.usage_in_bytes", "1000\n");
        w("memory.max_usage_in_bytes", "2000\n");
        w(LIMIT, "9223372036854771712\n");
        w(
            "memory.stat",
            "cache 1\nrss 2\ninactive_file 3\ntotal_cache 100\ntotal_rss 200\ntotal_inactive_file 300\n",
        );
        w("memory.memsw.usage_in_bytes", "1500\n");
        w(
            "memory.oom_control",
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        let mut s = MemoryStats::default();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(
            s,
            MemoryStats {
                usage: 1000,
                max_usage: 2000,
                limit: None,
                rss: 200,
                cache: 100,
                working_set: 700,
                swap_usage: 500,
                oom_kill_count: 2,
            }
        );
        w(LIMIT, "4096\n");
        stats(d.path(), &mut s).unwrap();
        assert_eq!(s.limit, Some(4096));
    }
}
