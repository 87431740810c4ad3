//! `berth-oci create <id>`.

use std::path::PathBuf;

use anyhow::Context;
use berth_runtime::{Container, CreateOptions, Runtime};
use oci_spec::runtime::Spec;

/// Options shared by `create` and `run`.
#[derive(Debug, clap::Args)]
pub struct CreateFlags {
    /// The bundle directory (holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is set.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Do not use pivot_root (for a root on an initramfs).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Pass this many extra fds (3, 4, ...) to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    #[command(flatten)]
    pub flags: CreateFlags,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    let spec = load_protected(&args.flags.bundle)?;
    create(runtime, &args.id, args.flags, spec)?;
    Ok(())
}

/// Reads `<bundle>/config.json` and protects our binary as creating it needs
/// ([`super::protect_for`]; always when it does not parse, which create then reports).
pub fn load_protected(bundle: &std::path::Path) -> anyhow::Result<Option<Spec>> {
    let spec = berth_runtime::load_spec(bundle).ok();
    super::protect_for(spec.as_ref())?;
    Ok(spec)
}

/// Creates container `id` from the flags (stdio inherited from us) and `spec` (None: read
/// from the bundle).
pub fn create(
    runtime: &Runtime,
    id: &str,
    flags: CreateFlags,
    spec: Option<Spec>,
) -> anyhow::Result<Container> {
    let bundle = std::fs::canonicalize(&flags.bundle)
        .with_context(|| format!("bundle {}", flags.bundle.display()))?;
    let opts = CreateOptions {
        spec,
        console_socket: flags.console_socket.map(absolute).transpose()?,
        pid_file: flags.pid_file.map(absolute).transpose()?,
        no_pivot: flags.no_pivot,
        preserve_fds: flags.preserve_fds,
        ..Default::default()
    };
    runtime
        .create(id, &bundle, opts)
        .with_context(|| format!("creating container {id:?}"))
}

/// Makes a relative path absolute against our working directory (the runtime may chdir).
pub fn absolute(path: PathBuf) -> anyhow::Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path);
    }
    let cwd = std::env::current_dir().context("reading the working directory")?;
    Ok(cwd.join(path))
}
