//! Errors of CNI configuration loading and plugin invocation.

use std::path::{Path, PathBuf};

/// A CNI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// A configuration file or list is malformed.
    #[error("invalid CNI config{}: {reason}", source_file.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    InvalidConfig {
        /// The file, when the config came from one.
        source_file: Option<PathBuf>,
        /// What is wrong.
        reason: String,
    },
    /// No configuration in the directory has this name.
    #[error("CNI network {name:?} not found in {}", conf_dir.display())]
    NetworkNotFound {
        /// The requested network.
        name: String,
        /// Where it was looked for.
        conf_dir: PathBuf,
    },
    /// No plugin directory holds an executable of this type.
    #[error("CNI plugin {plugin:?} not found in {search_path}")]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// The directories searched, `:`-joined.
        search_path: String,
    },
    /// A plugin reported an error (its JSON error on stdout, or its stderr).
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// ADD, CHECK or DEL.
        command: &'static str,
        /// The CNI error code (0 when the plugin wrote no JSON error).
        code: u64,
        /// The error message.
        msg: String,
        /// Further details.
        details: String,
    },
    /// A plugin's successful output is not a valid result.
    #[error("CNI plugin {plugin} returned an invalid result: {reason}")]
    InvalidResult {
        /// The plugin type.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// A plugin ran longer than the timeout and was killed.
    #[error("CNI plugin {plugin} {command} timed out")]
    Timeout {
        /// The plugin type.
        plugin: String,
        /// ADD, CHECK or DEL.
        command: &'static str,
    },
    /// CHECK needs the result of a previous ADD, which is not cached.
    #[error("no cached CNI result for network {network:?}, container {container_id:?}")]
    NotAttached {
        /// The network.
        network: String,
        /// The container.
        container_id: String,
    },
    /// Reading or writing a file, or running a plugin, failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or plugin.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl CniError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        CniError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
