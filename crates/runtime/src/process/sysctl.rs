//! Kernel parameters of the container's namespaces (`linux.sysctl`), written through the
//! container's own /proc/sys.

use std::collections::HashMap;

use super::ProcessError;

/// Checks keys in the parent: no path tricks, only namespaced prefixes make sense but the kernel
/// is the judge of those.
pub(crate) fn validate(sysctls: &HashMap<String, String>) -> Result<(), ProcessError> {
    for key in sysctls.keys() {
        let bad = key.is_empty()
            || key.contains("..")
            || key.starts_with(['.', '/'])
            || key.contains('\0');
        if bad {
            return Err(ProcessError::Invalid(format!("invalid sysctl key {key:?}")));
        }
    }
    Ok(())
}

/// Writes each sysctl under /proc/sys (after pivot_root, so it is the container's /proc).
pub(crate) fn apply(sysctls: &HashMap<String, String>) -> Result<(), ProcessError> {
    for (key, value) in sysctls {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value.as_bytes()).map_err(|e| ProcessError::Io {
            context: format!("setting sysctl {key}={value}"),
            source: e,
        })?;
    }
    Ok(())
}
