//! The I/O side of tasks: exec processes, attach streams, resource updates.

use berth_proto::shim::v1 as shim;
use berth_proto::v1::{AttachInput, AttachOutput, ExecRequest, UpdateTaskRequest};
use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources};
use tokio_stream::StreamExt;
use tonic::Streaming;

use super::BoxStream;
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::{ids, tasks};

/// Registers an exec process: the container's process settings, with the request's args,
/// env, workdir, user and tty on top.
pub async fn exec(d: &Daemon, ns: &str, r: ExecRequest) -> ApiResult<()> {
    ids::validate("container id", &r.container_id)?;
    ids::validate("exec id", &r.exec_id)?;
    if r.args.is_empty() {
        return Err(ApiError::InvalidArgument("exec needs a command".into()));
    }
    let c = d.store.find_container(ns, &r.container_id)?;
    let spec = tasks::spec_of(&c)?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| ApiError::Internal("the container's spec has no process".into()))?;
    process.set_args(Some(r.args));
    process.set_terminal(Some(r.tty));
    let mut env = process.env().clone().unwrap_or_default();
    for kv in r.env {
        let key = kv
            .split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or_else(|| kv.clone());
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()));
        env.push(kv);
    }
    process.set_env(Some(env));
    if !r.workdir.is_empty() {
        process.set_cwd(r.workdir.into());
    }
    let bundle = d.bundles.path(ns, &c.id);
    if !r.user.is_empty() {
        let opts = c.options.clone().unwrap_or_default();
        let rootfs = if opts.rootfs.is_empty() {
            bundle.join("rootfs")
        } else {
            opts.rootfs.into()
        };
        crate::spec::user::resolve(&rootfs, &r.user)?.apply_to(&mut process);
    } else {
        // The user the container's init runs as (resolved at task create).
        let live: oci_spec::runtime::Spec = berth_runtime::load_spec(&bundle)
            .map_err(|e| ApiError::internal("reading the bundle's spec", e))?;
        if let Some(p) = live.process() {
            process.set_user(p.user().clone());
        }
    }
    let json =
        serde_json::to_vec(&process).map_err(|e| ApiError::internal("encoding the process", e))?;
    let mut client = tasks::client(d, ns, &c.id).await?;
    client
        .exec(shim::ExecRequest {
            exec_id: r.exec_id,
            process_json: json,
            stdin: r.stdin,
        })
        .await?;
    Ok(())
}

pub async fn update(d: &Daemon, ns: &str, r: UpdateTaskRequest) -> ApiResult<()> {
    ids::validate("container id", &r.container_id)?;
    let c = d.store.find_container(ns, &r.container_id)?;
    let invalid = |e: oci_spec::OciSpecError| ApiError::InvalidArgument(e.to_string());
    let mut res = LinuxResources::default();
    if r.memory > 0 {
        res.set_memory(Some(
            LinuxMemoryBuilder::default()
                .limit(r.memory)
                .build()
                .map_err(invalid)?,
        ));
    }
    if r.cpus > 0.0 || r.cpu_shares > 0 {
        let mut b = LinuxCpuBuilder::default();
        if r.cpus > 0.0 {
            b = b
                .quota((r.cpus * 100_000.0).round() as i64)
                .period(100_000u64);
        }
        if r.cpu_shares > 0 {
            b = b.shares(r.cpu_shares);
        }
        res.set_cpu(Some(b.build().map_err(invalid)?));
    }
    if r.pids_limit > 0 {
        res.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(r.pids_limit)
                .build()
                .map_err(invalid)?,
        ));
    }
    let json = serde_json::to_vec(&res).map_err(|e| ApiError::internal("encoding resources", e))?;
    let mut client = tasks::client(d, ns, &c.id).await?;
    client
        .update(shim::UpdateRequest {
            resources_json: json,
        })
        .await?;
    Ok(())
}

/// Output of a process to the caller; the caller's stdin messages to the process.
pub async fn attach(
    d: &Daemon,
    ns: &str,
    mut input: Streaming<AttachInput>,
) -> ApiResult<BoxStream<AttachOutput>> {
    let first = input.message().await?.ok_or_else(|| {
        ApiError::InvalidArgument("attach needs a first message naming the process".into())
    })?;
    ids::validate("container id", &first.container_id)?;
    let c = d.store.find_container(ns, &first.container_id)?;
    let mut client = tasks::client(d, ns, &c.id).await?;
    let exec_id = first.exec_id.clone();
    let output = client
        .attach(shim::ProcessRequest {
            exec_id: exec_id.clone(),
        })
        .await?
        .into_inner();
    tokio::spawn(forward_stdin(client, exec_id, first, input));
    let stream = output.map(|r| {
        r.map(|o| AttachOutput {
            stream: if o.stream == shim::output::Stream::Stderr as i32 {
                "stderr"
            } else {
                "stdout"
            }
            .into(),
            data: o.data,
        })
    });
    Ok(Box::pin(stream))
}

/// Opens the shim's stdin stream at the first data (or close) the caller sends; a caller that
/// goes away without closing leaves the process's stdin open (like detaching).
async fn forward_stdin(
    client: tasks::ShimClient,
    exec_id: String,
    first: AttachInput,
    mut input: Streaming<AttachInput>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<shim::StdinChunk>(16);
    let mut rx = Some(rx);
    let mut writer = None;
    let mut pending = Some(first);
    loop {
        let msg = match pending.take() {
            Some(m) => m,
            None => match input.message().await {
                Ok(Some(m)) => m,
                _ => break,
            },
        };
        if msg.stdin.is_empty() && !msg.close_stdin {
            continue;
        }
        if let Some(rx) = rx.take() {
            let mut c = client.clone();
            writer = Some(tokio::spawn(async move {
                c.write_stdin(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await
            }));
        }
        let close = msg.close_stdin;
        let chunk = shim::StdinChunk {
            exec_id: exec_id.clone(),
            data: msg.stdin,
            close,
        };
        if tx.send(chunk).await.is_err() || close {
            break;
        }
    }
    drop(tx);
    if let Some(w) = writer {
        if let Ok(Err(e)) = w.await {
            tracing::debug!("stdin of an attached process: {e}");
        }
    }
}
