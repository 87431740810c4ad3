//! CRI metadata kept next to the Berth container records in the store: what kubelet asked for
//! (the pod or container config) and what the runtime learnt (times, exits, the pod's IP).
//!
//! ```text
//! v1/k8s.io/cri_sandboxes/<id>   → SandboxRecord   (the pod's Berth container has the same id)
//! v1/k8s.io/cri_containers/<id>  → ContainerRecord (likewise)
//! ```

use k8s_cri::v1 as cri;

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};

/// CRI objects live in this namespace.
pub const NS: &str = "k8s.io";
const SANDBOXES: &str = "cri_sandboxes";
const CONTAINERS: &str = "cri_containers";

#[derive(Clone, PartialEq, prost::Message)]
pub struct SandboxRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub config: Option<cri::PodSandboxConfig>,
    #[prost(int64, tag = "3")]
    pub created_at_ns: i64,
    /// Set by StopPodSandbox: the pod is not ready any more.
    #[prost(bool, tag = "4")]
    pub stopped: bool,
    /// The pod's IP, kept after the network is torn down (status reports it until removal).
    #[prost(string, tag = "5")]
    pub ip: String,
    #[prost(string, tag = "6")]
    pub runtime_handler: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    pub config: Option<cri::ContainerConfig>,
    #[prost(int64, tag = "4")]
    pub created_at_ns: i64,
    #[prost(int64, tag = "5")]
    pub started_at_ns: i64,
    #[prost(int64, tag = "6")]
    pub finished_at_ns: i64,
    /// The exit, once known (kept when the task is gone).
    #[prost(bool, tag = "7")]
    pub exited: bool,
    #[prost(int32, tag = "8")]
    pub exit_code: i32,
    #[prost(bool, tag = "9")]
    pub oom_killed: bool,
    /// The log file: the pod's log_directory joined with the container's log_path.
    #[prost(string, tag = "10")]
    pub log_path: String,
    /// The image as resolved (record name) and its manifest digest.
    #[prost(string, tag = "11")]
    pub image_ref: String,
    #[prost(string, tag = "12")]
    pub image_id: String,
    /// Resources as last set (create or UpdateContainerResources).
    #[prost(message, optional, tag = "13")]
    pub resources: Option<cri::LinuxContainerResources>,
    /// Exit reason when it is not derived from the code (e.g. "shim died").
    #[prost(string, tag = "14")]
    pub message: String,
}

pub fn sandbox(d: &Daemon, id: &str) -> ApiResult<SandboxRecord> {
    d.store
        .record(NS, SANDBOXES, id)?
        .ok_or_else(|| ApiError::NotFound(format!("pod sandbox {id:?} not found")))
}

pub fn find_sandbox(d: &Daemon, id: &str) -> ApiResult<Option<SandboxRecord>> {
    if id.is_empty() {
        return Err(ApiError::InvalidArgument(
            "a pod sandbox id is required".into(),
        ));
    }
    if let Some(r) = d.store.record(NS, SANDBOXES, id)? {
        return Ok(Some(r));
    }
    // A unique prefix, like crictl accepts.
    let mut found = sandboxes(d)?.into_iter().filter(|s| s.id.starts_with(id));
    match (found.next(), found.next()) {
        (Some(s), None) => Ok(Some(s)),
        (Some(_), Some(_)) => Err(ApiError::InvalidArgument(format!(
            "{id:?} matches more than one pod sandbox"
        ))),
        _ => Ok(None),
    }
}

pub fn sandboxes(d: &Daemon) -> ApiResult<Vec<SandboxRecord>> {
    Ok(d.store.records(NS, SANDBOXES)?)
}

pub fn put_sandbox(d: &Daemon, r: &SandboxRecord) -> ApiResult<()> {
    Ok(d.store.put_record(NS, SANDBOXES, &r.id, r)?)
}

pub fn delete_sandbox(d: &Daemon, id: &str) -> ApiResult<()> {
    Ok(d.store.delete_record(NS, SANDBOXES, id)?)
}

pub fn find_container(d: &Daemon, id: &str) -> ApiResult<Option<ContainerRecord>> {
    if id.is_empty() {
        return Err(ApiError::InvalidArgument(
            "a container id is required".into(),
        ));
    }
    if let Some(r) = d.store.record(NS, CONTAINERS, id)? {
        return Ok(Some(r));
    }
    let mut found = containers(d)?.into_iter().filter(|s| s.id.starts_with(id));
    match (found.next(), found.next()) {
        (Some(s), None) => Ok(Some(s)),
        (Some(_), Some(_)) => Err(ApiError::InvalidArgument(format!(
            "{id:?} matches more than one container"
        ))),
        _ => Ok(None),
    }
}

pub fn container(d: &Daemon, id: &str) -> ApiResult<ContainerRecord> {
    find_container(d, id)?.ok_or_else(|| ApiError::NotFound(format!("container {id:?} not found")))
}

/// The record of exactly `id`.
pub fn container_exact(d: &Daemon, id: &str) -> ApiResult<Option<ContainerRecord>> {
    Ok(d.store.record(NS, CONTAINERS, id)?)
}

/// Serialises the calls that settle a container's exit and removal (StopContainer,
/// RemoveContainer, the exit reaper), so none of them writes over another's record.
pub async fn exit_lock(d: &Daemon, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
    // '#' is never part of a namespace name: no clash with the tasks' own locks.
    d.task_locks.lock("k8s.io#cri", id).await
}

pub fn containers(d: &Daemon) -> ApiResult<Vec<ContainerRecord>> {
    Ok(d.store.records(NS, CONTAINERS)?)
}

pub fn put_container(d: &Daemon, r: &ContainerRecord) -> ApiResult<()> {
    Ok(d.store.put_record(NS, CONTAINERS, &r.id, r)?)
}

pub fn delete_container(d: &Daemon, id: &str) -> ApiResult<()> {
    Ok(d.store.delete_record(NS, CONTAINERS, id)?)
}

impl ContainerRecord {
    /// Whether the record passes a CRI container filter: id and pod id prefixes (empty: any)
    /// and every label of the selector.
    pub fn matches(
        &self,
        id: &str,
        pod_sandbox_id: &str,
        selector: &std::collections::HashMap<String, String>,
    ) -> bool {
        self.id.starts_with(id)
            && self.sandbox_id.starts_with(pod_sandbox_id)
            && self
                .config
                .as_ref()
                .map_or(selector.is_empty(), |c| labels_match(&c.labels, selector))
    }
}

/// Every `key=value` of the selector is among the labels.
pub fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    selector: &std::collections::HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
