//! exec and attach.

use berth_proto::v1::{ExecRequest, GetContainerRequest, TaskRequest};

use super::session::{self, Session};
use crate::client::Clients;

#[derive(clap::Args)]
pub struct ExecArgs {
    #[arg(short = 'i', long)]
    interactive: bool,
    #[arg(short = 't', long)]
    tty: bool,
    /// Start it and return at once.
    #[arg(short = 'd', long)]
    detach: bool,
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    #[arg(short = 'u', long)]
    user: Option<String>,
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
pub struct AttachArgs {
    /// Also forward stdin.
    #[arg(short = 'i', long)]
    interactive: bool,
    container: String,
}

pub async fn exec(c: Clients, a: ExecArgs) -> anyhow::Result<i32> {
    let ctr = c
        .containers
        .clone()
        .get(GetContainerRequest {
            id_or_name: a.container.clone(),
        })
        .await?
        .into_inner();
    let exec_id = format!("exec-{}", super::random_id());
    c.tasks
        .clone()
        .exec(ExecRequest {
            container_id: ctr.id.clone(),
            exec_id: exec_id.clone(),
            args: a.command,
            env: a.env,
            workdir: a.workdir.unwrap_or_default(),
            user: a.user.unwrap_or_default(),
            tty: a.tty,
            stdin: a.interactive,
        })
        .await?;
    let req = TaskRequest {
        container_id: ctr.id.clone(),
        exec_id: exec_id.clone(),
    };
    if a.detach {
        c.tasks.clone().start(req).await?;
        return Ok(0);
    }
    let code = session::run(
        &c,
        Session {
            container: &ctr.id,
            exec_id: &exec_id,
            stdin: a.interactive,
            tty: a.tty,
            start: true,
        },
    )
    .await?;
    let _ = c.tasks.clone().delete(req).await;
    Ok(code)
}

pub async fn attach(c: Clients, a: AttachArgs) -> anyhow::Result<i32> {
    let ctr = c
        .containers
        .clone()
        .get(GetContainerRequest {
            id_or_name: a.container.clone(),
        })
        .await?
        .into_inner();
    let tty = ctr.options.as_ref().is_some_and(|o| o.tty);
    session::run(
        &c,
        Session {
            container: &ctr.id,
            exec_id: "",
            stdin: a.interactive,
            tty,
            start: false,
        },
    )
    .await
}
