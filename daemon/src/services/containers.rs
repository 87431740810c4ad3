//! berth.v1.Containers: container records, logs.

use std::collections::HashMap;

use berth_proto::v1::containers_server::Containers;
use berth_proto::v1::{
    Container, CreateContainerRequest, DeleteContainerRequest, Empty, GetContainerRequest,
    ListContainersRequest, ListContainersResponse, LogEntry, LogsRequest, UpdateContainerRequest,
};
use tonic::Request;

use super::{BoxStream, Reply};
use crate::daemon::{namespace, Daemon, Shared};
use crate::error::{ApiError, ApiResult};
use crate::events::now_ns;
use crate::{ids, logs, spec, tasks};

pub struct ContainersService(pub Shared);

#[tonic::async_trait]
impl Containers for ContainersService {
    async fn create(&self, req: Request<CreateContainerRequest>) -> Reply<Container> {
        let ns = namespace(&self.0, &req)?;
        let c = create(&self.0, &ns, req.into_inner()).await?;
        Ok(tonic::Response::new(c))
    }

    async fn get(&self, req: Request<GetContainerRequest>) -> Reply<Container> {
        let ns = namespace(&self.0, &req)?;
        let key = req.into_inner().id_or_name;
        ids::validate("container id", &key)?;
        Ok(tonic::Response::new(
            self.0
                .store
                .find_container(&ns, &key)
                .map_err(ApiError::from)?,
        ))
    }

    async fn list(&self, req: Request<ListContainersRequest>) -> Reply<ListContainersResponse> {
        let ns = namespace(&self.0, &req)?;
        let f = req.into_inner();
        let mut containers = self.0.store.containers(&ns).map_err(ApiError::from)?;
        containers.retain(|c| {
            c.id.starts_with(&f.id)
                && (f.name.is_empty() || c.name == f.name)
                && (f.image.is_empty() || c.image == f.image || c.image.starts_with(&f.image))
                && f.labels.iter().all(|l| label_matches(&c.labels, l))
        });
        containers.sort_by_key(|c| std::cmp::Reverse(c.created_at_ns));
        Ok(tonic::Response::new(ListContainersResponse { containers }))
    }

    async fn update(&self, req: Request<UpdateContainerRequest>) -> Reply<Container> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        ids::validate("container id", &r.id_or_name)?;
        let mut c = self
            .0
            .store
            .find_container(&ns, &r.id_or_name)
            .map_err(ApiError::from)?;
        c.labels = r.labels;
        self.0
            .store
            .put_container(&ns, &c)
            .map_err(ApiError::from)?;
        Ok(tonic::Response::new(c))
    }

    async fn delete(&self, req: Request<DeleteContainerRequest>) -> Reply<Empty> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        ids::validate("container id", &r.id_or_name)?;
        let c = self
            .0
            .store
            .find_container(&ns, &r.id_or_name)
            .map_err(ApiError::from)?;
        remove(&self.0, &ns, &c, r.force).await?;
        Ok(tonic::Response::new(Empty {}))
    }

    type LogsStream = BoxStream<LogEntry>;

    async fn logs(&self, req: Request<LogsRequest>) -> Reply<Self::LogsStream> {
        let ns = namespace(&self.0, &req)?;
        let r = req.into_inner();
        ids::validate("container id", &r.id_or_name)?;
        let c = self
            .0
            .store
            .find_container(&ns, &r.id_or_name)
            .map_err(ApiError::from)?;
        let stream = logs::stream(self.0.clone(), ns, c.id, r)?;
        Ok(tonic::Response::new(stream))
    }
}

fn label_matches(labels: &HashMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

pub async fn create(
    d: &std::sync::Arc<Daemon>,
    ns: &str,
    r: CreateContainerRequest,
) -> ApiResult<Container> {
    create_with(d, ns, r, |_| Ok(())).await
}

/// [`create`], with `patch` fitting the generated spec before it is stored (CRI settings the
/// run options do not carry).
// `..Default::default()` stays although every field is set today: fields keep being added.
#[allow(clippy::needless_update)]
pub async fn create_with(
    d: &std::sync::Arc<Daemon>,
    ns: &str,
    r: CreateContainerRequest,
    patch: impl FnOnce(&mut oci_spec::runtime::Spec) -> ApiResult<()>,
) -> ApiResult<Container> {
    let id = if r.id.is_empty() {
        ids::generate()
    } else {
        r.id.clone()
    };
    ids::validate("container id", &id)?;
    if !r.name.is_empty() {
        ids::validate("container name", &r.name)?;
    }
    let mut opts = r.options.unwrap_or_default();
    let (image, image_digest, image_cfg, chain_id) = if opts.rootfs.is_empty() {
        crate::images::resolve(d, ns, &r.image).await?
    } else {
        if !std::path::Path::new(&opts.rootfs).is_absolute() {
            return Err(ApiError::InvalidArgument(
                "--rootfs must be an absolute path".into(),
            ));
        }
        (
            String::new(),
            String::new(),
            spec::ImageConfig::default(),
            String::new(),
        )
    };
    if opts.user.is_empty() {
        opts.user = image_cfg.user.clone();
    }
    let mut spec = spec::generate(&spec::Inputs {
        id: &id,
        namespace: ns,
        image: &image_cfg,
        opts: &opts,
        cgroup_v2: d.cgroup_v2,
        cgroup_root: &d.cfg.cgroup_root,
    })?;
    patch(&mut spec)?;
    let snapshot_key = if chain_id.is_empty() {
        String::new()
    } else {
        crate::images::snapshot_key(ns, &id)
    };
    let c = Container {
        id: id.clone(),
        name: r.name,
        image,
        labels: r.labels,
        options: Some(opts),
        spec_json: serde_json::to_vec(&spec)
            .map_err(|e| ApiError::internal("encoding the spec", e))?,
        snapshot_key: snapshot_key.clone(),
        created_at_ns: now_ns(),
        image_digest,
        ..Default::default()
    };
    // Shared with garbage collection and doctor: a snapshot prepared here is never taken for
    // an orphan before its record exists.
    let _gc = d.images.gc_lock.read().await;
    if !snapshot_key.is_empty() {
        crate::images::prepare(d, &snapshot_key, &chain_id, c.options.as_ref())?;
    }
    if let Err(e) = d.store.create_container(ns, &c) {
        crate::images::release(d, ns, &c);
        return Err(e.into());
    }
    d.bus
        .publish(ns, "/containers/create", &id, &[("image", c.image.clone())]);
    Ok(c)
}

/// Removes a container: its task (killed when `force`), bundle, log and record.
pub async fn remove(d: &Daemon, ns: &str, c: &Container, force: bool) -> ApiResult<()> {
    tasks::remove_task(d, ns, c, force).await?;
    // A concurrent removal (an --rm auto-removal racing `rm`) may have finished first.
    if d.store.container(ns, &c.id)?.is_none() {
        return Ok(());
    }
    let _ = std::fs::remove_file(d.log_path(ns, &c.id));
    crate::images::release(d, ns, c);
    d.store.delete_container(ns, c)?;
    d.bus.publish(ns, "/containers/delete", &c.id, &[]);
    Ok(())
}
