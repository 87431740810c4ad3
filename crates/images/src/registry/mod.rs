//! Pulling from registries (OCI distribution protocol).

mod client;
mod config;
mod pull;
mod push;

pub use config::{Credentials, HostConfig, RegistryConfig};
pub use pull::{pull, BlobKind, Progress, PullStatus, PulledImage};
pub use push::push;
