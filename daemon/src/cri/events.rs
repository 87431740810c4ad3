//! GetContainerEvents: the daemon's event bus, narrowed to CRI containers of the `k8s.io`
//! namespace and turned into CRI container events with the container's current status.

use std::sync::Arc;

use k8s_cri::v1 as cri;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::records::{self, NS};
use crate::daemon::Daemon;
use crate::services::BoxStream;

fn kind(topic: &str) -> Option<cri::ContainerEventType> {
    match topic {
        "/containers/create" => Some(cri::ContainerEventType::ContainerCreatedEvent),
        "/tasks/start" => Some(cri::ContainerEventType::ContainerStartedEvent),
        "/tasks/exit" => Some(cri::ContainerEventType::ContainerStoppedEvent),
        "/containers/delete" => Some(cri::ContainerEventType::ContainerDeletedEvent),
        _ => None,
    }
}

pub fn stream(d: Arc<Daemon>) -> BoxStream<cri::ContainerEventResponse> {
    let mut bus = d.bus.subscribe();
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let env = match bus.recv().await {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("a CRI events subscriber missed {n} events");
                    continue;
                }
                Err(_) => return,
            };
            if env.namespace != NS || env.attributes.contains_key("exec_id") {
                continue;
            }
            let Some(kind) = kind(&env.topic) else {
                continue;
            };
            let record = records::find_container(&d, &env.id).ok().flatten();
            let (sandbox_id, statuses) = match record {
                Some(r) if r.id == env.id => {
                    let sandbox = r.sandbox_id.clone();
                    match super::container_status::status_of(&d, r).await {
                        Ok(s) => (sandbox, vec![s]),
                        Err(_) => (sandbox, Vec::new()),
                    }
                }
                // Deleted already, or not a CRI container (the pod's own holder included).
                _ if kind == cri::ContainerEventType::ContainerDeletedEvent => {
                    (String::new(), Vec::new())
                }
                _ => continue,
            };
            let pod_sandbox_status = if sandbox_id.is_empty() {
                None
            } else {
                super::sandbox_status::status(
                    &d,
                    cri::PodSandboxStatusRequest {
                        pod_sandbox_id: sandbox_id,
                        verbose: false,
                    },
                )
                .await
                .ok()
                .and_then(|r| r.status)
            };
            let ev = cri::ContainerEventResponse {
                container_id: env.id.clone(),
                container_event_type: kind as i32,
                created_at: env.timestamp_ns,
                pod_sandbox_status,
                containers_statuses: statuses,
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx).map(Ok))
}
