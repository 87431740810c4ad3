//! The one error type of the image library.

/// What went wrong while storing, importing, pulling or unpacking an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An I/O operation on a path failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    /// A reference (image name) could not be parsed.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// Content did not match its expected digest or size.
    #[error("content mismatch for {expected}: {detail}")]
    Mismatch { expected: String, detail: String },
    /// A blob is not in the content store.
    #[error("blob {0} not found")]
    NotFound(String),
    /// A JSON document or archive is malformed, too large or refers to something missing.
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    /// An archive or layer tar entry would escape its destination or is not allowed.
    #[error("rejected entry {path:?}: {reason}")]
    UnsafeEntry { path: String, reason: String },
    /// A snapshot does not exist or is in the wrong state.
    #[error("snapshot {0}")]
    Snapshot(String),
    /// The registry answered 404: no such repository, tag or blob.
    #[error("registry {host}: {reason}")]
    RegistryNotFound { host: String, reason: String },
    /// The registry could not be reached or answered with an error.
    #[error("registry {host}: {reason}")]
    Registry { host: String, reason: String },
    /// The runtime's overlay mount failed.
    #[error("overlay: {0}")]
    Mount(#[from] berth_runtime::rootfs::RootfsError),
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io_path(what: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::io(format!("{what} {}", path.display()), source)
    }

    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        ImageError::Sys {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsafe_entry(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::UnsafeEntry {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn registry(host: impl Into<String>, reason: impl Into<String>) -> Self {
        ImageError::Registry {
            host: host.into(),
            reason: reason.into(),
        }
    }
}
