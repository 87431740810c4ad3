//! berth.v1.Tasks: lifecycle calls, passed to the container's shim.

use std::time::Duration;

use berth_proto::shim::v1 as shim;
use berth_proto::v1::tasks_server::Tasks;
use berth_proto::v1::{
    AttachInput, AttachOutput, Container, CreateTaskRequest, Empty, ExecRequest, ExitInfo,
    KillRequest, ListTasksRequest, ListTasksResponse, PidsResponse, ResizeRequest, StopRequest,
    Task, TaskMetrics, TaskRequest, UpdateTaskRequest,
};
use tonic::{Request, Streaming};

use super::{task_io, BoxStream, Reply};
use crate::daemon::{namespace, Daemon, Shared};
use crate::error::{ApiError, ApiResult};
use crate::tasks::{self, exit_info, task_status};
use crate::{fan_out, ids};

pub struct TasksService(pub Shared);

fn proc_req(exec_id: String) -> shim::ProcessRequest {
    shim::ProcessRequest { exec_id }
}

/// The container a request names (by id or name) and a client of its shim.
async fn target(
    d: &Daemon,
    ns: &str,
    id: &str,
) -> ApiResult<(berth_proto::v1::Container, tasks::ShimClient)> {
    ids::validate("container id", id)?;
    let c = d.store.find_container(ns, id)?;
    let client = tasks::client(d, ns, &c.id).await?;
    Ok((c, client))
}

async fn get_task(d: &Daemon, ns: &str, id: &str, exec_id: String) -> ApiResult<Task> {
    ids::validate("container id", id)?;
    let c = d.store.find_container(ns, id)?;
    task_of(d, ns, c.id, exec_id).await
}

/// The task of the container with this (exact, existing) id.
async fn task_of(d: &Daemon, ns: &str, id: String, exec_id: String) -> ApiResult<Task> {
    let mut client = match tasks::client(d, ns, &id).await {
        Ok(client) => client,
        // A live shim this berthd cannot speak to: reported, not an error.
        Err(ApiError::FailedPrecondition(problem)) if d.shims.incompatible(ns, &id).is_some() => {
            return Ok(Task {
                container_id: id,
                exec_id,
                status: berth_proto::v1::TaskStatus::Unknown as i32,
                problem,
                ..Default::default()
            })
        }
        Err(e) => return Err(e),
    };
    let st = client.state(proc_req(exec_id.clone())).await?.into_inner();
    let ip_address = crate::network::ip(d, ns, &id);
    Ok(Task {
        ip_address,
        container_id: id,
        exec_id,
        pid: st.pid,
        status: task_status(st.status) as i32,
        exit: st.exit.map(exit_info),
        ..Default::default()
    })
}

/// The tasks of `containers` (those that have one), in the same order, asking their shims
/// concurrently ([`fan_out`]).
async fn list_tasks(d: &Shared, ns: &str, containers: Vec<Container>) -> Vec<Task> {
    // The record is at hand: no second lookup (nor its spec) per task.
    fan_out::in_order(containers, |c| async move {
        task_of(d, ns, c.id, String::new()).await.ok()
    })
    .await
    .into_iter()
    .flatten()
    .collect()
}

#[tonic::async_trait]
impl Tasks for TasksService {
    async fn create(&self, req: Request<CreateTaskRequest>) -> Reply<Task> {
        let ns = namespace(&self.0, &req)?;
        let id = req.into_inner().container_id;
        ids::validate("container id", &id)?;
        let c = self
            .0
            .store
            .find_container(&ns, &id)
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(tasks::create(&self.0, &ns, &c).await?))
    }

    async fn start(&self, req: Request<TaskRequest>) -> Reply<Task> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        let (_, mut client) = target(&self.0, &ns, &r.container_id).await?;
        client
            .start(proc_req(r.exec_id.clone()))
            .await
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(
            get_task(&self.0, &ns, &r.container_id, r.exec_id).await?,
        ))
    }

    async fn get(&self, req: Request<TaskRequest>) -> Reply<Task> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        Ok(tonic::Response::new(
            get_task(&self.0, &ns, &r.container_id, r.exec_id).await?,
        ))
    }

    async fn list(&self, req: Request<ListTasksRequest>) -> Reply<ListTasksResponse> {
        let ns = namespace(&self.0, &req)?;
        let containers = self.0.store.containers(&ns).map_err(ApiError::from)?;
        Ok(tonic::Response::new(ListTasksResponse {
            tasks: list_tasks(&self.0, &ns, containers).await,
        }))
    }

    async fn delete(&self, req: Request<TaskRequest>) -> Reply<ExitInfo> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        if !r.exec_id.is_empty() {
            let (_, mut client) = target(&self.0, &ns, &r.container_id).await?;
            let e = client
                .delete(proc_req(r.exec_id))
                .await
                .map_err(ApiError::from)?;
            return Ok(tonic::Response::new(exit_info(e.into_inner())));
        }
        ids::validate("container id", &r.container_id)?;
        let c = self
            .0
            .store
            .find_container(&ns, &r.container_id)
            .map_err(ApiError::from)?;
        let exit = tasks::remove_task(&self.0, &ns, &c, false)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("container {:?} has no task", c.id)))?;
        Ok(tonic::Response::new(exit))
    }

    async fn kill(&self, req: Request<KillRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        let (_, mut client) = target(&self.0, &ns, &r.container_id).await?;
        client
            .kill(shim::KillRequest {
                exec_id: r.exec_id,
                signal: r.signal,
                all: r.all,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(Empty {}))
    }

    async fn stop(&self, req: Request<StopRequest>) -> Reply<ExitInfo> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        ids::validate("container id", &r.container_id)?;
        let c = self
            .0
            .store
            .find_container(&ns, &r.container_id)
            .map_err(ApiError::from)?;
        let timeout = Duration::from_secs(r.timeout_secs as u64);
        Ok(tonic::Response::new(
            tasks::stop(&self.0, &ns, &c, timeout).await?,
        ))
    }

    async fn wait(&self, req: Request<TaskRequest>) -> Reply<ExitInfo> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        let (_, mut client) = target(&self.0, &ns, &r.container_id).await?;
        let e = client
            .wait(proc_req(r.exec_id))
            .await
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(exit_info(e.into_inner())))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        task_io::exec(&self.0, &ns, req.into_inner()).await?;
        Ok(tonic::Response::new(Empty {}))
    }

    async fn pids(&self, req: Request<TaskRequest>) -> Reply<PidsResponse> {
        let ns = namespace(&self.0, &req)?;
        let (_, mut client) = target(&self.0, &ns, &req.into_inner().container_id).await?;
        let p = client
            .pids(shim::Empty {})
            .await
            .map_err(ApiError::from)?
            .into_inner();
        Ok(tonic::Response::new(PidsResponse { pids: p.pids }))
    }

    async fn pause(&self, req: Request<TaskRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        let (_, mut client) = target(&self.0, &ns, &req.into_inner().container_id).await?;
        client.pause(shim::Empty {}).await.map_err(ApiError::from)?;
        Ok(tonic::Response::new(Empty {}))
    }

    async fn resume(&self, req: Request<TaskRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        let (_, mut client) = target(&self.0, &ns, &req.into_inner().container_id).await?;
        client
            .resume(shim::Empty {})
            .await
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(Empty {}))
    }

    async fn metrics(&self, req: Request<TaskRequest>) -> Reply<TaskMetrics> {
        let ns = namespace(&self.0, &req)?;
        let (_, mut client) = target(&self.0, &ns, &req.into_inner().container_id).await?;
        let s = client
            .stats(shim::Empty {})
            .await
            .map_err(ApiError::from)?
            .into_inner();
        Ok(tonic::Response::new(TaskMetrics {
            cpu_usage_ns: s.cpu_usage_ns,
            cpu_user_ns: s.cpu_user_ns,
            cpu_system_ns: s.cpu_system_ns,
            cpu_throttled_periods: s.cpu_throttled_periods,
            cpu_throttled_ns: s.cpu_throttled_ns,
            memory_usage: s.memory_usage,
            memory_limit: s.memory_limit,
            memory_working_set: s.memory_working_set,
            memory_rss: s.memory_rss,
            memory_cache: s.memory_cache,
            pids_current: s.pids_current,
            pids_limit: s.pids_limit,
            io_read_bytes: s.io_read_bytes,
            io_write_bytes: s.io_write_bytes,
            timestamp_ns: crate::events::now_ns(),
        }))
    }

    async fn update(&self, req: Request<UpdateTaskRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        task_io::update(&self.0, &ns, req.into_inner()).await?;
        Ok(tonic::Response::new(Empty {}))
    }

    type AttachStream = BoxStream<AttachOutput>;

    async fn attach(&self, req: Request<Streaming<AttachInput>>) -> Reply<Self::AttachStream> {
        let ns = namespace(&self.0, &req)?;
        Ok(tonic::Response::new(
            task_io::attach(&self.0, &ns, req.into_inner()).await?,
        ))
    }

    async fn resize(&self, req: Request<ResizeRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        let (_, mut client) = target(&self.0, &ns, &r.container_id).await?;
        client
            .resize_pty(shim::ResizePtyRequest {
                exec_id: r.exec_id,
                width: r.width,
                height: r.height,
            })
            .await
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(Empty {}))
    }

    async fn close_stdin(&self, req: Request<TaskRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        let (_, mut client) = target(&self.0, &ns, &r.container_id).await?;
        client
            .close_io(proc_req(r.exec_id))
            .await
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(Empty {}))
    }
}
