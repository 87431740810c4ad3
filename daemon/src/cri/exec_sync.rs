//! ExecSync: a process in the container, its output collected until it exits or the timeout
//! passes (then it is killed and the call fails with DeadlineExceeded).

use std::sync::Arc;
use std::time::Duration;

use berth_proto::shim::v1 as shim;
use k8s_cri::v1 as cri;
use tonic::Status;

use super::records::{self, NS};
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::{ids, tasks};

/// Output beyond this is dropped (kubelet's probes read far less).
const MAX_OUTPUT: usize = 16 << 20;
/// How long output may still arrive once the process has exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

pub async fn exec_sync(
    d: &Arc<Daemon>,
    r: cri::ExecSyncRequest,
) -> Result<cri::ExecSyncResponse, Status> {
    let record = records::container(d, &r.container_id)?;
    if r.cmd.is_empty() {
        return Err(ApiError::InvalidArgument("ExecSync needs a command".into()).into());
    }
    let exec_id = format!("exec-{}", ids::generate());
    crate::services::task_io::exec(
        d,
        NS,
        berth_proto::v1::ExecRequest {
            container_id: record.id.clone(),
            exec_id: exec_id.clone(),
            args: r.cmd.clone(),
            ..Default::default()
        },
    )
    .await?;
    let mut client = tasks::client(d, NS, &record.id).await?;
    let req = || shim::ProcessRequest {
        exec_id: exec_id.clone(),
    };
    let result = async {
        let mut output = client.attach(req()).await?.into_inner();
        client.start(req()).await?;
        let mut waiter = client.clone();
        let wait = waiter.wait(req());
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let collect = async {
            while let Ok(Some(chunk)) = output.message().await {
                let buf = if chunk.stream == shim::output::Stream::Stderr as i32 {
                    &mut stderr
                } else {
                    &mut stdout
                };
                let room = MAX_OUTPUT.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
            }
        };
        let run = async {
            tokio::pin!(collect);
            tokio::pin!(wait);
            tokio::select! {
                exit = &mut wait => {
                    // A child left holding the pipes must not keep the call open past the exit.
                    let _ = tokio::time::timeout(OUTPUT_GRACE, &mut collect).await;
                    exit
                }
                () = &mut collect => wait.await,
            }
        };
        let exit = if r.timeout > 0 {
            match tokio::time::timeout(Duration::from_secs(r.timeout as u64), run).await {
                Ok(e) => e?,
                Err(_) => {
                    let _ = client
                        .kill(shim::KillRequest {
                            exec_id: exec_id.clone(),
                            signal: 9,
                            all: false,
                        })
                        .await;
                    return Err(Status::deadline_exceeded(format!(
                        "command {:?} timed out after {}s",
                        r.cmd, r.timeout
                    )));
                }
            }
        } else {
            run.await?
        };
        Ok(cri::ExecSyncResponse {
            stdout,
            stderr,
            exit_code: exit.into_inner().code,
        })
    }
    .await;
    let _ = client.delete(req()).await;
    result
}
