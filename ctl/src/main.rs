//! berthctl: Berth's command-line client, a docker-like surface over berthd's socket.
//!
//! Exit codes: `run`, `start -a` and `exec` exit with the container process's code; errors
//! from the daemon exit 125, like docker.

mod client;
mod cmd;
mod output;
mod term;

use clap::{CommandFactory, Parser, Subcommand};

use crate::output::Format;

#[derive(Parser)]
#[command(
    name = "berthctl",
    version,
    about = "Run and manage containers with berthd"
)]
pub struct Cli {
    /// berthd's socket.
    #[arg(
        long,
        global = true,
        env = "BERTH_ADDRESS",
        default_value = "/run/berth/berth.sock"
    )]
    address: String,
    /// Namespace of the objects acted on.
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "BERTH_NAMESPACE",
        default_value = "default"
    )]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and start a container.
    Run(cmd::run::RunArgs),
    /// Create a container (not started).
    Create(cmd::run::CreateArgs),
    /// Start created containers.
    Start(cmd::run::StartArgs),
    /// List containers.
    Ps(cmd::containers::PsArgs),
    /// Run a command in a running container.
    Exec(cmd::exec::ExecArgs),
    /// Show a container's output.
    Logs(cmd::containers::LogsArgs),
    /// Attach to a running container's output (and input with -i).
    Attach(cmd::exec::AttachArgs),
    /// Stop containers: the stop signal, then SIGKILL after the grace period.
    Stop(cmd::tasks::StopArgs),
    /// Send a signal to containers.
    Kill(cmd::tasks::KillArgs),
    /// Remove containers.
    Rm(cmd::containers::RmArgs),
    /// Freeze every process of containers.
    Pause(cmd::tasks::Ids),
    /// Thaw paused containers.
    Unpause(cmd::tasks::Ids),
    /// Show containers in detail (JSON).
    Inspect(cmd::containers::InspectArgs),
    /// Resource usage of containers.
    Stats(cmd::tasks::StatsArgs),
    /// Processes of a container.
    Top(cmd::tasks::TopArgs),
    /// List the tasks of the namespace (one Tasks.List call, like `ctr tasks ls`).
    Tasks(cmd::tasks::TasksArgs),
    /// List images.
    Images(cmd::images::ImagesArgs),
    /// Pull an image from a registry.
    Pull(cmd::images::PullArgs),
    /// Import an OCI layout or `docker save` archive.
    Import(cmd::images::ImportArgs),
    /// Export images as an OCI layout archive.
    Save(cmd::images::SaveArgs),
    /// Remove images.
    Rmi(cmd::images::RmiArgs),
    /// Make an image of a container's changes.
    Commit(cmd::images::CommitArgs),
    /// Paths a container changed (A added, C changed, D deleted).
    Diff(cmd::images::DiffArgs),
    /// Stream events.
    Events(cmd::system::EventsArgs),
    /// Manage namespaces.
    #[command(subcommand)]
    Namespaces(cmd::system::NamespacesCmd),
    /// CNI networks.
    #[command(subcommand)]
    Network(cmd::system::NetworkCmd),
    /// Client and daemon versions.
    Version(cmd::system::FormatArg),
    /// Daemon and host facts.
    Info(cmd::system::FormatArg),
    /// Find (and remove) what crashes left behind: bundles, mounts, cgroups, networks, shims
    /// and snapshots nothing owns; report shims berthd cannot speak to.
    Doctor(cmd::doctor::DoctorArgs),
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthctl: {e}");
            std::process::exit(125);
        }
    };
    let code = rt.block_on(dispatch(cli));
    // Leave without waiting for streams the runtime still holds.
    std::process::exit(code);
}

async fn dispatch(cli: Cli) -> i32 {
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "berthctl",
            &mut std::io::stdout(),
        );
        return 0;
    }
    let result = async {
        let c = client::connect(&cli.address, &cli.namespace).await?;
        match cli.command {
            Command::Run(a) => cmd::run::run(c, a).await,
            Command::Create(a) => cmd::run::create(c, a).await,
            Command::Start(a) => cmd::run::start(c, a).await,
            Command::Ps(a) => cmd::containers::ps(c, a).await,
            Command::Exec(a) => cmd::exec::exec(c, a).await,
            Command::Logs(a) => cmd::containers::logs(c, a).await,
            Command::Attach(a) => cmd::exec::attach(c, a).await,
            Command::Stop(a) => cmd::tasks::stop(c, a).await,
            Command::Kill(a) => cmd::tasks::kill(c, a).await,
            Command::Rm(a) => cmd::containers::rm(c, a).await,
            Command::Pause(a) => cmd::tasks::pause(c, a, true).await,
            Command::Unpause(a) => cmd::tasks::pause(c, a, false).await,
            Command::Inspect(a) => cmd::containers::inspect(c, a).await,
            Command::Stats(a) => cmd::tasks::stats(c, a).await,
            Command::Top(a) => cmd::tasks::top(c, a).await,
            Command::Tasks(a) => cmd::tasks::list(c, a).await,
            Command::Images(a) => cmd::images::images(c, a).await,
            Command::Pull(a) => cmd::images::pull(c, a).await,
            Command::Import(a) => cmd::images::import(c, a).await,
            Command::Save(a) => cmd::images::save(c, a).await,
            Command::Rmi(a) => cmd::images::rmi(c, a).await,
            Command::Commit(a) => cmd::images::commit(c, a).await,
            Command::Diff(a) => cmd::images::diff(c, a).await,
            Command::Events(a) => cmd::system::events(c, a).await,
            Command::Namespaces(a) => cmd::system::namespaces(c, a).await,
            Command::Network(a) => cmd::system::network(c, a).await,
            Command::Version(a) => cmd::system::version(c, a).await,
            Command::Info(a) => cmd::system::info(c, a).await,
            Command::Doctor(a) => cmd::doctor::doctor(c, a).await,
            Command::Completions { .. } => Ok(0),
        }
    }
    .await;
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berthctl: {}", cmd::describe(&e));
            125
        }
    }
}

/// `--format` for commands that list things.
#[derive(clap::Args, Clone, Copy)]
pub struct FormatOpt {
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}
