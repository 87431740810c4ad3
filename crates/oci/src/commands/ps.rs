//! `berth-oci ps <id>`: the container's processes.

use berth_runtime::Runtime;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    #[arg(short = 'f', long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    let mut pids = runtime.load(&args.id)?.pids()?;
    pids.sort_unstable();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&pids)?),
        Format::Table => {
            println!("{:>8}  CMD", "PID");
            for pid in pids {
                println!("{pid:>8}  {}", command_line(pid));
            }
        }
    }
    Ok(())
}

/// The process's command line from /proc (its name in brackets when it has none).
fn command_line(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if !words.is_empty() {
        return words.join(" ");
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    format!("[{}]", comm.trim())
}
