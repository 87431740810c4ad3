//! berth.v1.Networks.

use berth_proto::v1::networks_server::Networks;
use berth_proto::v1::{Empty, ListNetworksResponse, NetworkSummary};
use tonic::Request;

use super::Reply;
use crate::daemon::Shared;
use crate::error::ApiError;

pub struct NetworksService(pub Shared);

#[tonic::async_trait]
impl Networks for NetworksService {
    async fn list(&self, _req: Request<Empty>) -> Reply<ListNetworksResponse> {
        let list = self
            .0
            .network
            .list_networks()
            .map_err(|e| ApiError::internal("listing networks", e))?;
        let networks = list
            .into_iter()
            .map(|n| NetworkSummary {
                name: n.name,
                cni_version: n.cni_version,
                plugins: n.plugins,
                bridge: n.bridge.unwrap_or_default(),
                subnets: n.subnets,
                file: n.file.map(|f| f.display().to_string()).unwrap_or_default(),
            })
            .collect();
        Ok(tonic::Response::new(ListNetworksResponse { networks }))
    }
}
