//! v2 `memory` controller: `memory.max`, `memory.low`, `memory.swap.max`; memory statistics.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::{fs, stats, CgroupError, MemoryStats};

/// Whether the spec sets anything v2 can apply (swappiness, the OOM killer switch and kernel
/// memory have no v2 files and are ignored).
pub(super) fn needed(m: &LinuxMemory) -> bool {
    m.limit().is_some() || m.reservation().is_some() || m.swap().is_some()
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The `memory.swap.max` value: the spec's swap is memory plus swap, v2 limits swap alone.
pub(super) fn swap_max(limit: Option<i64>, swap: i64) -> Result<String, CgroupError> {
    if swap < 0 {
        return Ok("max".to_string());
    }
    match limit {
        Some(l) if l >= 0 && swap >= l => Ok((swap - l).to_string()),
        Some(l) if l >= 0 => Err(CgroupError::Other(format!(
            "memory.swap {swap} is below memory.limit {l} (swap counts memory plus swap)"
        ))),
        _ => Err(CgroupError::Other(
            "memory.swap needs a finite memory.limit on cgroup v2".into(),
        )),
    }
}

/// Writes `memory.max`, `memory.low` and `memory.swap.max`. Without swap accounting (no
/// `memory.swap.max`), only a swap setting of "unlimited" or "none" is accepted.
pub(super) fn apply(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    if let Some(l) = m.limit() {
        fs::write(dir, "memory.max", &max_or(l))?;
    }
    if let Some(r) = m.reservation() {
        fs::write(dir, "memory.low", &r.max(0).to_string())?;
    }
    if let Some(s) = m.swap() {
        let v = swap_max(m.limit(), s)?;
        if fs::exists(dir, "memory.swap.max") {
            fs::write(dir, "memory.swap.max", &v)?;
        } else if v != "max" && v != "0" {
            return Err(CgroupError::Other(
                "the spec limits swap, but the kernel has no swap accounting (memory.swap.max)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Usage, peak, limit, `memory.stat` breakdown, swap and OOM kills; nothing when the
/// controller is not enabled.
pub(super) fn stats(dir: &Path, out: &mut MemoryStats) -> Result<(), CgroupError> {
    let Some(usage) = fs::read_u64_opt(dir, "memory.current")? else {
        return Ok(());
    };
    out.usage = usage;
    out.max_usage = fs::read_u64_opt(dir, "memory.peak")?.unwrap_or(0);
    out.limit = stats::max_or_value(&fs::read(dir, "memory.max")?);
    let st = fs::read(dir, "memory.stat")?;
    out.rss = stats::keyed_or_zero(&st, "anon");
    out.cache = stats::keyed_or_zero(&st, "file");
    out.working_set = usage.saturating_sub(stats::keyed_or_zero(&st, "inactive_file"));
    out.swap_usage = fs::read_u64_opt(dir, "memory.swap.current")?.unwrap_or(0);
    out.oom_kill_count = oom_kill_count(dir)?;
    Ok(())
}

/// `oom_kill` of `memory.events` (0 without the memory controller).
pub(super) fn oom_kill_count(dir: &Path) -> Result<u64, CgroupError> {
    Ok(fs::read_opt(dir, "memory.events")?
        .map(|s| stats::keyed_or_zero(&s, "oom_kill"))
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_max(Some(100), 300).unwrap(), "200");
        assert_eq!(swap_max(Some(100), 100).unwrap(), "0");
        assert_eq!(swap_max(Some(100), -1).unwrap(), "max");
        assert_eq!(swap_max(None, -1).unwrap(), "max");
        assert!(swap_max(Some(100), 50).is_err());
        assert!(swap_max(None, 50).is_err());
        assert!(swap_max(Some(-1), 50).is_err());
    }

    #[test]
    fn apply_writes_max_low_swap() {
        let d = fixture(&["memory.max", "memory.low", "memory.swap.max"]);
        let m = mem(r#"{"limit":1048576,"reservation":524288,"swap":3145728,"swappiness":5}"#);
        assert!(needed(&m));
        apply(d.path(), &m).unwrap();
        assert_eq!(read(&d, "memory.max"), "1048576");
        assert_eq!(read(&d, "memory.low"), "524288");
        assert_eq!(read(&d, "memory.swap.max"), "2097152");
        apply(d.path(), &mem(r#"{"limit":-1,"swap":-1}"#)).unwrap();
        assert_eq!(read(&d, "memory.max"), "max");
        assert_eq!(read(&d, "memory.swap.max"), "max");
        assert!(!needed(&mem(r#"{"swappiness":5,"disableOOMKiller":true}"#)));
    }

    #[test]
    fn swap_without_accounting() {
        let d = fixture(&["memory.max"]);
        apply(d.path(), &mem(r#"{"limit":100,"swap":100}"#)).unwrap();
        assert!(apply(d.path(), &mem(r#"{"limit":100,"swap":200}"#)).is_err());
    }

    #[test]
    fn stats_from_files() {
        let d = fixture(&[]);
        let mut s = MemoryStats::default();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(s, MemoryStats::default());
        let w = |f: &str, v: &str| std::fs::write(d.path().join(f), v).unwrap();
        w("memory.current", "1000\n");
        w("memory.peak", "1500\n");
        w("memory.max", "max\n");
        w(
            "memory.stat",
            "anon 600\nfile 300\ninactive_file 100\nactive_file 200\n",
        );
        w("memory.swap.current", "50\n");
        w(
            "memory.events",
            "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\noom_group_kill 0\n",
        );
        stats(d.path(), &mut s).unwrap();
        assert_eq!(
            s,
            MemoryStats {
                usage: 1000,
                max_usage: 1500,
                limit: None,
                rss: 600,
                cache: 300,
                working_set: 900,
                swap_usage: 50,
                oom_kill_count: 1,
            }
        );
        assert_eq!(oom_kill_count(d.path()).unwrap(), 1);
    }
}
