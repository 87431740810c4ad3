//! ps, logs, rm, inspect.

use std::io::Write;

use berth_proto::v1::{
    Container, DeleteContainerRequest, GetContainerRequest, ListContainersRequest, LogsRequest,
    TaskRequest, TaskStatus,
};
use serde_json::json;

use crate::client::Clients;
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct PsArgs {
    /// Also stopped and created containers.
    #[arg(short = 'a', long)]
    all: bool,
    /// Only ids.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// label=K[=V], name=N, image=I, id=PREFIX
    #[arg(short = 'f', long = "filter")]
    filters: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only the last N lines.
    #[arg(long)]
    tail: Option<u32>,
    /// Only lines since a time: RFC 3339 or a duration ago (10m, 2h).
    #[arg(long)]
    since: Option<String>,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    container: String,
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Kill running containers first.
    #[arg(short = 'f', long)]
    force: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

/// What ps and inspect show of a container's task.
pub struct State {
    /// created, running, paused, exited or unknown.
    pub status: String,
    pub pid: u32,
    /// None while running, or when the exit status is unknown (its shim died unrecorded).
    pub code: Option<i32>,
    pub ip: String,
    /// Why berthd cannot manage the task (e.g. an incompatible shim), or how it ended.
    pub detail: String,
}

impl State {
    /// The STATUS column: `running`, `exited (0)`, `exited (unknown)`, `unknown (problem)`.
    pub fn shown(&self) -> String {
        match (self.status.as_str(), self.code) {
            ("exited", Some(code)) => format!("exited ({code})"),
            ("exited", None) => "exited (unknown)".into(),
            ("unknown", _) if !self.detail.is_empty() => "unknown (shim incompatible)".into(),
            (s, _) => s.to_string(),
        }
    }
}

/// The task's state from the daemon; without a task, the record's last exit (if any).
pub async fn status_of(c: &Clients, ctr: &Container) -> State {
    let got = c
        .tasks
        .clone()
        .get(TaskRequest {
            container_id: ctr.id.clone(),
            exec_id: String::new(),
        })
        .await;
    match got {
        Ok(t) => {
            let t = t.into_inner();
            let status = match TaskStatus::try_from(t.status).unwrap_or(TaskStatus::Unknown) {
                TaskStatus::Created => "created",
                TaskStatus::Running => "running",
                TaskStatus::Paused => "paused",
                TaskStatus::Stopped => "exited",
                TaskStatus::Unknown => "unknown",
            };
            State {
                status: status.into(),
                pid: t.pid,
                code: t.exit.map(|e| e.code),
                ip: t.ip_address,
                detail: t.problem,
            }
        }
        Err(_) => match &ctr.last_exit {
            Some(e) => State {
                status: "exited".into(),
                pid: 0,
                code: (ctr.last_exit_status != "unknown").then_some(e.code),
                ip: String::new(),
                detail: ctr.last_exit_reason.clone(),
            },
            None => State {
                status: "created".into(),
                pid: 0,
                code: None,
                ip: String::new(),
                detail: String::new(),
            },
        },
    }
}

pub async fn ps(c: Clients, a: PsArgs) -> anyhow::Result<i32> {
    let mut req = ListContainersRequest::default();
    for f in &a.filters {
        match f.split_once('=') {
            Some(("label", v)) => req.labels.push(v.into()),
            Some(("name", v)) => req.name = v.into(),
            Some(("image", v)) => req.image = v.into(),
            Some(("id", v)) => req.id = v.into(),
            _ => anyhow::bail!("unsupported filter {f:?}"),
        }
    }
    let list = c
        .containers
        .clone()
        .list(req)
        .await?
        .into_inner()
        .containers;
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for ctr in &list {
        let st = status_of(&c, ctr).await;
        let live = matches!(st.status.as_str(), "running" | "paused" | "unknown");
        if !a.all && !live {
            continue;
        }
        if a.quiet {
            println!("{}", &ctr.id[..ctr.id.len().min(12)]);
            continue;
        }
        let cmd = ctr
            .options
            .as_ref()
            .map(|o| o.args.join(" "))
            .unwrap_or_default();
        let shown = st.shown();
        rows.push(vec![
            ctr.id.chars().take(12).collect(),
            if ctr.image.is_empty() {
                "-".into()
            } else {
                ctr.image.clone()
            },
            format!("{:.30}", cmd),
            output::ago(ctr.created_at_ns),
            shown.clone(),
            ctr.options
                .as_ref()
                .map(|o| o.publish.join(","))
                .unwrap_or_default(),
            ctr.name.clone(),
        ]);
        docs.push(json!({"id": ctr.id, "name": ctr.name, "image": ctr.image, "status": st.status,
            "pid": st.pid, "exit_code": st.code, "ip": st.ip, "detail": st.detail,
            "ports": ctr.options.as_ref().map(|o| o.publish.clone()).unwrap_or_default(), "created_at_ns": ctr.created_at_ns, "labels": ctr.labels}));
    }
    if a.quiet {
        return Ok(0);
    }
    match a.format {
        Format::Json => output::json(&docs)?,
        Format::Table => output::table(
            &[
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "PORTS",
                "NAMES",
            ],
            &rows,
        ),
    }
    Ok(0)
}

fn parse_since(s: &str) -> anyhow::Result<i64> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t.duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i64);
    }
    let d = humantime::parse_duration(s).map_err(|_| anyhow::anyhow!("invalid --since {s:?}"))?;
    let t = std::time::SystemTime::now() - d;
    Ok(t.duration_since(std::time::UNIX_EPOCH)?.as_nanos() as i64)
}

pub async fn logs(c: Clients, a: LogsArgs) -> anyhow::Result<i32> {
    let since_ns = a
        .since
        .as_deref()
        .map(parse_since)
        .transpose()?
        .unwrap_or(0);
    let mut stream = c
        .containers
        .clone()
        .logs(LogsRequest {
            id_or_name: a.container,
            follow: a.follow,
            tail: a.tail.unwrap_or(0),
            since_ns,
        })
        .await?
        .into_inner();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    while let Some(e) = stream.message().await? {
        let w: &mut dyn Write = if e.stream == "stderr" {
            &mut err
        } else {
            &mut out
        };
        if a.timestamps {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(e.timestamp_ns as u64);
            let _ = write!(w, "{} ", humantime::format_rfc3339_nanos(t));
        }
        let _ = w.write_all(&e.data);
        let _ = w.flush();
    }
    Ok(0)
}

pub async fn rm(c: Clients, a: RmArgs) -> anyhow::Result<i32> {
    let mut failed = false;
    for name in &a.containers {
        match c
            .containers
            .clone()
            .delete(DeleteContainerRequest {
                id_or_name: name.clone(),
                force: a.force,
            })
            .await
        {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("berthctl: {}", e.message());
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub async fn inspect(c: Clients, a: InspectArgs) -> anyhow::Result<i32> {
    let mut docs = Vec::new();
    for name in &a.containers {
        let ctr = c
            .containers
            .clone()
            .get(GetContainerRequest {
                id_or_name: name.clone(),
            })
            .await?
            .into_inner();
        let st = status_of(&c, &ctr).await;
        let spec: serde_json::Value = serde_json::from_slice(&ctr.spec_json).unwrap_or_default();
        let o = ctr.options.clone().unwrap_or_default();
        docs.push(json!({
            "Id": ctr.id, "Name": ctr.name, "Image": ctr.image, "ImageDigest": ctr.image_digest,
            "Created": ctr.created_at_ns, "Labels": ctr.labels,
            "State": {"Status": st.status, "Pid": st.pid, "ExitCode": st.code,
                "Detail": st.detail},
            "NetworkSettings": {"IPAddress": st.ip, "Ports": o.publish, "Mode": o.network},
            "Config": {"Args": o.args, "Env": o.env, "User": o.user, "WorkingDir": o.workdir, "Tty": o.tty},
            "HostConfig": {"Memory": o.memory, "Cpus": o.cpus, "PidsLimit": o.pids_limit,
                "Privileged": o.privileged, "ReadOnly": o.read_only, "Network": o.network,
                "Publish": o.publish, "Init": o.init, "AutoRemove": o.auto_remove},
            "Spec": spec,
        }));
    }
    output::json(&docs)?;
    Ok(0)
}
