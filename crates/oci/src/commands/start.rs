//! `berth-oci start <id>`.

use berth_runtime::Runtime;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    runtime.load(&args.id)?.start()?;
    Ok(())
}
