//! A Kubernetes CRI v1 client (the `k8s-cri` protobufs, tonic over a unix socket), for tests
//! and the CRI benchmark: berthd and containerd serve the same two services.

use std::path::Path;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// Both CRI services on one connection.
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// Connects to the CRI services on `socket`, or says why not.
pub async fn try_connect(socket: &Path) -> Result<Cri, tonic::transport::Error> {
    let path = socket.to_path_buf();
    let channel = Endpoint::from_static("http://cri")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await?;
    // Image lists and container logs may be large.
    let max = 64 << 20;
    Ok(Cri {
        runtime: RuntimeServiceClient::new(channel.clone()).max_decoding_message_size(max),
        images: ImageServiceClient::new(channel).max_decoding_message_size(max),
    })
}

/// Connects to the CRI services on `socket` (panics if it cannot: a test helper).
pub async fn connect(socket: &Path) -> Cri {
    try_connect(socket)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()))
}
