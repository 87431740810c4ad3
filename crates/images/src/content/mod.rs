//! Content-addressed blob storage.

mod store;

pub use store::{BlobInfo, BlobWriter, ContentStore, GcReport, Lease, MAX_JSON_SIZE};
