//! Images as the daemon sees them: records in the store, resolved to an image config and a
//! snapshot chain for a container.

use berth_proto::v1::Container;

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::spec::ImageConfig;

/// (normalised name, manifest digest, config) of an image record.
pub fn resolve(d: &Daemon, ns: &str, name: &str) -> ApiResult<(String, String, ImageConfig)> {
    if name.is_empty() {
        return Err(ApiError::InvalidArgument(
            "an image (or --rootfs) is required".into(),
        ));
    }
    match d.store.image(ns, name)? {
        Some(_) => Err(ApiError::FailedPrecondition(format!(
            "image {name:?} cannot be unpacked by this build"
        ))),
        None => Err(ApiError::NotFound(format!("image {name:?} not found"))),
    }
}

/// Releases what a container held of its image (its active snapshot).
pub fn release(_d: &Daemon, _ns: &str, _c: &Container) {}

/// Mounts the container's active snapshot at `target`.
pub fn mount_rootfs(
    _d: &Daemon,
    _ns: &str,
    c: &Container,
    _target: &std::path::Path,
) -> ApiResult<()> {
    Err(ApiError::FailedPrecondition(format!(
        "container {:?} needs an image rootfs, which this build cannot mount",
        c.id
    )))
}

/// Unmounts the container's rootfs from its bundle (if mounted).
pub fn unmount_rootfs(_d: &Daemon, _ns: &str, _c: &Container) {}
