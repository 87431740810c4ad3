//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: cpu and memory
//! from the shim (the container's cgroup), the writable layer from the snapshot's upper dir.

use std::path::Path;
use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use k8s_cri::v1 as cri;

use super::records::{self, ContainerRecord, SandboxRecord, NS};
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::events::now_ns;
use crate::fan_out;
use crate::tasks;

fn value(v: u64) -> Option<cri::UInt64Value> {
    Some(cri::UInt64Value { value: v })
}

/// Bytes and inodes under `dir`, not following links or crossing into other filesystems.
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return (0, 0);
    };
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() && m.dev() == root.dev() {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

fn writable_layer(d: &Daemon, id: &str, ts: i64) -> Option<cri::FilesystemUsage> {
    let c = d.store.container(NS, id).ok().flatten()?;
    if c.snapshot_key.is_empty() {
        return None;
    }
    let mounts = d.images.snapshots.mounts(&c.snapshot_key).ok()?;
    let (bytes, inodes) = disk_usage(&mounts.upper);
    Some(cri::FilesystemUsage {
        timestamp: ts,
        fs_id: Some(cri::FilesystemIdentifier {
            mountpoint: d.cfg.root.join("snapshots").display().to_string(),
        }),
        used_bytes: value(bytes),
        inodes_used: value(inodes),
    })
}

async fn container_stats(d: &Daemon, r: &ContainerRecord) -> cri::ContainerStats {
    let ts = now_ns();
    let config = r.config.clone().unwrap_or_default();
    let s = match tasks::client(d, NS, &r.id).await {
        Ok(mut c) => c.stats(shim::Empty {}).await.ok().map(|s| s.into_inner()),
        Err(_) => None,
    };
    let (cpu, memory) = match &s {
        Some(s) => (
            Some(cri::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: value(s.cpu_usage_ns),
                usage_nano_cores: None,
            }),
            Some(cri::MemoryUsage {
                timestamp: ts,
                working_set_bytes: value(s.memory_working_set),
                available_bytes: (s.memory_limit > 0 && s.memory_limit < u64::MAX / 2)
                    .then(|| value(s.memory_limit.saturating_sub(s.memory_working_set)))
                    .flatten(),
                usage_bytes: value(s.memory_usage),
                rss_bytes: value(s.memory_rss),
                page_faults: None,
                major_page_faults: None,
            }),
        ),
        None => (None, None),
    };
    cri::ContainerStats {
        attributes: Some(cri::ContainerAttributes {
            id: r.id.clone(),
            metadata: config.metadata.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        }),
        cpu,
        memory,
        writable_layer: writable_layer(d, &r.id, ts),
        swap: None,
    }
}

pub async fn container(
    d: &Arc<Daemon>,
    r: cri::ContainerStatsRequest,
) -> ApiResult<cri::ContainerStatsResponse> {
    let record = records::container(d, &r.container_id)?;
    Ok(cri::ContainerStatsResponse {
        stats: Some(container_stats(d, &record).await),
    })
}

pub async fn list_containers(
    d: &Arc<Daemon>,
    r: cri::ListContainerStatsRequest,
) -> ApiResult<cri::ListContainerStatsResponse> {
    let f = r.filter.unwrap_or_default();
    let mut chosen = records::containers(d)?;
    chosen.retain(|record| record.matches(&f.id, &f.pod_sandbox_id, &f.label_selector));
    let stats = fan_out::in_order(
        chosen,
        |record| async move { container_stats(d, &record).await },
    )
    .await;
    Ok(cri::ListContainerStatsResponse { stats })
}

async fn sandbox_stats(d: &Daemon, s: &SandboxRecord) -> ApiResult<cri::PodSandboxStats> {
    let ts = now_ns();
    let config = s.config.clone().unwrap_or_default();
    let mut own = records::containers(d)?;
    own.retain(|c| c.sandbox_id == s.id);
    let containers = fan_out::in_order(
        own,
        |record| async move { container_stats(d, &record).await },
    )
    .await;
    let sum = |f: &dyn Fn(&cri::ContainerStats) -> Option<u64>| -> u64 {
        containers.iter().filter_map(f).sum()
    };
    let cpu = sum(&|c| {
        c.cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .map(|v| v.value)
    });
    let working_set = sum(&|c| {
        c.memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map(|v| v.value)
    });
    let usage = sum(&|c| {
        c.memory
            .as_ref()
            .and_then(|m| m.usage_bytes.as_ref())
            .map(|v| v.value)
    });
    Ok(cri::PodSandboxStats {
        attributes: Some(cri::PodSandboxAttributes {
            id: s.id.clone(),
            metadata: config.metadata.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
        }),
        linux: Some(cri::LinuxPodSandboxStats {
            cpu: Some(cri::CpuUsage {
                timestamp: ts,
                usage_core_nano_seconds: value(cpu),
                usage_nano_cores: None,
            }),
            memory: Some(cri::MemoryUsage {
                timestamp: ts,
                working_set_bytes: value(working_set),
                usage_bytes: value(usage),
                ..Default::default()
            }),
            network: None,
            process: None,
            containers,
        }),
        windows: None,
    })
}

pub async fn sandbox(
    d: &Arc<Daemon>,
    r: cri::PodSandboxStatsRequest,
) -> ApiResult<cri::PodSandboxStatsResponse> {
    let s = records::find_sandbox(d, &r.pod_sandbox_id)?.ok_or_else(|| {
        ApiError::NotFound(format!("pod sandbox {:?} not found", r.pod_sandbox_id))
    })?;
    Ok(cri::PodSandboxStatsResponse {
        stats: Some(sandbox_stats(d, &s).await?),
    })
}

pub async fn list_sandboxes(
    d: &Arc<Daemon>,
    r: cri::ListPodSandboxStatsRequest,
) -> ApiResult<cri::ListPodSandboxStatsResponse> {
    let f = r.filter.unwrap_or_default();
    let mut stats = Vec::new();
    for s in records::sandboxes(d)? {
        let labels = s
            .config
            .as_ref()
            .map(|c| c.labels.clone())
            .unwrap_or_default();
        if (!f.id.is_empty() && !s.id.starts_with(&f.id))
            || !records::labels_match(&labels, &f.label_selector)
        {
            continue;
        }
        stats.push(sandbox_stats(d, &s).await?);
    }
    Ok(cri::ListPodSandboxStatsResponse { stats })
}
