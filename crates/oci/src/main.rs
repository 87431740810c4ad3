//! berth-oci: a runc-compatible front end of berth-runtime.
//!
//! Every command acts on the container state kept under `--root` (default `/run/berth-oci`), so
//! separate invocations (`create` then `start`, `state`, `delete`) see the same containers.

mod commands;
mod console_proxy;
mod logging;
mod process_wait;
mod signals;
mod state_doc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, ValueEnum};

use commands::Command;

/// A runc-compatible command-line interface of the Berth container runtime.
#[derive(Debug, Parser)]
#[command(name = "berth-oci", version, about)]
struct Cli {
    /// Directory holding the state of containers.
    #[arg(long, global = true, default_value = "/run/berth-oci")]
    root: PathBuf,
    /// Write log messages to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of log messages.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver (not supported: Berth drives cgroupfs directly).
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    // Commands that start container processes protect our binary first (CVE-2019-5736 class):
    // see commands::protect_for; the others never run code inside a container.
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("berth-oci: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    logging::init(cli.log.as_deref(), cli.log_format, cli.debug)?;
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported");
    }
    let runtime = berth_runtime::Runtime::new(&cli.root);
    tracing::debug!(command = ?cli.command, root = %cli.root.display(), "berth-oci");
    commands::dispatch(&runtime, cli.command)
}
