//! Where kubelet may have container logs written. The shim opens the log file as host root, so
//! the pod's `log_directory` and the container's `log_path` are checked before anything is
//! created: the directory absolute and inside one of the configured log roots (`[cri]
//! log_roots`, default kubelet's `/var/log/pods`; symlinks resolved), the file a plain relative
//! path below it. Anything else is InvalidArgument.

use std::path::{Component, Path, PathBuf};

use crate::error::{ApiError, ApiResult};

/// The pod's log directory, checked (empty: the pod's containers log nowhere).
pub fn check_directory(roots: &[PathBuf], dir: &str) -> ApiResult<()> {
    if dir.is_empty() {
        return Ok(());
    }
    let path = Path::new(dir);
    if !path.is_absolute() || !plain(path) {
        return Err(ApiError::InvalidArgument(format!(
            "log directory {dir:?} must be an absolute path without `.` or `..`"
        )));
    }
    if roots.is_empty() {
        return Ok(());
    }
    let resolved = resolve_existing(path);
    let inside = roots.iter().any(|root| {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        resolved.starts_with(&root)
    });
    if !inside {
        return Err(ApiError::InvalidArgument(format!(
            "log directory {dir:?} is outside the allowed log roots {roots:?}"
        )));
    }
    Ok(())
}

/// The container's log file: `log_path` below the pod's log directory (None: no log file).
pub fn join(roots: &[PathBuf], dir: &str, log_path: &str) -> ApiResult<Option<PathBuf>> {
    if log_path.is_empty() {
        return Ok(None);
    }
    if dir.is_empty() {
        return Err(ApiError::InvalidArgument(format!(
            "log path {log_path:?} given but the pod has no log directory"
        )));
    }
    let rel = Path::new(log_path);
    if rel.is_absolute() || !plain(rel) {
        return Err(ApiError::InvalidArgument(format!(
            "log path {log_path:?} must be relative to the pod's log directory, without `.` or `..`"
        )));
    }
    check_directory(roots, dir)?;
    let full = Path::new(dir).join(rel);
    // A symlink planted below the log directory must not lead the file out of it.
    check_directory(roots, &resolve_existing(&full).to_string_lossy())?;
    Ok(Some(full))
}

/// Only root and normal components (no `.`, `..`), and no NUL.
fn plain(p: &Path) -> bool {
    !p.as_os_str().as_encoded_bytes().contains(&0)
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

/// The path with its longest existing prefix canonicalised (symlinks resolved).
fn resolve_existing(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = path.to_path_buf();
    loop {
        if let Ok(real) = std::fs::canonicalize(&cur) {
            return rest.iter().rev().fold(real, |acc: PathBuf, c| acc.join(c));
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                cur = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_dotted_paths_are_refused() {
        let roots = vec![PathBuf::from("/var/log/pods")];
        assert!(check_directory(&roots, "var/log/pods/x").is_err());
        assert!(check_directory(&roots, "/var/log/pods/../../etc").is_err());
        assert!(check_directory(&roots, "/etc").is_err());
        assert!(check_directory(&roots, "/var/log/pods/ns_pod_uid").is_ok());
        assert!(check_directory(&[], "/anywhere/absolute").is_ok());
        assert!(join(&roots, "/var/log/pods/p", "../../../etc/passwd").is_err());
        assert!(join(&roots, "/var/log/pods/p", "/etc/passwd").is_err());
        assert!(join(&roots, "", "c.log").is_err());
        assert_eq!(join(&roots, "/var/log/pods/p", "").unwrap(), None);
        assert_eq!(
            join(&roots, "/var/log/pods/p", "c/0.log").unwrap(),
            Some(PathBuf::from("/var/log/pods/p/c/0.log"))
        );
    }

    #[test]
    fn a_symlink_out_of_the_root_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pods");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("evil")).unwrap();
        let roots = vec![root.clone()];
        let evil = root.join("evil").join("sub");
        assert!(check_directory(&roots, &evil.to_string_lossy()).is_err());
        let pod = root.join("pod");
        std::fs::create_dir(&pod).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", pod.join("c.log")).unwrap();
        assert!(join(&roots, &pod.to_string_lossy(), "c.log").is_err());
        assert!(join(&roots, &pod.to_string_lossy(), "d.log").is_ok());
    }
}
