//! gRPC clients over unix sockets (the shim's, and berthd's for tests and tools).

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::v1::shim_client::ShimClient;

/// Connects to the shim at `address` (`unix:///path` or a plain path).
pub async fn connect(address: &str) -> Result<ShimClient<Channel>, tonic::transport::Error> {
    Ok(ShimClient::new(unix_channel(address).await?))
}

/// A gRPC channel over the unix socket at `address` (`unix:///path` or a plain path).
pub async fn unix_channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    let path = address
        .strip_prefix("unix://")
        .unwrap_or(address)
        .to_string();
    // The URI is required by the API but unused: the connector dials the socket.
    Endpoint::from_static("http://berth")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}
