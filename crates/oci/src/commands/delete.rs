//! `berth-oci delete <id>`.

use anyhow::bail;
use berth_runtime::{Runtime, Status};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    /// Kill the container first if it is still running or paused.
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    let container = runtime.load(&args.id)?;
    let status = container.status();
    if !args.force && matches!(status, Status::Running | Status::Paused) {
        bail!(
            "cannot delete container {:?}: it is {status} (stop it first or use --force)",
            args.id
        );
    }
    container.delete(args.force)?;
    Ok(())
}
