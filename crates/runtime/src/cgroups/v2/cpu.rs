//! v2 `cpu` controller: weight, bandwidth (`cpu.max`), burst, idle; CPU statistics.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::{fs, stats, CgroupError, CpuStats};

/// Whether the spec sets anything the `cpu` controller handles.
pub(super) fn needed(c: &LinuxCpu) -> bool {
    c.shares().is_some_and(|s| s != 0)
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || realtime(c)
}

fn realtime(c: &LinuxCpu) -> bool {
    c.realtime_runtime().is_some_and(|v| v != 0) || c.realtime_period().is_some_and(|v| v != 0)
}

/// v1 `cpu.shares` (2..=262144) to v2 `cpu.weight` (1..=10000).
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// Writes `cpu.weight`, `cpu.max` (`QUOTA PERIOD`, `max` for no quota; a missing quota keeps
/// the current one), `cpu.max.burst` and `cpu.idle`. Realtime limits do not exist on v2.
pub(super) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if realtime(c) {
        return Err(CgroupError::Other(
            "the spec sets realtime CPU limits, which cgroup v2 does not support".into(),
        ));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        fs::write(dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if c.quota().is_some() || c.period().is_some() {
        let quota = match c.quota() {
            Some(q) if q > 0 => q.to_string(),
            Some(_) => "max".to_string(),
            None => fs::read_opt(dir, "cpu.max")?
                .and_then(|s| s.split_whitespace().next().map(str::to_string))
                .unwrap_or_else(|| "max".to_string()),
        };
        let line = match c.period() {
            Some(p) => format!("{quota} {p}"),
            None => quota,
        };
        fs::write(dir, "cpu.max", &line)?;
    }
    if let Some(b) = c.burst() {
        fs::write(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

/// Usage and throttling from `cpu.stat` (microseconds, converted to nanoseconds).
pub(super) fn stats(dir: &Path, out: &mut CpuStats) -> Result<(), CgroupError> {
    let Some(st) = fs::read_opt(dir, "cpu.stat")? else {
        return Ok(());
    };
    let us = |k: &str| stats::keyed_or_zero(&st, k) * 1000;
    out.usage_total_ns = us("usage_usec");
    out.usage_user_ns = us("user_usec");
    out.usage_system_ns = us("system_usec");
    out.throttled_time_ns = us("throttled_usec");
    out.nr_periods = stats::keyed_or_zero(&st, "nr_periods");
    out.nr_throttled = stats::keyed_or_zero(&st, "nr_throttled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    fn cpu(json: &str) -> LinuxCpu {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn weight_conversion() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn apply_weight_max_burst_idle() {
        let d = fixture(&["cpu.weight", "cpu.max", "cpu.max.burst", "cpu.idle"]);
        apply(
            d.path(),
            &cpu(r#"{"shares":1024,"quota":50000,"period":100000,"burst":10,"idle":0}"#),
        )
        .unwrap();
        assert_eq!(read(&d, "cpu.weight"), "39");
        assert_eq!(read(&d, "cpu.max"), "50000 100000");
        assert_eq!(read(&d, "cpu.max.burst"), "10");
        assert_eq!(read(&d, "cpu.idle"), "0");
        apply(d.path(), &cpu(r#"{"quota":-1,"period":20000}"#)).unwrap();
        assert_eq!(read(&d, "cpu.max"), "max 20000");
        std::fs::write(d.path().join("cpu.max"), "30000 100000\n").unwrap();
        apply(d.path(), &cpu(r#"{"period":50000}"#)).unwrap();
        assert_eq!(read(&d, "cpu.max"), "30000 50000");
        apply(d.path(), &cpu(r#"{"quota":70000}"#)).unwrap();
        assert_eq!(read(&d, "cpu.max"), "70000");
    }

    #[test]
    fn realtime_is_rejected() {
        let d = fixture(&[]);
        let c = cpu(r#"{"realtimeRuntime":100}"#);
        assert!(needed(&c));
        assert!(matches!(apply(d.path(), &c), Err(CgroupError::Other(_))));
        assert!(!needed(&cpu(r#"{"shares":0,"cpus":"0"}"#)));
    }

    #[test]
    fn stats_from_cpu_stat() {
        let d = fixture(&[]);
        std::fs::write(
            d.path().join("cpu.stat"),
            "usage_usec 300\nuser_usec 200\nsystem_usec 100\nnr_periods 5\nnr_throttled 2\nthrottled_usec 7\n",
        )
        .unwrap();
        let mut s = CpuStats::default();
        stats(d.path(), &mut s).unwrap();
        assert_eq!(
            s,
            CpuStats {
                usage_total_ns: 300_000,
                usage_user_ns: 200_000,
                usage_system_ns: 100_000,
                nr_periods: 5,
                nr_throttled: 2,
                throttled_time_ns: 7_000,
            }
        );
    }
}
