//! PodSandboxStatus and ListPodSandbox.

use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use k8s_cri::v1 as cri;

use super::records::{self, SandboxRecord, NS};
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::tasks;

/// Ready while the holding process runs.
pub async fn state(d: &Daemon, r: &SandboxRecord) -> cri::PodSandboxState {
    if r.stopped {
        return cri::PodSandboxState::SandboxNotready;
    }
    let running = tasks::init_state(d, NS, &r.id)
        .await
        .is_some_and(|s| s.status == shim::Status::Running as i32);
    if running {
        cri::PodSandboxState::SandboxReady
    } else {
        cri::PodSandboxState::SandboxNotready
    }
}

pub async fn status(
    d: &Arc<Daemon>,
    r: cri::PodSandboxStatusRequest,
) -> ApiResult<cri::PodSandboxStatusResponse> {
    let record = records::find_sandbox(d, &r.pod_sandbox_id)?.ok_or_else(|| {
        ApiError::NotFound(format!("pod sandbox {:?} not found", r.pod_sandbox_id))
    })?;
    let state = state(d, &record).await;
    let config = record.config.clone().unwrap_or_default();
    let ns_options = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone());
    let mut info = std::collections::HashMap::new();
    if r.verbose {
        let pid = tasks::init_state(d, NS, &record.id)
            .await
            .map_or(0, |s| s.pid);
        let doc = serde_json::json!({
            "pid": pid,
            "config": config,
            "runtimeHandler": record.runtime_handler,
        });
        info.insert("info".to_string(), doc.to_string());
    }
    let mut containers_statuses = Vec::new();
    for c in records::containers(d)?
        .into_iter()
        .filter(|c| c.sandbox_id == record.id)
    {
        containers_statuses.push(super::container_status::status_of(d, c).await?);
    }
    Ok(cri::PodSandboxStatusResponse {
        status: Some(cri::PodSandboxStatus {
            id: record.id.clone(),
            metadata: config.metadata.clone(),
            state: state as i32,
            created_at: record.created_at_ns,
            network: Some(cri::PodSandboxNetworkStatus {
                ip: record.ip.clone(),
                additional_ips: Vec::new(),
            }),
            linux: Some(cri::LinuxPodSandboxStatus {
                namespaces: Some(cri::Namespace {
                    options: ns_options,
                }),
            }),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            runtime_handler: record.runtime_handler.clone(),
        }),
        info,
        containers_statuses,
        timestamp: crate::events::now_ns(),
    })
}

pub async fn list(
    d: &Arc<Daemon>,
    r: cri::ListPodSandboxRequest,
) -> ApiResult<cri::ListPodSandboxResponse> {
    let f = r.filter.unwrap_or_default();
    let mut items = Vec::new();
    for record in records::sandboxes(d)? {
        if !f.id.is_empty() && !record.id.starts_with(&f.id) {
            continue;
        }
        let config = record.config.clone().unwrap_or_default();
        if !records::labels_match(&config.labels, &f.label_selector) {
            continue;
        }
        let state = state(d, &record).await as i32;
        if f.state.as_ref().is_some_and(|s| s.state != state) {
            continue;
        }
        items.push(cri::PodSandbox {
            id: record.id.clone(),
            metadata: config.metadata.clone(),
            state,
            created_at: record.created_at_ns,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            runtime_handler: record.runtime_handler.clone(),
        });
    }
    items.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(cri::ListPodSandboxResponse { items })
}
