//! The streaming server's settings.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Where the streaming server listens and how long its URLs stay valid.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind; port 0 picks a free one. Default `127.0.0.1:0` (loopback only).
    pub address: SocketAddr,
    /// How long a URL's one-shot token stays valid. Default 60 s.
    pub token_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token_ttl: Duration::from_secs(60),
        }
    }
}
