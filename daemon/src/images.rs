//! Images as the daemon sees them: records in the store (per namespace) over the shared
//! content store and snapshotter (crates/images), resolved to an image config and a snapshot
//! for a container, and garbage collection of what no record or container references.

use std::path::Path;
use std::sync::Arc;

use berth_images::{
    normalize, pull, ContentStore, Digest, Durability, ImageError, Progress, PulledImage,
    Reference, RegistryConfig, Snapshotter,
};
use berth_proto::v1::{Container, Image, RunOptions};

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::events::now_ns;
use crate::spec::ImageConfig;

/// The image side of the daemon.
pub struct Images {
    pub content: ContentStore,
    pub snapshots: Snapshotter,
    pub registry: RegistryConfig,
    /// Pulls, imports and commits hold it shared, garbage collection exclusively, so a blob
    /// that has no record yet is never collected.
    pub gc_lock: tokio::sync::RwLock<()>,
}

impl Images {
    pub fn open(root: &Path, registry_dir: &Path) -> anyhow::Result<Images> {
        let registry = if registry_dir.is_dir() {
            RegistryConfig::load(registry_dir)
                .map_err(|e| anyhow::anyhow!("registry config: {e}"))?
        } else {
            RegistryConfig::default()
        };
        Ok(Images {
            content: ContentStore::open(&root.join("content"))
                .map_err(|e| anyhow::anyhow!("content store: {e}"))?,
            snapshots: Snapshotter::open(&root.join("snapshots"))
                .map_err(|e| anyhow::anyhow!("snapshotter: {e}"))?,
            registry,
            gc_lock: tokio::sync::RwLock::new(()),
        })
    }
}

pub fn image_error(e: ImageError) -> ApiError {
    let msg = e.to_string();
    match e {
        ImageError::NotFound(_) => ApiError::NotFound(msg),
        ImageError::Invalid { .. }
        | ImageError::InvalidReference { .. }
        | ImageError::InvalidDigest(_)
        | ImageError::Mismatch { .. }
        | ImageError::UnsafeEntry { .. } => ApiError::InvalidArgument(msg),
        ImageError::RegistryNotFound { .. } => ApiError::NotFound(msg),
        ImageError::Registry { .. } => ApiError::Unavailable(msg),
        _ => ApiError::Internal(msg),
    }
}

/// Writes a record for an image now in the content store.
pub fn record(d: &Daemon, ns: &str, name: &str, digest: &Digest) -> ApiResult<Image> {
    let size =
        berth_images::image_size(&d.images.content, digest, &Default::default()).unwrap_or(0);
    let img = Image {
        name: name.to_string(),
        digest: digest.to_string(),
        size,
        created_at_ns: now_ns(),
        labels: Default::default(),
    };
    d.store.put_image(ns, &img)?;
    Ok(img)
}

/// Unpacks an image into snapshots (what a container needs), like docker and containerd do at
/// pull time.
pub async fn unpack(d: &Arc<Daemon>, manifest: &Digest) -> ApiResult<()> {
    let (d, m) = (d.clone(), manifest.clone());
    tokio::task::spawn_blocking(move || {
        d.images
            .snapshots
            .unpack(&d.images.content, &m)
            .map(|_| ())
            .map_err(image_error)
    })
    .await
    .map_err(|e| ApiError::internal("unpack", e))?
}

/// The one pull path (berth.v1 Images.Pull and CRI PullImage): pulls `reference` with
/// `registry` (mirrors, auth, platform), unpacks it, records it in `ns` and publishes
/// `/images/pull`. Garbage collection waits meanwhile.
pub async fn pull_image(
    d: &Arc<Daemon>,
    ns: &str,
    reference: &Reference,
    registry: &RegistryConfig,
    progress: impl FnMut(Progress) + Send,
) -> ApiResult<(Image, PulledImage)> {
    let _gc = d.images.gc_lock.read().await;
    let pulled = pull(&d.images.content, reference, registry, progress)
        .await
        .map_err(image_error)?;
    unpack(d, &pulled.manifest).await?;
    let img = record(d, ns, &pulled.name, &pulled.manifest)?;
    d.bus.publish(
        ns,
        "/images/pull",
        &img.name,
        &[("digest", img.digest.clone())],
    );
    Ok((img, pulled))
}

/// The record name of an image reference (`busybox` → `docker.io/library/busybox:latest`).
pub fn full_name(name: &str) -> ApiResult<String> {
    normalize(name)
        .map(|r| r.to_string())
        .map_err(|e| ApiError::InvalidArgument(format!("image {name:?}: {e}")))
}

/// The record of `name` (as given, or normalised), else of the image it identifies: an image
/// ID (config digest, what kubelet passes to CreateContainer), a manifest digest or a digest
/// reference (`busybox@sha256:...`); see `cri/image/catalog.rs`.
pub fn find(d: &Daemon, ns: &str, name: &str) -> ApiResult<Image> {
    if let Some(img) = d.store.image(ns, name)? {
        return Ok(img);
    }
    if let Ok(full) = full_name(name) {
        if let Some(img) = d.store.image(ns, &full)? {
            return Ok(img);
        }
    }
    crate::cri::image::catalog::find(d, ns, name)?
        .and_then(|i| i.records.into_iter().next())
        .ok_or_else(|| ApiError::NotFound(format!("image {name:?} not found")))
}

/// What a container needs of its image: the record name, manifest digest, config, and the
/// chain ID its snapshot is prepared on. Unpacks the image on first use.
pub async fn resolve(
    d: &Arc<Daemon>,
    ns: &str,
    name: &str,
) -> ApiResult<(String, String, ImageConfig, String)> {
    if name.is_empty() {
        return Err(ApiError::InvalidArgument(
            "an image (or --rootfs) is required".into(),
        ));
    }
    let img = find(d, ns, name)?;
    let digest = Digest::parse(&img.digest).map_err(image_error)?;
    let d2 = d.clone();
    let unpacked = tokio::task::spawn_blocking(move || {
        d2.images.snapshots.unpack(&d2.images.content, &digest)
    })
    .await
    .map_err(|e| ApiError::internal("unpack", e))?
    .map_err(image_error)?;
    let cfg = unpacked.config.config().clone().unwrap_or_default();
    let image_cfg = ImageConfig {
        entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
        cmd: cfg.cmd().clone().unwrap_or_default(),
        env: cfg.env().clone().unwrap_or_default(),
        workdir: cfg.working_dir().clone().unwrap_or_default(),
        user: cfg.user().clone().unwrap_or_default(),
        stop_signal: cfg.stop_signal().clone().unwrap_or_default(),
    };
    Ok((img.name, img.digest, image_cfg, unpacked.chain_id))
}

/// The snapshot key of a container.
pub fn snapshot_key(ns: &str, id: &str) -> String {
    format!("{ns}.{id}")
}

/// Prepares the container's writable snapshot on the image's chain.
pub fn prepare(d: &Daemon, key: &str, chain_id: &str, opts: Option<&RunOptions>) -> ApiResult<()> {
    d.images
        .snapshots
        .prepare_with(key, chain_id, durability(opts))
        .map(|_| ())
        .map_err(image_error)
}

/// A container removed after its first exit keeps nothing of its writable layer: neither its
/// snapshot's record nor its overlay need survive a host crash.
fn durability(opts: Option<&RunOptions>) -> Durability {
    if crate::store::removed_after_exit(opts) {
        Durability::Volatile
    } else {
        Durability::Synced
    }
}

/// Mounts the container's snapshot at `target`.
pub fn mount_rootfs(d: &Daemon, _ns: &str, c: &Container, target: &Path) -> ApiResult<()> {
    if c.snapshot_key.is_empty() {
        return Err(ApiError::FailedPrecondition(format!(
            "container {:?} has no snapshot",
            c.id
        )));
    }
    // Volatile: unmounting does not sync the whole filesystem under the layer.
    d.images
        .snapshots
        .mount_with(&c.snapshot_key, target, durability(c.options.as_ref()))
        .map_err(image_error)
}

/// Unmounts the container's rootfs from its bundle, if it is still mounted there.
pub fn unmount_rootfs(d: &Daemon, ns: &str, c: &Container) {
    let target = d.bundles.path(ns, &c.id).join("rootfs");
    if target.exists() {
        if let Err(e) = d.images.snapshots.unmount(&target) {
            tracing::warn!(id = c.id, "unmounting the rootfs: {e}");
        }
    }
}

/// Removes the container's snapshot (after its task is gone).
pub fn release(d: &Daemon, _ns: &str, c: &Container) {
    if c.snapshot_key.is_empty() {
        return;
    }
    if let Err(e) = d.images.snapshots.remove(&c.snapshot_key) {
        tracing::warn!(id = c.id, "removing the snapshot: {e}");
    }
}

/// Collects blobs and snapshots that no image record and no container references.
pub async fn gc(d: &Arc<Daemon>) -> ApiResult<()> {
    let _lock = d.images.gc_lock.write().await;
    let mut manifests = Vec::new();
    for img in d.store.all_images()? {
        if let Ok(dg) = Digest::parse(&img.digest) {
            manifests.push(dg);
        }
    }
    let mut keys = Vec::new();
    for ns in d.store.namespaces()? {
        for c in d.store.containers(&ns.name)? {
            if !c.snapshot_key.is_empty() {
                keys.push(c.snapshot_key);
            }
        }
    }
    let d2 = d.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ImageError> {
        // An image whose layers cannot be named keeps them all: no gc rather than a wrong one.
        let chains = manifests
            .iter()
            .map(|m| berth_images::image_chain_id(&d2.images.content, m))
            .collect::<Result<Vec<String>, _>>()?;
        d2.images.snapshots.gc(&chains, &keys)?;
        d2.images.content.gc(&manifests)?;
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal("gc", e))?
    .map_err(image_error)
}
