//! The daemon's shared state, handed to every service.

use std::path::PathBuf;
use std::sync::Arc;

use berth_proto::v1::{DEFAULT_NAMESPACE, NAMESPACE_HEADER};
use tonic::Request;

use crate::bundle::Bundles;
use crate::config::Config;
use crate::error::ApiError;
use crate::events::Bus;
use crate::shims::Shims;
use crate::store::Store;

pub struct Daemon {
    pub cfg: Config,
    pub store: Store,
    pub bus: Bus,
    pub shims: Shims,
    pub bundles: Bundles,
    pub cgroup_v2: bool,
}

pub type Shared = Arc<Daemon>;

impl Daemon {
    pub fn new(cfg: Config, store: Store) -> Daemon {
        let cgroup_v2 = matches!(
            berth_runtime::cgroups::host_version(),
            Ok(berth_runtime::cgroups::Version::V2)
        );
        Daemon {
            shims: Shims::new(cfg.shim_binary(), cfg.sockets_dir()),
            bundles: Bundles::new(cfg.tasks_dir()),
            cfg,
            store,
            bus: Bus::new(),
            cgroup_v2,
        }
    }

    /// Where a container's log file lives (kept until the container is removed).
    pub fn log_path(&self, ns: &str, id: &str) -> PathBuf {
        self.cfg
            .root
            .join("logs")
            .join(ns)
            .join(format!("{id}.log"))
    }
}

/// The namespace a request names in its `berth-namespace` header; it must exist.
pub fn namespace<T>(d: &Daemon, req: &Request<T>) -> Result<String, ApiError> {
    let ns = req
        .metadata()
        .get(NAMESPACE_HEADER)
        .map(|v| v.to_str().map(str::to_string))
        .transpose()
        .map_err(|_| ApiError::InvalidArgument("the namespace header is not text".into()))?
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    crate::ids::validate("namespace", &ns)?;
    if d.store.namespace(&ns)?.is_none() {
        if ns == "k8s.io" {
            d.store.ensure_namespace(&ns)?;
        } else {
            return Err(ApiError::NotFound(format!(
                "namespace {ns:?} does not exist"
            )));
        }
    }
    Ok(ns)
}
