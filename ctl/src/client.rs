//! The connection to berthd: one channel over the unix socket, every call tagged with the
//! namespace header.

use berth_proto::v1::{
    containers_client::ContainersClient, events_client::EventsClient, images_client::ImagesClient,
    maintenance_client::MaintenanceClient, namespaces_client::NamespacesClient,
    networks_client::NetworksClient, tasks_client::TasksClient, version_client::VersionClient,
    NAMESPACE_HEADER,
};
use hyper_util::rt::TokioIo;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Status};

#[derive(Clone)]
pub struct Namespace(AsciiMetadataValue);

impl tonic::service::Interceptor for Namespace {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert(NAMESPACE_HEADER, self.0.clone());
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Namespace>;

#[derive(Clone)]
pub struct Clients {
    pub containers: ContainersClient<Svc>,
    pub tasks: TasksClient<Svc>,
    pub events: EventsClient<Svc>,
    pub namespaces: NamespacesClient<Svc>,
    pub version: VersionClient<Svc>,
    pub networks: NetworksClient<Svc>,
    pub images: ImagesClient<Svc>,
    pub maintenance: MaintenanceClient<Svc>,
}

pub async fn connect(address: &str, namespace: &str) -> anyhow::Result<Clients> {
    let path = address
        .strip_prefix("unix://")
        .unwrap_or(address)
        .to_string();
    let channel = Endpoint::from_static("http://berthd")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot connect to berthd at {address}: {e} (is it running?)")
        })?;
    let ns = Namespace(
        namespace
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid namespace {namespace:?}"))?,
    );
    Ok(Clients {
        containers: ContainersClient::with_interceptor(channel.clone(), ns.clone()),
        tasks: TasksClient::with_interceptor(channel.clone(), ns.clone()),
        events: EventsClient::with_interceptor(channel.clone(), ns.clone()),
        namespaces: NamespacesClient::with_interceptor(channel.clone(), ns.clone()),
        version: VersionClient::with_interceptor(channel.clone(), ns.clone()),
        networks: NetworksClient::with_interceptor(channel.clone(), ns.clone()),
        images: ImagesClient::with_interceptor(channel.clone(), ns.clone()),
        maintenance: MaintenanceClient::with_interceptor(channel, ns),
    })
}
