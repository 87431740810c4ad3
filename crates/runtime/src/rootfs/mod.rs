//! STUB: the container's root filesystem (owned by the rootfs work stream).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

pub mod overlay;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What `prepare` needs besides the spec.
#[derive(Debug, Clone)]
pub(crate) struct RootfsOptions {
    /// Absolute path of the rootfs on the host.
    pub rootfs: PathBuf,
    /// The bundle dir: relative bind-mount sources are relative to it.
    pub bundle: PathBuf,
    /// A new user namespace: devices are bind-mounted from the host, not created with mknod.
    pub in_user_ns: bool,
}

/// In the container's new mount namespace, before pivot_root: propagation, the rootfs bind, every
/// spec mount, default devices and /dev symlinks.
pub(crate) fn prepare(_spec: &Spec, _opts: &RootfsOptions) -> Result<(), RootfsError> {
    Ok(())
}

/// Makes `rootfs` the process's root: pivot_root, or MS_MOVE + chroot when `no_pivot` (initramfs).
pub(crate) fn pivot(_rootfs: &Path, _no_pivot: bool) -> Result<(), RootfsError> {
    Ok(())
}

/// After pivot_root: rootfs propagation, masked paths, read-only paths, read-only root.
pub(crate) fn finalize(_spec: &Spec) -> Result<(), RootfsError> {
    Ok(())
}
