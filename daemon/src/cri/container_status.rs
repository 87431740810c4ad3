//! ContainerStatus and ListContainers: the state comes from the shim while the task lives,
//! from the record once it is gone.

use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use k8s_cri::v1 as cri;

use super::records::{self, ContainerRecord, NS};
use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::fan_out;
use crate::tasks;

/// The live state, with the exit learnt from the shim stored in the record.
async fn refresh(d: &Daemon, record: &mut ContainerRecord) -> ApiResult<cri::ContainerState> {
    if record.exited {
        return Ok(cri::ContainerState::ContainerExited);
    }
    if record.started_at_ns == 0 {
        return Ok(cri::ContainerState::ContainerCreated);
    }
    let Some(st) = tasks::init_state(d, NS, &record.id).await else {
        return Ok(cri::ContainerState::ContainerUnknown);
    };
    match shim::Status::try_from(st.status) {
        Ok(shim::Status::Running | shim::Status::Paused) => {
            Ok(cri::ContainerState::ContainerRunning)
        }
        Ok(shim::Status::Created) => Ok(cri::ContainerState::ContainerCreated),
        Ok(shim::Status::Stopped) => {
            let exit = tasks::exit_info(st.exit.unwrap_or_default());
            super::container_stop::record_exit(record, &exit);
            records::put_container(d, record)?;
            Ok(cri::ContainerState::ContainerExited)
        }
        _ => Ok(cri::ContainerState::ContainerUnknown),
    }
}

fn image_spec(record: &ContainerRecord) -> Option<cri::ImageSpec> {
    record.config.as_ref().and_then(|c| c.image.clone())
}

pub async fn status_of(d: &Daemon, mut record: ContainerRecord) -> ApiResult<cri::ContainerStatus> {
    let state = refresh(d, &mut record).await?;
    let config = record.config.clone().unwrap_or_default();
    let (reason, message) = if state == cri::ContainerState::ContainerExited {
        let reason = if record.oom_killed {
            "OOMKilled"
        } else if record.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        (reason.to_string(), record.message.clone())
    } else {
        (String::new(), String::new())
    };
    Ok(cri::ContainerStatus {
        id: record.id.clone(),
        metadata: config.metadata.clone(),
        state: state as i32,
        created_at: record.created_at_ns,
        started_at: record.started_at_ns,
        finished_at: record.finished_at_ns,
        exit_code: record.exit_code,
        image: image_spec(&record),
        image_ref: if record.image_id.is_empty() {
            record.image_ref.clone()
        } else {
            record.image_id.clone()
        },
        image_id: record.image_id.clone(),
        reason,
        message,
        labels: config.labels.clone(),
        annotations: config.annotations.clone(),
        mounts: config.mounts.clone(),
        log_path: record.log_path.clone(),
        resources: record.resources.clone().map(|r| cri::ContainerResources {
            linux: Some(r),
            windows: None,
        }),
        user: None,
    })
}

pub async fn status(
    d: &Arc<Daemon>,
    r: cri::ContainerStatusRequest,
) -> ApiResult<cri::ContainerStatusResponse> {
    let record = records::container(d, &r.container_id)?;
    let mut info = std::collections::HashMap::new();
    if r.verbose {
        let pid = tasks::init_state(d, NS, &record.id)
            .await
            .map_or(0, |s| s.pid);
        let doc = serde_json::json!({
            "pid": pid,
            "sandboxID": record.sandbox_id,
            "config": record.config,
        });
        info.insert("info".to_string(), doc.to_string());
    }
    let status = status_of(d, record).await?;
    Ok(cri::ContainerStatusResponse {
        status: Some(status),
        info,
    })
}

pub async fn list(
    d: &Arc<Daemon>,
    r: cri::ListContainersRequest,
) -> ApiResult<cri::ListContainersResponse> {
    let f = r.filter.unwrap_or_default();
    let mut chosen = records::containers(d)?;
    chosen.retain(|record| record.matches(&f.id, &f.pod_sandbox_id, &f.label_selector));
    let refreshed = fan_out::in_order(chosen, |mut record| async move {
        let state = refresh(d, &mut record).await;
        state.map(|state| (record, state as i32))
    })
    .await;
    let mut containers = Vec::new();
    for found in refreshed {
        let (record, state) = found?;
        let config = record.config.clone().unwrap_or_default();
        if f.state.as_ref().is_some_and(|s| s.state != state) {
            continue;
        }
        containers.push(cri::Container {
            id: record.id.clone(),
            pod_sandbox_id: record.sandbox_id.clone(),
            metadata: config.metadata.clone(),
            image: image_spec(&record),
            image_ref: if record.image_id.is_empty() {
                record.image_ref.clone()
            } else {
                record.image_id.clone()
            },
            state,
            created_at: record.created_at_ns,
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            image_id: record.image_id.clone(),
        });
    }
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    Ok(cri::ListContainersResponse { containers })
}
