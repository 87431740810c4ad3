//! The daemon's side of the CRI streaming server (crates/streaming): exec in a container
//! (with or without a tty), attach to its main process, and port-forward into the pod's
//! network namespace.

use std::os::fd::AsFd;
use std::sync::Arc;

use berth_proto::shim::v1 as shim;
use berth_streaming::{AttachRequest, Backend, BoxFuture, ExecRequest, Streams};
use bytes::Bytes;
use tokio::sync::mpsc;

use super::records::{self, NS};
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::{ids, tasks};

pub struct DaemonBackend(pub Arc<Daemon>);

impl Backend for DaemonBackend {
    fn exec(&self, req: ExecRequest, io: Streams) -> BoxFuture<Result<i32, String>> {
        let d = self.0.clone();
        Box::pin(async move { exec(&d, req, io).await.map_err(|e| e.to_string()) })
    }

    fn attach(&self, req: AttachRequest, io: Streams) -> BoxFuture<Result<(), String>> {
        let d = self.0.clone();
        Box::pin(async move { attach(&d, req, io).await.map_err(|e| e.to_string()) })
    }

    fn port_forward(
        &self,
        pod_sandbox_id: String,
        port: u16,
        conn: tokio::io::DuplexStream,
    ) -> BoxFuture<Result<(), String>> {
        let d = self.0.clone();
        Box::pin(async move {
            port_forward(&d, &pod_sandbox_id, port, conn)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

async fn exec(d: &Arc<Daemon>, req: ExecRequest, io: Streams) -> ApiResult<i32> {
    let record = records::container(d, &req.container_id)?;
    let exec_id = format!("exec-{}", ids::generate());
    crate::services::task_io::exec(
        d,
        NS,
        berth_proto::v1::ExecRequest {
            container_id: record.id.clone(),
            exec_id: exec_id.clone(),
            args: req.cmd.clone(),
            tty: req.tty,
            stdin: req.stdin,
            ..Default::default()
        },
    )
    .await?;
    let mut client = tasks::client(d, NS, &record.id).await?;
    let result = run_process(&mut client, &exec_id, io, true).await;
    let _ = client
        .delete(shim::ProcessRequest {
            exec_id: exec_id.clone(),
        })
        .await;
    result
}

async fn attach(d: &Arc<Daemon>, req: AttachRequest, io: Streams) -> ApiResult<()> {
    let record = records::container(d, &req.container_id)?;
    let mut client = tasks::client(d, NS, &record.id).await?;
    run_process(&mut client, "", io, false).await.map(|_| ())
}

/// Wires the streams to a process of the shim (starting it when `start`): output out, stdin
/// in, resizes through; resolves to its exit code (attach: once the output ends).
async fn run_process(
    client: &mut tasks::ShimClient,
    exec_id: &str,
    io: Streams,
    start: bool,
) -> ApiResult<i32> {
    let req = || shim::ProcessRequest {
        exec_id: exec_id.to_string(),
    };
    let Streams {
        stdin,
        stdout,
        stderr,
        mut resize,
    } = io;
    let mut output = client.attach(req()).await?.into_inner();
    {
        let mut c = client.clone();
        let exec_id = exec_id.to_string();
        tokio::spawn(async move {
            while let Some(size) = resize.recv().await {
                let _ = c
                    .resize_pty(shim::ResizePtyRequest {
                        exec_id: exec_id.clone(),
                        width: size.width as u32,
                        height: size.height as u32,
                    })
                    .await;
            }
        });
    }
    if start {
        client.start(req()).await?;
    }
    // After the start: the shim has a stdin to write to only once the process runs.
    if let Some(stdin) = stdin {
        tokio::spawn(forward_stdin(client.clone(), exec_id.to_string(), stdin));
    }
    let pump = async move {
        while let Ok(Some(chunk)) = output.message().await {
            let to = if chunk.stream == shim::output::Stream::Stderr as i32 {
                stderr.as_ref()
            } else {
                stdout.as_ref()
            };
            if let Some(tx) = to {
                if tx.send(Bytes::from(chunk.data)).await.is_err() {
                    // The client left.
                    return false;
                }
            }
        }
        true
    };
    if !start {
        // Attach: until the main process's output ends or the client goes.
        pump.await;
        return Ok(0);
    }
    let mut waiter = client.clone();
    let (exit, _) = tokio::join!(waiter.wait(req()), pump);
    Ok(exit?.into_inner().code)
}

async fn forward_stdin(
    client: tasks::ShimClient,
    exec_id: String,
    mut stdin: mpsc::Receiver<Bytes>,
) {
    let (tx, rx) = mpsc::channel::<shim::StdinChunk>(16);
    let mut c = client;
    let writer = tokio::spawn(async move {
        c.write_stdin(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    while let Some(data) = stdin.recv().await {
        let chunk = shim::StdinChunk {
            exec_id: exec_id.clone(),
            data: data.to_vec(),
            close: false,
        };
        if tx.send(chunk).await.is_err() {
            break;
        }
    }
    let _ = tx
        .send(shim::StdinChunk {
            exec_id,
            data: Vec::new(),
            close: true,
        })
        .await;
    drop(tx);
    if let Ok(Err(e)) = writer.await {
        tracing::debug!("stdin of a streamed process: {e}");
    }
}

/// Dials 127.0.0.1:`port` inside the pod's network namespace and joins it to `conn`.
async fn port_forward(
    d: &Arc<Daemon>,
    sandbox_id: &str,
    port: u16,
    mut conn: tokio::io::DuplexStream,
) -> ApiResult<()> {
    let sandbox = records::find_sandbox(d, sandbox_id)?
        .ok_or_else(|| ApiError::NotFound(format!("pod sandbox {sandbox_id:?} not found")))?;
    let pid = tasks::running_pid(d, NS, &sandbox.id)
        .await
        .map_err(|e| match e {
            ApiError::FailedPrecondition(_) => ApiError::FailedPrecondition(format!(
                "pod sandbox {:?} is not ready: its holder does not run",
                sandbox.id
            )),
            e => e,
        })?;
    let netns = format!("/proc/{pid}/ns/net");
    let stream = tokio::task::spawn_blocking(move || dial_in_netns(&netns, port))
        .await
        .map_err(|e| ApiError::internal("port-forward dialer", e))??;
    stream
        .set_nonblocking(true)
        .map_err(|e| ApiError::internal("port-forward socket", e))?;
    let mut stream = tokio::net::TcpStream::from_std(stream)
        .map_err(|e| ApiError::internal("port-forward socket", e))?;
    tokio::io::copy_bidirectional(&mut conn, &mut stream)
        .await
        .map_err(|e| ApiError::internal("port-forward", e))?;
    Ok(())
}

/// Connects from a thread of its own that enters the namespace (and ends with it, so no
/// pooled thread is left in the pod's namespace).
fn dial_in_netns(netns: &str, port: u16) -> ApiResult<std::net::TcpStream> {
    let file = std::fs::File::open(netns)
        .map_err(|e| ApiError::FailedPrecondition(format!("opening {netns}: {e}")))?;
    let handle = std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("entering the pod's network namespace: {e}"))?;
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connecting to port {port} in the pod: {e}"))
    });
    handle
        .join()
        .map_err(|_| ApiError::Internal("the port-forward dialer panicked".into()))?
        .map_err(ApiError::FailedPrecondition)
}
