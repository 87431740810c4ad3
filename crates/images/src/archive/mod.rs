//! Image archives: import of OCI layouts and `docker save` tars, export as OCI layout.

mod docker;
mod export;
mod import;

pub use export::export_archive;
pub use import::{import_archive, ImportedImage, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
