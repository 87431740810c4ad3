//! `berth-oci exec <id> [args...]`: a new process in a running container's namespaces and cgroup.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use berth_runtime::{ExecOptions, Runtime};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process};

use super::create::absolute;
use crate::{process_wait, signals};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    /// A process.json (an OCI `process` object) describing the process to run.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal (needs --console-socket).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Extra environment variables (K=V), added to the container's.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Extra capabilities (CAP_X or X).
    #[arg(long = "cap")]
    pub caps: Vec<String>,
    /// Return once the process is started instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master with --tty.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Set no_new_privileges for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass this many extra fds (3, 4, ...) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<ExitCode> {
    super::protect_for(None)?;
    let container = runtime.load(&args.id)?;
    let process = match &args.process {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str::<Process>(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
        None => {
            let base = container.spec().process().clone().unwrap_or_default();
            build_process(base, &args)?
        }
    };
    if process.terminal().unwrap_or(false) && args.console_socket.is_none() {
        bail!("a terminal needs --console-socket");
    }
    let opts = ExecOptions {
        console_socket: args.console_socket.map(absolute).transpose()?,
        pid_file: args.pid_file.map(absolute).transpose()?,
        preserve_fds: args.preserve_fds,
        ..Default::default()
    };
    let pid = container
        .exec(&process, opts)
        .with_context(|| format!("exec in container {:?}", args.id))?;
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    signals::forward_to(pid)?;
    Ok(ExitCode::from(process_wait::wait_exit_code(pid)?))
}

/// The container's own process with the command line's changes, like `runc exec`.
fn build_process(mut process: Process, args: &Args) -> anyhow::Result<Process> {
    if args.args.is_empty() {
        bail!("exec needs a command (or --process)");
    }
    process.set_args(Some(args.args.clone()));
    process.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.into());
    }
    if !args.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        for var in &args.env {
            let key = var.split('=').next().unwrap_or(var);
            env.retain(|existing| existing.split('=').next() != Some(key));
            env.push(var.clone());
        }
        process.set_env(Some(env));
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        let mut spec_user = process.user().clone();
        spec_user.set_uid(uid);
        spec_user.set_gid(gid);
        process.set_user(spec_user);
    }
    if !args.caps.is_empty() {
        let mut caps = process
            .capabilities()
            .clone()
            .unwrap_or_else(empty_capabilities);
        for name in &args.caps {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.clone()))
                .with_context(|| format!("unknown capability {name:?}"))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        process.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    Ok(process)
}

fn empty_capabilities() -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(None);
    caps.set_effective(None);
    caps.set_permitted(None);
    caps.set_inheritable(None);
    caps.set_ambient(None);
    caps
}

/// `uid` or `uid:gid` (gid defaults to 0 like runc).
fn parse_user(text: &str) -> anyhow::Result<(u32, u32)> {
    let (uid, gid) = match text.split_once(':') {
        Some((uid, gid)) => (uid, gid),
        None => (text, "0"),
    };
    let uid = uid
        .parse()
        .with_context(|| format!("invalid uid in {text:?}"))?;
    let gid = gid
        .parse()
        .with_context(|| format!("invalid gid in {text:?}"))?;
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_users() {
        assert_eq!(parse_user("1000").unwrap(), (1000, 0));
        assert_eq!(parse_user("1:2").unwrap(), (1, 2));
        assert!(parse_user("x").is_err());
    }
}
