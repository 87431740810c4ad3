//! Task bundles under the state dir: `tasks/<ns>/<id>/{config.json,rootfs,bootstrap.json,exit,
//! shim.log}`. A bundle being deleted is first renamed to a hidden name, so a half-done delete
//! is never mistaken for a live task.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::ApiError;

pub struct Bundles {
    dir: PathBuf,
}

impl Bundles {
    pub fn new(dir: PathBuf) -> Bundles {
        Bundles { dir }
    }

    pub fn path(&self, ns: &str, id: &str) -> PathBuf {
        self.dir.join(ns).join(id)
    }

    /// Creates the bundle directory with its config.json. Fails if one exists.
    pub fn create(&self, ns: &str, id: &str, spec: &Spec) -> Result<PathBuf, ApiError> {
        let path = self.path(ns, id);
        std::fs::create_dir_all(path.parent().unwrap_or(&self.dir))
            .map_err(|e| ApiError::internal("creating the bundles dir", e))?;
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(ApiError::AlreadyExists(format!(
                    "container {id:?} already has a task"
                )))
            }
            Err(e) => return Err(ApiError::internal("creating the bundle", e)),
        }
        std::fs::create_dir(path.join("rootfs"))
            .map_err(|e| ApiError::internal("creating rootfs dir", e))?;
        write_spec(&path, spec)?;
        Ok(path)
    }

    /// Removes a bundle: rename to a hidden name, unmount the rootfs, delete.
    pub fn remove(&self, ns: &str, id: &str) -> Result<(), ApiError> {
        let path = self.path(ns, id);
        if !path.exists() {
            return Ok(());
        }
        // Unique: the files of an earlier task of the same container may still be going.
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let hidden = self.dir.join(ns).join(format!(".{id}.{stamp}.deleting"));
        std::fs::rename(&path, &hidden)
            .map_err(|e| ApiError::internal("renaming the bundle", e))?;
        // Unmounted now; the files go off the caller's path (a crash before they are gone
        // leaves the hidden name, which `sweep` finishes at the next start).
        let _ = nix::mount::umount2(&hidden.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || {
                    if let Err(e) = remove_hidden(&hidden) {
                        tracing::warn!("removing {}: {e}", hidden.display());
                    }
                });
                Ok(())
            }
            Err(_) => remove_hidden(&hidden),
        }
    }

    /// Finishes deletes a crash interrupted.
    pub fn sweep(&self) {
        let Ok(nss) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for ns in nss.flatten() {
            let Ok(entries) = std::fs::read_dir(ns.path()) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".deleting") {
                    if let Err(err) = remove_hidden(&e.path()) {
                        tracing::warn!("cleaning {}: {err}", e.path().display());
                    }
                }
            }
        }
    }
}

/// Removes a bundle already renamed to its hidden name: unmount the rootfs, delete.
pub fn remove_hidden(path: &Path) -> Result<(), ApiError> {
    let rootfs = path.join("rootfs");
    // The rootfs may be an overlay mount; detach it (not mounted is fine).
    let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
    std::fs::remove_dir_all(path).map_err(|e| ApiError::internal("removing the bundle", e))
}

pub fn write_spec(bundle: &Path, spec: &Spec) -> Result<(), ApiError> {
    let data = serde_json::to_vec(spec).map_err(|e| ApiError::internal("encoding the spec", e))?;
    let tmp = bundle.join(".config.json.tmp");
    std::fs::write(&tmp, data).map_err(|e| ApiError::internal("writing config.json", e))?;
    std::fs::rename(&tmp, bundle.join("config.json"))
        .map_err(|e| ApiError::internal("writing config.json", e))
}
