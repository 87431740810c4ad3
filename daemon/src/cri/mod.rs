//! Kubernetes CRI v1 RuntimeService on berthd's socket (the `k8s-cri` crate's protobufs).
//! Pods and containers are Berth containers of the `k8s.io` namespace with CRI records next
//! to them (records.rs); one file per group of calls. The ImageService is image_service.rs.

mod container_create;
mod container_start;
mod container_status;
mod container_stop;
mod container_update;
mod events;
mod exec_sync;
pub mod exit_reaper;
pub mod image;
pub mod image_service;
mod log_paths;
pub mod records;
mod runtime_info;
mod sandbox_run;
mod sandbox_status;
mod sandbox_stop;
mod security;
mod stats;
mod stream_backend;

use std::sync::Arc;
use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_cri::v1::runtime_service_server::{RuntimeService, RuntimeServiceServer};
use tonic::{Request, Response, Status};

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::services::{BoxStream, Reply};

/// Starts the streaming server that Exec, Attach and PortForward hand out URLs of.
pub async fn start_streaming(d: &Arc<Daemon>) -> anyhow::Result<Arc<berth_streaming::Server>> {
    let address = d
        .cfg
        .stream_address
        .parse()
        .map_err(|e| anyhow::anyhow!("stream_address {:?}: {e}", d.cfg.stream_address))?;
    let cfg = berth_streaming::Config {
        address,
        ..Default::default()
    };
    let server =
        berth_streaming::Server::start(cfg, Arc::new(stream_backend::DaemonBackend(d.clone())))
            .await
            .map_err(|e| anyhow::anyhow!("starting the CRI streaming server: {e}"))?;
    tracing::info!(address = %server.local_addr(), "CRI streaming server listening");
    Ok(Arc::new(server))
}

pub fn runtime_service(
    d: Arc<Daemon>,
    streaming: Arc<berth_streaming::Server>,
) -> RuntimeServiceServer<CriRuntime> {
    RuntimeServiceServer::new(CriRuntime { d, streaming })
}

pub struct CriRuntime {
    d: Arc<Daemon>,
    streaming: Arc<berth_streaming::Server>,
}

fn ok<T>(r: Result<T, ApiError>) -> Reply<T> {
    r.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl RuntimeService for CriRuntime {
    async fn version(&self, _req: Request<cri::VersionRequest>) -> Reply<cri::VersionResponse> {
        Ok(Response::new(runtime_info::version()))
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<cri::RunPodSandboxRequest>,
    ) -> Reply<cri::RunPodSandboxResponse> {
        let id = sandbox_run::run(&self.d, req.into_inner()).await?;
        Ok(Response::new(cri::RunPodSandboxResponse {
            pod_sandbox_id: id,
        }))
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<cri::StopPodSandboxRequest>,
    ) -> Reply<cri::StopPodSandboxResponse> {
        sandbox_stop::stop(&self.d, &req.into_inner().pod_sandbox_id).await?;
        Ok(Response::new(cri::StopPodSandboxResponse {}))
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<cri::RemovePodSandboxRequest>,
    ) -> Reply<cri::RemovePodSandboxResponse> {
        sandbox_stop::remove(&self.d, &req.into_inner().pod_sandbox_id).await?;
        Ok(Response::new(cri::RemovePodSandboxResponse {}))
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<cri::PodSandboxStatusRequest>,
    ) -> Reply<cri::PodSandboxStatusResponse> {
        ok(sandbox_status::status(&self.d, req.into_inner()).await)
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<cri::ListPodSandboxRequest>,
    ) -> Reply<cri::ListPodSandboxResponse> {
        ok(sandbox_status::list(&self.d, req.into_inner()).await)
    }

    async fn create_container(
        &self,
        req: Request<cri::CreateContainerRequest>,
    ) -> Reply<cri::CreateContainerResponse> {
        let id = container_create::create(&self.d, req.into_inner()).await?;
        Ok(Response::new(cri::CreateContainerResponse {
            container_id: id,
        }))
    }

    async fn start_container(
        &self,
        req: Request<cri::StartContainerRequest>,
    ) -> Reply<cri::StartContainerResponse> {
        container_start::start(&self.d, &req.into_inner().container_id).await?;
        Ok(Response::new(cri::StartContainerResponse {}))
    }

    async fn stop_container(
        &self,
        req: Request<cri::StopContainerRequest>,
    ) -> Reply<cri::StopContainerResponse> {
        let r = req.into_inner();
        let timeout = Duration::from_secs(r.timeout.max(0) as u64);
        container_stop::stop(&self.d, &r.container_id, timeout).await?;
        Ok(Response::new(cri::StopContainerResponse {}))
    }

    async fn remove_container(
        &self,
        req: Request<cri::RemoveContainerRequest>,
    ) -> Reply<cri::RemoveContainerResponse> {
        container_stop::remove(&self.d, &req.into_inner().container_id).await?;
        Ok(Response::new(cri::RemoveContainerResponse {}))
    }

    async fn list_containers(
        &self,
        req: Request<cri::ListContainersRequest>,
    ) -> Reply<cri::ListContainersResponse> {
        ok(container_status::list(&self.d, req.into_inner()).await)
    }

    async fn container_status(
        &self,
        req: Request<cri::ContainerStatusRequest>,
    ) -> Reply<cri::ContainerStatusResponse> {
        ok(container_status::status(&self.d, req.into_inner()).await)
    }

    async fn update_container_resources(
        &self,
        req: Request<cri::UpdateContainerResourcesRequest>,
    ) -> Reply<cri::UpdateContainerResourcesResponse> {
        container_update::update(&self.d, req.into_inner()).await?;
        Ok(Response::new(cri::UpdateContainerResourcesResponse {}))
    }

    async fn reopen_container_log(
        &self,
        req: Request<cri::ReopenContainerLogRequest>,
    ) -> Reply<cri::ReopenContainerLogResponse> {
        container_update::reopen_log(&self.d, &req.into_inner().container_id).await?;
        Ok(Response::new(cri::ReopenContainerLogResponse {}))
    }

    async fn exec_sync(&self, req: Request<cri::ExecSyncRequest>) -> Reply<cri::ExecSyncResponse> {
        Ok(Response::new(
            exec_sync::exec_sync(&self.d, req.into_inner()).await?,
        ))
    }

    async fn exec(&self, req: Request<cri::ExecRequest>) -> Reply<cri::ExecResponse> {
        let r = req.into_inner();
        let record = records::container(&self.d, &r.container_id)?;
        if r.cmd.is_empty() {
            return Err(Status::invalid_argument("Exec needs a command"));
        }
        if !(r.stdin || r.stdout || r.stderr) {
            return Err(Status::invalid_argument(
                "one of stdin, stdout or stderr must be set",
            ));
        }
        let url = self.streaming.exec_url(berth_streaming::ExecRequest {
            container_id: record.id,
            cmd: r.cmd,
            tty: r.tty,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
        });
        Ok(Response::new(cri::ExecResponse { url }))
    }

    async fn attach(&self, req: Request<cri::AttachRequest>) -> Reply<cri::AttachResponse> {
        let r = req.into_inner();
        let record = records::container(&self.d, &r.container_id)?;
        let url = self.streaming.attach_url(berth_streaming::AttachRequest {
            container_id: record.id,
            tty: r.tty,
            stdin: r.stdin,
            stdout: r.stdout,
            stderr: r.stderr,
        });
        Ok(Response::new(cri::AttachResponse { url }))
    }

    async fn port_forward(
        &self,
        req: Request<cri::PortForwardRequest>,
    ) -> Reply<cri::PortForwardResponse> {
        let r = req.into_inner();
        let sandbox = records::find_sandbox(&self.d, &r.pod_sandbox_id)?.ok_or_else(|| {
            Status::not_found(format!("pod sandbox {:?} not found", r.pod_sandbox_id))
        })?;
        let ports = r
            .port
            .iter()
            .map(|p| {
                u16::try_from(*p).ok().filter(|p| *p > 0).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "PortForward to pod sandbox {:?}: port {p} is not in 1..=65535",
                        r.pod_sandbox_id
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let url = self
            .streaming
            .port_forward_url(berth_streaming::PortForwardRequest {
                pod_sandbox_id: sandbox.id,
                ports,
            });
        Ok(Response::new(cri::PortForwardResponse { url }))
    }

    async fn container_stats(
        &self,
        req: Request<cri::ContainerStatsRequest>,
    ) -> Reply<cri::ContainerStatsResponse> {
        ok(stats::container(&self.d, req.into_inner()).await)
    }

    async fn list_container_stats(
        &self,
        req: Request<cri::ListContainerStatsRequest>,
    ) -> Reply<cri::ListContainerStatsResponse> {
        ok(stats::list_containers(&self.d, req.into_inner()).await)
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<cri::PodSandboxStatsRequest>,
    ) -> Reply<cri::PodSandboxStatsResponse> {
        ok(stats::sandbox(&self.d, req.into_inner()).await)
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<cri::ListPodSandboxStatsRequest>,
    ) -> Reply<cri::ListPodSandboxStatsResponse> {
        ok(stats::list_sandboxes(&self.d, req.into_inner()).await)
    }

    async fn update_runtime_config(
        &self,
        req: Request<cri::UpdateRuntimeConfigRequest>,
    ) -> Reply<cri::UpdateRuntimeConfigResponse> {
        // The pod CIDR comes from the CNI configuration; kubelet's value is only logged.
        if let Some(cidr) = req
            .into_inner()
            .runtime_config
            .and_then(|c| c.network_config)
            .map(|n| n.pod_cidr)
        {
            tracing::info!(
                pod_cidr = cidr,
                "kubelet's pod CIDR (the CNI config decides)"
            );
        }
        Ok(Response::new(cri::UpdateRuntimeConfigResponse {}))
    }

    async fn status(&self, req: Request<cri::StatusRequest>) -> Reply<cri::StatusResponse> {
        Ok(Response::new(runtime_info::status(
            &self.d,
            req.into_inner().verbose,
        )))
    }

    async fn checkpoint_container(
        &self,
        req: Request<cri::CheckpointContainerRequest>,
    ) -> Reply<cri::CheckpointContainerResponse> {
        runtime_info::checkpoint(&self.d, &req.into_inner()).await?;
        Ok(Response::new(cri::CheckpointContainerResponse {}))
    }

    type GetContainerEventsStream = BoxStream<cri::ContainerEventResponse>;

    async fn get_container_events(
        &self,
        _req: Request<cri::GetEventsRequest>,
    ) -> Reply<Self::GetContainerEventsStream> {
        Ok(Response::new(events::stream(self.d.clone())))
    }

    async fn list_metric_descriptors(
        &self,
        _req: Request<cri::ListMetricDescriptorsRequest>,
    ) -> Reply<cri::ListMetricDescriptorsResponse> {
        // No metrics beyond the stats calls.
        Ok(Response::new(cri::ListMetricDescriptorsResponse {
            descriptors: Vec::new(),
        }))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _req: Request<cri::ListPodSandboxMetricsRequest>,
    ) -> Reply<cri::ListPodSandboxMetricsResponse> {
        Ok(Response::new(cri::ListPodSandboxMetricsResponse {
            pod_metrics: Vec::new(),
        }))
    }

    async fn runtime_config(
        &self,
        _req: Request<cri::RuntimeConfigRequest>,
    ) -> Reply<cri::RuntimeConfigResponse> {
        Ok(Response::new(runtime_info::runtime_config()))
    }
}
