//! `--memory`, `--cpus`, `--pids-limit` and friends as `linux.resources`.

use berth_proto::v1::RunOptions;
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder,
    LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use crate::error::ApiError;

/// The CFS period used to express `--cpus`.
const CPU_PERIOD: u64 = 100_000;

pub fn from_options(o: &RunOptions, _cgroup_v2: bool) -> Result<LinuxResources, ApiError> {
    let invalid = |e: oci_spec::OciSpecError| ApiError::InvalidArgument(e.to_string());
    if o.memory < 0 || o.pids_limit < 0 || o.cpus < 0.0 || o.memory_swap < -1 {
        return Err(ApiError::InvalidArgument(
            "resource limits must not be negative".into(),
        ));
    }
    if o.memory > 0 && o.memory < 6 * 1024 * 1024 {
        return Err(ApiError::InvalidArgument(
            "--memory must be at least 6 MiB".into(),
        ));
    }
    if o.memory_swap > 0 && o.memory_swap < o.memory {
        return Err(ApiError::InvalidArgument(
            "--memory-swap must be at least --memory".into(),
        ));
    }
    // Devices: none but the defaults the runtime adds; everything when privileged.
    let devices = vec![LinuxDeviceCgroupBuilder::default()
        .allow(o.privileged)
        .access("rwm")
        .build()
        .map_err(invalid)?];
    let mut r = LinuxResourcesBuilder::default()
        .devices(devices)
        .build()
        .map_err(invalid)?;
    if o.memory > 0 || o.memory_swap != 0 {
        let mut m = LinuxMemoryBuilder::default();
        if o.memory > 0 {
            m = m.limit(o.memory);
        }
        if o.memory_swap != 0 {
            m = m.swap(o.memory_swap);
        }
        r.set_memory(Some(m.build().map_err(invalid)?));
    }
    if o.cpus > 0.0 || o.cpu_shares > 0 || !o.cpuset_cpus.is_empty() {
        let mut c = LinuxCpuBuilder::default();
        if o.cpus > 0.0 {
            c = c
                .quota((o.cpus * CPU_PERIOD as f64).round() as i64)
                .period(CPU_PERIOD);
        }
        if o.cpu_shares > 0 {
            c = c.shares(o.cpu_shares);
        }
        if !o.cpuset_cpus.is_empty() {
            c = c.cpus(o.cpuset_cpus.clone());
        }
        r.set_cpu(Some(c.build().map_err(invalid)?));
    }
    if o.pids_limit > 0 {
        r.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(o.pids_limit)
                .build()
                .map_err(invalid)?,
        ));
    }
    if o.io_weight > 0 {
        if !(10..=1000).contains(&o.io_weight) {
            return Err(ApiError::InvalidArgument(
                "io weight must be within 10..=1000".into(),
            ));
        }
        r.set_block_io(Some(
            LinuxBlockIoBuilder::default()
                .weight(o.io_weight as u16)
                .build()
                .map_err(invalid)?,
        ));
    }
    Ok(r)
}
