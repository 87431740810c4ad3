//! The gRPC face of the task (berth.shim.v1.Shim): decoding, locking, status codes.

use std::path::PathBuf;
use std::pin::Pin;

use berth_proto::shim::v1::shim_server::Shim;
use berth_proto::shim::v1::{
    CreateRequest, CreateResponse, Empty, Event, ExecRequest, ExitStatus, KillRequest, Output,
    PidsResponse, ProcessRequest, ResizePtyRequest, ShutdownRequest, StartResponse, StateResponse,
    StatsResponse, StdinChunk, UpdateRequest,
};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::error::TaskError;
use crate::task::{Shared, Task};

pub struct ShimService {
    pub task: Shared,
}

type Reply<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl ShimService {
    fn with<T>(&self, f: impl FnOnce(&mut Task) -> Result<T, TaskError>) -> Result<T, Status> {
        let mut task = self
            .task
            .lock()
            .map_err(|_| Status::internal("task state poisoned"))?;
        f(&mut task).map_err(Status::from)
    }
}

/// Creating or starting a process allocates a lot briefly (spec parsing, seccomp, fork
/// bookkeeping); give the freed heap back so an idle shim stays small. Only after those calls
/// (State, Wait and Stats stay cheap), and after the answer is on its way: a task of its own
/// that runs once the handler has returned.
fn trim_heap() {
    tokio::spawn(async {
        tokio::task::yield_now().await;
        // SAFETY: malloc_trim only releases free heap memory to the kernel.
        unsafe { libc::malloc_trim(0) };
    });
}

#[tonic::async_trait]
impl Shim for ShimService {
    async fn create(&self, req: Request<CreateRequest>) -> Reply<CreateResponse> {
        let req = req.into_inner();
        let pid = self.with(|t| {
            if !req.bundle.is_empty() && req.bundle != t.bundle {
                return Err(TaskError::InvalidArgument(format!(
                    "this shim serves bundle {}, not {}",
                    t.bundle.display(),
                    req.bundle
                )));
            }
            let log = (!req.log_path.is_empty()).then(|| PathBuf::from(&req.log_path));
            t.create(req.stdin, log)
        });
        trim_heap();
        let pid = pid?;
        Ok(Response::new(CreateResponse { pid: pid as u32 }))
    }

    async fn start(&self, req: Request<ProcessRequest>) -> Reply<StartResponse> {
        let exec_id = req.into_inner().exec_id;
        let pid = self.with(|t| t.start(&exec_id));
        trim_heap();
        let pid = pid?;
        Ok(Response::new(StartResponse { pid: pid as u32 }))
    }

    async fn state(&self, req: Request<ProcessRequest>) -> Reply<StateResponse> {
        let exec_id = req.into_inner().exec_id;
        Ok(Response::new(self.with(|t| t.state(&exec_id))?))
    }

    async fn kill(&self, req: Request<KillRequest>) -> Reply<Empty> {
        let r = req.into_inner();
        self.with(|t| t.kill(&r.exec_id, r.signal, r.all))?;
        Ok(Response::new(Empty {}))
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Reply<Empty> {
        let r = req.into_inner();
        self.with(|t| t.exec(&r.exec_id, &r.process_json, r.stdin))?;
        Ok(Response::new(Empty {}))
    }

    async fn resize_pty(&self, req: Request<ResizePtyRequest>) -> Reply<Empty> {
        let r = req.into_inner();
        self.with(|t| {
            let pty = t.proc(&r.exec_id)?.io.pty.clone().ok_or_else(|| {
                TaskError::FailedPrecondition("the process has no terminal".into())
            })?;
            let (rows, cols) = (
                r.height.min(u16::MAX as u32) as u16,
                r.width.min(u16::MAX as u32) as u16,
            );
            berth_runtime::console::set_winsize(std::os::fd::AsFd::as_fd(pty.as_ref()), rows, cols)
                .map_err(|e| crate::error::internal("resizing the pty", e))
        })?;
        Ok(Response::new(Empty {}))
    }

    async fn close_io(&self, req: Request<ProcessRequest>) -> Reply<Empty> {
        let exec_id = req.into_inner().exec_id;
        let stdin = self.with(|t| {
            let p = t.proc_mut(&exec_id)?;
            Ok((p.io.stdin.take(), p.terminal))
        })?;
        // A pty has no half-close: send end-of-transmission, which the line discipline reads as EOF.
        if let (Some(fd), true) = stdin {
            let _ = crate::io::write_all(fd, &[4]).await;
        }
        Ok(Response::new(Empty {}))
    }

    async fn wait(&self, req: Request<ProcessRequest>) -> Reply<ExitStatus> {
        let exec_id = req.into_inner().exec_id;
        let mut rx = self.with(|t| Ok(t.proc(&exec_id)?.exit.subscribe()))?;
        let exit = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Status::aborted("the process went away before exiting"))?;
        Ok(Response::new(
            exit.map(crate::exit::to_proto).unwrap_or_default(),
        ))
    }

    async fn pids(&self, _req: Request<Empty>) -> Reply<PidsResponse> {
        let pids = self.with(|t| Ok(t.container()?.pids()?))?;
        Ok(Response::new(PidsResponse {
            pids: pids.into_iter().map(|p| p as u32).collect(),
        }))
    }

    async fn pause(&self, _req: Request<Empty>) -> Reply<Empty> {
        self.with(Task::pause)?;
        Ok(Response::new(Empty {}))
    }

    async fn resume(&self, _req: Request<Empty>) -> Reply<Empty> {
        self.with(Task::resume)?;
        Ok(Response::new(Empty {}))
    }

    async fn stats(&self, _req: Request<Empty>) -> Reply<StatsResponse> {
        let s = self.with(|t| Ok(t.container()?.stats()?))?;
        Ok(Response::new(StatsResponse {
            cpu_usage_ns: s.cpu.usage_total_ns,
            cpu_user_ns: s.cpu.usage_user_ns,
            cpu_system_ns: s.cpu.usage_system_ns,
            cpu_periods: s.cpu.nr_periods,
            cpu_throttled_periods: s.cpu.nr_throttled,
            cpu_throttled_ns: s.cpu.throttled_time_ns,
            memory_usage: s.memory.usage,
            memory_limit: s.memory.limit.unwrap_or(0),
            memory_rss: s.memory.rss,
            memory_cache: s.memory.cache,
            memory_working_set: s.memory.working_set,
            memory_oom_kills: s.memory.oom_kill_count,
            pids_current: s.pids.current,
            pids_limit: s.pids.limit.unwrap_or(0),
            io_read_bytes: s.io.read_bytes,
            io_write_bytes: s.io.write_bytes,
            io_read_ops: s.io.read_ops,
            io_write_ops: s.io.write_ops,
        }))
    }

    async fn update(&self, req: Request<UpdateRequest>) -> Reply<Empty> {
        let resources: oci_spec::runtime::LinuxResources =
            serde_json::from_slice(&req.into_inner().resources_json)
                .map_err(|e| Status::invalid_argument(format!("resources: {e}")))?;
        self.with(|t| Ok(t.container_mut()?.update(&resources)?))?;
        Ok(Response::new(Empty {}))
    }

    async fn delete(&self, req: Request<ProcessRequest>) -> Reply<ExitStatus> {
        let exec_id = req.into_inner().exec_id;
        Ok(Response::new(self.with(|t| t.delete(&exec_id))?))
    }

    async fn shutdown(&self, req: Request<ShutdownRequest>) -> Reply<Empty> {
        let now = req.into_inner().now;
        self.with(|t| {
            if t.has_live_processes() && !now {
                return Err(TaskError::FailedPrecondition(
                    "processes of this task are still running".into(),
                ));
            }
            t.shutdown.notify_one();
            Ok(())
        })?;
        Ok(Response::new(Empty {}))
    }

    type EventsStream = BoxStream<Event>;

    async fn events(&self, _req: Request<Empty>) -> Reply<Self::EventsStream> {
        let rx = self.with(|t| Ok(t.events.subscribe()))?;
        let stream = BroadcastStream::new(rx).map_while(|r| r.ok()).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    type AttachStream = BoxStream<Output>;

    async fn attach(&self, req: Request<ProcessRequest>) -> Reply<Self::AttachStream> {
        let exec_id = req.into_inner().exec_id;
        let rx = self.with(|t| Ok(t.proc(&exec_id)?.io.output.as_ref().map(|o| o.subscribe())))?;
        let Some(rx) = rx else {
            return Ok(Response::new(Box::pin(tokio_stream::empty())));
        };
        // A reader that falls too far behind is dropped (the stream ends); the process and the
        // log never wait for it.
        let stream = BroadcastStream::new(rx).map_while(|r| r.ok()).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn write_stdin(&self, req: Request<Streaming<StdinChunk>>) -> Reply<Empty> {
        let mut chunks = req.into_inner();
        let Some(first) = chunks.message().await? else {
            return Ok(Response::new(Empty {}));
        };
        let exec_id = first.exec_id.clone();
        let fd = self.with(|t| {
            let p = t.proc_mut(&exec_id)?;
            if p.io.stdin_busy {
                return Err(TaskError::FailedPrecondition(
                    "stdin already has a writer".into(),
                ));
            }
            let fd = p.io.stdin.clone().ok_or_else(|| {
                TaskError::FailedPrecondition("the process has no open stdin".into())
            })?;
            p.io.stdin_busy = true;
            Ok(fd)
        })?;
        let result = async {
            let mut chunk = Some(first);
            while let Some(c) = chunk {
                crate::io::write_all(fd.clone(), &c.data)
                    .await
                    .map_err(|e| Status::internal(format!("writing stdin: {e}")))?;
                if c.close {
                    self.with(|t| Ok(t.proc_mut(&exec_id)?.io.stdin.take()))?;
                    break;
                }
                chunk = chunks.message().await?;
            }
            Ok::<(), Status>(())
        }
        .await;
        drop(fd);
        let _ = self.with(|t| {
            t.proc_mut(&exec_id)?.io.stdin_busy = false;
            Ok(())
        });
        result.map(|()| Response::new(Empty {}))
    }

    async fn reopen_log(&self, req: Request<ProcessRequest>) -> Reply<Empty> {
        let exec_id = req.into_inner().exec_id;
        self.with(|t| {
            let log = t.proc(&exec_id)?.io.log.clone().ok_or_else(|| {
                TaskError::FailedPrecondition("the process has no log file".into())
            })?;
            let mut log = log
                .lock()
                .map_err(|_| TaskError::Internal("log poisoned".into()))?;
            log.reopen()
                .map_err(|e| crate::error::internal("reopening the log", e))
        })?;
        Ok(Response::new(Empty {}))
    }
}
