//! Running one CNI plugin binary: the CNI_* environment, the configuration on stdin, the result
//! or the JSON error on stdout.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::CniError;

/// The CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Check,
    Del,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Check => "CHECK",
            Op::Del => "DEL",
        }
    }
}

/// What every plugin of one invocation is told through its environment.
pub(crate) struct Invocation<'a> {
    pub op: Op,
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    pub args: &'a [(String, String)],
    pub plugin_dirs: &'a [PathBuf],
    pub timeout: Duration,
}

/// The PATH given to plugins when the caller has none: bridge and portmap run iptables.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds the executable for `plugin` in the first directory that has it.
pub(crate) fn find_plugin(plugin: &str, dirs: &[PathBuf]) -> Result<PathBuf, CniError> {
    for dir in dirs {
        let candidate = dir.join(plugin);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(CniError::PluginNotFound {
        plugin: plugin.to_string(),
        search_path: join_paths(dirs),
    })
}

fn join_paths(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs `plugin` with `stdin` as its configuration. ADD returns the plugin's result; CHECK and
/// DEL return `None`.
pub(crate) async fn run_plugin(
    plugin: &str,
    stdin: &Value,
    inv: &Invocation<'_>,
) -> Result<Option<Value>, CniError> {
    let path = find_plugin(plugin, inv.plugin_dirs)?;
    let cni_args = inv
        .args
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";");
    let mut cmd = Command::new(&path);
    cmd.env("CNI_COMMAND", inv.op.as_str())
        .env("CNI_CONTAINERID", inv.container_id)
        .env("CNI_NETNS", inv.netns)
        .env("CNI_IFNAME", inv.ifname)
        .env("CNI_ARGS", cni_args)
        .env("CNI_PATH", join_paths(inv.plugin_dirs))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    let mut child = cmd.spawn().map_err(|e| CniError::io(&path, e))?;
    let input = stdin.to_string();
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin may exit without reading its stdin; a broken pipe is then not our error.
        let _ = pipe.write_all(input.as_bytes()).await;
    }
    let output = match tokio::time::timeout(inv.timeout, child.wait_with_output()).await {
        Ok(out) => out.map_err(|e| CniError::io(&path, e))?,
        Err(_) => {
            return Err(CniError::Timeout {
                plugin: plugin.to_string(),
                command: inv.op.as_str(),
            })
        }
    };
    if !output.status.success() {
        return Err(plugin_error(plugin, inv.op, &output));
    }
    if inv.op != Op::Add {
        return Ok(None);
    }
    let result: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| CniError::InvalidResult {
            plugin: plugin.to_string(),
            reason: e.to_string(),
        })?;
    if !result.is_object() {
        return Err(CniError::InvalidResult {
            plugin: plugin.to_string(),
            reason: "not a JSON object".into(),
        });
    }
    Ok(Some(result))
}

/// Builds the error of a failed plugin from its JSON error (`{"code", "msg", "details"}`),
/// falling back to its stderr and exit status.
fn plugin_error(plugin: &str, op: Op, output: &std::process::Output) -> CniError {
    let parsed: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    let field = |key: &str| -> Option<String> {
        parsed
            .as_ref()?
            .get(key)?
            .as_str()
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    let msg = field("msg").unwrap_or_else(|| {
        if stderr.is_empty() {
            format!("exited with {}", output.status)
        } else {
            stderr.clone()
        }
    });
    CniError::Plugin {
        plugin: plugin.to_string(),
        command: op.as_str(),
        code,
        msg,
        details: field("details").unwrap_or_default(),
    }
}
