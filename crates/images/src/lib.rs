//! Berth's image library: a content store of blobs, OCI and `docker save` archives, registry
//! pulls, overlay snapshots with safe layer unpacking, commit/diff of containers' changes and
//! garbage collection. The daemon keeps image records (name → manifest digest) and passes what
//! they reference to the gc functions; this crate has no database and no RPC.

mod content;
mod digest;
mod error;
pub mod manifest;
mod reference;
mod unpack;

pub use content::{BlobInfo, BlobWriter, ContentStore, GcReport, Lease, MAX_JSON_SIZE};
pub use digest::Digest;
pub use error::ImageError;
pub use reference::{normalize, Reference, DEFAULT_REGISTRY};
mod snapshot;

pub use manifest::Platform;
pub use snapshot::{Change, ChangeKind, CommittedLayer, Mounts, Snapshotter, UnpackedImage};
mod archive;

pub use archive::{
    export_archive, import_archive, ImportedImage, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
};
mod commit_image;

pub use commit_image::{commit_image, ImageChanges};
pub use snapshot::image_chain_id;
mod registry;

pub use registry::{
    pull, BlobKind, Credentials, HostConfig, Progress, PullStatus, PulledImage, RegistryConfig,
};
