//! Berth's image library: a content store of blobs, OCI and `docker save` archives, registry
//! pulls and pushes, overlay snapshots with safe layer unpacking, commit/diff of containers'
//! changes and garbage collection. The daemon keeps image records (name → manifest digest)
//! and passes what they reference to the gc functions; this crate has no database and no RPC.
//!
//! Concurrency: every operation may run in parallel with the others except gc. A blob that is
//! in no record yet (a pull or import that has returned, before the daemon stored its record)
//! is only protected from [`ContentStore::gc`] by a [`Lease`]; the daemon should hold one (or
//! serialize gc with pulls and imports) until the record is written. [`Snapshotter::gc`]
//! waits for running unpacks. Archive and snapshot functions block (run them with
//! `spawn_blocking`); [`pull`] and [`push`] are async.
//!
//! Layers may be plain tar, gzip or zstd. Typical flow: [`pull`] or [`import_archive`] →
//! record (name → manifest digest) → [`Snapshotter::unpack`] → [`Snapshotter::prepare`] a
//! container key on the image's chain ID → [`Snapshotter::mount`] (or hand [`Mounts`] to the
//! runtime) → [`Snapshotter::diff`] / [`Snapshotter::commit`] + [`commit_image`] →
//! [`Snapshotter::remove`].

mod archive;
mod commit_image;
mod content;
mod digest;
mod error;
pub mod manifest;
mod reference;
mod registry;
mod snapshot;
mod unpack;

pub use archive::{
    export_archive, import_archive, ImportedImage, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
};
pub use commit_image::{commit_image, ImageChanges};
pub use content::{BlobInfo, BlobWriter, ContentStore, GcReport, Lease, MAX_JSON_SIZE};
pub use digest::Digest;
pub use error::ImageError;
pub use manifest::{image_size, Platform};
pub use reference::{normalize, Reference, DEFAULT_REGISTRY};
pub use registry::{
    pull, push, BlobKind, Credentials, HostConfig, Progress, PullStatus, PulledImage,
    RegistryConfig,
};
pub use snapshot::{
    image_chain_id, Change, ChangeKind, CommittedLayer, Durability, Mounts, Snapshotter,
    UnpackedImage, Usage,
};
