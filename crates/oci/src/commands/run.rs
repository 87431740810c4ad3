//! `berth-oci run <id>`: create + start, then (unless detached) wait and delete.

use std::process::ExitCode;

use anyhow::{bail, Context};
use berth_runtime::{Container, Runtime};
use oci_spec::runtime::Spec;

use super::create::{self, CreateFlags};
use crate::console_proxy::ConsoleProxy;
use crate::{process_wait, signals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Return once the container is started instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Do not delete the container after it exits.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(runtime: &Runtime, mut args: Args) -> anyhow::Result<ExitCode> {
    let config = args.flags.bundle.join("config.json");
    let spec = Spec::load(&config).with_context(|| format!("reading {}", config.display()))?;
    super::protect_for(Some(&spec))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let mut proxy = None;
    if terminal && args.flags.console_socket.is_none() {
        if args.detach {
            bail!("cannot allocate a tty for a detached container without --console-socket");
        }
        let own = ConsoleProxy::listen(runtime.root(), &args.id)?;
        args.flags.console_socket = Some(own.socket_path().to_path_buf());
        proxy = Some(own);
    }

    let container = create::create(runtime, &args.id, args.flags, Some(spec))?;
    if args.detach {
        return start_or_delete(container).map(|_| ExitCode::SUCCESS);
    }
    let pid = container
        .pid()
        .context("the created container has no init process")?;
    signals::forward_to(pid)?;
    let container = start_or_delete(container)?;
    let code = process_wait::wait_exit_code(pid)?;
    if let Some(proxy) = proxy.take() {
        proxy.finish();
    }
    if !args.keep {
        // The init is gone; force also removes stray processes it left behind.
        container
            .delete(true)
            .with_context(|| format!("deleting container {:?}", args.id))?;
    }
    Ok(ExitCode::from(code))
}

/// Starts `container`; if that fails, removes it again (killing its init) and fails.
fn start_or_delete(container: Container) -> anyhow::Result<Container> {
    match container.start() {
        Ok(()) => Ok(container),
        Err(err) => {
            let id = container.id().to_string();
            let _ = container.delete(true);
            Err(err).with_context(|| format!("starting container {id:?}"))
        }
    }
}
