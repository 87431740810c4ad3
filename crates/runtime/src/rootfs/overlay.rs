//! STUB: overlay mounts (owned by the rootfs work stream).

use std::path::{Path, PathBuf};

use super::RootfsError;

/// Mounts an overlay of `lowers` (top-most first) with `upper` and `work` at `target`.
/// Works with 128 lowers (the option string is limited to one page).
pub fn mount(
    _lowers: &[PathBuf],
    _upper: &Path,
    _work: &Path,
    _target: &Path,
) -> Result<(), RootfsError> {
    Err(RootfsError::Invalid("overlay not implemented".into()))
}

/// Unmounts an overlay (lazily if busy).
pub fn unmount(_target: &Path) -> Result<(), RootfsError> {
    Ok(())
}
