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

/// One async lock per container, so that concurrent creates and removals of the same task
/// (a client's `rm` racing an `--rm` auto-removal) run one after the other.
#[derive(Default)]
pub struct TaskLocks(
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
);

impl TaskLocks {
    pub async fn lock(&self, ns: &str, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            // Forget locks nobody holds, so the map does not grow with every container ever.
            map.retain(|_, l| Arc::strong_count(l) > 1);
            map.entry(format!("{ns}/{id}")).or_default().clone()
        };
        m.lock_owned().await
    }
}

pub struct Daemon {
    pub cfg: Config,
    pub store: Store,
    pub bus: Bus,
    pub shims: Shims,
    pub bundles: Bundles,
    pub cgroup_v2: bool,
    pub task_locks: TaskLocks,
    pub network: berth_network::Network,
    pub images: crate::images::Images,
}

pub type Shared = Arc<Daemon>;

impl Daemon {
    pub fn new(cfg: Config, store: Store) -> anyhow::Result<Daemon> {
        let cgroup_v2 = matches!(
            berth_runtime::cgroups::host_version(),
            Ok(berth_runtime::cgroups::Version::V2)
        );
        let network = crate::network::new(&cfg)?;
        let images = crate::images::Images::open(&cfg.root, &cfg.registry_dir)?;
        Ok(Daemon {
            network,
            images,
            shims: Shims::new(cfg.shim_binary(), cfg.sockets_dir()),
            bundles: Bundles::new(cfg.tasks_dir()),
            cfg,
            store,
            bus: Bus::new(),
            cgroup_v2,
            task_locks: TaskLocks::default(),
        })
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
