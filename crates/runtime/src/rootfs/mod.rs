//! The container's root filesystem: mount propagation, the spec's mounts (resolved safely inside
//! the rootfs), default devices, pivot_root, masked and read-only paths, and overlay mounts.
//!
//! `prepare`, `pivot` and `finalize` run in the container's init after it unshared its mount
//! namespace, single-threaded and before exec: they only make system calls, never log.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

mod cgroup_mount;
mod devices;
mod masked;
mod mount_options;
pub mod overlay;
mod pivot;
mod propagation;
mod safe_path;
mod spec_mounts;

/// What went wrong while setting up the container's root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    /// The spec (or an argument) asks for something invalid or unsupported.
    #[error("{0}")]
    Invalid(String),
}

impl RootfsError {
    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        RootfsError::Sys {
            context: context.into(),
            source,
        }
    }

    /// The errno of a failed system call, if this is one.
    pub(crate) fn errno(&self) -> Option<nix::Error> {
        match self {
            RootfsError::Sys { source, .. } => Some(*source),
            RootfsError::Invalid(_) => None,
        }
    }
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
pub(crate) fn prepare(spec: &Spec, opts: &RootfsOptions) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    let root_propagation = linux.and_then(|l| l.rootfs_propagation().as_deref());
    propagation::prepare_root(&opts.rootfs, root_propagation)?;

    let root = safe_path::Root::open(&opts.rootfs)?;
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let new_cgroup_ns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|namespaces| {
            namespaces
                .iter()
                .any(|ns| ns.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup)
        });
    let ctx = spec_mounts::Context {
        root: &root,
        bundle: &opts.bundle,
        in_user_ns: opts.in_user_ns,
        new_cgroup_ns,
    };
    for m in mounts {
        spec_mounts::mount(&ctx, m)?;
    }

    let spec_devices = linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    if devices::dev_is_fresh(mounts) {
        devices::create_defaults(&root, spec_devices, opts.in_user_ns)?;
        devices::create_symlinks(&root)?;
    }
    devices::create_spec_devices(&root, spec_devices, opts.in_user_ns)?;
    Ok(())
}

/// Makes `rootfs` the process's root: pivot_root, or MS_MOVE + chroot when `no_pivot` (initramfs).
pub(crate) fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    pivot::pivot(rootfs, no_pivot).map(drop)
}

/// After pivot_root: rootfs propagation, masked paths, read-only paths, read-only root.
pub(crate) fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    let root = safe_path::Root::open(Path::new("/"))?;
    let readonly = linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default();
    for path in readonly {
        masked::make_readonly(&root, path)?;
    }
    let masked = linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default();
    for path in masked {
        masked::mask(&root, path)?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        masked::readonly_root()?;
    }
    let root_propagation = linux.and_then(|l| l.rootfs_propagation().as_deref());
    propagation::finalize_root(root_propagation)?;
    Ok(())
}

#[cfg(test)]
mod tests;
