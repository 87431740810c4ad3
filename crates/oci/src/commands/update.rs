//! `berth-oci update <id>`: new resource limits for a running container.

use std::path::PathBuf;

use anyhow::{bail, Context};
use berth_runtime::Runtime;
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The container id.
    pub id: String,
    /// A JSON file of OCI `linux.resources` to apply ("-" reads stdin).
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g allowed; -1 = unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// CPU CFS quota in microseconds per period (-1 = unlimited).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// Maximum number of processes (-1 = unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

pub fn run(runtime: &Runtime, args: Args) -> anyhow::Result<()> {
    let mut container = runtime.load(&args.id)?;
    let resources = resources_from(&args)?;
    container.update(&resources)?;
    Ok(())
}

fn resources_from(args: &Args) -> anyhow::Result<LinuxResources> {
    let mut resources = match &args.resources {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            serde_json::from_str(&text).context("parsing the resources JSON")?
        }
        None => LinuxResources::default(),
    };
    if let Some(memory) = &args.memory {
        let mut mem = resources.memory().unwrap_or_else(LinuxMemory::default);
        mem.set_limit(Some(parse_size(memory)?));
        resources.set_memory(Some(mem));
    }
    if args.cpu_quota.is_some() || args.cpu_period.is_some() || args.cpu_shares.is_some() {
        let mut cpu = resources.cpu().clone().unwrap_or_default();
        if let Some(quota) = args.cpu_quota {
            cpu.set_quota(Some(quota));
        }
        if let Some(period) = args.cpu_period {
            cpu.set_period(Some(period));
        }
        if let Some(shares) = args.cpu_shares {
            cpu.set_shares(Some(shares));
        }
        resources.set_cpu(Some::<LinuxCpu>(cpu));
    }
    if let Some(limit) = args.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }
    Ok(resources)
}

/// `1024`, `64k`, `32M`, `1g` (binary multiples) or `-1`.
fn parse_size(text: &str) -> anyhow::Result<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, shift) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 30),
        _ => (trimmed, 0),
    };
    let value: i64 = digits
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    if value < -1 || (value == -1 && shift != 0) {
        bail!("invalid size {text:?}");
    }
    value
        .checked_mul(1 << shift)
        .with_context(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("32M").unwrap(), 32 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("x").is_err());
        assert!(parse_size("-2").is_err());
    }
}
