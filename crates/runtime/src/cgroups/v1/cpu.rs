//! v1 `cpu` (CFS shares, quota, realtime) and `cpuacct` (usage) controllers.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::{fs, stats, CgroupError, CpuStats};

/// Whether the spec sets anything the `cpu` controller handles.
pub(super) fn needed(c: &LinuxCpu) -> bool {
    c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
}

/// Writes shares, CFS period then quota, burst, realtime period then runtime, idle.
pub(super) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(v) = c.shares() {
        fs::write(dir, "cpu.shares", &v.to_string())?;
    }
    if let Some(v) = c.period() {
        fs::write(dir, "cpu.cfs_period_us", &v.to_string())?;
    }
    if let Some(v) = c.quota() {
        let v = if v <= 0 { -1 } else { v };
        fs::write(dir, "cpu.cfs_quota_us", &v.to_string())?;
    }
    if let Some(v) = c.burst() {
        fs::write(dir, "cpu.cfs_burst_us", &v.to_string())?;
    }
    if let Some(v) = c.realtime_period() {
        fs::write(dir, "cpu.rt_period_us", &v.to_string())?;
    }
    if let Some(v) = c.realtime_runtime() {
        fs::write(dir, "cpu.rt_runtime_us", &v.to_string())?;
    }
    if let Some(v) = c.idle() {
        fs::write(dir, "cpu.idle", &v.to_string())?;
    }
    Ok(())
}

/// `USER_HZ`, the unit of `cpuacct.stat`.
pub(super) fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// CPU usage from `cpuacct.usage`/`cpuacct.stat` and throttling from `cpu.stat`.
pub(super) fn stats(
    cpu: Option<&Path>,
    cpuacct: Option<&Path>,
    ticks_per_sec: u64,
    out: &mut CpuStats,
) -> Result<(), CgroupError> {
    if let Some(d) = cpuacct {
        out.usage_total_ns = fs::read_u64(d, "cpuacct.usage")?;
        let st = fs::read(d, "cpuacct.stat")?;
        let ns_per_tick = 1_000_000_000 / ticks_per_sec.max(1);
        out.usage_user_ns = stats::keyed_or_zero(&st, "user") * ns_per_tick;
        out.usage_system_ns = stats::keyed_or_zero(&st, "system") * ns_per_tick;
    }
    if let Some(d) = cpu {
        if let Some(st) = fs::read_opt(d, "cpu.stat")? {
            out.nr_periods = stats::keyed_or_zero(&st, "nr_periods");
            out.nr_throttled = stats::keyed_or_zero(&st, "nr_throttled");
            out.throttled_time_ns = stats::keyed_or_zero(&st, "throttled_time");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::test_support::{fixture, read};

    #[test]
    fn apply_writes_every_field() {
        let d = fixture(&[
            "cpu.shares",
            "cpu.cfs_period_us",
            "cpu.cfs_quota_us",
            "cpu.cfs_burst_us",
            "cpu.rt_period_us",
            "cpu.rt_runtime_us",
            "cpu.idle",
        ]);
        let c: LinuxCpu = serde_json::from_str(
            r#"{"shares":512,"quota":50000,"period":100000,"burst":1000,
                "realtimeRuntime":950,"realtimePeriod":1000,"idle":1}"#,
        )
        .unwrap();
        assert!(needed(&c));
        apply(d.path(), &c).unwrap();
        assert_eq!(read(&d, "cpu.shares"), "512");
        assert_eq!(read(&d, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(&d, "cpu.cfs_period_us"), "100000");
        assert_eq!(read(&d, "cpu.cfs_burst_us"), "1000");
        assert_eq!(read(&d, "cpu.rt_runtime_us"), "950");
        assert_eq!(read(&d, "cpu.rt_period_us"), "1000");
        assert_eq!(read(&d, "cpu.idle"), "1");
    }

    #[test]
    fn non_positive_quota_is_unlimited() {
        let d = fixture(&["cpu.cfs_quota_us"]);
        let c: LinuxCpu = serde_json::from_str(r#"{"quota":0}"#).unwrap();
        apply(d.path(), &c).unwrap();
        assert_eq!(read(&d, "cpu.cfs_quota_us"), "-1");
        let c: LinuxCpu = serde_json::from_str(r#"{"cpus":"0"}"#).unwrap();
        assert!(!needed(&c));
    }

    #[test]
    fn stats_convert_ticks_to_ns() {
        let d = fixture(&[]);
        std::fs::write(d.path().join("cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(d.path().join("cpuacct.stat"), "user 250\nsystem 50\n").unwrap();
        std::fs::write(
            d.path().join("cpu.stat"),
            "nr_periods 10\nnr_throttled 3\nthrottled_time 999\n",
        )
        .unwrap();
        let mut s = CpuStats::default();
        stats(Some(d.path()), Some(d.path()), 100, &mut s).unwrap();
        assert_eq!(
            s,
            CpuStats {
                usage_total_ns: 123456789,
                usage_user_ns: 2_500_000_000,
                usage_system_ns: 500_000_000,
                nr_periods: 10,
                nr_throttled: 3,
                throttled_time_ns: 999,
            }
        );
    }
}
