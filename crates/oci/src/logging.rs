//! `--log`, `--log-format` and `--debug`: where and how log lines go.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::filter::LevelFilter;

use crate::LogFormat;

/// Installs the global subscriber: to `file` (appended) or stderr, text or JSON lines.
pub fn init(file: Option<&Path>, format: LogFormat, debug: bool) -> anyhow::Result<()> {
    let level = if debug {
        LevelFilter::DEBUG
    } else {
        LevelFilter::WARN
    };
    let builder = tracing_subscriber::fmt().with_max_level(level);
    let result = match (file, format) {
        (Some(path), format) => {
            let out = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            let builder = builder.with_ansi(false).with_writer(Mutex::new(out));
            match format {
                LogFormat::Text => builder.try_init(),
                LogFormat::Json => builder.json().try_init(),
            }
        }
        (None, LogFormat::Text) => builder.with_writer(std::io::stderr).try_init(),
        (None, LogFormat::Json) => builder.with_writer(std::io::stderr).json().try_init(),
    };
    result.map_err(|err| anyhow::anyhow!("setting up logging: {err}"))
}
