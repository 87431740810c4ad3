//! berth.v1.Maintenance: Doctor (orphans, see `orphans`).

use berth_proto::v1::maintenance_server::Maintenance;
use berth_proto::v1::{DoctorRequest, DoctorResponse};
use tonic::Request;

use super::Reply;
use crate::daemon::Shared;

pub struct MaintenanceService(pub Shared);

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn doctor(&self, req: Request<DoctorRequest>) -> Reply<DoctorResponse> {
        let dry_run = req.into_inner().dry_run;
        let orphans = crate::orphans::run(&self.0, dry_run).await;
        Ok(tonic::Response::new(DoctorResponse { orphans }))
    }
}
