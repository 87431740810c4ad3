//! `berth-oci events <id> --stats`: resource statistics as JSON.

use std::time::Duration;

use anyhow::bail;
use berth_runtime::Runtime;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    /// Print statistics (the only kind of event supported).
    #[arg(long)]
    pub stats: bool,
    /// Print again every this many seconds until the container is gone.
    #[arg(long)]
    pub interval: Option<u64>,
}

/// One event line, shaped like runc's.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    data: berth_runtime::cgroups::Stats,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    if !args.stats && args.interval.is_none() {
        bail!("only --stats events are supported");
    }
    loop {
        let container = runtime.load(&args.id)?;
        let event = Event {
            kind: "stats",
            id: &args.id,
            data: container.stats()?,
        };
        println!("{}", serde_json::to_string(&event)?);
        match args.interval {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
            None => return Ok(()),
        }
    }
}
