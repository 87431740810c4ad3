//! berth.v1.Version.

use berth_proto::v1::version_server::Version;
use berth_proto::v1::{Empty, InfoResponse, VersionResponse};
use tonic::Request;

use super::Reply;
use crate::daemon::Shared;
use crate::error::ApiError;

pub struct VersionService(pub Shared);

#[tonic::async_trait]
impl Version for VersionService {
    async fn get(&self, _req: Request<Empty>) -> Reply<VersionResponse> {
        Ok(tonic::Response::new(VersionResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: option_env!("BERTH_REVISION").unwrap_or("dev").to_string(),
            shim_protocol: berth_proto::shim::v1::PROTOCOL_VERSION,
        }))
    }

    async fn info(&self, _req: Request<Empty>) -> Reply<InfoResponse> {
        let d = &self.0;
        let mut containers = 0;
        let mut images = 0;
        for ns in d.store.namespaces().map_err(ApiError::from)? {
            containers += d.store.containers(&ns.name).map_err(ApiError::from)?.len() as u32;
            images += d.store.images(&ns.name).map_err(ApiError::from)?.len() as u32;
        }
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(tonic::Response::new(InfoResponse {
            root: d.cfg.root.display().to_string(),
            state: d.cfg.state.display().to_string(),
            cgroup_version: if d.cgroup_v2 { "v2" } else { "v1" }.into(),
            containers,
            running: 0,
            images,
            kernel,
        }))
    }
}
