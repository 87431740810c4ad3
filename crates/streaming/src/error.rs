//! Errors of the streaming server.

use std::net::SocketAddr;

/// Why the streaming server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the streaming server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reading the streaming server's address: {0}")]
    LocalAddr(std::io::Error),
    #[error("gathering randomness for stream tokens: {0}")]
    Random(String),
}
