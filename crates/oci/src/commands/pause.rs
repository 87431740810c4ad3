//! `berth-oci pause <id>` and `berth-oci resume <id>`.

use berth_runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

pub fn pause(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    runtime.load(&args.id)?.pause()?;
    Ok(())
}

pub fn resume(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    runtime.load(&args.id)?.resume()?;
    Ok(())
}
