//! One file per command; `dispatch` wires them to the runtime.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod update;

use std::process::ExitCode;

use berth_runtime::Runtime;
use clap::Subcommand;

/// The commands, named like runc's.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (its init waits before exec until `start`).
    Create(create::Args),
    /// Start a created container's process.
    Start(start::Args),
    /// Print a container's state as JSON.
    State(state::Args),
    /// Send a signal to a container's init (or all its processes).
    Kill(kill::Args),
    /// Delete a container.
    Delete(delete::Args),
    /// Create and start a container, and wait for it unless detached.
    Run(run::Args),
    /// Run a new process inside a running container.
    Exec(exec::Args),
    /// List the processes of a container.
    Ps(ps::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(pause::Args),
    /// List containers.
    List(list::Args),
    /// Change a running container's resource limits.
    Update(update::Args),
    /// Print a container's resource statistics.
    Events(events::Args),
    /// Write a template config.json into a bundle.
    Spec(spec::Args),
    /// Print what this runtime supports, as JSON.
    Features,
}

/// Re-executes berth-oci from a read-only clone of its binary (CVE-2019-5736 class) unless
/// creating a container from `spec` is safe without (see
/// [`berth_runtime::create_needs_protected_exe`]). Call it before anything that a second
/// start would repeat (sockets, files). `None` (exec) always protects.
pub fn protect_for(spec: Option<&oci_spec::runtime::Spec>) -> anyhow::Result<()> {
    if spec.is_none_or(berth_runtime::create_needs_protected_exe) {
        berth_runtime::protect_self_exe()
            .map_err(|e| anyhow::anyhow!("protecting the runtime binary: {e}"))?;
    }
    Ok(())
}

/// Runs `command`; the result is the process's exit code.
pub fn dispatch(runtime: &Runtime, command: Command) -> anyhow::Result<ExitCode> {
    let success = |()| ExitCode::SUCCESS;
    match command {
        Command::Create(args) => create::run(runtime, args).map(success),
        Command::Start(args) => start::run(runtime, args).map(success),
        Command::State(args) => state::run(runtime, args).map(success),
        Command::Kill(args) => kill::run(runtime, args).map(success),
        Command::Delete(args) => delete::run(runtime, args).map(success),
        Command::Run(args) => run::run(runtime, args),
        Command::Exec(args) => exec::run(runtime, args),
        Command::Ps(args) => ps::run(runtime, args).map(success),
        Command::Pause(args) => pause::pause(runtime, args).map(success),
        Command::Resume(args) => pause::resume(runtime, args).map(success),
        Command::List(args) => list::run(runtime, args).map(success),
        Command::Update(args) => update::run(runtime, args).map(success),
        Command::Events(args) => events::run(runtime, args).map(success),
        Command::Spec(args) => spec::run(args).map(success),
        Command::Features => features::run().map(success),
    }
}

/// `--format` of `ps` and `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}
