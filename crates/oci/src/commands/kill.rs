//! `berth-oci kill <id> [signal]`.

use berth_runtime::Runtime;

use crate::signals;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number.
    #[arg(default_value = "TERM")]
    pub signal: String,
    /// Signal every process of the container, not only its init.
    #[arg(short = 'a', long)]
    pub all: bool,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    let signal = signals::parse(&args.signal)?;
    runtime.load(&args.id)?.kill(signal, args.all)?;
    Ok(())
}
