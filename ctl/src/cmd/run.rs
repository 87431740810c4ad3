//! run, create, start.

use std::collections::HashMap;

use berth_proto::v1::{
    CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest, GetContainerRequest, Mount,
    RunOptions, TaskRequest, TaskStatus, Ulimit,
};

use super::session::{self, Session};
use crate::client::Clients;

#[derive(clap::Args)]
pub struct CreateArgs {
    /// A name for the container.
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to take it from here).
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long)]
    env_file: Vec<String>,
    /// Bind mount HOST:CONTAINER[:ro].
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    /// Mount a tmpfs at a path (PATH[:OPTIONS]).
    #[arg(long)]
    tmpfs: Vec<String>,
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    /// name, uid, name:group or uid:gid.
    #[arg(short = 'u', long)]
    user: Option<String>,
    #[arg(long)]
    entrypoint: Option<String>,
    /// Memory limit (e.g. 64m).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Memory + swap limit; -1 for unlimited swap.
    #[arg(long)]
    memory_swap: Option<String>,
    /// CPUs (e.g. 0.5).
    #[arg(long)]
    cpus: Option<f64>,
    #[arg(long)]
    cpu_shares: Option<u64>,
    #[arg(long)]
    cpuset_cpus: Option<String>,
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long)]
    blkio_weight: Option<u32>,
    /// Run a tiny init as pid 1 that reaps zombies and forwards signals.
    #[arg(long)]
    init: bool,
    #[arg(long)]
    read_only: bool,
    #[arg(long)]
    privileged: bool,
    #[arg(long)]
    cap_add: Vec<String>,
    #[arg(long)]
    cap_drop: Vec<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// KEY=VALUE
    #[arg(short = 'l', long = "label")]
    labels: Vec<String>,
    /// bridge, host, none or container:<id>.
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// [IP:]HOST:CONTAINER[/tcp|/udp]
    #[arg(short = 'p', long)]
    publish: Vec<String>,
    #[arg(long)]
    ipc: Option<String>,
    #[arg(long)]
    pid: Option<String>,
    #[arg(long)]
    uts: Option<String>,
    /// host or private.
    #[arg(long)]
    cgroupns: Option<String>,
    #[arg(long)]
    cgroup_parent: Option<String>,
    /// NAME=SOFT[:HARD]
    #[arg(long)]
    ulimit: Vec<String>,
    /// KEY=VALUE
    #[arg(long)]
    sysctl: Vec<String>,
    /// seccomp=unconfined, seccomp=<profile.json>, no-new-privileges.
    #[arg(long)]
    security_opt: Vec<String>,
    /// Run from a host directory instead of an image.
    #[arg(long)]
    rootfs: Option<String>,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// The image (omit with --rootfs).
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(clap::Args)]
pub struct StartArgs {
    /// Attach to the output and wait for the exit code.
    #[arg(short = 'a', long)]
    attach: bool,
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

fn kv(items: &[String], what: &str) -> anyhow::Result<HashMap<String, String>> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow::anyhow!("invalid {what} {s:?}: expected KEY=VALUE"))
        })
        .collect()
}

fn options(a: &CreateArgs, auto_remove: bool, ephemeral: bool) -> anyhow::Result<RunOptions> {
    let mut env = Vec::new();
    for f in &a.env_file {
        let text =
            std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("--env-file {f}: {e}"))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    for e in &a.env {
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let mut mounts = Vec::new();
    for v in &a.volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [s, d] => (*s, *d, Vec::new()),
            [s, d, o] => (*s, *d, o.split(',').map(str::to_string).collect()),
            _ => anyhow::bail!("invalid volume {v:?}: expected HOST:CONTAINER[:ro]"),
        };
        let src =
            std::fs::canonicalize(src).map_err(|e| anyhow::anyhow!("volume source {src}: {e}"))?;
        mounts.push(Mount {
            r#type: "bind".into(),
            source: src.display().to_string(),
            destination: dst.into(),
            options: opts,
        });
    }
    for t in &a.tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
        mounts.push(Mount {
            r#type: "tmpfs".into(),
            source: "tmpfs".into(),
            destination: dst.into(),
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        let (name, vals) = u
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid ulimit {u:?}"))?;
        let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
        ulimits.push(Ulimit {
            name: name.into(),
            soft: soft
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid ulimit {u:?}"))?,
            hard: hard
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid ulimit {u:?}"))?,
        });
    }
    let mut seccomp = String::new();
    let mut no_new_privileges = false;
    for o in &a.security_opt {
        match o.split_once('=') {
            Some(("seccomp", v)) => seccomp = v.to_string(),
            _ if o == "no-new-privileges" || o == "no-new-privileges=true" => {
                no_new_privileges = true
            }
            _ => anyhow::bail!("unsupported --security-opt {o:?}"),
        }
    }
    let memory = a
        .memory
        .as_deref()
        .map(super::parse_bytes)
        .transpose()?
        .unwrap_or(0);
    let memory_swap = match a.memory_swap.as_deref() {
        Some("-1") => -1,
        Some(s) => super::parse_bytes(s)?,
        None => 0,
    };
    Ok(RunOptions {
        entrypoint: a.entrypoint.iter().cloned().collect(),
        args: a.args.clone(),
        env,
        workdir: a.workdir.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        tty: a.tty,
        stdin: a.interactive,
        hostname: a.hostname.clone().unwrap_or_default(),
        mounts,
        read_only: a.read_only,
        privileged: a.privileged,
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        seccomp,
        memory,
        memory_swap,
        cpus: a.cpus.unwrap_or(0.0),
        cpu_shares: a.cpu_shares.unwrap_or(0),
        cpuset_cpus: a.cpuset_cpus.clone().unwrap_or_default(),
        pids_limit: a.pids_limit.unwrap_or(0),
        io_weight: a.blkio_weight.unwrap_or(0),
        ulimits,
        sysctls: kv(&a.sysctl, "sysctl")?,
        cgroupns: a.cgroupns.clone().unwrap_or_default(),
        ipc: a.ipc.clone().unwrap_or_default(),
        pid: a.pid.clone().unwrap_or_default(),
        uts: a.uts.clone().unwrap_or_default(),
        network: a.network.clone().unwrap_or_default(),
        publish: a.publish.clone(),
        init: a.init,
        auto_remove,
        cgroup_parent: a.cgroup_parent.clone().unwrap_or_default(),
        no_new_privileges,
        rootfs: a.rootfs.clone().unwrap_or_default(),
        ephemeral,
        ..Default::default()
    })
}

/// `auto_remove`: the daemon removes the container when it exits; `ephemeral`: someone does
/// (the daemon, or this client after a foreground `run --rm`).
async fn create_container(
    c: &Clients,
    a: &CreateArgs,
    auto_remove: bool,
    ephemeral: bool,
) -> anyhow::Result<String> {
    let mut a_opts = options(a, auto_remove, ephemeral)?;
    // With --rootfs the first positional is the command, not an image.
    let image = if a.rootfs.is_some() {
        a_opts.args.insert(0, a.image.clone());
        String::new()
    } else {
        a.image.clone()
    };
    let created = c
        .containers
        .clone()
        .create(CreateContainerRequest {
            id: String::new(),
            name: a.name.clone().unwrap_or_default(),
            image,
            labels: kv(&a.labels, "label")?,
            options: Some(a_opts),
        })
        .await?
        .into_inner();
    c.tasks
        .clone()
        .create(CreateTaskRequest {
            container_id: created.id.clone(),
        })
        .await?;
    Ok(created.id)
}

pub async fn run(c: Clients, a: RunArgs) -> anyhow::Result<i32> {
    // Detached, the daemon removes an --rm container when it exits; in the foreground we do,
    // after we have its exit code (the daemon would race our Wait).
    let id = create_container(&c, &a.create, a.rm && a.detach, a.rm).await?;
    if a.detach {
        c.tasks
            .clone()
            .start(TaskRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            })
            .await?;
        println!("{id}");
        return Ok(0);
    }
    let code = session::run(
        &c,
        Session {
            container: &id,
            exec_id: "",
            stdin: a.create.interactive,
            tty: a.create.tty,
            start: true,
        },
    )
    .await?;
    if a.rm {
        let _ = c
            .containers
            .clone()
            .delete(DeleteContainerRequest {
                id_or_name: id,
                force: true,
            })
            .await;
    }
    Ok(code)
}

/// A container whose process has exited gets a fresh task (as `docker start` does); one whose
/// task is gone (removed after a daemon-side cleanup) gets one too.
async fn renew_task_if_stopped(c: &Clients, id: &str) -> anyhow::Result<()> {
    let req = TaskRequest {
        container_id: id.to_string(),
        exec_id: String::new(),
    };
    let stopped = match c.tasks.clone().get(req.clone()).await {
        Ok(t) => t.into_inner().status == TaskStatus::Stopped as i32,
        Err(s) if s.code() == tonic::Code::NotFound => true,
        Err(s) => return Err(s.into()),
    };
    if !stopped {
        return Ok(());
    }
    match c.tasks.clone().delete(req).await {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::NotFound => {}
        Err(s) => return Err(s.into()),
    }
    c.tasks
        .clone()
        .create(CreateTaskRequest {
            container_id: id.to_string(),
        })
        .await?;
    Ok(())
}

pub async fn create(c: Clients, a: CreateArgs) -> anyhow::Result<i32> {
    println!("{}", create_container(&c, &a, false, false).await?);
    Ok(0)
}

pub async fn start(c: Clients, a: StartArgs) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in &a.containers {
        let ctr = c
            .containers
            .clone()
            .get(GetContainerRequest {
                id_or_name: name.clone(),
            })
            .await?
            .into_inner();
        renew_task_if_stopped(&c, &ctr.id).await?;
        if a.attach {
            let tty = ctr.options.as_ref().is_some_and(|o| o.tty);
            code = session::run(
                &c,
                Session {
                    container: &ctr.id,
                    exec_id: "",
                    stdin: a.interactive,
                    tty,
                    start: true,
                },
            )
            .await?;
        } else {
            c.tasks
                .clone()
                .start(TaskRequest {
                    container_id: ctr.id.clone(),
                    exec_id: String::new(),
                })
                .await?;
            println!("{name}");
        }
    }
    Ok(code)
}
