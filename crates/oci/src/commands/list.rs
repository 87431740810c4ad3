//! `berth-oci list`.

use berth_runtime::Runtime;

use super::Format;
use crate::state_doc::StateDoc;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print only the ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    let containers = runtime.list()?;
    let docs: Vec<StateDoc> = containers.iter().map(StateDoc::of).collect();
    if args.quiet {
        for doc in &docs {
            println!("{}", doc.id);
        }
        return Ok(());
    }
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&docs)?),
        Format::Table => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} CREATED",
                "ID", "PID", "STATUS", "BUNDLE"
            );
            for doc in &docs {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {}",
                    doc.id,
                    doc.pid,
                    doc.status,
                    doc.bundle.display(),
                    doc.created
                );
            }
        }
    }
    Ok(())
}
