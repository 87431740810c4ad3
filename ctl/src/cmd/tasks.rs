//! stop, kill, pause/unpause, stats, top, tasks.

use std::time::Duration;

use berth_proto::v1::{GetContainerRequest, KillRequest, StopRequest, TaskMetrics, TaskRequest};
use serde_json::json;

use crate::client::Clients;
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct Ids {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL.
    #[arg(short = 't', long, default_value_t = 10)]
    time: u32,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    /// Signal name or number.
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct StatsArgs {
    /// One sample, then exit.
    #[arg(long)]
    no_stream: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args)]
pub struct TopArgs {
    container: String,
}

async fn id_of(c: &Clients, name: &str) -> anyhow::Result<String> {
    Ok(c.containers
        .clone()
        .get(GetContainerRequest {
            id_or_name: name.to_string(),
        })
        .await?
        .into_inner()
        .id)
}

pub fn parse_signal(s: &str) -> anyhow::Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let upper = s.to_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as u32)
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}"))
}

pub async fn stop(c: Clients, a: StopArgs) -> anyhow::Result<i32> {
    for name in &a.containers {
        let id = id_of(&c, name).await?;
        c.tasks
            .clone()
            .stop(StopRequest {
                container_id: id,
                timeout_secs: a.time,
            })
            .await?;
        println!("{name}");
    }
    Ok(0)
}

pub async fn kill(c: Clients, a: KillArgs) -> anyhow::Result<i32> {
    let signal = parse_signal(&a.signal)?;
    for name in &a.containers {
        let id = id_of(&c, name).await?;
        c.tasks
            .clone()
            .kill(KillRequest {
                container_id: id,
                exec_id: String::new(),
                signal,
                all: false,
            })
            .await?;
        println!("{name}");
    }
    Ok(0)
}

pub async fn pause(c: Clients, a: Ids, freeze: bool) -> anyhow::Result<i32> {
    for name in &a.containers {
        let id = id_of(&c, name).await?;
        let req = TaskRequest {
            container_id: id,
            exec_id: String::new(),
        };
        if freeze {
            c.tasks.clone().pause(req).await?;
        } else {
            c.tasks.clone().resume(req).await?;
        }
        println!("{name}");
    }
    Ok(0)
}

async fn sample(c: &Clients, id: &str) -> anyhow::Result<TaskMetrics> {
    Ok(c.tasks
        .clone()
        .metrics(TaskRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        })
        .await?
        .into_inner())
}

pub async fn stats(c: Clients, a: StatsArgs) -> anyhow::Result<i32> {
    let mut ids = Vec::new();
    for name in &a.containers {
        ids.push((name.clone(), id_of(&c, name).await?));
    }
    let mut prev = Vec::new();
    for (_, id) in &ids {
        prev.push(sample(&c, id).await?);
    }
    loop {
        tokio::time::sleep(Duration::from_millis(if a.no_stream { 500 } else { 1000 })).await;
        let mut rows = Vec::new();
        let mut docs = Vec::new();
        for (i, (name, id)) in ids.iter().enumerate() {
            let now = sample(&c, id).await?;
            let dt = (now.timestamp_ns - prev[i].timestamp_ns).max(1) as f64;
            let cpu = (now.cpu_usage_ns.saturating_sub(prev[i].cpu_usage_ns)) as f64 / dt * 100.0;
            let mem_pct = if now.memory_limit > 0 {
                now.memory_working_set as f64 / now.memory_limit as f64 * 100.0
            } else {
                0.0
            };
            rows.push(vec![
                name.clone(),
                format!("{cpu:.2}%"),
                format!(
                    "{} / {}",
                    output::bytes(now.memory_working_set),
                    if now.memory_limit > 0 {
                        output::bytes(now.memory_limit)
                    } else {
                        "-".into()
                    }
                ),
                format!("{mem_pct:.2}%"),
                now.pids_current.to_string(),
                format!(
                    "{} / {}",
                    output::bytes(now.io_read_bytes),
                    output::bytes(now.io_write_bytes)
                ),
            ]);
            docs.push(json!({"container": name, "cpu_percent": cpu, "memory_usage": now.memory_usage,
                "memory_working_set": now.memory_working_set, "memory_limit": now.memory_limit,
                "pids": now.pids_current, "io_read_bytes": now.io_read_bytes,
                "io_write_bytes": now.io_write_bytes, "cpu_throttled_periods": now.cpu_throttled_periods}));
            prev[i] = now;
        }
        match a.format {
            Format::Json => output::json(&docs)?,
            Format::Table => {
                if !a.no_stream {
                    print!("\x1b[2J\x1b[H");
                }
                output::table(
                    &[
                        "CONTAINER",
                        "CPU %",
                        "MEM USAGE / LIMIT",
                        "MEM %",
                        "PIDS",
                        "BLOCK I/O",
                    ],
                    &rows,
                );
            }
        }
        if a.no_stream {
            return Ok(0);
        }
    }
}

pub async fn top(c: Clients, a: TopArgs) -> anyhow::Result<i32> {
    let id = id_of(&c, &a.container).await?;
    let pids = c
        .tasks
        .clone()
        .pids(TaskRequest {
            container_id: id,
            exec_id: String::new(),
        })
        .await?
        .into_inner()
        .pids;
    let mut rows = Vec::new();
    for pid in pids {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            })
            .unwrap_or_default();
        rows.push(vec![pid.to_string(), uid, cmd]);
    }
    output::table(&["PID", "UID", "CMD"], &rows);
    Ok(0)
}

#[derive(clap::Args)]
pub struct TasksArgs {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Every task of the namespace in one Tasks.List call (like `ctr tasks ls`).
pub async fn list(c: Clients, a: TasksArgs) -> anyhow::Result<i32> {
    let tasks = c
        .tasks
        .clone()
        .list(berth_proto::v1::ListTasksRequest::default())
        .await?
        .into_inner()
        .tasks;
    let status = |s: i32| match berth_proto::v1::TaskStatus::try_from(s)
        .unwrap_or(berth_proto::v1::TaskStatus::Unknown)
    {
        berth_proto::v1::TaskStatus::Created => "created",
        berth_proto::v1::TaskStatus::Running => "running",
        berth_proto::v1::TaskStatus::Paused => "paused",
        berth_proto::v1::TaskStatus::Stopped => "stopped",
        berth_proto::v1::TaskStatus::Unknown => "unknown",
    };
    match a.format {
        Format::Json => {
            let docs: Vec<_> = tasks
                .iter()
                .map(|t| {
                    json!({"id": t.container_id, "pid": t.pid, "status": status(t.status),
                        "exit_code": t.exit.map(|e| e.code), "problem": t.problem})
                })
                .collect();
            output::json(&docs)?;
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = tasks
                .iter()
                .map(|t| {
                    vec![
                        t.container_id.clone(),
                        t.pid.to_string(),
                        status(t.status).to_string(),
                    ]
                })
                .collect();
            output::table(&["TASK", "PID", "STATUS"], &rows);
        }
    }
    Ok(0)
}
