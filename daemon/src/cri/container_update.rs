//! UpdateContainerResources and ReopenContainerLog.

use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use k8s_cri::v1 as cri;
use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources};

use super::records::{self, NS};
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::tasks;

fn oci_resources(r: &cri::LinuxContainerResources) -> ApiResult<LinuxResources> {
    let invalid = |e: oci_spec::OciSpecError| ApiError::InvalidArgument(e.to_string());
    let mut res = LinuxResources::default();
    if r.memory_limit_in_bytes > 0 {
        let mut m = LinuxMemoryBuilder::default().limit(r.memory_limit_in_bytes);
        if r.memory_swap_limit_in_bytes > 0 {
            m = m.swap(r.memory_swap_limit_in_bytes);
        }
        res.set_memory(Some(m.build().map_err(invalid)?));
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any = false;
    if r.cpu_quota != 0 {
        cpu = cpu.quota(r.cpu_quota);
        any = true;
    }
    if r.cpu_period > 0 {
        cpu = cpu.period(r.cpu_period as u64);
        any = true;
    }
    if r.cpu_shares > 0 {
        cpu = cpu.shares(r.cpu_shares as u64);
        any = true;
    }
    if !r.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(r.cpuset_cpus.clone());
        any = true;
    }
    if !r.cpuset_mems.is_empty() {
        cpu = cpu.mems(r.cpuset_mems.clone());
        any = true;
    }
    if any {
        res.set_cpu(Some(cpu.build().map_err(invalid)?));
    }
    Ok(res)
}

pub async fn update(d: &Arc<Daemon>, r: cri::UpdateContainerResourcesRequest) -> ApiResult<()> {
    let mut record = records::container(d, &r.container_id)?;
    let Some(linux) = r.linux else {
        return Ok(());
    };
    let res = oci_resources(&linux)?;
    if d.bundles.path(NS, &record.id).exists() {
        let json =
            serde_json::to_vec(&res).map_err(|e| ApiError::internal("encoding resources", e))?;
        let mut client = tasks::client(d, NS, &record.id).await?;
        client
            .update(shim::UpdateRequest {
                resources_json: json,
            })
            .await?;
    } else if let Some(mut c) = d.store.container(NS, &record.id)? {
        // Not started yet: the stored spec gets the new limits.
        let mut spec = tasks::spec_of(&c)?;
        if let Some(l) = spec.linux_mut() {
            // Only what the call sets: the device rules and the rest stay.
            let mut cur = l.resources().clone().unwrap_or_default();
            if let Some(m) = res.memory() {
                cur.set_memory(Some(*m));
            }
            if let Some(c) = res.cpu() {
                cur.set_cpu(Some(c.clone()));
            }
            l.set_resources(Some(cur));
        }
        c.spec_json =
            serde_json::to_vec(&spec).map_err(|e| ApiError::internal("encoding the spec", e))?;
        d.store.put_container(NS, &c)?;
    }
    record.resources = Some(linux);
    records::put_container(d, &record)
}

pub async fn reopen_log(d: &Arc<Daemon>, id: &str) -> ApiResult<()> {
    let record = records::container(d, id)?;
    let mut client = tasks::client(d, NS, &record.id).await.map_err(|_| {
        ApiError::FailedPrecondition(format!("container {:?} is not running", record.id))
    })?;
    client.reopen_log(shim::ProcessRequest::default()).await?;
    Ok(())
}
