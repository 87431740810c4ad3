//! The OOM killer's preference for a container process (`process.oomScoreAdj`).

use std::io::ErrorKind;

use super::ProcessError;

/// Writes our oom_score_adj. Lowering it can be refused (EACCES without CAP_SYS_RESOURCE, or
/// on restricted hosts even as root): then the current value is kept and the returned warning
/// says so.
pub(crate) fn set_score_adj(value: i32) -> Result<Option<String>, ProcessError> {
    match std::fs::write("/proc/self/oom_score_adj", value.to_string()) {
        Ok(()) => Ok(None),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            let current = std::fs::read_to_string("/proc/self/oom_score_adj")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            Ok(Some(format!(
                "setting oom_score_adj to {value} was refused ({e}); keeping {current}"
            )))
        }
        Err(e) => Err(ProcessError::Io {
            context: format!("setting oom_score_adj to {value}"),
            source: e,
        }),
    }
}
