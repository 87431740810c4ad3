//! berth.v1.Namespaces.

use berth_proto::v1::namespaces_server::Namespaces;
use berth_proto::v1::{DeleteNamespaceRequest, Empty, ListNamespacesResponse, Namespace};
use tonic::Request;

use super::Reply;
use crate::daemon::Shared;
use crate::error::ApiError;
use crate::ids;

pub struct NamespacesService(pub Shared);

#[tonic::async_trait]
impl Namespaces for NamespacesService {
    async fn list(&self, _req: Request<Empty>) -> Reply<ListNamespacesResponse> {
        let namespaces = self.0.store.namespaces().map_err(ApiError::from)?;
        Ok(tonic::Response::new(ListNamespacesResponse { namespaces }))
    }

    async fn create(&self, req: Request<Namespace>) -> Reply<Namespace> {
        let ns = req.into_inner();
        ids::validate("namespace", &ns.name)?;
        if self
            .0
            .store
            .namespace(&ns.name)
            .map_err(ApiError::from)?
            .is_some()
        {
            return Err(
                ApiError::AlreadyExists(format!("namespace {:?} already exists", ns.name)).into(),
            );
        }
        self.0.store.put_namespace(&ns).map_err(ApiError::from)?;
        Ok(tonic::Response::new(ns))
    }

    async fn delete(&self, req: Request<DeleteNamespaceRequest>) -> Reply<Empty> {
        let name = req.into_inner().name;
        ids::validate("namespace", &name)?;
        self.0
            .store
            .delete_namespace(&name)
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(Empty {}))
    }

    async fn set_labels(&self, req: Request<Namespace>) -> Reply<Namespace> {
        let ns = req.into_inner();
        ids::validate("namespace", &ns.name)?;
        if self
            .0
            .store
            .namespace(&ns.name)
            .map_err(ApiError::from)?
            .is_none()
        {
            return Err(
                ApiError::NotFound(format!("namespace {:?} does not exist", ns.name)).into(),
            );
        }
        self.0.store.put_namespace(&ns).map_err(ApiError::from)?;
        Ok(tonic::Response::new(ns))
    }
}
