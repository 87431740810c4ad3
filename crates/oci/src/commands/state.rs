//! `berth-oci state <id>`.

use berth_runtime::Runtime;

use crate::state_doc::StateDoc;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    let container = runtime.load(&args.id)?;
    let doc = StateDoc::of(&container);
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
