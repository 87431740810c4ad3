//! Helpers of the CRI ImageService: credentials from a PullImageRequest, the `[cri.registry]`
//! mirrors of the daemon's config, and the catalog that turns image records into CRI images.

pub mod auth;
pub mod catalog;
pub mod fs_info;
pub mod mirrors;
